-- Which countries bring the value: per country (from gold.user_ltv), users, buyers (one order or
-- more), VIPs, total and average lifetime value per buyer. Users without a country are '(none)'.
-- Athena: replace gold. by your gold Glue database (e.g. cdc_demo_dev_gold.).
SELECT
  COALESCE(country, '(none)') AS country_code,
  COUNT(*) AS users,
  SUM(CASE WHEN orders > 0 THEN 1 ELSE 0 END) AS buyers,
  SUM(CASE WHEN segment = 'vip' THEN 1 ELSE 0 END) AS vips,
  SUM(lifetime_value) AS total_value,
  CAST(
    SUM(lifetime_value) / NULLIF(SUM(CASE WHEN orders > 0 THEN 1 ELSE 0 END), 0) AS DECIMAL(18, 2)
  ) AS value_per_buyer
FROM gold.user_ltv
GROUP BY country
ORDER BY total_value DESC, country_code
