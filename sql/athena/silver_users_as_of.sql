-- Users per country as of a point in time, next to now, from silver.users_history (SCD type 2):
-- a version is the row during [valid_from, valid_to); valid_to is null while current. Set the
-- time in `params` (the demo's changes happen on 2026-01-01 between 00:00 and 00:01:30 UTC).
-- Deleted users' delete markers have an empty range, so they never count.
-- Athena: replace silver. by your silver Glue database (e.g. cdc_demo_dev_silver.).
WITH params AS (
  SELECT TIMESTAMP '2026-01-01 00:00:30 UTC' AS as_of
)
SELECT
  COALESCE(h.country, '(none)') AS country_code,
  SUM(
    CASE
      WHEN h.valid_from <= p.as_of AND (h.valid_to > p.as_of OR h.valid_to IS NULL) THEN 1
      ELSE 0
    END
  ) AS users_then,
  SUM(CASE WHEN h.is_current THEN 1 ELSE 0 END) AS users_now
FROM silver.users_history h
CROSS JOIN params p
WHERE h._op <> 'd'
GROUP BY h.country
ORDER BY users_now DESC, country_code
