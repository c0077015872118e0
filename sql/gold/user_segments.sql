-- Users per segment, with their average and total lifetime value.
-- materialized: table
-- assert: unique(segment)
-- assert: accepted_values(segment, ['vip', 'regular', 'new', 'prospect'])
-- assert: relationships(segment, user_ltv.segment)
SELECT
  segment,
  COUNT(*) AS users,
  CAST(SUM(lifetime_value) AS DECIMAL(18, 2)) AS lifetime_value,
  CAST(AVG(lifetime_value) AS DECIMAL(18, 2)) AS avg_lifetime_value
FROM gold.user_ltv
GROUP BY segment
