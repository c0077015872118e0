-- Deletes per source table and day (UTC, of the Kafka timestamp, so that a delete and its
-- tombstone fall on the same day): delete events (op = 'd', the deleted row's last image is in
-- record_value), the tombstones that follow them for Kafka log compaction (key only, no value),
-- how many distinct keys were deleted, and deletes without a tombstone (yet).
-- Athena: replace bronze. by your bronze Glue database (e.g. cdc_demo_dev_bronze.).
WITH deletes AS (
  SELECT 'users' AS table_name, kind, record_key, COALESCE(kafka_timestamp, source_ts) AS deleted_at
  FROM bronze.users
  WHERE op = 'd' OR kind = 'tombstone'
  UNION ALL
  SELECT 'products', kind, record_key, COALESCE(kafka_timestamp, source_ts)
  FROM bronze.products
  WHERE op = 'd' OR kind = 'tombstone'
  UNION ALL
  SELECT 'orders', kind, record_key, COALESCE(kafka_timestamp, source_ts)
  FROM bronze.orders
  WHERE op = 'd' OR kind = 'tombstone'
)
SELECT
  table_name,
  CAST(deleted_at AS DATE) AS delete_date,
  SUM(CASE WHEN kind = 'change' THEN 1 ELSE 0 END) AS delete_events,
  SUM(CASE WHEN kind = 'tombstone' THEN 1 ELSE 0 END) AS tombstones,
  COUNT(DISTINCT CASE WHEN kind = 'change' THEN record_key END) AS keys_deleted,
  SUM(CASE WHEN kind = 'change' THEN 1 ELSE 0 END)
    - SUM(CASE WHEN kind = 'tombstone' THEN 1 ELSE 0 END) AS without_tombstone
FROM deletes
GROUP BY table_name, CAST(deleted_at AS DATE)
ORDER BY table_name, delete_date
