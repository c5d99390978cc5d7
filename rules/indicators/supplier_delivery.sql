-- Supplier delivery performance, per supplier.
-- Deliveries completed in the last 30 days of event time: on-time ratio (received by the end of
-- the promised day plus a 1-day tolerance), mean and p90 delay in days (negative = early);
-- open lines past their promised date (count and open value); reschedules in 30 days.
-- Ratios need at least 3 deliveries, otherwise they are null (too few to judge).
-- The p90 is exact (percentile_cont, interpolated): approx_percentile_cont builds a t-digest per
-- supplier and was 12x slower with 1M deliveries in the window (docs/benchmarks.md).
WITH recent AS (
    SELECT supplier, days_between(received_at, due_at) AS delay_days
    FROM deliveries
    WHERE received_at > eval_time() - INTERVAL '30 days'
),
delivery AS (
    SELECT supplier,
           COUNT(*) AS deliveries,
           CASE WHEN COUNT(*) >= 3
                THEN AVG(CASE WHEN delay_days <= 1.0 THEN 1.0 ELSE 0.0 END) END AS on_time_ratio,
           AVG(delay_days) AS mean_delay_days,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY delay_days) AS p90_delay_days
    FROM recent
    GROUP BY supplier
),
open_late AS (
    SELECT supplier,
           COUNT(*) AS open_late_lines,
           SUM(open_quantity * unit_price) AS open_late_value,
           MAX(days_between(eval_time(), due_at)) AS max_open_late_days
    FROM po_lines
    WHERE due_at < eval_time()
    GROUP BY supplier
),
open_all AS (
    SELECT supplier, COUNT(*) AS open_lines FROM po_lines GROUP BY supplier
),
resched AS (
    SELECT supplier,
           SUM(CASE WHEN status = 'rescheduled' THEN 1 ELSE 0 END) AS reschedules,
           SUM(CASE WHEN status = 'backordered' THEN 1 ELSE 0 END) AS backorders
    FROM reschedules
    WHERE event_time > eval_time() - INTERVAL '30 days'
    GROUP BY supplier
),
suppliers AS (
    SELECT supplier FROM delivery
    UNION SELECT supplier FROM open_all
    UNION SELECT supplier FROM resched
)
SELECT s.supplier,
       COALESCE(d.deliveries, 0) AS deliveries,
       d.on_time_ratio,
       d.mean_delay_days,
       d.p90_delay_days,
       COALESCE(a.open_lines, 0) AS open_lines,
       COALESCE(o.open_late_lines, 0) AS open_late_lines,
       COALESCE(o.open_late_value, 0.0) AS open_late_value,
       o.max_open_late_days,
       COALESCE(r.reschedules, 0) AS reschedules,
       COALESCE(r.backorders, 0) AS backorders
FROM suppliers s
LEFT JOIN delivery d ON d.supplier = s.supplier
LEFT JOIN open_all a ON a.supplier = s.supplier
LEFT JOIN open_late o ON o.supplier = s.supplier
LEFT JOIN resched r ON r.supplier = s.supplier
