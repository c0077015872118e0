//! DataFusion reads of Iceberg tables: a `TableProvider` over the iceberg crate's scan planning
//! (manifests, partition and metrics pruning, delete-file matching) and its Arrow reader (field
//! ids, schema evolution, position deletes), with files split over partitions.
//!
//! Why not `iceberg-datafusion`'s `IcebergStaticTableProvider`: in iceberg 0.10.1, the reader
//! loads the position-delete files of the data files it reads concurrently into one shared
//! cache, and a data file that finds one of its delete files being loaded by another waits on a
//! `tokio::sync::Notify` that it subscribes to only after releasing the cache's lock. If the
//! load finishes in between, the wakeup is lost and the scan never ends (fixed upstream after
//! 0.10.1, apache/iceberg-rust#2859). Silver tables, whose position deletes apply to every data
//! file of their partition, hit it: a `medallion query` hung a CI run for 80 minutes. Here each
//! partition reads its files with a reader of its own, one file after another: a file's delete
//! files are loaded before the next file starts, so no reader ever waits on another's load,
//! and the partitions still use every core.

use std::any::Any;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::prelude::Expr;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::expr::Predicate;
use iceberg::scan::FileScanTask;
use iceberg::table::Table;
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;
use tokio::sync::OnceCell;

fn df_err(e: iceberg::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One table at one snapshot (the current one when loaded), read-only.
#[derive(Debug)]
pub struct IcebergTable {
    table: Table,
    schema: SchemaRef,
}

impl IcebergTable {
    pub fn new(table: Table) -> Result<Self, iceberg::Error> {
        let schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(
            table.metadata().current_schema(),
        )?);
        Ok(IcebergTable { table, schema })
    }
}

#[async_trait]
impl TableProvider for IcebergTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        let partitions = state.config().target_partitions().max(1);
        Ok(Arc::new(IcebergScan {
            table: self.table.clone(),
            columns,
            predicate: convert_filters_to_predicate(filters),
            limit,
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema),
                Partitioning::UnknownPartitioning(partitions),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            tasks: Arc::new(OnceCell::new()),
        }))
    }

    /// Filters prune files and row groups; DataFusion applies them again to the rows.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// The files of a scan, planned once (by whichever partition starts first) and sorted by path;
/// each partition reads a contiguous share of about equal bytes (`share`).
#[derive(Debug, Clone)]
struct IcebergScan {
    table: Table,
    columns: Vec<String>,
    predicate: Option<Predicate>,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
    tasks: Arc<OnceCell<Vec<FileScanTask>>>,
}

impl IcebergScan {
    async fn plan(&self) -> DFResult<Vec<FileScanTask>> {
        let mut scan = self.table.scan().select(self.columns.clone());
        if let Some(p) = &self.predicate {
            scan = scan.with_filter(p.clone());
        }
        let scan = scan.build().map_err(df_err)?;
        let mut tasks: Vec<FileScanTask> = scan
            .plan_files()
            .await
            .map_err(df_err)?
            .try_collect()
            .await
            .map_err(df_err)?;
        // A table partition's files sit side by side in the warehouse and share its delete
        // files: kept together, a partition's delete files are loaded by one reader, mostly.
        tasks.sort_by(|a, b| a.data_file_path.cmp(&b.data_file_path));
        Ok(tasks)
    }

    /// The batches of this partition's files (planning the scan first if no partition has).
    async fn read(
        self,
        partition: usize,
        partitions: usize,
    ) -> DFResult<BoxStream<'static, DFResult<RecordBatch>>> {
        let tasks = self.tasks.get_or_try_init(|| self.plan()).await?;
        let sizes: Vec<u64> = tasks.iter().map(|t| t.length).collect();
        let mine: Vec<iceberg::Result<FileScanTask>> = tasks[share(&sizes, partitions, partition)]
            .iter()
            .cloned()
            .map(Ok)
            .collect();
        // One file at a time per reader: see the module documentation.
        let runtime = iceberg::Runtime::try_current().map_err(df_err)?;
        let reader = ArrowReaderBuilder::new(self.table.file_io().clone(), runtime)
            .with_data_file_concurrency_limit(1)
            .build();
        let batches = reader
            .read(futures::stream::iter(mine).boxed())
            .map_err(df_err)?
            .stream();
        Ok(batches.map_err(df_err).boxed())
    }
}

impl DisplayAs for IcebergScan {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "IcebergScan {} columns:[{}]",
            self.table.identifier(),
            self.columns.join(",")
        )?;
        if let Some(p) = &self.predicate {
            write!(f, " predicate:[{p}]")?;
        }
        if let Some(limit) = self.limit {
            write!(f, " limit:[{limit}]")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for IcebergScan {
    fn name(&self) -> &str {
        "IcebergScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let partitions = self.properties.partitioning.partition_count();
        let scan = self.clone();
        let schema = self.properties.eq_properties.schema().clone();
        let batches = futures::stream::once(scan.read(partition, partitions)).try_flatten();
        // DataFusion limits the rows again above the scan; this only stops reading early.
        let limited = match self.limit {
            None => batches.boxed(),
            Some(limit) => batches
                .scan(limit, |left, batch| {
                    let item = match batch {
                        _ if *left == 0 => None,
                        Ok(b) => {
                            let take = b.num_rows().min(*left);
                            *left -= take;
                            Some(Ok(b.slice(0, take)))
                        }
                        Err(e) => Some(Err(e)),
                    };
                    futures::future::ready(item)
                })
                .boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, limited)))
    }
}

/// The files partition `part` of `parts` reads: a contiguous run of about `1/parts` of the
/// bytes. A file goes to the share its middle byte falls in, so a large file is not split off
/// with the small ones before it.
fn share(sizes: &[u64], parts: usize, part: usize) -> std::ops::Range<usize> {
    let total: u128 = sizes.iter().map(|s| u128::from(*s)).sum();
    let start_of = |k: usize| -> usize {
        if k == 0 {
            return 0;
        }
        if k >= parts {
            return sizes.len();
        }
        // The first file whose middle is at or past k/parts of the bytes.
        let mut before = 0u128;
        for (i, size) in sizes.iter().enumerate() {
            let size = u128::from(*size);
            if (2 * before + size) * parts as u128 >= 2 * total * k as u128 {
                return i;
            }
            before += size;
        }
        sizes.len()
    };
    start_of(part)..start_of(part + 1)
}

#[cfg(test)]
mod tests {
    use super::share;

    fn shares(sizes: &[u64], parts: usize) -> Vec<std::ops::Range<usize>> {
        (0..parts).map(|p| share(sizes, parts, p)).collect()
    }

    #[test]
    fn shares_are_contiguous_cover_every_file_once_and_balance_bytes() {
        assert_eq!(shares(&[10, 10, 10, 10], 2), vec![0..2, 2..4]);
        assert_eq!(shares(&[30, 10, 10, 10], 2), vec![0..1, 1..4]);
        assert_eq!(shares(&[1, 1, 1, 100], 2), vec![0..3, 3..4]);
        // More partitions than files, one file, no files, empty files.
        assert_eq!(shares(&[5, 5], 4), vec![0..0, 0..1, 1..1, 1..2]);
        assert_eq!(shares(&[7], 3), vec![0..0, 0..1, 1..1]);
        assert_eq!(shares(&[], 2), vec![0..0, 0..0]);
        assert_eq!(shares(&[0, 0, 0], 2), vec![0..0, 0..3]);
        for (sizes, parts) in [(vec![3u64, 9, 1, 4, 4, 8, 2], 3), (vec![1; 17], 4)] {
            let got = shares(&sizes, parts);
            let mut next = 0;
            for r in &got {
                assert_eq!(r.start, next, "{got:?}");
                next = r.end;
            }
            assert_eq!(next, sizes.len(), "{got:?}");
        }
    }
}
