-- The golden tests' silver.orders: seven orders over three days, one cancelled, one sold below
-- list price.
SELECT CAST(id AS BIGINT) AS id, CAST(user_id AS BIGINT) AS user_id,
  CAST(product_id AS BIGINT) AS product_id, CAST(quantity AS BIGINT) AS quantity,
  CAST(unit_price AS DECIMAL(10, 2)) AS unit_price, status,
  CAST(ordered_at AS TIMESTAMP) AS ordered_at
FROM (VALUES
  (100, 1, 12, 2, '400.00', 'paid', '2026-01-01 09:00:00'),
  (101, 1, 10, 5, '50.00', 'delivered', '2026-01-01 15:30:00'),
  (102, 2, 11, 3, '10.00', 'pending', '2026-01-02 10:00:00'),
  (103, 2, 10, 1, '50.00', 'cancelled', '2026-01-02 11:00:00'),
  (104, 3, 11, 4, '10.00', 'shipped', '2026-01-03 08:00:00'),
  (105, 2, 12, 1, '400.00', 'paid', '2026-01-03 20:00:00'),
  (106, 5, 10, 1, '45.00', 'delivered', '2026-01-03 12:00:00')
) AS t (id, user_id, product_id, quantity, unit_price, status, ordered_at)
