-- Supply concentration per part of the network: HHI of the part's order value by supplier
-- over open lines and deliveries in the window (1 = one supplier gets everything), the
-- qualified alternates with capacity, and the risk class that follows from them
-- (single_source: none, dual_source: one, multi_source: two or more).
WITH volume AS (
    SELECT part, supplier, SUM(quantity * unit_price) AS value
    FROM (
        SELECT part, supplier, quantity, unit_price FROM po_lines
        UNION ALL
        SELECT part, supplier, quantity, unit_price FROM deliveries
    ) v
    GROUP BY part, supplier
),
totals AS (
    SELECT part, SUM(value) AS total, COUNT(*) AS suppliers_used
    FROM volume
    GROUP BY part
),
hhi AS (
    SELECT v.part, SUM((v.value / t.total) * (v.value / t.total)) AS hhi
    FROM volume v
    JOIN totals t ON t.part = v.part
    WHERE t.total > 0
    GROUP BY v.part
)
SELECT n.part,
       n.supplier,
       n.risk_class,
       h.hhi,
       COALESCE(t.suppliers_used, 0) AS suppliers_used,
       COALESCE(t.total, 0.0) AS order_value,
       n.qualified_alternates,
       CASE WHEN n.qualified_alternates = 0 THEN 1 ELSE 0 END AS single_source
FROM network_parts n
LEFT JOIN totals t ON t.part = n.part
LEFT JOIN hhi h ON h.part = n.part
