-- Congestion per location (port, hub): recent dwell against the location's own baseline.
-- Dwell = departed - arrived; shipments still at the location count with their dwell so far.
-- Recent: stops active in the last 3 days. Baseline: median dwell of stops that ended
-- 3 to 90 days ago (needs at least 5 of them). congestion_ratio = recent / baseline.
WITH dwell AS (
    SELECT location,
           departed_at IS NULL AS still_there,
           COALESCE(departed_at, eval_time()) AS ended_at,
           days_between(COALESCE(departed_at, eval_time()), arrived_at) AS dwell_days
    FROM stops
    WHERE arrived_at <= eval_time()
),
baseline AS (
    SELECT location,
           median(dwell_days) AS baseline_dwell_days,
           COUNT(*) AS baseline_stops
    FROM dwell
    WHERE NOT still_there AND ended_at <= eval_time() - INTERVAL '3 days'
    GROUP BY location
    HAVING COUNT(*) >= 5
),
recent AS (
    SELECT location,
           AVG(dwell_days) AS dwell_days,
           MAX(dwell_days) AS max_dwell_days,
           COUNT(*) AS recent_stops,
           SUM(CASE WHEN still_there THEN 1 ELSE 0 END) AS shipments_at_location
    FROM dwell
    WHERE ended_at > eval_time() - INTERVAL '3 days'
    GROUP BY location
)
SELECT r.location,
       r.dwell_days,
       r.max_dwell_days,
       b.baseline_dwell_days,
       r.dwell_days / NULLIF(b.baseline_dwell_days, 0.0) AS congestion_ratio,
       r.recent_stops,
       r.shipments_at_location
FROM recent r
LEFT JOIN baseline b ON b.location = r.location
