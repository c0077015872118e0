//! Orphan files: files under a table's `data/` and `metadata/` folders that nothing references
//! (commits that crashed or lost a race, metadata files that fell out of the metadata log),
//! deleted once older than a threshold, so that the files of a commit still in flight are never
//! touched.
//!
//! Referenced: the current metadata file and those in its log, and for every snapshot its
//! manifest list, its manifests and every file their entries name. The table is loaded again
//! after listing, so a commit that lands meanwhile keeps its files.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::catalog::TableName;
use crate::lake::{Lake, LakeError, LakeTable};

use super::expire::{delete_all, referenced};

/// What an orphan cleanup did (or would do, in a dry run).
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub files_listed: usize,
    pub orphans: usize,
    /// Orphans younger than the threshold, left alone.
    pub too_young: usize,
    pub files_deleted: usize,
    pub bytes_deleted: u64,
    /// The orphans found (deleted unless a dry run).
    pub paths: Vec<String>,
}

/// Removes the orphan files of table `name` older than `older_than`.
pub async fn remove_orphans(
    lake: &Lake,
    name: &TableName,
    older_than: Duration,
    dry_run: bool,
) -> Result<Report, LakeError> {
    let table = lake.load_existing(name).await?;
    let location = table
        .metadata()
        .location()
        .trim_end_matches('/')
        .to_string();
    let mut keep = references(&table).await?;
    let mut listed = Vec::new();
    for folder in ["data", "metadata"] {
        listed.extend(
            lake.listing()
                .list(&format!("{location}/{folder}/"))
                .await?,
        );
    }
    // Whatever committed while listing is referenced too.
    let again = lake.load_existing(name).await?;
    if again.pointer.metadata_location != table.pointer.metadata_location {
        keep.extend(references(&again).await?);
    }
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = Report {
        files_listed: listed.len(),
        ..Default::default()
    };
    for f in listed {
        if keep.contains(&canonical(&f.location)) {
            continue;
        }
        report.orphans += 1;
        if f.modified > cutoff {
            report.too_young += 1;
            continue;
        }
        report.bytes_deleted += f.size;
        report.paths.push(f.location);
    }
    report.paths.sort();
    report.files_deleted = report.paths.len();
    if dry_run {
        report.bytes_deleted = 0;
    } else if !report.paths.is_empty() {
        delete_all(lake, &report.paths).await?;
    }
    Ok(report)
}

/// Every file the table's metadata references, in [`canonical`] form.
async fn references(table: &LakeTable) -> Result<HashSet<String>, LakeError> {
    let md = table.metadata();
    let snapshots: Vec<_> = md.snapshots().cloned().collect();
    let mut out: HashSet<String> = referenced(table, &snapshots, false)
        .await?
        .keys()
        .map(|p| canonical(p))
        .collect();
    out.insert(canonical(&table.pointer.metadata_location));
    out.extend(
        md.metadata_log()
            .iter()
            .map(|l| canonical(&l.metadata_file)),
    );
    out.extend(md.statistics_iter().map(|s| canonical(&s.statistics_path)));
    out.extend(
        md.partition_statistics_iter()
            .map(|s| canonical(&s.statistics_path)),
    );
    Ok(out)
}

/// One spelling per location: `file:/x`, `file:///x` → `/x`; `s3a://`, `s3n://` → `s3://`.
fn canonical(location: &str) -> String {
    if let Some(rest) = location.strip_prefix("file:") {
        return format!("/{}", rest.trim_start_matches('/'));
    }
    for scheme in ["s3a://", "s3n://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return format!("s3://{rest}");
        }
    }
    location.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_location() {
        assert_eq!(
            canonical("file:///w/t/data/a.parquet"),
            "/w/t/data/a.parquet"
        );
        assert_eq!(canonical("file:/w/t/data/a.parquet"), "/w/t/data/a.parquet");
        assert_eq!(canonical("s3a://b/t/a.parquet"), "s3://b/t/a.parquet");
        assert_eq!(canonical("s3://b/t/a.parquet"), "s3://b/t/a.parquet");
    }
}
