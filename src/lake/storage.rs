//! Warehouse storage: turns `warehouse.location` into an `iceberg` [`FileIO`] and the
//! warehouse root URL every table location starts with: a local folder, or S3 ([`super::s3`]).

use iceberg::io::FileIO;

use super::{LakeError, Result};
use crate::config::Config;

/// Opens the warehouse of a configuration. A local folder becomes `file:///absolute/path`, the
/// form PyIceberg and the `iceberg` crate both read.
pub fn open(config: &Config) -> Result<(FileIO, String)> {
    let loc = config.warehouse.location.trim_end_matches('/');
    if loc.starts_with("s3://") {
        if super::s3::split_location(loc).is_none() {
            return Err(LakeError::Storage {
                location: loc.to_string(),
                message: "an S3 warehouse is s3://bucket or s3://bucket/prefix".into(),
            });
        }
        return Ok((super::s3::file_io(&config.warehouse.s3), loc.to_string()));
    }
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
