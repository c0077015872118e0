-- The golden tests' silver.users: five users; dev has no orders, eve one.
SELECT CAST(id AS BIGINT) AS id, email, full_name, country
FROM (VALUES
  (1, 'ana@example.com', 'Ana Silva', 'PT'),
  (2, 'ben@example.com', 'Ben Okafor', 'US'),
  (3, 'cai@example.com', 'Cai Wen', 'CN'),
  (4, 'dev@example.com', 'Dev Patel', 'IN'),
  (5, 'eve@example.com', 'Eve Costa', 'BR')
) AS t (id, email, full_name, country)
