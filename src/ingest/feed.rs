//! Supplier feed messages -> pending entries: each record of a feed's message mapped on its own.
//!
//! In: one message of a supplier feed's topic and the feed's definition ([`crate::feeds`]).
//! Out: for every record, its canonical events (to decode with the input topics' events), a
//! reject for the dead-letter topic, or a skip (no mapping applies; only the offset counts);
//! the feed's tally and `chainwatch_feed_*` counters are updated on the way.

use std::sync::Arc;

use crate::export::metrics::Metrics;
use crate::feeds::Feed;
use crate::state::FeedTally;

use super::offsets::At;
use super::{FromFeed, Item, Pending};

/// Map one message of a supplier feed: each record becomes its canonical events, a reject
/// for the dead-letter topic, or (no mapping applies) a skip.
#[allow(clippy::too_many_arguments)]
pub(super) fn receive_feed(
    feed: &Arc<Feed>,
    payload: Option<&[u8]>,
    (topic, partition, offset): At,
    key: Option<Vec<u8>>,
    tally: &mut FeedTally,
    metrics: &Metrics,
    pending: &mut Vec<Pending>,
    buf: &mut Vec<u8>,
) {
    let records = payload.map(|p| feed.map_message(p)).unwrap_or_default();
    let mut push = |bytes: Option<&[u8]>, item: Item, row: usize, line: Option<u64>| {
        let payload = bytes.map(|b| {
            let start = buf.len();
            buf.extend_from_slice(b);
            start..buf.len()
        });
        pending.push(Pending {
            topic: topic.clone(),
            partition,
            offset,
            key: key.clone(),
            payload,
            item,
            feed: Some(FromFeed {
                feed: feed.clone(),
                row,
                line,
            }),
        });
    };
    if records.is_empty() {
        push(None, Item::Skip, 0, None);
        return;
    }
    let name = [feed.name.as_str()];
    for r in records {
        if r.row > 0 {
            tally.records += 1;
            metrics.feed_records.with_label_values(&name).inc();
        }
        match r.result {
            Ok(events) if events.is_empty() => push(None, Item::Skip, r.row, r.line),
            Ok(events) => {
                metrics
                    .feed_events
                    .with_label_values(&name)
                    .inc_by(events.len() as u64);
                for e in &events {
                    push(Some(e), Item::Event, r.row, r.line);
                }
            }
            Err(reject) => push(Some(&r.raw), Item::Rejected(reject), r.row, r.line),
        }
    }
}
