-- The latest silver run of each table, per expectation (the built-in _key_not_null, _fits_type,
-- _decodes and the job's own): rows checked and failed, and the share failed; what
-- `medallion dq` prints, from the silver._dq_runs log (one row per table, expectation and step).
-- Athena: replace silver. by your silver Glue database (e.g. cdc_demo_dev_silver.).
WITH latest AS (
  SELECT table_name, run_id
  FROM (
    SELECT
      table_name,
      run_id,
      ROW_NUMBER() OVER (PARTITION BY table_name ORDER BY run_at DESC) AS recency
    FROM silver._dq_runs
  ) runs
  WHERE recency = 1
)
SELECT
  r.table_name,
  r.expectation,
  r.action,
  SUM(r.rows_checked) AS checked,
  SUM(r.rows_failed) AS failed,
  ROUND(100 * CAST(SUM(r.rows_failed) AS DOUBLE) / NULLIF(SUM(r.rows_checked), 0), 2) AS failed_pct,
  MAX(r.run_at) AS run_at
FROM silver._dq_runs r
JOIN latest l ON l.table_name = r.table_name AND l.run_id = r.run_id
GROUP BY r.table_name, r.expectation, r.action
ORDER BY r.table_name, r.expectation
