-- Sales per day: orders, units, revenue and average order value (cancelled orders left out).
-- materialized: incremental
-- unique_key: order_date
-- changed_keys: CAST(ordered_at AS DATE) FROM silver.orders
-- partitioned_by: month(order_date)
-- assert: unique(order_date)
-- assert: not_null(order_date)
-- assert: row_count > 0
-- assert_sql: SELECT * FROM {{ this }} WHERE revenue < 0 OR orders <= 0
SELECT
  CAST(ordered_at AS DATE) AS order_date,
  COUNT(*) AS orders,
  SUM(quantity) AS units,
  CAST(SUM(quantity * unit_price) AS DECIMAL(18, 2)) AS revenue,
  CAST(SUM(quantity * unit_price) / COUNT(*) AS DECIMAL(18, 2)) AS avg_order_value
FROM silver.orders
WHERE status <> 'cancelled' AND ordered_at IS NOT NULL
GROUP BY CAST(ordered_at AS DATE)
