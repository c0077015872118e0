//! Warehouse storage: turns `warehouse.location` into an `iceberg` [`FileIO`] and the
//! warehouse root URL every table location starts with: a local folder, or S3 ([`super::s3`]).
//! Beside it, a [`Listing`] of the files under a folder, which `iceberg`'s storage lacks and
//! orphan-file cleanup needs.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use iceberg::io::FileIO;

use super::{LakeError, Result};
use crate::config::Config;

/// A file found by a [`Listing`].
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its location, in the warehouse's form (`file:///…`, `s3://bucket/key`).
    pub location: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// Lists the files under a folder of the warehouse.
#[async_trait]
pub trait Listing: Send + Sync + Debug {
    /// Every file under `folder` (a location ending in `/`), at any depth.
    async fn list(&self, folder: &str) -> Result<Vec<Listed>>;
}

/// Opens the warehouse of a configuration: its storage, its root location and its listing.
pub fn open(config: &Config) -> Result<(FileIO, String, Arc<dyn Listing>)> {
    let loc = config.warehouse.location.trim_end_matches('/');
    if loc.starts_with("s3://") {
        if super::s3::split_location(loc).is_none() {
            return Err(LakeError::Storage {
                location: loc.to_string(),
                message: "an S3 warehouse is s3://bucket or s3://bucket/prefix".into(),
            });
        }
        let (file_io, listing) = super::s3::open(&config.warehouse.s3);
        return Ok((file_io, loc.to_string(), listing));
    }
    let (file_io, root) = open_local(config)?;
    Ok((file_io, root, Arc::new(LocalListing)))
}

/// A local warehouse folder. It becomes `file:///absolute/path`, the form PyIceberg and the
/// `iceberg` crate both read.
fn open_local(config: &Config) -> Result<(FileIO, String)> {
    let loc = config.warehouse.location.trim_end_matches('/');
    let path = match loc.strip_prefix("file://") {
        Some(p) => std::path::PathBuf::from(p),
        None => config.resolve(std::path::Path::new(loc)),
    };
    std::fs::create_dir_all(&path).map_err(|e| LakeError::Storage {
        location: path.display().to_string(),
        message: format!("cannot create the warehouse folder: {e}"),
    })?;
    let abs = path.canonicalize().map_err(|e| LakeError::Storage {
        location: path.display().to_string(),
        message: format!("cannot resolve the warehouse folder: {e}"),
    })?;
    Ok((FileIO::new_with_fs(), format!("file://{}", abs.display())))
}

/// The files of a local warehouse.
#[derive(Debug)]
struct LocalListing;

#[async_trait]
impl Listing for LocalListing {
    async fn list(&self, folder: &str) -> Result<Vec<Listed>> {
        let root = local_path(folder).ok_or_else(|| LakeError::Storage {
            location: folder.to_string(),
            message: "not a local (file://) location".into(),
        })?;
        let folder = folder.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, &mut out).map_err(|e| LakeError::Storage {
                location: folder.clone(),
                message: format!("cannot list the folder: {e}"),
            })?;
            Ok(out)
        })
        .await
        .map_err(|e| LakeError::Storage {
            location: String::new(),
            message: format!("listing stopped: {e}"),
        })?
    }
}

/// The path of a `file:` location.
fn local_path(location: &str) -> Option<PathBuf> {
    let p = location
        .strip_prefix("file://")
        .or_else(|| location.strip_prefix("file:"))?;
    Some(PathBuf::from(p))
}

fn walk(dir: &Path, out: &mut Vec<Listed>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(&entry.path(), out)?;
        } else if meta.is_file() {
            out.push(Listed {
                location: format!("file://{}", entry.path().display()),
                size: meta.len(),
                modified: meta.modified()?,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_a_local_folder_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("t/data/day=1")).unwrap();
        std::fs::write(root.join("t/data/day=1/a.parquet"), b"abc").unwrap();
        std::fs::write(root.join("t/metadata.json"), b"{}").unwrap();
        std::fs::write(root.join("other.txt"), b"x").unwrap();
        let mut got = LocalListing
            .list(&format!("file://{}/t/", root.display()))
            .await
            .unwrap();
        got.sort_by(|a, b| a.location.cmp(&b.location));
        let names: Vec<(String, u64)> = got.iter().map(|l| (l.location.clone(), l.size)).collect();
        assert_eq!(
            names,
            vec![
                (
                    format!("file://{}/t/data/day=1/a.parquet", root.display()),
                    3
                ),
                (format!("file://{}/t/metadata.json", root.display()), 2),
            ]
        );
        let missing = LocalListing
            .list(&format!("file://{}/nope/", root.display()))
            .await
            .unwrap();
        assert!(missing.is_empty());
    }
}
