-- Revenue, units and popularity of every product (cancelled orders left out), and its stock
-- risk: out of stock, low (fewer in stock than were sold), or ok.
-- materialized: table
-- assert: unique(product_id)
-- assert: not_null(product_id)
-- assert: relationships(product_id, silver.products.id)
-- assert: accepted_values(stock_risk, ['out_of_stock', 'low', 'ok'])
-- assert_sql: SELECT * FROM {{ this }} WHERE units_sold < 0 OR revenue < 0
SELECT
  p.id AS product_id,
  p.sku,
  p.name,
  p.category,
  p.price,
  p.stock,
  COALESCE(s.orders, 0) AS orders,
  COALESCE(s.units, 0) AS units_sold,
  CAST(COALESCE(s.revenue, 0) AS DECIMAL(18, 2)) AS revenue,
  CAST(RANK() OVER (ORDER BY COALESCE(s.units, 0) DESC) AS BIGINT) AS popularity_rank,
  CASE
    WHEN p.stock <= 0 THEN 'out_of_stock'
    WHEN p.stock < COALESCE(s.units, 0) THEN 'low'
    ELSE 'ok'
  END AS stock_risk
FROM silver.products p
LEFT JOIN (
  SELECT product_id, COUNT(*) AS orders, SUM(quantity) AS units, SUM(quantity * unit_price) AS revenue
  FROM silver.orders
  WHERE status <> 'cancelled'
  GROUP BY product_id
) s ON s.product_id = p.id
