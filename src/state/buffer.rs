//! The event-time buffer: decoded events wait here until the watermark has passed them.
//!
//! In: [`RecordBatch`]es of valid, on-time events (any order, any mix of times). Out: one
//! batch per evaluation step, in step order, once the watermark has passed the step's end:
//! the events with `end - step < event_time <= end`, sorted by (event_time, event_id). Steps
//! are closed on the right, as Prometheus range selectors are: the state at `end` includes
//! the events at `end`. A step closes when the watermark is past its end (events at the
//! watermark itself may still arrive: only older ones are late).
//!
//! This is what makes the service deterministic, as Flink's event-time operators are: the
//! state an evaluation at `end` sees holds exactly the events up to `end`, applied in one
//! order, however the broker interleaved partitions and however messages were batched. So a
//! restart from a checkpoint, a second run over the same topics and a backtest give the same
//! indicators and the same alerts. Only steps that hold events are evaluated: event time moves
//! with events, and a step with none has nothing new to show.

use std::collections::BTreeMap;

use arrow::array::{AsArray, UInt32Array};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::TimestampMillisecondType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::events::col;

/// Events by the end of their evaluation step.
#[derive(Debug, Clone)]
pub struct EventBuffer {
    step_ms: i64,
    buckets: BTreeMap<i64, Vec<RecordBatch>>,
    rows: usize,
}

impl EventBuffer {
    /// An empty buffer with evaluation steps of `step_ms` (> 0) event-time milliseconds.
    pub fn new(step_ms: i64) -> Self {
        EventBuffer {
            step_ms: step_ms.max(1),
            buckets: BTreeMap::new(),
            rows: 0,
        }
    }

    /// The step length (ms).
    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// The end of the step an event at `t` belongs to: the first multiple of the step at or
    /// after `t` (an event exactly on a boundary closes its step).
    pub fn step_end(&self, t: i64) -> i64 {
        let floor = t.div_euclid(self.step_ms).saturating_mul(self.step_ms);
        if floor == t {
            t
        } else {
            floor.saturating_add(self.step_ms)
        }
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The end of the earliest step held.
    pub fn first_end(&self) -> Option<i64> {
        self.buckets.keys().next().copied()
    }

    /// Hold the events of `batch` (in the event schema) until their step is ready.
    pub fn push(&mut self, batch: RecordBatch) -> Result<(), ArrowError> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = batch
            .column(col::EVENT_TIME)
            .as_primitive::<TimestampMillisecondType>();
        let ends: Vec<i64> = times.values().iter().map(|t| self.step_end(*t)).collect();
        self.rows += n;
        if ends.iter().all(|e| *e == ends[0]) {
            self.buckets.entry(ends[0]).or_default().push(batch);
            return Ok(());
        }
        let mut rows: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, e) in ends.iter().enumerate() {
            rows.entry(*e).or_default().push(i as u32);
        }
        for (end, idx) in rows {
            let part = take_record_batch(&batch, &UInt32Array::from(idx))?;
            self.buckets.entry(end).or_default().push(part);
        }
        Ok(())
    }

    /// The next step whose end is before `watermark`: its end and its events, sorted by
    /// (event_time, event_id).
    pub fn pop_ready(&mut self, watermark: i64) -> Option<Result<(i64, RecordBatch), ArrowError>> {
        let end = self.first_end().filter(|e| *e < watermark)?;
        let batches = self.buckets.remove(&end)?;
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        self.rows -= n;
        Some(sorted(&batches).map(|b| (end, b)))
    }

    /// Every held step, in order, as (end, batches): what a checkpoint stores.
    pub fn steps(&self) -> impl Iterator<Item = (i64, &[RecordBatch])> {
        self.buckets.iter().map(|(e, b)| (*e, b.as_slice()))
    }
}

/// The batches as one, sorted by (event_time, event_id): a total order that does not depend
/// on arrival.
fn sorted(batches: &[RecordBatch]) -> Result<RecordBatch, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(RecordBatch::new_empty(crate::events::event_schema()));
    };
    let all = if batches.len() == 1 {
        first.clone()
    } else {
        concat_batches(&first.schema(), batches)?
    };
    let keys = [
        SortColumn {
            values: all.column(col::EVENT_TIME).clone(),
            options: None,
        },
        SortColumn {
            values: all.column(col::EVENT_ID).clone(),
            options: None,
        },
    ];
    let order = lexsort_to_indices(&keys, None)?;
    take_record_batch(&all, &order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode::EventDecoder;
    use arrow::array::StringArray;

    /// 2026-01-01, a multiple of every step used here: test times are offsets from it.
    const T0: i64 = 1_767_225_600_000;

    fn batch(events: &[(&str, i64)]) -> RecordBatch {
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|(id, t)| {
                serde_json::json!({
                    "event_id": id, "kind": "inventory_position", "source": "wms",
                    "event_time": chrono::DateTime::from_timestamp_millis(T0 + *t).unwrap().to_rfc3339(),
                    "site": "S", "part": "P", "on_hand": 1.0, "daily_demand": 1.0
                })
                .to_string()
                .into_bytes()
            })
            .collect();
        let slices: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(p.as_slice())).collect();
        let d = EventDecoder::new(1 << 20).decode(&slices);
        assert!(d.rejects.is_empty(), "{:?}", d.rejects);
        d.batch.expect("rows")
    }

    fn ids(b: &RecordBatch) -> Vec<String> {
        let a: &StringArray = b.column(col::EVENT_ID).as_string();
        a.iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn steps_are_released_in_order_once_the_watermark_reaches_their_end() {
        let mut b = EventBuffer::new(1_000);
        b.push(batch(&[
            ("c", 2_500),
            ("a", 100),
            ("b", 999),
            ("z", 1_000),
            ("w", 1_001),
        ]))
        .unwrap();
        b.push(batch(&[("y", 1_000), ("x", 1)])).unwrap();
        assert_eq!(b.len(), 7);
        assert!(
            b.pop_ready(T0 + 1_000).is_none(),
            "step (0, 1000] needs the watermark past 1000: events at 1000 may still come"
        );
        let (end, first) = b.pop_ready(T0 + 1_001).unwrap().unwrap();
        assert_eq!(end, T0 + 1_000);
        assert_eq!(
            ids(&first),
            ["x", "a", "b", "y", "z"],
            "sorted by time then event id, whatever the arrival; the end is in the step"
        );
        assert!(b.pop_ready(T0 + 1_001).is_none());
        let (end, second) = b.pop_ready(T0 + 5_000).unwrap().unwrap();
        assert_eq!((end, ids(&second)), (T0 + 2_000, vec!["w".to_string()]));
        let (end, third) = b.pop_ready(T0 + 5_000).unwrap().unwrap();
        assert_eq!((end, ids(&third)), (T0 + 3_000, vec!["c".to_string()]));
        assert!(b.is_empty());
        assert!(b.pop_ready(i64::MAX).is_none());
    }

    #[test]
    fn any_batching_gives_the_same_steps() {
        let events = [
            ("e1", 10),
            ("e2", 1_500),
            ("e3", 20),
            ("e4", 1_499),
            ("e5", 3_001),
        ];
        let mut whole = EventBuffer::new(1_000);
        whole.push(batch(&events)).unwrap();
        let mut split = EventBuffer::new(1_000);
        for e in events.iter().rev() {
            split.push(batch(&[*e])).unwrap();
        }
        loop {
            match (whole.pop_ready(T0 + 10_000), split.pop_ready(T0 + 10_000)) {
                (None, None) => break,
                (Some(a), Some(b)) => {
                    let (a, b) = (a.unwrap(), b.unwrap());
                    assert_eq!(a.0, b.0);
                    assert_eq!(a.1, b.1);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn step_ends_round_up_and_boundaries_close_their_step() {
        let b = EventBuffer::new(1_000);
        assert_eq!(b.step_end(-1), 0);
        assert_eq!(b.step_end(-1_000), -1_000);
        assert_eq!(b.step_end(-999), 0);
        assert_eq!(b.step_end(0), 0);
        assert_eq!(b.step_end(1), 1_000);
    }
}
