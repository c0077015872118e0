-- Current users per country (silver holds one row per live user): how many, how many active,
-- and the first and latest sign-up. Users without a country are counted as '(none)'.
-- Athena: replace silver. by your silver Glue database (e.g. cdc_demo_dev_silver.).
SELECT
  COALESCE(country, '(none)') AS country_code,
  COUNT(*) AS users,
  SUM(CASE WHEN is_active THEN 1 ELSE 0 END) AS active_users,
  MIN(created_at) AS first_signup_at,
  MAX(created_at) AS last_signup_at
FROM silver.users
GROUP BY country
ORDER BY users DESC, country_code
