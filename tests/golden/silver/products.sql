-- The golden tests' silver.products: one in stock, one sold out, one short of what sold.
SELECT CAST(id AS BIGINT) AS id, sku, name, category, CAST(price AS DECIMAL(10, 2)) AS price,
  CAST(stock AS BIGINT) AS stock
FROM (VALUES
  (10, 'SKU-10', 'Lamp', 'home', '50.00', 10),
  (11, 'SKU-11', 'Mug', 'kitchen', '10.00', 0),
  (12, 'SKU-12', 'Desk', 'office', '400.00', 1)
) AS t (id, sku, name, category, price, stock)
