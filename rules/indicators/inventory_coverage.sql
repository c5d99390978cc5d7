-- Inventory coverage per site and part: days of supply against the remaining lead time of the
-- next inbound. The next inbound is the open PO line for the site and part expected first:
-- its shipment's ETA when shipped, else the end of its promised day. An overdue inbound
-- counts as arriving now. coverage_gap_days < 0 means the line stops before supply arrives.
WITH inbound AS (
    SELECT l.site, l.part,
           MIN(COALESCE(s.eta, l.due_at)) AS next_inbound_at,
           SUM(l.open_quantity) AS inbound_quantity,
           COUNT(*) AS inbound_lines
    FROM po_lines l
    LEFT JOIN shipments s ON s.shipment = l.shipment
    GROUP BY l.site, l.part
),
cov AS (
    SELECT i.site, i.part, i.on_hand, i.daily_demand,
           CASE WHEN i.daily_demand > 0 THEN i.on_hand / i.daily_demand END AS days_of_supply,
           GREATEST(days_between(n.next_inbound_at, eval_time()), 0.0) AS next_inbound_days,
           COALESCE(n.inbound_quantity, 0.0) AS inbound_quantity,
           COALESCE(n.inbound_lines, 0) AS inbound_lines
    FROM inventory i
    LEFT JOIN inbound n ON n.site = i.site AND n.part = i.part
)
SELECT site, part, on_hand, daily_demand, days_of_supply, next_inbound_days,
       days_of_supply - next_inbound_days AS coverage_gap_days,
       inbound_quantity, inbound_lines
FROM cov
