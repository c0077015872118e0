-- Orders, units and revenue per order status, and each status's share of all orders.
-- materialized: table
-- assert: unique(status)
-- assert: not_null(status)
-- assert: accepted_values(status, ['pending', 'paid', 'shipped', 'delivered', 'cancelled'])
SELECT
  status,
  COUNT(*) AS orders,
  SUM(quantity) AS units,
  CAST(SUM(quantity * unit_price) AS DECIMAL(18, 2)) AS revenue,
  CAST(COUNT(*) AS DOUBLE) / SUM(COUNT(*)) OVER () AS share_of_orders
FROM silver.orders
GROUP BY status
