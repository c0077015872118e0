//! Snapshot expiry: snapshots older than a cutoff are removed from the table's metadata, except
//! the newest few, those a restart or an incremental reader still needs (`protected`), and any
//! a branch or tag points at. Then the files only the removed snapshots referenced (manifest
//! lists, manifests, data and delete files no kept snapshot has live) are deleted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use iceberg::spec::{ManifestStatus, SnapshotRef, TableMetadata};

use crate::catalog::TableName;
use crate::lake::{Lake, LakeError, LakeTable};

/// Which snapshots to keep.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Snapshots committed before now minus this are expired…
    pub older_than: Duration,
    /// …except the newest this many of the current snapshot's history…
    pub retain_last: usize,
    /// …and these (what restarts and incremental readers need).
    pub protected: HashSet<i64>,
}

/// What an expiry did (or would do, in a dry run).
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub snapshots_before: usize,
    pub snapshots_expired: usize,
    /// Snapshots old enough to expire that were kept because something needs them.
    pub snapshots_protected: usize,
    pub files_deleted: usize,
    /// Of the data, delete and manifest files deleted (manifest lists are not counted).
    pub bytes_deleted: u64,
}

/// The snapshots of `md` that `policy` expires.
pub fn plan(md: &TableMetadata, policy: &Policy, now: SystemTime) -> (Vec<i64>, usize) {
    let cutoff = now
        .checked_sub(policy.older_than)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut keep = referenced_by_refs(md);
    let mut at = md.current_snapshot();
    let mut n = 0;
    while let Some(s) = at {
        if n >= policy.retain_last {
            break;
        }
        keep.insert(s.snapshot_id());
        n += 1;
        at = s.parent_snapshot_id().and_then(|id| md.snapshot_by_id(id));
    }
    let mut expired = Vec::new();
    let mut protected = 0;
    for s in md.snapshots() {
        if keep.contains(&s.snapshot_id()) || s.timestamp_ms() >= cutoff {
            continue;
        }
        if policy.protected.contains(&s.snapshot_id()) {
            protected += 1;
            continue;
        }
        expired.push(s.snapshot_id());
    }
    (expired, protected)
}

/// The snapshots branches and tags point at. The crate keeps the refs private; its
/// serialization is the spec's, so they are read from there.
fn referenced_by_refs(md: &TableMetadata) -> HashSet<i64> {
    let json = serde_json::to_value(md).unwrap_or_default();
    json["refs"]
        .as_object()
        .map(|refs| {
            refs.values()
                .filter_map(|r| r["snapshot-id"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

/// Expires snapshots of the table `name`; with `dry_run`, only says what it would do.
pub async fn expire(
    lake: &Lake,
    name: &TableName,
    policy: &Policy,
    dry_run: bool,
) -> Result<Report, LakeError> {
    let before = lake.load_existing(name).await?;
    let now = SystemTime::now();
    let mut report = Report {
        snapshots_before: before.metadata().snapshots().count(),
        ..Default::default()
    };
    let (planned, protected) = plan(before.metadata(), policy, now);
    report.snapshots_protected = protected;
    if planned.is_empty() {
        return Ok(report);
    }
    let (expired, after) = if dry_run {
        (planned, before.clone())
    } else {
        let mut expired = Vec::new();
        let after = lake
            .update_metadata_with_retry(name, |t| {
                let (ids, _) = plan(t.metadata(), policy, now);
                if ids.is_empty() {
                    return Ok(None);
                }
                expired = ids.clone();
                Ok(Some(move |b: iceberg::spec::TableMetadataBuilder| {
                    Ok(b.remove_snapshots(&ids))
                }))
            })
            .await?;
        match after {
            Some(t) => (expired, t),
            None => return Ok(report),
        }
    };
    report.snapshots_expired = expired.len();

    // Files of the expired snapshots that no kept snapshot references.
    let gone: Vec<SnapshotRef> = expired
        .iter()
        .filter_map(|id| before.metadata().snapshot_by_id(*id).cloned())
        .collect();
    let kept: Vec<SnapshotRef> = after
        .metadata()
        .snapshots()
        .filter(|s| !expired.contains(&s.snapshot_id()))
        .cloned()
        .collect();
    let keep = referenced(&after, &kept, true).await?;
    let candidates = referenced(&before, &gone, false).await?;
    let (doomed, sizes): (Vec<String>, Vec<u64>) = candidates
        .into_iter()
        .filter(|(p, _)| !keep.contains_key(p))
        .unzip();
    report.files_deleted = doomed.len();
    if !dry_run {
        report.bytes_deleted = sizes.iter().sum();
        delete_all(lake, &doomed).await?;
    }
    Ok(report)
}

/// The files `snapshots` reference, with their sizes as the metadata records them: their
/// manifest lists (size unknown: 0), manifests and the files of the manifests' entries (only
/// live entries with `live_only`; else every entry).
pub async fn referenced(
    table: &LakeTable,
    snapshots: &[SnapshotRef],
    live_only: bool,
) -> Result<HashMap<String, u64>, LakeError> {
    let name = table.name.to_string();
    let mut out = HashMap::new();
    let lists = futures::stream::iter(snapshots.iter().map(|s| {
        let name = name.clone();
        async move {
            table
                .table
                .manifest_list_reader(s)
                .load()
                .await
                .map_err(LakeError::iceberg(
                    &name,
                    format!("read manifest list {}", s.manifest_list()),
                ))
        }
    }))
    .buffer_unordered(16)
    .try_collect::<Vec<_>>()
    .await?;
    out.extend(snapshots.iter().map(|s| (s.manifest_list().to_string(), 0)));
    let mut manifests = Vec::new();
    for list in lists {
        for m in list.consume_entries() {
            let size = m.manifest_length.max(0) as u64;
            if out.insert(m.manifest_path.clone(), size).is_none() {
                manifests.push(m);
            }
        }
    }
    let file_io = table.table.file_io();
    let loaded = futures::stream::iter(manifests.iter().map(|m| {
        let name = name.clone();
        async move {
            m.load_manifest(file_io).await.map_err(LakeError::iceberg(
                &name,
                format!("read {}", m.manifest_path),
            ))
        }
    }))
    .buffer_unordered(16)
    .try_collect::<Vec<_>>()
    .await?;
    for manifest in loaded {
        for e in manifest.entries() {
            if !live_only || e.status() != ManifestStatus::Deleted {
                out.insert(e.file_path().to_string(), e.file_size_in_bytes());
            }
        }
    }
    Ok(out)
}

/// Deletes files (those already gone count as deleted).
pub async fn delete_all(lake: &Lake, paths: &[String]) -> Result<(), LakeError> {
    lake.file_io()
        .delete_stream(futures::stream::iter(paths.to_vec()).boxed())
        .await
        .map_err(|e| LakeError::Storage {
            location: paths.first().cloned().unwrap_or_default(),
            message: format!(
                "deleting {} unreferenced files: {e}; what is left is removed by orphan cleanup",
                paths.len()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_expired_without_snapshots() {
        let schema = iceberg::spec::Schema::builder().build().unwrap();
        let creation = iceberg::TableCreation::builder()
            .name("t".into())
            .location("file:///tmp/t".into())
            .schema(schema)
            .build();
        let md = iceberg::spec::TableMetadataBuilder::from_table_creation(creation)
            .unwrap()
            .build()
            .unwrap()
            .metadata;
        let policy = Policy {
            older_than: Duration::ZERO,
            retain_last: 1,
            protected: HashSet::new(),
        };
        assert_eq!(plan(&md, &policy, SystemTime::now()), (vec![], 0));
    }
}
