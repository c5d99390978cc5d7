-- Sub-tier disruption roll-up: how much of a supplier's input is at risk from a disrupted
-- supplier further up its supply chain, per (exposed supplier, source, depth).
--
-- A supplier of tier >= 2 is disrupted to the degree of the worst of: the share of its open
-- order value past due (late_value_share), the share of its in-flight shipments held or
-- delayed (held_share), and its feed being silent for more than 3x its expect_every (silent,
-- 0 or 1). network_paths carries, for every supplier downstream of it (depth 1 = its direct
-- customer) and every one of OUR parts on the way, the cumulative share of input it provides.
-- exposure = severity x share (worst part); affected_parts lists the parts, affected_sites our
-- sites that hold stock of them, days_of_supply is the smallest cover of those parts at any
-- site (alerts rank alternates against it).
WITH late AS (
    SELECT supplier,
           SUM(CASE WHEN due_at < eval_time() THEN open_quantity * unit_price ELSE 0.0 END)
             / NULLIF(SUM(open_quantity * unit_price), 0.0) AS late_value_share,
           SUM(CASE WHEN due_at < eval_time() THEN 1 ELSE 0 END) AS open_late_lines,
           MAX(CASE WHEN due_at < eval_time() THEN days_between(eval_time(), due_at) END)
             AS max_days_late
    FROM po_lines
    GROUP BY supplier
),
held AS (
    SELECT supplier,
           AVG(CASE WHEN status IN ('held', 'delayed') THEN 1.0 ELSE 0.0 END) AS held_share
    FROM shipments
    GROUP BY supplier
),
silent AS (
    SELECT f.supplier,
           MAX(CASE WHEN days_between(eval_time(), a.last_event_at) * 86400.0
                         > 3.0 * f.expect_every_seconds
                    THEN 1.0 ELSE 0.0 END) AS silent
    FROM feeds f
    JOIN feed_activity a ON a.feed = f.feed
    GROUP BY f.supplier
),
disruption AS (
    SELECT s.supplier,
           COALESCE(l.late_value_share, 0.0) AS late_value_share,
           COALESCE(l.open_late_lines, 0) AS open_late_lines,
           l.max_days_late,
           COALESCE(h.held_share, 0.0) AS held_share,
           COALESCE(q.silent, 0.0) AS silent,
           GREATEST(COALESCE(l.late_value_share, 0.0), COALESCE(h.held_share, 0.0),
                    COALESCE(q.silent, 0.0)) AS severity
    FROM network_suppliers s
    LEFT JOIN late l ON l.supplier = s.supplier
    LEFT JOIN held h ON h.supplier = s.supplier
    LEFT JOIN silent q ON q.supplier = s.supplier
    WHERE s.tier >= 2
),
cover AS (
    SELECT part, MIN(CASE WHEN daily_demand > 0 THEN on_hand / daily_demand END) AS days_of_supply
    FROM inventory
    GROUP BY part
)
SELECT p.supplier,
       CAST(p.tier AS VARCHAR) AS tier,
       p.source AS source_supplier,
       CAST(p.source_tier AS VARCHAR) AS source_tier,
       CAST(p.depth AS VARCHAR) AS depth,
       MAX(d.severity * p.share) AS exposure,
       MAX(d.severity) AS source_severity,
       MAX(p.share) AS max_share,
       MAX(d.late_value_share) AS late_value_share,
       MAX(d.open_late_lines) AS open_late_lines,
       MAX(d.max_days_late) AS max_days_late,
       MAX(d.held_share) AS held_share,
       MAX(d.silent) AS silent,
       COUNT(DISTINCT p.part) AS affected_part_count,
       array_sort(array_agg(DISTINCT p.part)) AS affected_parts,
       array_sort(array_agg(DISTINCT i.site) FILTER (WHERE i.site IS NOT NULL)) AS affected_sites,
       MIN(c.days_of_supply) AS days_of_supply
FROM network_paths p
JOIN disruption d ON d.supplier = p.source
LEFT JOIN cover c ON c.part = p.part
LEFT JOIN inventory i ON i.part = p.part
WHERE d.severity > 0
GROUP BY p.supplier, p.tier, p.source, p.source_tier, p.depth
