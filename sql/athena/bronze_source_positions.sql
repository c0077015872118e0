-- How far has bronze landed, per table and Kafka partition: records, the first offset landed and
-- the next one to read (the offsets bronze commits with its rows; `medallion tables` shows the
-- committed ones), offsets missing in between (records in the DLQ table _dlq, compacted or
-- transaction markers), the newest PostgreSQL LSN and change time, and the last ingest.
-- For MySQL sources read binlog_file, binlog_pos and gtid instead of pg_lsn.
-- Athena: replace bronze. by your bronze Glue database (e.g. cdc_demo_dev_bronze.).
WITH landed AS (
  SELECT
    'users' AS table_name, kafka_topic, kafka_partition, kafka_offset, pg_lsn, source_ts,
    ingested_at
  FROM bronze.users
  UNION ALL
  SELECT 'products', kafka_topic, kafka_partition, kafka_offset, pg_lsn, source_ts, ingested_at
  FROM bronze.products
  UNION ALL
  SELECT 'orders', kafka_topic, kafka_partition, kafka_offset, pg_lsn, source_ts, ingested_at
  FROM bronze.orders
)
SELECT
  table_name,
  kafka_topic,
  kafka_partition,
  COUNT(*) AS records,
  MIN(kafka_offset) AS first_offset,
  MAX(kafka_offset) + 1 AS next_offset,
  MAX(kafka_offset) - MIN(kafka_offset) + 1 - COUNT(*) AS offsets_not_here,
  MAX(pg_lsn) AS latest_lsn,
  MAX(source_ts) AS latest_change_at,
  MAX(ingested_at) AS last_ingested_at
FROM landed
GROUP BY table_name, kafka_topic, kafka_partition
ORDER BY table_name, kafka_topic, kafka_partition
