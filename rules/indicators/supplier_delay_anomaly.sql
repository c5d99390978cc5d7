-- Supplier delay anomaly, per supplier: its recent delays against its own baseline. Delay =
-- received - end of the promised day, in days. Recent: deliveries received in the last 7 days,
-- plus open lines past due with their delay so far (a lower bound; without them a supplier that
-- stops delivering has nothing recent to average). Baseline: deliveries received 7 to 90 days
-- ago. delay_z is a two-sample z-score,
--   (recent_mean - baseline_mean)
--     / (max(baseline_sd, 1.5) * sqrt(1 / recent_lines + 1 / baseline_deliveries)),
-- the 1.5-day floor on the sd because promises are whole days and delays are skewed: with
-- suppliers that are usually within a day, one 4-day-late delivery would otherwise read as an
-- anomaly. delay_z is null unless there are at least 3 recent and 10 baseline records. One row
-- per supplier with deliveries or past-due lines.
WITH d AS (
    SELECT supplier,
           days_between(received_at, due_at) AS delay_days,
           received_at > eval_time() - INTERVAL '7 days' AS recent,
           FALSE AS past_due
    FROM deliveries
    WHERE received_at > eval_time() - INTERVAL '90 days' AND received_at <= eval_time()
    UNION ALL
    SELECT supplier, days_between(eval_time(), due_at) AS delay_days, TRUE AS recent,
           TRUE AS past_due
    FROM po_lines
    WHERE due_at < eval_time() AND open_quantity > 0
),
recent AS (
    SELECT supplier,
           COUNT(*) AS recent_lines,
           SUM(CASE WHEN past_due THEN 1 ELSE 0 END) AS recent_past_due_lines,
           AVG(delay_days) AS recent_mean_delay_days,
           MAX(delay_days) AS recent_max_delay_days
    FROM d
    WHERE recent
    GROUP BY supplier
),
baseline AS (
    SELECT supplier,
           COUNT(*) AS baseline_deliveries,
           AVG(delay_days) AS baseline_mean_delay_days,
           STDDEV_SAMP(delay_days) AS baseline_sd_delay_days
    FROM d
    WHERE NOT recent
    GROUP BY supplier
),
suppliers AS (
    SELECT supplier FROM recent UNION SELECT supplier FROM baseline
)
SELECT s.supplier,
       CASE WHEN r.recent_lines >= 3 AND b.baseline_deliveries >= 10
            THEN (r.recent_mean_delay_days - b.baseline_mean_delay_days)
                 / (GREATEST(b.baseline_sd_delay_days, 1.5)
                    * SQRT(1.0 / r.recent_lines + 1.0 / b.baseline_deliveries))
       END AS delay_z,
       COALESCE(r.recent_lines, 0) AS recent_lines,
       COALESCE(r.recent_past_due_lines, 0) AS recent_past_due_lines,
       r.recent_mean_delay_days,
       r.recent_max_delay_days,
       COALESCE(b.baseline_deliveries, 0) AS baseline_deliveries,
       b.baseline_mean_delay_days,
       b.baseline_sd_delay_days
FROM suppliers s
LEFT JOIN recent r ON r.supplier = s.supplier
LEFT JOIN baseline b ON b.supplier = s.supplier
