-- How users and value split over the segments (gold.user_segments: vip, regular, new, prospect):
-- users, total and average lifetime value, and each segment's share of users and of value.
-- Athena: replace gold. by your gold Glue database (e.g. cdc_demo_dev_gold.).
SELECT
  segment,
  users,
  lifetime_value,
  avg_lifetime_value,
  ROUND(100 * CAST(users AS DOUBLE) / SUM(users) OVER (), 1) AS pct_of_users,
  ROUND(100 * CAST(lifetime_value AS DOUBLE) / SUM(CAST(lifetime_value AS DOUBLE)) OVER (), 1)
    AS pct_of_value
FROM gold.user_segments
ORDER BY lifetime_value DESC, segment
