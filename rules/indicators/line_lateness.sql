-- Predicted lateness per open PO line: the likeliest late lines of the line_risk view
-- (views/line_risk.sql has the model). p_late = P(the line is received after the end of its
-- promised day + 1 day), the tolerance of supplier_delivery.sql. Emitted: lines not yet due, due
-- within 21 days, with p_late >= 0.5, at most 250 (keeps /metrics bounded).
-- Columns: p_late; days_to_due; expected_delay_days (ETA-based when shipped, else the
-- predictive location, at least the earliest possible delay); open_value (open quantity x unit
-- price); shipped (1/0); history_deliveries (effective count behind the supplier's estimate).
SELECT supplier, po, line, part, site,
       p_late,
       days_to_due,
       expected_delay_days,
       open_value,
       shipped,
       history_deliveries
FROM line_risk
WHERE p_late >= 0.5
-- A hard cap on the rows (and so on /metrics series) in a mass disruption: the most likely late
-- first. supplier_lateness still counts every line.
ORDER BY p_late DESC, days_to_due, supplier, po, line
LIMIT 250
