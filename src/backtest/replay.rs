//! Deterministic event-time replay: recorded events + a rule book -> every alert transition.
//!
//! In: an [`EventLog`] (valid events sorted by event time), a [`RuleBook`] and a [`Schedule`]
//! of evaluation times (a fixed step in event time). Out: a [`ReplayOutcome`]: every alert
//! [`Transition`] (pending, firing, resolved, cancelled) with its event time, labels,
//! severity, value, threshold and rendered annotations; the same grouped into [`Episode`]s;
//! the [`Breach`]es found in the data; and any indicator or rule errors met on the way.
//!
//! At each evaluation time `t` the replay applies the events with `event_time <= t` to a
//! [`State`], moves the watermark to `t`, and evaluates the indicators and rules exactly as
//! the service's evaluator does (same SQL, same [`AlertEngine`], `eval_time()` = `t`). Nothing
//! reads the clock and nothing sleeps, so the same events, rules and schedule always give the
//! same outcome, and days of history take seconds. Unlike the service, the watermark is the
//! evaluation time itself (the history is complete, so there is no lateness to wait for).

use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::DataType;
use serde::Serialize;

use super::breaches::{Breach, BreachFinder};
use super::source::EventLog;
use crate::alerts::history::Tracker;
use crate::alerts::{Alert, AlertEngine};
use crate::indicators::{IndicatorError, IndicatorResult, Indicators};
use crate::pipeline::{samples_for, RuleBook};
use crate::state::{Retention, State, Tables};

/// Evaluation times: `start`, `start + step`, ... up to and including `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// First evaluation (event-time ms).
    pub start: i64,
    /// Last evaluation (ms), `>= start`.
    pub end: i64,
    /// Step between evaluations (ms), `> 0`.
    pub step: i64,
}

impl Schedule {
    /// From the first step boundary at or after the first event to the first at or after the
    /// last event; boundaries are multiples of `step` since the epoch (whole hours for `1h`).
    /// `None` without events or with a step that is not positive.
    pub fn covering(times: &[i64], step: i64) -> Option<Schedule> {
        let (&first, &last) = (times.first()?, times.last()?);
        if step <= 0 {
            return None;
        }
        let up =
            |t: i64| t.div_euclid(step) * step + if t.rem_euclid(step) == 0 { 0 } else { step };
        Some(Schedule {
            start: up(first),
            end: up(last),
            step,
        })
    }

    /// Number of evaluations.
    pub fn len(&self) -> u64 {
        u64::try_from((self.end - self.start) / self.step + 1).unwrap_or(0)
    }

    /// True when there is no evaluation (never for a schedule made by [`Schedule::covering`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The evaluation times, in order.
    pub fn times(&self) -> impl Iterator<Item = i64> {
        let s = *self;
        (0..s.len()).map(move |k| s.start + k as i64 * s.step)
    }
}

pub use crate::alerts::history::{Change, Episode, Transition};

/// An indicator or rule that failed at one evaluation (its rules saw no rows or kept state).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The evaluation time.
    #[serde(serialize_with = "super::ser::time")]
    pub at: i64,
    /// The error.
    pub message: String,
}

/// Everything a replay saw.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayOutcome {
    /// The evaluation times used.
    pub schedule: Schedule,
    /// Evaluations run.
    pub evaluations: u64,
    /// Events applied to the state (duplicates by event id excluded).
    pub applied: u64,
    /// Every transition, in time order (ties by rule, then labels).
    pub transitions: Vec<Transition>,
    /// Every episode, in the order they started.
    pub episodes: Vec<Episode>,
    /// Breaches in the data, by time.
    pub breaches: Vec<Breach>,
    /// Indicator and rule errors; at most [`MAX_PROBLEMS`] are kept.
    pub problems: Vec<Problem>,
    /// Problems not kept.
    pub problems_dropped: u64,
}

/// Problems kept in an outcome; the rest are counted.
pub const MAX_PROBLEMS: usize = 100;

/// A replay in progress: call [`Replay::evaluate_at`] with increasing times, then
/// [`Replay::finish`].
pub struct Replay<'a> {
    book: &'a RuleBook,
    events: &'a EventLog,
    /// Index of the next event to apply.
    cursor: usize,
    state: State,
    engine: AlertEngine,
    /// The last evaluation time.
    now: Option<i64>,
    first: Option<i64>,
    evaluations: u64,
    /// Closed episodes with the sequence number they started with.
    episodes: Vec<(u64, Episode)>,
    tracker: Tracker,
    transitions: Vec<Transition>,
    breaches: BreachFinder,
    problems: Vec<Problem>,
    problems_dropped: u64,
    /// Network and feed tables added to every snapshot.
    catalog: Option<std::sync::Arc<crate::catalog::Catalog>>,
    /// (event time, feed, supplier) of events that came through a feed, in time order.
    feed_marks: Vec<(i64, String, String)>,
    feed_cursor: usize,
}

impl<'a> Replay<'a> {
    /// Evaluate with this network and these feed definitions (their SQL tables and the
    /// alternates of alerts on parts).
    pub fn with_catalog(mut self, catalog: std::sync::Arc<crate::catalog::Catalog>) -> Self {
        self.engine.set_network(catalog.network.clone());
        self.catalog = Some(catalog);
        self
    }

    /// Events that came through supplier feeds: (event time, feed, supplier), in time order.
    pub fn with_feed_marks(mut self, marks: Vec<(i64, String, String)>) -> Self {
        self.feed_marks = marks;
        self
    }

    /// A replay of `events` through `book`, with an empty state.
    pub fn new(book: &'a RuleBook, events: &'a EventLog, retention: Retention) -> Self {
        Replay {
            book,
            events,
            cursor: 0,
            state: State::new(retention),
            engine: AlertEngine::new(&book.rules),
            now: None,
            first: None,
            evaluations: 0,
            episodes: Vec::new(),
            tracker: Tracker::default(),
            transitions: Vec::new(),
            breaches: BreachFinder::default(),
            problems: Vec::new(),
            problems_dropped: 0,
            catalog: None,
            feed_marks: Vec::new(),
            feed_cursor: 0,
        }
    }

    /// Applies the events up to `t` (inclusive), moves the watermark to `t` and evaluates every
    /// rule. A `t` not after the previous evaluation does nothing.
    pub async fn evaluate_at(&mut self, t: i64) {
        if let Some(tables) = self.prepare(t) {
            let results = self.book.indicators.evaluate(&tables).await;
            self.conclude(t, results);
        }
    }

    /// The state side of an evaluation: applies the events up to `t`, moves the watermark and
    /// takes the snapshot the indicators run on. `None` when `t` is not after the last one.
    fn prepare(&mut self, t: i64) -> Option<Tables> {
        if self.now.is_some_and(|now| t <= now) {
            return None;
        }
        // Records first: the feed's events are counted as they are applied, on its entry.
        while let Some((at, feed, supplier)) = self.feed_marks.get(self.feed_cursor) {
            if *at > t {
                break;
            }
            self.state.record_feeds(&[crate::state::FeedTally {
                feed: feed.clone(),
                supplier: supplier.clone(),
                records: 1,
                rejected: 0,
            }]);
            self.feed_cursor += 1;
        }
        self.apply_through(t);
        self.state.advance(t);
        self.now = Some(t);
        self.first.get_or_insert(t);
        self.evaluations += 1;
        let mut tables = canonical(self.state.snapshot());
        if let Some(c) = &self.catalog {
            tables.tables.extend(c.tables.iter().cloned());
        }
        Some(tables)
    }

    /// The rule side of an evaluation: the indicator results of the snapshot taken at `t` go
    /// through the alert engine, and the alerts into transitions and episodes.
    fn conclude(&mut self, t: i64, evaluated: Vec<Result<IndicatorResult, IndicatorError>>) {
        let mut results = Vec::new();
        for r in evaluated {
            match r {
                Ok(r) => results.push(r),
                Err(e) => self.problem(t, e.to_string()),
            }
        }
        let mut errors = Vec::new();
        for rule in self.book.rules.rules() {
            // As in the service: a failed indicator evaluates its rules on no rows.
            let samples = results
                .iter()
                .find(|r| r.name == rule.indicator)
                .map(|r| samples_for(r, &rule.value))
                .unwrap_or_default();
            if let Err(e) = self.engine.evaluate(&rule.name, &samples, t) {
                errors.push(e.to_string());
            }
        }
        for e in errors {
            self.problem(t, e);
        }
        let alerts = self.engine.alerts();
        self.track(t, &alerts);
    }

    /// The alerts after the last evaluation (pending, firing and recently resolved).
    pub fn alerts(&self) -> Vec<Alert> {
        self.engine.alerts()
    }

    /// The last evaluation time.
    pub fn now(&self) -> Option<i64> {
        self.now
    }

    /// Ends the replay: open late lines become breaches, episodes stay open where they are.
    pub fn finish(self, schedule: Schedule) -> ReplayOutcome {
        let end = self.now.unwrap_or(schedule.end);
        let breaches = self
            .breaches
            .finish(self.state.lines.iter().map(|(k, l)| (k, &**l)), end);
        let mut episodes = self.episodes;
        episodes.extend(self.tracker.open().map(|(s, e)| (s, e.clone())));
        episodes.sort_by_key(|(s, _)| *s);
        let episodes = episodes.into_iter().map(|(_, e)| e).collect();
        ReplayOutcome {
            schedule,
            evaluations: self.evaluations,
            applied: self.state.applied(),
            transitions: self.transitions,
            episodes,
            breaches,
            problems: self.problems,
            problems_dropped: self.problems_dropped,
        }
    }

    fn problem(&mut self, at: i64, message: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { at, message });
        } else {
            self.problems_dropped += 1;
        }
    }

    /// Applies the next events with `event_time <= t`, in order, watching for breaches.
    fn apply_through(&mut self, t: i64) {
        let events: &'a EventLog = self.events;
        let Some(batch) = &events.batch else {
            return;
        };
        let times = events.times();
        let end = self.cursor + times[self.cursor..].partition_point(|&x| x <= t);
        if end == self.cursor {
            return;
        }
        let slice = batch.slice(self.cursor, end - self.cursor);
        self.cursor = end;
        self.breaches.observe_events(&slice);
        let before = self.state.deliveries.len();
        // The current watermark: nothing ages out during apply, so the deliveries this slice
        // completed are exactly the ones appended.
        self.state.apply(&slice, self.state.watermark());
        for d in self.state.deliveries.range(before..) {
            self.breaches.observe_delivery(d);
        }
    }

    /// Turns the alerts seen at `t` into transitions and episodes.
    fn track(&mut self, t: i64, alerts: &[Alert]) {
        let tracked = self.tracker.track(t, alerts);
        self.transitions.extend(tracked.transitions);
        self.episodes.extend(tracked.closed);
    }
}

/// The snapshot with every table's rows in one order. The state keeps open lines, shipments and
/// positions in hash maps, whose order differs between two `State`s of one process; SQL
/// aggregates then add floats in a different order and values differ in their last digits.
/// Sorted rows make two replays of the same history give bit-identical outcomes.
fn canonical(mut tables: Tables) -> Tables {
    for (_, batch) in tables.tables.iter_mut() {
        if batch.num_rows() < 2 {
            continue;
        }
        let columns: Vec<SortColumn> = batch
            .columns()
            .iter()
            .filter(|c| {
                let t = c.data_type();
                t.is_primitive() || matches!(t, DataType::Utf8 | DataType::Boolean)
            })
            .map(|c| SortColumn {
                values: c.clone(),
                options: None,
            })
            .collect();
        let sorted =
            lexsort_to_indices(&columns, None).and_then(|order| take_record_batch(batch, &order));
        match sorted {
            Ok(b) => *batch = b,
            // Every column kept is sortable; left as it is, the replay is only less exact.
            Err(e) => tracing::debug!(error = %e, "Could not sort a snapshot table."),
        }
    }
    tables
}

/// Replays `events` through `book` at every time of `schedule`; `progress(done, total)` is
/// called after each evaluation.
pub async fn run(
    book: &RuleBook,
    events: &EventLog,
    schedule: Schedule,
    retention: Retention,
    progress: &mut dyn FnMut(u64, u64),
) -> ReplayOutcome {
    let mut replay = Replay::new(book, events, retention);
    let total = schedule.len();
    for (k, t) in schedule.times().enumerate() {
        replay.evaluate_at(t).await;
        progress(k as u64 + 1, total);
    }
    replay.finish(schedule)
}

/// Like [`run`], with the indicator SQL of successive evaluations spread over `workers` (each
/// its own copy of `book`'s indicators, e.g. loaded again from the same directory) on as many
/// threads. The state and the alert engine stay on the calling thread and see the results in
/// evaluation order, so the outcome is the same as [`run`]'s; only the SQL, which is most of
/// the cost and depends on nothing but its snapshot, runs in parallel. Blocks the calling
/// thread; with no worker it runs [`run`] on a runtime of its own.
pub fn run_parallel(
    book: &RuleBook,
    events: &EventLog,
    schedule: Schedule,
    retention: Retention,
    workers: Vec<Indicators>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReplayOutcome, std::io::Error> {
    if workers.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return Ok(rt.block_on(run(book, events, schedule, retention, progress)));
    }
    type Evaluated = Vec<Result<IndicatorResult, IndicatorError>>;
    let n = workers.len();
    let mut replay = Replay::new(book, events, retention);
    let total = schedule.len();
    std::thread::scope(|scope| -> Result<(), std::io::Error> {
        let mut to_workers = Vec::new();
        let mut from_workers = Vec::new();
        let mut handles = Vec::new();
        for indicators in workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Tables>(2);
            let (rtx, rrx) = std::sync::mpsc::sync_channel::<Evaluated>(2);
            // Indicator queries run under a timeout: the runtime needs its timer.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(scope.spawn(move || {
                for tables in rx {
                    if rtx.send(rt.block_on(indicators.evaluate(&tables))).is_err() {
                        break;
                    }
                }
            }));
            to_workers.push(tx);
            from_workers.push(rrx);
        }
        // Evaluation k goes to worker k % n; each worker answers in order, so the oldest
        // evaluation in flight is always answered by its worker's next result.
        let mut in_flight: std::collections::VecDeque<(usize, i64)> = Default::default();
        let mut done = 0u64;
        let mut next = 0usize;
        let mut receive = |replay: &mut Replay, (w, t): (usize, i64)| {
            let evaluated = from_workers[w].recv().unwrap_or_else(|_| {
                vec![Err(IndicatorError::Execute {
                    name: "*".into(),
                    message: "replay worker stopped".into(),
                })]
            });
            replay.conclude(t, evaluated);
            done += 1;
            progress(done, total);
        };
        for t in schedule.times() {
            let Some(tables) = replay.prepare(t) else {
                continue;
            };
            let w = next % n;
            next += 1;
            if to_workers[w].send(tables).is_err() {
                break;
            }
            in_flight.push_back((w, t));
            if in_flight.len() >= 2 * n {
                if let Some(oldest) = in_flight.pop_front() {
                    receive(&mut replay, oldest);
                }
            }
        }
        while let Some(oldest) = in_flight.pop_front() {
            receive(&mut replay, oldest);
        }
        drop(to_workers);
        // Joined here so a panicking worker is an error, not a panic of the scope.
        for h in handles {
            if h.join().is_err() {
                return Err(std::io::Error::other("a replay worker panicked"));
            }
        }
        Ok(())
    })?;
    Ok(replay.finish(schedule))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn schedule_covers_events_on_step_boundaries() {
        let s = Schedule::covering(&[H / 2, 3 * H, 5 * H + 1], H).unwrap();
        assert_eq!((s.start, s.end, s.len()), (H, 6 * H, 6));
        assert_eq!(
            s.times().collect::<Vec<_>>(),
            [H, 2 * H, 3 * H, 4 * H, 5 * H, 6 * H]
        );
        let exact = Schedule::covering(&[2 * H, 2 * H], H).unwrap();
        assert_eq!((exact.start, exact.end, exact.len()), (2 * H, 2 * H, 1));
        assert_eq!(Schedule::covering(&[], H), None);
        assert_eq!(Schedule::covering(&[H], 0), None);
    }
}
