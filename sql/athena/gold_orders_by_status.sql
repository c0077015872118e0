-- Where the orders stand (gold.orders_by_status): orders, units and revenue per status, and each
-- status's share of orders and of revenue, in percent.
-- Athena: replace gold. by your gold Glue database (e.g. cdc_demo_dev_gold.).
SELECT
  status,
  orders,
  units,
  revenue,
  ROUND(100 * share_of_orders, 1) AS pct_of_orders,
  ROUND(100 * CAST(revenue AS DOUBLE) / SUM(CAST(revenue AS DOUBLE)) OVER (), 1) AS pct_of_revenue
FROM gold.orders_by_status
ORDER BY orders DESC, status
