-- How sales develop day by day (gold.daily_revenue, cancelled orders left out): orders and revenue
-- per day, the change from the day before, the 7-day moving average of revenue and the running
-- total.
-- Athena: replace gold. by your gold Glue database (e.g. cdc_demo_dev_gold.).
SELECT
  order_date,
  orders,
  revenue,
  avg_order_value,
  revenue - LAG(revenue) OVER (ORDER BY order_date) AS revenue_change,
  ROUND(
    AVG(CAST(revenue AS DOUBLE))
      OVER (ORDER BY order_date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW),
    2
  ) AS revenue_7d_avg,
  SUM(revenue) OVER (ORDER BY order_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    AS revenue_to_date
FROM gold.daily_revenue
ORDER BY order_date
