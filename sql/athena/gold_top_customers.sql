-- Who are the most valuable customers: the 10 users with the highest lifetime value (gold.user_ltv,
-- cancelled orders left out), their segment, orders, first and last order, and their share of all
-- revenue.
-- Athena: replace gold. by your gold Glue database (e.g. cdc_demo_dev_gold.).
SELECT
  user_id,
  email,
  country,
  segment,
  orders,
  lifetime_value,
  ROUND(100 * CAST(lifetime_value AS DOUBLE) / SUM(CAST(lifetime_value AS DOUBLE)) OVER (), 2)
    AS pct_of_revenue,
  first_order_at,
  last_order_at
FROM gold.user_ltv
ORDER BY lifetime_value DESC, user_id
LIMIT 10
