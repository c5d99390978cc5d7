-- Predicted lateness per supplier: the line_risk view (views/line_risk.sql has the model) summed
-- over the supplier's open lines that are not yet due and due within 21 days.
-- expected_late_lines = sum of p_late; expected_late_share = its mean (null below 3 lines: one
-- uncertain line is no pattern); predicted_late_lines and predicted_late_value (open quantity x
-- unit price) count lines with p_late >= 0.8; affected_parts lists their parts (for
-- annotations); next_predicted_late_due_days is the soonest of their due dates. One row per
-- supplier with open lines due within 21 days.
SELECT supplier,
       COUNT(*) AS lines_due,
       SUM(p_late) AS expected_late_lines,
       CASE WHEN COUNT(*) >= 3 THEN AVG(p_late) END AS expected_late_share,
       SUM(CASE WHEN p_late >= 0.8 THEN 1 ELSE 0 END) AS predicted_late_lines,
       SUM(CASE WHEN p_late >= 0.8 THEN open_value ELSE 0.0 END) AS predicted_late_value,
       MAX(p_late) AS max_p_late,
       MIN(CASE WHEN p_late >= 0.8 THEN days_to_due END) AS next_predicted_late_due_days,
       array_sort(array_agg(DISTINCT part) FILTER (WHERE p_late >= 0.8)) AS affected_parts
FROM line_risk
GROUP BY supplier
