-- Lifetime value and segment of every user: orders and revenue (cancelled orders left out),
-- first and last order.
-- materialized: incremental
-- unique_key: user_id
-- changed_keys: id FROM silver.users
-- changed_keys: user_id FROM silver.orders
-- assert: unique(user_id)
-- assert: not_null(user_id)
-- assert: accepted_values(segment, ['vip', 'regular', 'new', 'prospect'])
-- assert: relationships(user_id, silver.users.id)
-- assert: row_count > 0
-- assert_sql: SELECT * FROM {{ this }} WHERE lifetime_value < 0 OR orders < 0
SELECT
  u.id AS user_id,
  u.email,
  u.country,
  COALESCE(o.orders, 0) AS orders,
  CAST(COALESCE(o.revenue, 0) AS DECIMAL(18, 2)) AS lifetime_value,
  o.first_order_at,
  o.last_order_at,
  CASE
    WHEN COALESCE(o.revenue, 0) >= 1000 THEN 'vip'
    WHEN COALESCE(o.orders, 0) >= 2 THEN 'regular'
    WHEN COALESCE(o.orders, 0) = 1 THEN 'new'
    ELSE 'prospect'
  END AS segment
FROM silver.users u
LEFT JOIN (
  SELECT
    user_id,
    COUNT(*) AS orders,
    SUM(quantity * unit_price) AS revenue,
    MIN(ordered_at) AS first_order_at,
    MAX(ordered_at) AS last_order_at
  FROM silver.orders
  WHERE status <> 'cancelled'
  GROUP BY user_id
) o ON o.user_id = u.id
