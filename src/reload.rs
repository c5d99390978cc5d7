//! Hot reload of the rule book: rule files and indicator SQL, replaced whole or not at all.
//!
//! In: reload requests from three sources, all through one [`Reloader`] handle: a change of the
//! files under the rules directory ([`watch_files`]), SIGHUP ([`on_sighup`]) and
//! `POST /-/reload` (`crate::export::http`). Out: a fully valid [`RuleBook`] sent to the
//! evaluator (which swaps it in between two evaluations, keeping the alerts of unchanged
//! rules), and a [`ReloadOutcome`] for every attempt: returned to the caller, logged, kept for
//! `/api/status` and counted in `chainwatch_rules_*` metrics.
//!
//! The book is loaded by the [`ReloadTask`] on a blocking thread, never by the evaluator, so a
//! slow or broken load delays no evaluation, ingest or HTTP. Requests that queue up while a
//! load runs are answered by one load that starts after all of them arrived. The evaluator
//! publishes a new book together with its outcome (`Shared::update_rules`), so `/api/status`
//! never pairs the rules of one load with the outcome of another.
//!
//! Files are watched by polling: the `notify` crate is not in the offline dependency set.
//! Every [`POLL`] the watcher hashes the files the loader reads (`*.yaml` / `*.yml` in the
//! directory, `indicators/*.sql` and `indicators/views/*.sql`) and asks for a reload once the hash has changed and then
//! stayed the same for [`QUIET`]: an editor's write-to-temp-then-rename, or a `git checkout`
//! of several files, gives one reload of the final content, and temporary files (`.swp`, `~`,
//! `.tmp`) are not looked at.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::export::metrics::Metrics;
use crate::export::{RulesView, Shared};
use crate::pipeline::{load_rulebook_with, RuleBook, RuleBookErrors};

/// How often the watcher looks at the rule files.
pub const POLL: Duration = Duration::from_millis(250);
/// How long the files must stay unchanged before a change is reloaded (debounce).
pub const QUIET: Duration = Duration::from_millis(500);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The load at start-up (not a reload; the outcome shown until the first reload).
    Start,
    /// A rule or indicator file changed.
    File,
    /// SIGHUP.
    Signal,
    /// `POST /-/reload`.
    Http,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::File => "file",
            Trigger::Signal => "signal",
            Trigger::Http => "http",
        }
    }
}

/// The result of one load of the rules directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadOutcome {
    pub trigger: Trigger,
    /// True when the new book is running; false when the previous one still runs.
    pub success: bool,
    /// Wall-clock time the attempt finished (ms).
    pub at_ms: i64,
    /// Wall time the load took.
    pub duration_ms: u64,
    /// Rules, groups and indicators of the new book (0 on failure).
    pub rules: usize,
    pub groups: usize,
    pub indicators: usize,
    /// Every problem, one per entry (`file:line:col: group "g", rule "R": message` for rule
    /// files, `file: message` for indicator SQL); empty on success.
    pub errors: Vec<String>,
}

impl ReloadOutcome {
    /// The outcome of a book that loaded (at start-up or on reload).
    pub fn loaded(trigger: Trigger, book: &RuleBook, took: Duration) -> Self {
        ReloadOutcome {
            trigger,
            success: true,
            at_ms: chrono::Utc::now().timestamp_millis(),
            duration_ms: took.as_millis() as u64,
            rules: book.rules.rules().count(),
            groups: book.rules.groups.len(),
            indicators: book.indicators.defs().len(),
            errors: Vec::new(),
        }
    }
}

/// Why a reload request got no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The pipeline is shutting down (or its evaluator stopped): nothing was reloaded.
    #[error("the pipeline is stopping; rules were not reloaded")]
    Stopped,
}

/// A new book for the evaluator; it publishes `outcome` with the book and answers on
/// `applied` once the book is running.
pub struct NewBook {
    pub book: RuleBook,
    pub outcome: Arc<ReloadOutcome>,
    pub applied: oneshot::Sender<()>,
}

/// Count a reload attempt in the `chainwatch_rules_*` metrics. Called before the attempt is
/// shown in `/api/status`, so whoever sees it there finds the metrics updated.
pub fn count(m: &Metrics, o: &ReloadOutcome) {
    if o.success {
        m.reload_success.set(1);
        m.reload_success_time.set(o.at_ms as f64 / 1000.0);
        m.reloads.with_label_values(&["success"]).inc();
    } else {
        m.reload_success.set(0);
        m.reloads.with_label_values(&["failure"]).inc();
    }
}

struct Request {
    trigger: Trigger,
    reply: Option<oneshot::Sender<Arc<ReloadOutcome>>>,
}

/// Asks the [`ReloadTask`] for reloads; cheap to clone, one per trigger source.
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::Sender<Request>,
}

impl Reloader {
    /// A handle and the receiving end for [`ReloadTask`].
    pub fn channel() -> (Reloader, ReloadRequests) {
        let (tx, rx) = mpsc::channel(16);
        (Reloader { tx }, ReloadRequests(rx))
    }

    /// Reload now and wait for the outcome (the HTTP endpoint, tests).
    pub async fn reload(&self, trigger: Trigger) -> Result<Arc<ReloadOutcome>, ReloadError> {
        let (reply, outcome) = oneshot::channel();
        let request = Request {
            trigger,
            reply: Some(reply),
        };
        self.tx
            .send(request)
            .await
            .map_err(|_| ReloadError::Stopped)?;
        outcome.await.map_err(|_| ReloadError::Stopped)
    }

    /// Ask for a reload without waiting (file watcher, SIGHUP). When the queue is full, the
    /// queued requests are answered by a load that has not started yet, so this one is
    /// covered and can be dropped.
    pub fn request(&self, trigger: Trigger) {
        let _ = self.tx.try_send(Request {
            trigger,
            reply: None,
        });
    }
}

/// The receiving end of a [`Reloader`].
pub struct ReloadRequests(mpsc::Receiver<Request>);

/// Loads the rules directory on request and hands valid books to the evaluator.
pub struct ReloadTask {
    pub dir: PathBuf,
    /// Query limits the reloaded indicators run under.
    pub limits: crate::indicators::Limits,
    pub requests: ReloadRequests,
    /// To the evaluator.
    pub books: mpsc::Sender<NewBook>,
    pub shared: Arc<Shared>,
}

impl ReloadTask {
    /// Serve requests until shutdown or until every [`Reloader`] is dropped.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let first = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                r = self.requests.0.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            // Everything queued now is answered by the load that starts now.
            let mut batch = vec![first];
            while let Ok(r) = self.requests.0.try_recv() {
                batch.push(r);
            }
            let outcome = self.reload(batch[0].trigger).await;
            for r in batch {
                if let Some(reply) = r.reply {
                    // The caller may have given up (HTTP timeout): nothing to tell it then.
                    let _ = reply.send(outcome.clone());
                }
            }
        }
    }

    /// One load; a valid book is running when this returns a success.
    async fn reload(&self, trigger: Trigger) -> Arc<ReloadOutcome> {
        let started = Instant::now();
        // Planning the SQL is CPU work (~0.5 s for the shipped rules in a debug build): keep it
        // off the runtime's workers, which serve ingest and HTTP.
        let dir = self.dir.clone();
        let limits = self.limits;
        let runtime = tokio::runtime::Handle::current();
        let loaded =
            tokio::task::spawn_blocking(move || runtime.block_on(load_rulebook_with(&dir, limits)))
                .await
                .unwrap_or_else(|e| {
                    Err(RuleBookErrors {
                        errors: vec![format!("loading the rules failed: {e}")],
                    })
                });
        match loaded {
            Ok(book) => {
                let outcome = Arc::new(ReloadOutcome::loaded(trigger, &book, started.elapsed()));
                let (applied, done) = oneshot::channel();
                let new = NewBook {
                    book,
                    outcome: outcome.clone(),
                    applied,
                };
                if self.books.send(new).await.is_err() || done.await.is_err() {
                    tracing::info!(
                        trigger = trigger.as_str(),
                        "Rules not reloaded: the evaluator has stopped."
                    );
                    // Not a failure of the files: the metrics and status stay as they are.
                    return Arc::new(ReloadOutcome {
                        success: false,
                        errors: vec![ReloadError::Stopped.to_string()],
                        ..(*outcome).clone()
                    });
                }
                tracing::info!(
                    trigger = trigger.as_str(),
                    rules = outcome.rules,
                    groups = outcome.groups,
                    indicators = outcome.indicators,
                    duration_ms = outcome.duration_ms,
                    "Rules reloaded."
                );
                outcome
            }
            Err(e) => {
                tracing::warn!(
                    trigger = trigger.as_str(),
                    errors = e.errors.len(),
                    "Rules reload failed; the previous rules keep running."
                );
                for error in &e.errors {
                    tracing::warn!(%error, "Invalid rules.");
                }
                let outcome = Arc::new(ReloadOutcome {
                    trigger,
                    success: false,
                    at_ms: chrono::Utc::now().timestamp_millis(),
                    duration_ms: started.elapsed().as_millis() as u64,
                    rules: 0,
                    groups: 0,
                    indicators: 0,
                    errors: e.errors,
                });
                count(&self.shared.metrics, &outcome);
                self.shared.update_rules(|v| RulesView {
                    last_reload: outcome.clone(),
                    failures: v.failures + 1,
                    ..v.clone()
                });
                outcome
            }
        }
    }
}

/// What the loader would read: each rule / indicator file with a hash of its content (or of
/// the error reading it). Equal fingerprints mean an equal rule book.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint(Vec<(PathBuf, u64)>);

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Files in `dir` whose extension is one of `exts`, sorted; a missing directory has none.
fn files_with(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    files.sort();
    files
}

impl Fingerprint {
    /// Hash `dir/*.yaml`, `dir/*.yml`, `dir/indicators/*.sql` and `dir/indicators/views/*.sql`
    /// (blocking file reads).
    pub fn of(dir: &Path) -> Fingerprint {
        let mut files = files_with(dir, &["yaml", "yml"]);
        files.extend(files_with(&dir.join("indicators"), &["sql"]));
        files.extend(files_with(&dir.join("indicators/views"), &["sql"]));
        Fingerprint(
            files
                .into_iter()
                .map(|p| {
                    let h = match std::fs::read(&p) {
                        Ok(bytes) => hash_of(&bytes),
                        // A directory named *.yaml, a dangling link, a file mid-rename.
                        Err(e) => hash_of(e.kind().to_string().as_bytes()),
                    };
                    (p, h)
                })
                .collect(),
        )
    }
}

/// Decides when a change of the files has settled: feed it a fingerprint per poll.
#[derive(Debug)]
pub struct Debounce {
    quiet: Duration,
    /// The fingerprint seen at the last poll.
    seen: Fingerprint,
    /// When `seen` was first seen, while it differs from `requested`.
    since: Option<Duration>,
    /// The fingerprint of the last reload asked for (or of the files at start).
    requested: Fingerprint,
}

impl Debounce {
    /// `initial`: the files the running book was loaded from.
    pub fn new(initial: Fingerprint, quiet: Duration) -> Self {
        Debounce {
            quiet,
            seen: initial.clone(),
            since: None,
            requested: initial,
        }
    }

    /// The fingerprint at time `now` (any monotonic clock); true when a reload is due.
    pub fn observe(&mut self, fp: Fingerprint, now: Duration) -> bool {
        if fp != self.seen {
            self.seen = fp;
            self.since = Some(now);
            return false;
        }
        match self.since {
            Some(t) if now.saturating_sub(t) >= self.quiet => {
                self.since = None;
                if self.seen != self.requested {
                    self.requested = self.seen.clone();
                    return true;
                }
                false
            }
            _ => false,
        }
    }
}

/// Poll the rules directory and ask for a reload when its files changed and settled.
pub async fn watch_files(
    dir: PathBuf,
    initial: Fingerprint,
    reloader: Reloader,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = tokio::time::Instant::now();
    let mut debounce = Debounce::new(initial, QUIET);
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = ticker.tick() => {}
        }
        let d = dir.clone();
        let Ok(fp) = tokio::task::spawn_blocking(move || Fingerprint::of(&d)).await else {
            continue;
        };
        if debounce.observe(fp, started.elapsed()) {
            tracing::info!(dir = %dir.display(), "Rule files changed: reloading.");
            reloader.request(Trigger::File);
        }
    }
}

/// Start listening for SIGHUP. Call it before the service is reachable: until a handler is
/// installed, SIGHUP terminates the process.
#[cfg(unix)]
pub fn listen_sighup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot listen for SIGHUP; reload through the API or file changes.");
            None
        }
    }
}

/// Reload on each SIGHUP until shutdown.
#[cfg(unix)]
pub async fn on_sighup(
    mut hup: tokio::signal::unix::Signal,
    reloader: Reloader,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            s = hup.recv() => {
                if s.is_none() {
                    break;
                }
                tracing::info!("SIGHUP: reloading rules.");
                reloader.request(Trigger::Signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn fingerprint_covers_what_the_loader_reads_only() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(dir, "a.yaml", "groups: []\n");
        write(dir, "indicators/x.sql", "SELECT 1");
        let fp = Fingerprint::of(dir);
        assert_eq!(fp.0.len(), 2);

        // Editor and VCS leftovers, other folders: not part of the book.
        write(dir, ".a.yaml.swp", "junk");
        write(dir, "a.yaml~", "junk");
        write(dir, "a.yaml.tmp.123", "junk");
        write(dir, "README.md", "junk");
        write(dir, "old/b.yaml", "junk");
        write(dir, "indicators/notes.txt", "junk");
        write(dir, "indicators/views/notes.txt", "junk");
        assert_eq!(Fingerprint::of(dir), fp);

        // Same content rewritten: same fingerprint (no reload for a touch).
        write(dir, "a.yaml", "groups: []\n");
        assert_eq!(Fingerprint::of(dir), fp);

        write(dir, "indicators/x.sql", "SELECT 2");
        let changed = Fingerprint::of(dir);
        assert_ne!(changed, fp);
        write(dir, "b.yml", "groups: []\n");
        assert_ne!(Fingerprint::of(dir), changed);
        std::fs::remove_file(dir.join("b.yml")).unwrap();
        assert_eq!(Fingerprint::of(dir), changed);
        // A view is part of the book.
        write(dir, "indicators/views/v.sql", "SELECT 1");
        assert_ne!(Fingerprint::of(dir), changed);
    }

    #[test]
    fn fingerprint_sees_a_rename_over_the_file() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(dir, "a.yaml", "one\n");
        let before = Fingerprint::of(dir);
        // How many editors save: write a temp file, rename it over the original.
        write(dir, ".a.yaml.tmp", "two\n");
        assert_eq!(Fingerprint::of(dir), before);
        std::fs::rename(dir.join(".a.yaml.tmp"), dir.join("a.yaml")).unwrap();
        assert_ne!(Fingerprint::of(dir), before);
    }

    fn fp(n: u64) -> Fingerprint {
        Fingerprint(vec![(PathBuf::from("a.yaml"), n)])
    }

    #[test]
    fn debounce_waits_for_quiet_and_reloads_once() {
        let mut d = Debounce::new(fp(0), ms(500));
        assert!(!d.observe(fp(0), ms(0)), "unchanged");
        assert!(!d.observe(fp(1), ms(250)), "changed: wait");
        assert!(!d.observe(fp(2), ms(500)), "changed again: wait from here");
        assert!(!d.observe(fp(2), ms(750)), "250 ms quiet");
        assert!(d.observe(fp(2), ms(1000)), "500 ms quiet: reload");
        assert!(!d.observe(fp(2), ms(1250)), "once");
        assert!(!d.observe(fp(2), ms(5000)));
    }

    #[test]
    fn debounce_ignores_a_change_that_is_undone() {
        let mut d = Debounce::new(fp(0), ms(500));
        assert!(!d.observe(fp(1), ms(0)));
        assert!(!d.observe(fp(0), ms(250)));
        assert!(!d.observe(fp(0), ms(750)));
        assert!(!d.observe(fp(0), ms(2000)), "back to what runs: no reload");
        // A failed edit, then the fix back to the original: that is a reload too.
        assert!(!d.observe(fp(3), ms(2250)));
        assert!(d.observe(fp(3), ms(2750)));
        assert!(!d.observe(fp(0), ms(3000)));
        assert!(d.observe(fp(0), ms(3500)));
    }

    fn shared() -> Arc<Shared> {
        Shared::new(crate::export::metrics::Metrics::new(), "test".into())
    }

    async fn rules_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        write(
            d.path(),
            "indicators/supplier_delivery.sql",
            &std::fs::read_to_string(repo.join("indicators/supplier_delivery.sql")).unwrap(),
        );
        write(d.path(), "s.yaml", RULE);
        d
    }

    const RULE: &str = "groups:\n  - name: g\n    rules:\n      - alert: SupplierLate\n        indicator: supplier_delivery\n        value: on_time_ratio\n        op: \"<\"\n        warning: 0.9\n        for: 0s\n        reason_code: late\n        annotations:\n          summary: late\n";

    /// A stand-in evaluator: applies every book it gets and records its rule count.
    fn evaluator() -> (mpsc::Sender<NewBook>, tokio::task::JoinHandle<Vec<usize>>) {
        let (tx, mut rx) = mpsc::channel::<NewBook>(1);
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(nb) = rx.recv().await {
                seen.push(nb.book.rules.rules().count());
                assert!(nb.outcome.success);
                let _ = nb.applied.send(());
            }
            seen
        });
        (tx, task)
    }

    #[tokio::test]
    async fn a_valid_book_reaches_the_evaluator_an_invalid_one_does_not() {
        let d = rules_dir().await;
        let shared = shared();
        let (reloader, requests) = Reloader::channel();
        let (books, applied) = evaluator();
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(
            ReloadTask {
                dir: d.path().to_path_buf(),
                limits: crate::indicators::Limits::default(),
                requests,
                books,
                shared: shared.clone(),
            }
            .run(stop),
        );
        let ok = reloader.reload(Trigger::Http).await.unwrap();
        assert!(ok.success, "{ok:?}");
        assert_eq!((ok.rules, ok.indicators), (1, 1));

        write(
            d.path(),
            "s.yaml",
            &RULE.replace("for: 0s", "for: 0s\n        bogus: 1"),
        );
        let bad = reloader.reload(Trigger::Signal).await.unwrap();
        assert!(!bad.success);
        assert_eq!(bad.trigger, Trigger::Signal);
        assert_eq!(bad.errors.len(), 1, "{:?}", bad.errors);
        assert!(
            bad.errors[0].contains("s.yaml:10:9: ")
                && bad.errors[0].contains("unknown field \"bogus\""),
            "{:?}",
            bad.errors
        );
        assert_eq!(shared.metrics.reload_success.get(), 0);
        let view = shared.rules();
        assert_eq!(*view.last_reload, *bad);
        assert_eq!(
            (view.successes, view.failures),
            (0, 1),
            "successes: the evaluator's"
        );
        let m = &shared.metrics.reloads;
        assert_eq!(m.with_label_values(&["failure"]).get(), 1);

        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            reloader.reload(Trigger::Http).await,
            Err(ReloadError::Stopped),
            "after shutdown"
        );
        assert_eq!(
            applied.await.unwrap(),
            vec![1],
            "only the valid book was sent"
        );
    }

    #[tokio::test]
    async fn queued_requests_share_one_load() {
        let d = rules_dir().await;
        let shared = shared();
        let (reloader, requests) = Reloader::channel();
        let (books, applied) = evaluator();
        // Queue three requests before the task runs: they are answered by one load.
        reloader.request(Trigger::File);
        reloader.request(Trigger::Signal);
        let waiting = reloader.reload(Trigger::Http);
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending(), "queued, waiting");
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(
            ReloadTask {
                dir: d.path().to_path_buf(),
                limits: crate::indicators::Limits::default(),
                requests,
                books,
                shared: shared.clone(),
            }
            .run(stop),
        );
        let outcome = waiting.await.unwrap();
        assert!(outcome.success);
        assert_eq!(
            outcome.trigger,
            Trigger::File,
            "named after the first request"
        );
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            applied.await.unwrap(),
            vec![1],
            "one load for three requests"
        );
    }
}
