-- Predicted lateness per supplier: the line_lateness.sql model (see there; the WITH block is
-- the same text, a test keeps it so) summed over the supplier's open lines that are not yet due
-- and due within 21 days. expected_late_lines = sum of p_late; expected_late_share = its mean
-- (null below 3 lines: one uncertain line is no pattern); predicted_late_lines and
-- predicted_late_value (open quantity x unit price) count lines with p_late >= 0.8;
-- affected_parts lists their parts (for annotations); next_predicted_late_due_days is the
-- soonest of their due dates. One row per supplier with open lines due within 21 days.
WITH hist AS (
    SELECT supplier, days_between(received_at, due_at) AS delay_days,
           POWER(0.5, days_between(eval_time(), received_at) / 14.0) AS w
    FROM deliveries
    WHERE received_at > eval_time() - INTERVAL '90 days' AND received_at <= eval_time()
    UNION ALL
    -- Open lines past due count with their delay so far (a lower bound): without them a
    -- supplier that stops delivering would look on time, its late lines not being deliveries yet.
    SELECT supplier, days_between(eval_time(), due_at) AS delay_days, 1.0 AS w
    FROM po_lines
    WHERE due_at < eval_time() AND open_quantity > 0
),
pop AS (
    SELECT CASE WHEN COUNT(*) >= 10 THEN AVG(delay_days) END AS m0,
           GREATEST(VAR_POP(delay_days), 0.25) AS v0
    FROM hist
),
sup AS (
    SELECT supplier,
           SUM(w) * SUM(w) / SUM(w * w) AS n,
           SUM(w * delay_days) / SUM(w) AS m,
           GREATEST(SUM(w * delay_days * delay_days) / SUM(w)
                    - (SUM(w * delay_days) / SUM(w)) * (SUM(w * delay_days) / SUM(w)), 0.0)
             * SUM(w) * SUM(w) / SUM(w * w) AS ss
    FROM hist
    GROUP BY supplier
),
post AS (
    SELECT l.supplier,
           CAST(COALESCE(s.n, 0) AS DOUBLE) AS n,
           COALESCE(s.m, p.m0) AS m,
           COALESCE(s.ss, 0.0) AS ss,
           p.m0, p.v0
    FROM (SELECT DISTINCT supplier FROM po_lines) l
    CROSS JOIN pop p
    LEFT JOIN sup s ON s.supplier = l.supplier
),
predictive AS (
    SELECT supplier,
           n AS history_deliveries,
           (5.0 * m0 + n * m) / (5.0 + n) AS loc,
           SQRT((5.0 * v0 + ss + 5.0 * n / (5.0 + n) * (m - m0) * (m - m0)) / (5.0 + n)
                * (1.0 + 1.0 / (5.0 + n))) AS scale,
           5.0 + n AS df
    FROM post
),
transit AS (
    SELECT l.supplier, l.site,
           GREATEST(MIN(days_between(sh.first_eta, sh.shipped_at)), 0.0) AS min_transit_days
    FROM po_lines l
    JOIN shipments sh ON sh.shipment = l.shipment
    GROUP BY l.supplier, l.site
),
lane AS (
    SELECT lane, AVG(days_between(eta, first_eta)) AS mean_eta_change_days
    FROM shipments
    GROUP BY lane
),
open AS (
    SELECT l.supplier, l.po, CAST(l.line AS VARCHAR) AS line, l.part, l.site,
           l.open_quantity * l.unit_price AS open_value,
           days_between(l.due_at, eval_time()) AS days_to_due,
           sh.shipment IS NOT NULL OR l.delivered_at IS NOT NULL AS shipped,
           -- Expected arrival: the ETA, or when the carrier delivered (receipt pending).
           days_between(COALESCE(sh.eta, l.delivered_at), l.due_at)
             + GREATEST(COALESCE(ln.mean_eta_change_days - days_between(sh.eta, sh.first_eta),
                                 0.0), 0.0) AS eta_delay_days,
           0.5 + 0.1 * GREATEST(days_between(COALESCE(sh.eta, l.delivered_at), eval_time()), 0.0)
             AS eta_sd_days,
           -- Earliest possible delay: now (it is still open), or now + transit if not shipped.
           GREATEST(days_between(eval_time(), l.due_at),
                    COALESCE(t.min_transit_days, 0.0) - days_between(l.due_at, eval_time()))
             AS unshipped_lower_days,
           p.loc, p.scale, p.df, p.history_deliveries
    FROM po_lines l
    LEFT JOIN shipments sh ON sh.shipment = l.shipment
    LEFT JOIN lane ln ON ln.lane = sh.lane
    LEFT JOIN predictive p ON p.supplier = l.supplier
    LEFT JOIN transit t ON t.supplier = l.supplier AND t.site = l.site
    WHERE l.open_quantity > 0
      AND l.due_at > eval_time()
      AND l.due_at <= eval_time() + INTERVAL '21 days'
),
scored AS (
    SELECT *,
           CASE
             WHEN shipped THEN
               students_t_sf(1.0, eta_delay_days, eta_sd_days, 3.0)
                 / NULLIF(students_t_sf(-days_to_due, eta_delay_days, eta_sd_days, 3.0), 0.0)
             WHEN unshipped_lower_days >= 1.0 THEN 1.0
             ELSE students_t_sf(1.0, loc, scale, df)
                    / NULLIF(students_t_sf(unshipped_lower_days, loc, scale, df), 0.0)
           END AS p_late,
           CASE WHEN shipped THEN eta_delay_days
                ELSE GREATEST(loc, unshipped_lower_days) END AS expected_delay_days
    FROM open
)
SELECT supplier,
       COUNT(*) AS lines_due,
       SUM(LEAST(p_late, 1.0)) AS expected_late_lines,
       CASE WHEN COUNT(*) >= 3 THEN AVG(LEAST(p_late, 1.0)) END AS expected_late_share,
       SUM(CASE WHEN p_late >= 0.8 THEN 1 ELSE 0 END) AS predicted_late_lines,
       SUM(CASE WHEN p_late >= 0.8 THEN open_value ELSE 0.0 END) AS predicted_late_value,
       MAX(LEAST(p_late, 1.0)) AS max_p_late,
       MIN(CASE WHEN p_late >= 0.8 THEN days_to_due END) AS next_predicted_late_due_days,
       array_sort(array_agg(DISTINCT part) FILTER (WHERE p_late >= 0.8)) AS affected_parts
FROM scored
GROUP BY supplier
