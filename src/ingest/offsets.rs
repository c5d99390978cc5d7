//! Read positions: a received message's (topic, partition, offset) -> is it new?
//!
//! In: the coordinates of every message the consumer hands over, and at start the offsets of
//! the restored checkpoint. Out: whether the message is read for the first time; offsets
//! jumped over (`chainwatch_ingest_skipped_offsets_total`) and messages read again
//! (`chainwatch_ingest_reread_messages_total`) are counted per topic on the way.
//!
//! A message below the offset expected next was read before (or is in the restored
//! checkpoint): a partition handed back after a rebalance, or a consumer resuming at a
//! committed offset behind the checkpoint. It is dropped: read again, its events would be
//! judged late against the watermark they already moved.

use std::collections::HashMap;
use std::sync::Arc;

use crate::export::metrics::Metrics;

/// Where a message sits: topic, partition, offset.
pub(super) type At = (Arc<str>, i32, i64);

/// The next offset expected per partition read, and the topic names shared by every message.
#[derive(Debug, Default)]
pub(super) struct ReadPositions {
    topics: Vec<Arc<str>>,
    next: Vec<Expected>,
}

/// One partition read.
#[derive(Debug)]
struct Expected {
    topic: Arc<str>,
    partition: i32,
    /// The offset after the last message read.
    offset: i64,
    /// Messages below `offset` are being dropped (logged once per rewind).
    rewound: bool,
}

impl ReadPositions {
    /// Start from the next offsets of a checkpoint: what it holds counts as read.
    pub(super) fn resume_from(consumed: &HashMap<(String, i32), i64>) -> Self {
        let mut positions = ReadPositions::default();
        for ((topic, partition), offset) in consumed {
            let topic = positions.topic(topic);
            positions.next.push(Expected {
                topic,
                partition: *partition,
                offset: *offset,
                rewound: false,
            });
        }
        positions
    }

    /// The shared name of topic `t` (a handful of topics, each named by many messages).
    pub(super) fn topic(&mut self, t: &str) -> Arc<str> {
        if let Some(x) = self.topics.iter().find(|x| &***x == t) {
            return x.clone();
        }
        let a: Arc<str> = Arc::from(t);
        self.topics.push(a.clone());
        a
    }

    /// Note a received message; false when it was read before and is to be dropped.
    pub(super) fn is_new(&mut self, at: &At, metrics: &Metrics) -> bool {
        let (topic, partition, offset) = at;
        let Some(e) = self
            .next
            .iter_mut()
            .find(|e| Arc::ptr_eq(&e.topic, topic) && e.partition == *partition)
        else {
            // The series exist from the first message on (at 0), so they can be alerted on.
            metrics.skipped_offsets.with_label_values(&[topic]);
            metrics.reread.with_label_values(&[topic]);
            self.next.push(Expected {
                topic: topic.clone(),
                partition: *partition,
                offset: offset + 1,
                rewound: false,
            });
            return true;
        };
        if *offset < e.offset {
            if !e.rewound {
                e.rewound = true;
                tracing::warn!(
                    topic = %topic,
                    partition,
                    offset,
                    expected = e.offset,
                    "Partition resumed before what was read; dropping messages up to the expected offset (a topic deleted and created again under a checkpoint needs the checkpoint removed)."
                );
            }
            metrics.reread.with_label_values(&[topic]).inc();
            return false;
        }
        e.rewound = false;
        if *offset > e.offset {
            metrics
                .skipped_offsets
                .with_label_values(&[topic])
                .inc_by((*offset - e.offset) as u64);
        }
        e.offset = offset + 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_jumped_over_are_counted_per_topic_and_rereads_dropped() {
        let metrics = Metrics::new();
        let mut read = ReadPositions::default();
        let (a, b) = (read.topic("a"), read.topic("b"));
        assert!(
            Arc::ptr_eq(&a, &read.topic("a")),
            "one shared name per topic"
        );
        for at in [
            (a.clone(), 0, 10), // first read of a/0: nothing to compare with
            (a.clone(), 0, 11),
            (a.clone(), 1, 0),
            (a.clone(), 0, 15), // 12, 13, 14 never delivered
            (a.clone(), 0, 3),  // read again from an earlier offset: not a skip, dropped
            (a.clone(), 0, 4),
            (a.clone(), 0, 16), // where it left off: new again
            (b.clone(), 0, 7),
            (b.clone(), 0, 9), // 8
        ] {
            let fresh = read.is_new(&at, &metrics);
            assert_eq!(fresh, !(at.0 == a && [3, 4].contains(&at.2)), "{at:?}");
        }
        let skipped = |t: &str| metrics.skipped_offsets.with_label_values(&[t]).get();
        assert_eq!(skipped("a"), 3);
        assert_eq!(skipped("b"), 1);
        assert_eq!(metrics.reread.with_label_values(&["a"]).get(), 2);
        assert_eq!(metrics.reread.with_label_values(&["b"]).get(), 0);
        let c = read.topic("c");
        read.is_new(&(c, 0, 5), &metrics);
        let text = metrics.render(&[]);
        assert!(
            text.contains("chainwatch_ingest_skipped_offsets_total{topic=\"c\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn what_a_checkpoint_holds_counts_as_read() {
        let metrics = Metrics::new();
        let consumed = HashMap::from([(("erp".to_string(), 1), 100)]);
        let mut read = ReadPositions::resume_from(&consumed);
        let erp = read.topic("erp");
        assert!(!read.is_new(&(erp.clone(), 1, 99), &metrics));
        assert!(read.is_new(&(erp.clone(), 1, 100), &metrics));
        assert!(
            read.is_new(&(erp.clone(), 0, 0), &metrics),
            "another partition"
        );
        assert_eq!(metrics.reread.with_label_values(&["erp"]).get(), 1);
        assert_eq!(metrics.skipped_offsets.with_label_values(&["erp"]).get(), 0);
    }
}
