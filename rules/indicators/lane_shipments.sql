-- In-flight shipments per lane (origin-destination): held too long, silent too long, and ETA
-- slippage against the promised date of the PO lines they carry.
-- Held: status held for more than 2 days. Silent: no event for more than 3 days after the ETA
-- passed, or for more than 25 days in any case (ocean legs are quiet between port calls). Slippage: ETA - due time of the earliest line on board, in days;
-- ETA change: current ETA - first ETA, in days.
WITH due AS (
    SELECT shipment, MIN(due_at) AS due_at
    FROM po_lines
    WHERE shipment IS NOT NULL
    GROUP BY shipment
),
s AS (
    SELECT sh.lane, sh.origin, sh.destination, sh.mode, sh.status, sh.held_since,
           sh.last_event_at, sh.eta, sh.first_eta, due.due_at
    FROM shipments sh
    LEFT JOIN due ON due.shipment = sh.shipment
)
SELECT lane,
       origin,
       destination,
       COUNT(*) AS in_flight,
       SUM(CASE WHEN status = 'held' AND days_between(eval_time(), held_since) > 2.0
                THEN 1 ELSE 0 END) AS held_shipments,
       SUM(CASE WHEN days_between(eval_time(), last_event_at)
                     > CASE WHEN eta < eval_time() THEN 3.0 ELSE 25.0 END
                THEN 1 ELSE 0 END) AS silent_shipments,
       AVG(days_between(eta, due_at)) AS mean_eta_slippage_days,
       MAX(days_between(eta, due_at)) AS max_eta_slippage_days,
       AVG(days_between(eta, first_eta)) AS mean_eta_change_days
FROM s
GROUP BY lane, origin, destination
