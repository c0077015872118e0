-- How often do users change (silver.users_history, SCD type 2): per user, the versions kept,
-- updates, deletes, how often the country changed, when the user was first seen and whether the
-- user is still live. The 20 users with the most versions.
-- Athena: replace silver. by your silver Glue database (e.g. cdc_demo_dev_silver.).
WITH versions AS (
  SELECT
    id,
    _op,
    country,
    valid_from,
    is_current,
    LAG(country) OVER (PARTITION BY id ORDER BY valid_from, _source_lsn) AS previous_country,
    ROW_NUMBER() OVER (PARTITION BY id ORDER BY valid_from, _source_lsn) AS version_no
  FROM silver.users_history
  WHERE _op <> 'd'
),
deletes AS (
  SELECT id, COUNT(*) AS deletes
  FROM silver.users_history
  WHERE _op = 'd'
  GROUP BY id
)
SELECT
  v.id AS user_id,
  COUNT(*) AS versions,
  SUM(CASE WHEN v._op = 'u' THEN 1 ELSE 0 END) AS updates,
  COALESCE(MAX(d.deletes), 0) AS deletes,
  SUM(
    CASE WHEN v.version_no > 1 AND v.country IS DISTINCT FROM v.previous_country THEN 1 ELSE 0 END
  ) AS country_changes,
  MIN(v.valid_from) AS first_seen_at,
  MAX(CASE WHEN v.is_current THEN 1 ELSE 0 END) = 1 AS live
FROM versions v
LEFT JOIN deletes d ON d.id = v.id
GROUP BY v.id
ORDER BY versions DESC, user_id
LIMIT 20
