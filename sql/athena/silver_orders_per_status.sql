-- Current orders per status: orders, customers, units, revenue, how many have a ship date, and
-- the latest change in the source database. (The demo's `not_cancelled` expectation drops
-- cancelled orders from silver, so the demo shows none.)
-- Athena: replace silver. by your silver Glue database (e.g. cdc_demo_dev_silver.).
SELECT
  status,
  COUNT(*) AS orders,
  COUNT(DISTINCT user_id) AS customers,
  SUM(quantity) AS units,
  CAST(SUM(quantity * unit_price) AS DECIMAL(18, 2)) AS revenue,
  SUM(CASE WHEN shipped_on IS NOT NULL THEN 1 ELSE 0 END) AS with_ship_date,
  MAX(_updated_at) AS last_change_at
FROM silver.orders
GROUP BY status
ORDER BY orders DESC, status
