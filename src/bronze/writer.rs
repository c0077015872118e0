//! Writing a batch: Parquet data files through the `iceberg` crate's writers, then one commit per
//! table (the DLQ first) that records the batch's offsets with the rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use iceberg::spec::{DataFile, Schema};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::BronzeError;
use super::batch::{Flush, Part};
use super::dlq::{DlqTopic, dead_letters};
use super::offsets::{OFFSETS_PROPERTY, Watermarks};
use super::schema;
use crate::catalog::TableName;
use crate::config::BronzeConfig;
use crate::lake::{Change, Lake, LakeError, LakeTable};
use crate::metrics::Metrics;

/// Parses `zstd(3)`, `snappy`, `lz4`, `gzip(6)`, `uncompressed`.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    let s = s.trim().to_ascii_lowercase();
    let (name, level) = match s.split_once('(') {
        Some((n, rest)) => {
            let l = rest
                .strip_suffix(')')
                .and_then(|l| l.trim().parse::<i32>().ok())
                .ok_or_else(|| format!("'{s}': expected a level like zstd(3)"))?;
            (n.trim().to_string(), Some(l))
        }
        None => (s.clone(), None),
    };
    let c = match name.as_str() {
        "zstd" => Compression::ZSTD(
            ZstdLevel::try_new(level.unwrap_or(1)).map_err(|e| format!("zstd level: {e}"))?,
        ),
        "gzip" => Compression::GZIP(
            GzipLevel::try_new(level.unwrap_or(6) as u32)
                .map_err(|e| format!("gzip level: {e}"))?,
        ),
        "snappy" if level.is_none() => Compression::SNAPPY,
        "lz4" if level.is_none() => Compression::LZ4_RAW,
        "uncompressed" | "none" if level.is_none() => Compression::UNCOMPRESSED,
        _ => {
            return Err(format!(
                "'{s}' is not a supported compression (zstd(LEVEL), gzip(LEVEL), snappy, lz4, uncompressed)"
            ));
        }
    };
    Ok(c)
}

/// Writes and commits flushes for one bronze namespace.
pub struct Committer {
    lake: Lake,
    namespace: String,
    config: BronzeConfig,
    props_data: WriterProperties,
    props_dlq: WriterProperties,
    tables: HashMap<Arc<str>, LakeTable>,
    pub commits: u64,
    pub files: u64,
    metrics: Metrics,
    dlq_topic: Option<Arc<DlqTopic>>,
}

/// Parquet settings of bronze data files (or of the DLQ table's).
pub fn file_properties(config: &BronzeConfig, dlq: bool) -> WriterProperties {
    let compression = parse_compression(&config.compression).expect("validated with the config");
    // Raw key and value text is unique per row: dictionaries and statistics on it cost time and
    // buy nothing.
    let raw: &[&str] = if dlq {
        &["raw_key", "raw_value", "reason"]
    } else {
        &["record_key", "record_value"]
    };
    raw.iter()
        .fold(
            WriterProperties::builder()
                .set_compression(compression)
                .set_max_row_group_row_count(Some(128 * 1024)),
            |b, c| {
                let path = ColumnPath::from(*c);
                b.set_column_dictionary_enabled(path.clone(), false)
                    .set_column_statistics_enabled(path, EnabledStatistics::None)
            },
        )
        .build()
}

impl Committer {
    pub fn new(lake: Lake, namespace: &str, config: &BronzeConfig, metrics: Metrics) -> Self {
        Committer {
            props_data: file_properties(config, false),
            props_dlq: file_properties(config, true),
            lake,
            namespace: namespace.to_string(),
            config: config.clone(),
            tables: HashMap::new(),
            commits: 0,
            files: 0,
            metrics,
            dlq_topic: None,
        }
    }

    /// Also produce every dead letter to a Kafka topic, before the DLQ commit.
    pub fn with_dlq_topic(mut self, topic: Option<DlqTopic>) -> Self {
        self.dlq_topic = topic.map(Arc::new);
        self
    }

    async fn publish_dead_letters(&self, part: &Part) -> Result<(), BronzeError> {
        let Some(topic) = self.dlq_topic.clone() else {
            return Ok(());
        };
        let letters = dead_letters(&part.batch).map_err(BronzeError::arrow(&part.table))?;
        tokio::task::spawn_blocking(move || topic.publish(&letters))
            .await
            .map_err(|_| BronzeError::Stopped("DLQ topic producer"))?;
        Ok(())
    }

    fn name(&self, table: &str) -> TableName {
        TableName::new(self.namespace.clone(), table)
    }

    async fn table(&mut self, part: &Part) -> Result<LakeTable, BronzeError> {
        if let Some(t) = self.tables.get(&part.table) {
            return Ok(t.clone());
        }
        let schema = if part.is_dlq {
            schema::dlq_schema()
        } else {
            schema::data_schema()
        };
        let spec = schema::partition_spec(&schema, self.config.partition);
        let t = self
            .lake
            .load_or_create(
                &self.name(&part.table),
                schema,
                spec,
                schema::table_properties(&self.config.compression),
            )
            .await?;
        self.tables.insert(part.table.clone(), t.clone());
        Ok(t)
    }

    /// Writes the rows of a part as data files of its table (created if missing); commits
    /// nothing.
    pub(super) async fn write_part(
        &mut self,
        part: &Part,
        ingested_at_us: i64,
    ) -> Result<Vec<DataFile>, BronzeError> {
        let table = self.table(part).await?;
        let files = self.write_files(&table, part, ingested_at_us).await?;
        self.files += files.len() as u64;
        Ok(files)
    }

    /// Writes every part's files, then commits the parts in order (DLQ first).
    pub async fn commit(&mut self, flush: Flush) -> Result<(), BronzeError> {
        for part in &flush.parts {
            let started = std::time::Instant::now();
            let mut backoff = self.lake.retry.backoff();
            let files = loop {
                match self.write_part(part, flush.ingested_at_us).await {
                    Ok(files) => break files,
                    Err(BronzeError::Lake(e)) if e.is_transient() => {
                        let what = format!("writing the data files of {}", self.name(&part.table));
                        backoff.wait(&what, e).await?;
                    }
                    Err(e) => return Err(e),
                }
            };
            if part.is_dlq {
                self.publish_dead_letters(part).await?;
            }
            let name = self.name(&part.table);
            let coverage = &part.coverage;
            let committed = self
                .lake
                .commit_with_retry(&name, |current| {
                    let mut w = match current.summary_property(OFFSETS_PROPERTY) {
                        Some(s) => Watermarks::from_json(s).map_err(|message| LakeError::Invalid {
                            table: name.to_string(),
                            message,
                        })?,
                        None => Watermarks::default(),
                    };
                    for (p, first) in &coverage.first_accepted {
                        if let Some(c) = w.get(p).filter(|c| c > first) {
                            return Err(LakeError::Invalid {
                                table: name.to_string(),
                                message: format!(
                                    "another writer already committed {p} up to offset {c}, but this batch starts at {first}; \
                                     is a second ingest running on the same partitions?"
                                ),
                            });
                        }
                    }
                    for (p, next) in &coverage.next {
                        w.advance(p, *next);
                    }
                    let summary = BTreeMap::from([
                        (OFFSETS_PROPERTY.to_string(), w.to_json()),
                        ("medallion.writer".to_string(), "bronze-ingest".to_string()),
                    ]);
                    Ok(Some(Change::append(files.clone(), summary)))
                })
                .await?;
            if let Some(t) = committed {
                self.tables.insert(part.table.clone(), t);
            }
            self.commits += 1;
            self.metrics
                .committed(&part.table, part.batch.num_rows() as u64, started.elapsed());
        }
        Ok(())
    }

    async fn write_files(
        &self,
        table: &LakeTable,
        part: &Part,
        ingested_at_us: i64,
    ) -> Result<Vec<DataFile>, BronzeError> {
        let md = table.metadata();
        let name = table.name.to_string();
        let ice = |what: &str| LakeError::iceberg(&name, what.to_string());
        let schema: Arc<Schema> = md.current_schema().clone();
        let arrow_schema =
            iceberg::arrow::schema_to_arrow_schema(&schema).map_err(ice("convert the schema"))?;
        let spec = md.default_partition_spec().as_ref().clone();
        let transform = spec.fields()[0].transform;
        let key = iceberg::spec::PartitionKey::new(
            spec,
            schema.clone(),
            schema::partition_value(transform, ingested_at_us),
        );
        let props = if part.is_dlq {
            self.props_dlq.clone()
        } else {
            self.props_data.clone()
        };
        let batch =
            crate::lake::conform(&part.batch, &Arc::new(arrow_schema)).map_err(|source| {
                BronzeError::Arrow {
                    table: name.clone(),
                    source,
                }
            })?;
        Ok(crate::lake::write_keyed(
            &self.lake,
            table,
            schema,
            key,
            vec![batch],
            props,
            self.config.target_file_size.0 as usize,
        )
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_names() {
        assert_eq!(
            parse_compression("zstd(3)").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
        assert_eq!(parse_compression("snappy").unwrap(), Compression::SNAPPY);
        assert!(parse_compression("zstd(99)").is_err());
        assert!(parse_compression("brotli").is_err());
        assert!(parse_compression("snappy(2)").is_err());
    }
}
