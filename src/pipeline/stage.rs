//! The state stage: decoded batches in, one snapshot per evaluation step out.
//!
//! In: [`Batch`]es from ingest (valid on-time events, the watermark after them, the offsets
//! they end at, feed record counts). Out: [`ToEvaluator::Evaluate`] with a [`Tables`] snapshot
//! for every evaluation step the watermark has passed, in order and none skipped (the send
//! waits, so a slow evaluator slows ingest), and [`ToEvaluator::Checkpoint`] with the state
//! side of a checkpoint when ingest asks for one.
//!
//! Events wait in an [`EventBuffer`] until the watermark passes the end of their step; then the
//! step's events are applied in (event_time, event_id) order and the state is evaluated at
//! the step's end. What the evaluator sees is therefore a function of the events alone.
//!
//! It runs on a thread of its own ([`tokio::task::spawn_blocking`]), not on the runtime: applying
//! a step and taking its snapshot is CPU work (at 1 M open lines 20–60 ms per snapshot, built
//! on the last one's tables; 110–310 ms for the first, every table built whole), and
//! on a runtime worker it held back whatever else that worker had to do (`/healthz`,
//! `/metrics`, the lag monitor). The channels on both sides are the same bounded ones; only
//! this side blocks on them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::export::Shared;
use crate::ingest::{store_offsets, Batch};
use crate::state::checkpoint::StatePart;
use crate::state::{EventBuffer, State, Tables};

/// What the state stage sends the evaluator.
#[derive(Debug)]
pub(crate) enum ToEvaluator {
    /// Evaluate the snapshot at its watermark (a step end).
    Evaluate(Tables),
    /// Add the evaluator's side and write the checkpoint.
    Checkpoint(Box<StatePart>),
}

/// The state stage's own data.
pub(crate) struct StateStage {
    pub state: State,
    pub buffer: EventBuffer,
    pub consumer: Arc<crate::ingest::kafka::IngestConsumer>,
    pub shared: Arc<Shared>,
    /// Store offsets as soon as a batch is read (no checkpoints: the state does not survive a
    /// restart anyway). With checkpoints, offsets are stored once a checkpoint holds them.
    pub store_on_read: bool,
    /// Restored from a checkpoint with this watermark: publish and evaluate the restored state
    /// at once (the same evaluation as the last one before the checkpoint, so no transition).
    pub restored: Option<i64>,
}

impl StateStage {
    /// Run until ingest stops; then sends what is left for a final checkpoint (if asked) and
    /// returns. Blocks: call it from a blocking thread, not from the runtime.
    pub fn run(mut self, mut batches: mpsc::Receiver<Batch>, eval: mpsc::Sender<ToEvaluator>) {
        let mut duplicates_total = 0u64;
        if let Some(watermark) = self.restored {
            if self.state.applied() > 0
                && eval
                    .blocking_send(ToEvaluator::Evaluate(self.state.snapshot()))
                    .is_err()
            {
                return;
            }
            // Steps the restored watermark has already passed (their events were read before
            // the checkpoint): released now, not when the next event comes.
            if !self.release(watermark, &eval, &mut duplicates_total) {
                return;
            }
            self.publish(watermark, duplicates_total);
        }
        while let Some(batch) = batches.blocking_recv() {
            if !batch.feeds.is_empty() {
                self.state.record_feeds(&batch.feeds);
            }
            if let Some(events) = batch.events {
                if let Err(e) = self.buffer.push(events) {
                    // The batch came from the decoder in the event schema: not expected.
                    tracing::error!(error = %e, "Could not buffer a decoded batch.");
                }
            }
            if self.store_on_read {
                store_offsets(&self.consumer, &batch.offsets);
            }
            if !self.release(batch.watermark, &eval, &mut duplicates_total) {
                return;
            }
            if let Some(request) = batch.checkpoint {
                let part = StatePart {
                    request,
                    state: self.state.clone(),
                    buffer: self.buffer.clone(),
                };
                if eval
                    .blocking_send(ToEvaluator::Checkpoint(Box::new(part)))
                    .is_err()
                {
                    return;
                }
            }
            self.publish(batch.watermark, duplicates_total);
        }
        tracing::info!(applied = self.state.applied(), "State stage stopped.");
    }

    /// Every step the watermark has passed: apply its events, evaluate at its end. False when
    /// the evaluator is gone.
    fn release(
        &mut self,
        watermark: i64,
        eval: &mpsc::Sender<ToEvaluator>,
        duplicates_total: &mut u64,
    ) -> bool {
        let m = self.shared.metrics.clone();
        while let Some(ready) = self.buffer.pop_ready(watermark) {
            let (end, events) = match ready {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "Could not sort a step's events.");
                    continue;
                }
            };
            let stats = self.state.apply(&events, end);
            for (kind, n) in &stats.applied {
                m.applied.with_label_values(&[kind.as_str()]).inc_by(*n);
            }
            m.duplicates.inc_by(stats.duplicates);
            m.orphans.inc_by(stats.orphans);
            *duplicates_total += stats.duplicates;
            for (feed, a) in self.state.feeds() {
                if let Some(at) = a.last_event_at {
                    m.feed_last_event
                        .with_label_values(&[feed])
                        .set(at as f64 / 1000.0);
                }
            }
            if eval
                .blocking_send(ToEvaluator::Evaluate(self.state.snapshot()))
                .is_err()
            {
                return false;
            }
            // Catching up can release hundreds of steps from one batch: the status follows
            // step by step (at the step's end, so "past step X" means X was released).
            self.publish(end, *duplicates_total);
        }
        true
    }

    fn publish(&self, watermark: i64, duplicates: u64) {
        let m = &self.shared.metrics;
        let state = &self.state;
        self.shared
            .dead_lettered
            .store(m.dead_letters.get(), Ordering::SeqCst);
        m.watermark.set(watermark as f64 / 1000.0);
        m.buffered.set(self.buffer.len() as i64);
        m.open_lines.set(state.open_lines() as i64);
        m.shipments.set(state.in_flight_shipments() as i64);
        m.positions.set(state.positions() as i64);
        m.window_records.set(state.window_records() as i64);
        if let Ok(mut s) = self.shared.state.write() {
            s.watermark = watermark;
            s.evaluated_to = state.watermark();
            s.buffered_events = self.buffer.len();
            s.records_applied = state.applied();
            s.duplicates = duplicates;
            s.open_po_lines = state.open_lines();
            s.in_flight_shipments = state.in_flight_shipments();
            s.inventory_positions = state.positions();
            s.window_records = state.window_records();
        }
    }
}
