-- Sales per product category (from gold.product_performance): products, products never sold or
-- at stock risk, units, revenue and its share, and the category's best rank in popularity.
-- Athena: replace gold. by your gold Glue database (e.g. cdc_demo_dev_gold.).
SELECT
  category,
  COUNT(*) AS products,
  SUM(CASE WHEN units_sold = 0 THEN 1 ELSE 0 END) AS never_sold,
  SUM(CASE WHEN stock_risk <> 'ok' THEN 1 ELSE 0 END) AS at_stock_risk,
  SUM(units_sold) AS units,
  SUM(revenue) AS total_revenue,
  ROUND(100 * CAST(SUM(revenue) AS DOUBLE) / SUM(CAST(SUM(revenue) AS DOUBLE)) OVER (), 1)
    AS pct_of_revenue,
  MIN(popularity_rank) AS best_rank
FROM gold.product_performance
GROUP BY category
ORDER BY total_revenue DESC, category
