-- Supplier feed health, per defined feed (feeds/*.yaml): what it sent since chainwatch started,
-- the share rejected, and how long it has been silent in event time against how often it
-- should send (`expect_every`). staleness = silence / expect_every: above 1 the feed is late.
-- A feed that has sent nothing yet has no silence (null): chainwatch cannot tell since when.
SELECT f.feed,
       f.supplier,
       CAST(f.tier AS VARCHAR) AS tier,
       COALESCE(a.records, 0) AS records,
       COALESCE(a.events, 0) AS events,
       COALESCE(a.rejected, 0) AS rejected,
       CASE WHEN COALESCE(a.records, 0) > 0
            THEN LEAST(CAST(a.rejected AS DOUBLE) / a.records, 1.0) END AS rejected_ratio,
       days_between(eval_time(), a.last_event_at) * 86400.0 AS silence_seconds,
       f.expect_every_seconds,
       days_between(eval_time(), a.last_event_at) * 86400.0 / f.expect_every_seconds AS staleness
FROM feeds f
LEFT JOIN feed_activity a ON a.feed = f.feed
