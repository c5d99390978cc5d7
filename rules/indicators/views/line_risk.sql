-- View: predicted lateness of every open PO line not yet due and due within 21 days, computed
-- once per evaluation and read by line_lateness.sql (the likeliest late lines) and
-- supplier_lateness.sql (sums per supplier). p_late = P(the line is received after the end of
-- its promised day + 1 day), the tolerance of supplier_delivery.sql.
-- Delays D are in days after the end of the promised day (negative = early).
--
-- Not shipped yet: D follows the supplier's own delays, from its deliveries of the last 90 days
-- plus its open lines already past due (with their delay so far, a lower bound), weighted by
-- recency (half-life 14 days; n = effective count (sum w)^2 / sum w^2). Shrunk towards all
-- suppliers' delays (mean m0, variance v0 >= 0.25; null below 10 records) by a
-- normal-inverse-gamma prior worth k = 5 deliveries, the predictive distribution of D is
-- Student-t with 5 + n df, location (5 m0 + n m) / (5 + n) and
-- scale^2 = (5 v0 + SS + 5 n / (5 + n) (m - m0)^2) / (5 + n) * (1 + 1 / (5 + n)),
-- m and SS being the supplier's weighted mean and sum of squared deviations. The line is still
-- open now, and cannot arrive sooner than the shortest planned transit (first ETA - shipped at)
-- of the supplier's shipments in flight to the same site: D > lower, and
-- p_late = P(D > 1 | D > lower) = sf(1) / sf(lower) (1 when lower >= 1).
--
-- Shipped (shipment in flight, or delivered by the carrier with the receipt pending): arrival is
-- the ETA plus the lane's ETA slippage this shipment does not carry yet (the mean ETA change of
-- the lane's shipments in flight minus its own, if positive), with a Student-t error (3 df:
-- ETAs sometimes miss by far) of scale 0.5 day + 10% of the days left to the ETA, conditioned on
-- not being delivered before now. The supplier's history is not used: the ship date says more.
--
-- Columns: p_late (at most 1); days_to_due; expected_delay_days (ETA-based when shipped, else the
-- predictive location, at least the earliest possible delay); open_value (open quantity x unit
-- price); shipped (1/0); history_deliveries (effective count behind the supplier's estimate).
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
moments AS (
    SELECT supplier,
           n AS history_deliveries,
           (5.0 * m0 + n * m) / (5.0 + n) AS loc,
           SQRT((5.0 * v0 + ss + 5.0 * n / (5.0 + n) * (m - m0) * (m - m0)) / (5.0 + n)
                * (1.0 + 1.0 / (5.0 + n))) AS scale,
           5.0 + n AS df
    FROM post
),
-- P(D > 1) depends on the supplier only: computed once per supplier, not per line.
predictive AS (
    SELECT *, students_t_sf(1.0, loc, scale, df) AS sf_late FROM moments
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
-- The supplier's model and its shortest transit to the site, per (supplier, site) of the lines
-- scored below, so the lines are joined once, not twice: each such join builds a hash table of
-- the lines (500k at 1 M open lines); one fewer took about 8% off this view in the bench.
model AS (
    SELECT k.supplier, k.site, p.loc, p.scale, p.df, p.sf_late, p.history_deliveries,
           t.min_transit_days
    FROM (SELECT DISTINCT supplier, site FROM po_lines
          WHERE open_quantity > 0
            AND due_at > eval_time()
            AND due_at <= eval_time() + INTERVAL '21 days') k
    LEFT JOIN predictive p ON p.supplier = k.supplier
    LEFT JOIN transit t ON t.supplier = k.supplier AND t.site = k.site
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
                    COALESCE(m.min_transit_days, 0.0) - days_between(l.due_at, eval_time()))
             AS unshipped_lower_days,
           m.loc, m.scale, m.df, m.sf_late, m.history_deliveries
    FROM po_lines l
    LEFT JOIN shipments sh ON sh.shipment = l.shipment
    LEFT JOIN lane ln ON ln.lane = sh.lane
    LEFT JOIN model m ON m.supplier = l.supplier AND m.site = l.site
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
             ELSE sf_late / NULLIF(students_t_sf(unshipped_lower_days, loc, scale, df), 0.0)
           END AS p_late,
           CASE WHEN shipped THEN eta_delay_days
                ELSE GREATEST(loc, unshipped_lower_days) END AS expected_delay_days
    FROM open
)
SELECT supplier, po, line, part, site,
       -- Not LEAST(p_late, 1.0): LEAST skips nulls, and a null p_late (no history to judge
       -- by) must stay null, not become a certain delay.
       CASE WHEN p_late > 1.0 THEN 1.0 ELSE p_late END AS p_late,
       days_to_due,
       expected_delay_days,
       open_value,
       CASE WHEN shipped THEN 1 ELSE 0 END AS shipped,
       history_deliveries
FROM scored
