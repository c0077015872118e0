-- Data-quality flags of the current silver rows, per table: rows, rows not clean (_dq_ok false),
-- rows that failed a `warn` expectation (_dq_failed) and rows with cells stored as null because
-- the records held no typed value (_dq_issues), and the first expectation they failed.
-- Athena: replace silver. by your silver Glue database (e.g. cdc_demo_dev_silver.).
WITH flags AS (
  SELECT
    'users' AS table_name,
    _dq_ok,
    cardinality(_dq_failed) AS failed,
    cardinality(_dq_issues) AS issues,
    CASE WHEN cardinality(_dq_failed) > 0 THEN _dq_failed[1] END AS first_failed
  FROM silver.users
  UNION ALL
  SELECT 'products', _dq_ok, cardinality(_dq_failed), cardinality(_dq_issues),
    CASE WHEN cardinality(_dq_failed) > 0 THEN _dq_failed[1] END
  FROM silver.products
  UNION ALL
  SELECT 'orders', _dq_ok, cardinality(_dq_failed), cardinality(_dq_issues),
    CASE WHEN cardinality(_dq_failed) > 0 THEN _dq_failed[1] END
  FROM silver.orders
)
SELECT
  table_name,
  COALESCE(first_failed, '-') AS first_failed_expectation,
  COUNT(*) AS row_count,
  SUM(CASE WHEN _dq_ok THEN 0 ELSE 1 END) AS rows_not_ok,
  SUM(CASE WHEN COALESCE(failed, 0) > 0 THEN 1 ELSE 0 END) AS rows_failing_expectations,
  SUM(CASE WHEN COALESCE(issues, 0) > 0 THEN 1 ELSE 0 END) AS rows_with_null_cells
FROM flags
GROUP BY table_name, first_failed
ORDER BY table_name, first_failed_expectation
