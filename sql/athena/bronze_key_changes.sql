-- Every raw event of one row, in source order: here the order with the most changes (replace the
-- subquery by a key, e.g. '{"id":5000000197}', as record_key holds it). For tracing what silver
-- made of a row back to what Debezium sent.
-- Athena: replace bronze. by your bronze Glue database (e.g. cdc_demo_dev_bronze.).
SELECT
  kafka_partition,
  kafka_offset,
  kind,
  op,
  source_ts,
  pg_lsn,
  snapshot,
  record_key,
  record_value
FROM bronze.orders
WHERE record_key = (
  SELECT record_key
  FROM bronze.orders
  WHERE kind = 'change'
  GROUP BY record_key
  ORDER BY COUNT(*) DESC, record_key
  LIMIT 1
)
ORDER BY kafka_partition, kafka_offset
