//! A table's files as silver reads them: the live manifest entries of the current snapshot, and
//! a Parquet file as a stream of Arrow batches with only the columns asked for.

use iceberg::arrow::ArrowFileReader;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::ParquetMetaData;

use super::SilverError;
use crate::lake::LakeTable;
use crate::lake::data::open_reader;

/// Runs `tasks` (one per file), as many at once as there are cores, and hands each result to
/// `each` as it finishes (in any order).
pub async fn in_parallel<T, F>(
    table: &str,
    tasks: impl IntoIterator<Item = F>,
    mut each: impl FnMut(T),
) -> Result<(), SilverError>
where
    F: Future<Output = Result<T, SilverError>> + Send + 'static,
    T: Send + 'static,
{
    let spawned = tasks.into_iter().map(tokio::spawn);
    let mut done = futures::stream::iter(spawned).buffer_unordered(super::cores());
    while let Some(r) = done.next().await {
        let out = r.map_err(|e| SilverError::File {
            table: table.to_string(),
            file: String::new(),
            message: format!("a file task failed: {e}"),
        })??;
        each(out);
    }
    Ok(())
}

/// Which rows of a Parquet file to read.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    All,
    /// These row positions only (ascending).
    Only(&'a [u32]),
}

/// A Parquet file of `table` as Arrow batches: the top-level `columns` it has (every column
/// for `None`), of the `rows` asked for. Also the file's metadata.
pub async fn read_parquet(
    table: &LakeTable,
    path: &str,
    columns: Option<&[&str]>,
    rows: Rows<'_>,
    batch_size: usize,
) -> Result<ParquetRecordBatchStream<ArrowFileReader>, SilverError> {
    Ok(open_parquet(table, path, columns, rows, batch_size)
        .await?
        .0)
}

/// [`read_parquet`], with the file's metadata.
pub async fn open_parquet(
    table: &LakeTable,
    path: &str,
    columns: Option<&[&str]>,
    rows: Rows<'_>,
    batch_size: usize,
) -> Result<
    (
        ParquetRecordBatchStream<ArrowFileReader>,
        Arc<ParquetMetaData>,
    ),
    SilverError,
> {
    let name = table.name.to_string();
    let builder = ParquetRecordBatchStreamBuilder::new(open_reader(table, path).await?)
        .await
        .map_err(|e| SilverError::parquet(&name, path, e))?;
    let metadata = builder.metadata().clone();
    let builder = match columns {
        Some(cols) => {
            let schema = builder.schema().clone();
            let roots: Vec<usize> = cols
                .iter()
                .filter_map(|c| schema.index_of(c).ok())
                .collect();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder.with_projection(mask)
        }
        None => builder,
    };
    let builder = match rows {
        Rows::All => builder,
        Rows::Only(rows) => {
            let total = metadata.file_metadata().num_rows() as usize;
            builder.with_row_selection(selection(rows, total))
        }
    };
    let stream = builder
        .with_batch_size(batch_size)
        .build()
        .map_err(|e| SilverError::parquet(&name, path, e))?;
    Ok((stream, metadata))
}

/// The selection of `rows` (ascending) out of `total`.
fn selection(rows: &[u32], total: usize) -> RowSelection {
    let mut selectors = Vec::new();
    let mut at = 0usize;
    let mut i = 0;
    while i < rows.len() {
        let start = rows[i] as usize;
        let mut end = start + 1;
        i += 1;
        while i < rows.len() && rows[i] as usize == end {
            end += 1;
            i += 1;
        }
        if start > at {
            selectors.push(RowSelector::skip(start - at));
        }
        selectors.push(RowSelector::select(end - start));
        at = end;
    }
    if total > at {
        selectors.push(RowSelector::skip(total - at));
    }
    RowSelection::from(selectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections() {
        let s: Vec<RowSelector> = selection(&[0, 1, 2, 5, 7, 8], 10).into();
        assert_eq!(
            s,
            vec![
                RowSelector::select(3),
                RowSelector::skip(2),
                RowSelector::select(1),
                RowSelector::skip(1),
                RowSelector::select(2),
                RowSelector::skip(1),
            ]
        );
        let s: Vec<RowSelector> = selection(&[], 4).into();
        assert_eq!(s, vec![RowSelector::skip(4)]);
    }
}
