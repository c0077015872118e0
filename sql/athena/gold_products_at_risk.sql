-- Which selling products are running out: products whose stock is out or below the units sold
-- (gold.product_performance stock_risk), most popular first, with their revenue.
-- Athena: replace gold. by your gold Glue database (e.g. cdc_demo_dev_gold.).
SELECT
  popularity_rank,
  product_id,
  sku,
  name,
  category,
  stock,
  units_sold,
  revenue,
  stock_risk
FROM gold.product_performance
WHERE stock_risk <> 'ok'
ORDER BY popularity_rank, product_id
LIMIT 20
