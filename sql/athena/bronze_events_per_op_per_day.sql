-- Which change events did bronze land, per source table and day (UTC) of the change: kind
-- (change, tombstone, ...) and operation (op: c insert, u update, d delete, r snapshot read;
-- '-' for kinds without one). Tombstones carry no source time: they count on their Kafka
-- timestamp.
-- Athena: replace bronze. by your bronze Glue database (e.g. cdc_demo_dev_bronze.).
WITH events AS (
  SELECT 'users' AS table_name, kind, op, COALESCE(source_ts, kafka_timestamp) AS changed_at
  FROM bronze.users
  UNION ALL
  SELECT 'products', kind, op, COALESCE(source_ts, kafka_timestamp) FROM bronze.products
  UNION ALL
  SELECT 'orders', kind, op, COALESCE(source_ts, kafka_timestamp) FROM bronze.orders
)
SELECT
  table_name,
  CAST(changed_at AS DATE) AS change_date,
  kind,
  COALESCE(op, '-') AS operation,
  COUNT(*) AS events
FROM events
GROUP BY table_name, CAST(changed_at AS DATE), kind, op
ORDER BY table_name, change_date, kind, operation
