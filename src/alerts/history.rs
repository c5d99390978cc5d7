//! Alert history: the alerts after each evaluation -> transitions and episodes.
//!
//! In: the time of an evaluation and [`AlertEngine::alerts`](super::AlertEngine::alerts) after
//! it. Out: every [`Transition`] (pending, firing, resolved, cancelled) that evaluation made,
//! and each [`Episode`] (one alert from pending to resolved or cancelled) once it is closed.
//! The backtest replay and the live evaluator both use a [`Tracker`], so `/api/alerts/history`
//! and a backtest over the same events list the same transitions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Alert, AlertState, Severity};

/// What an alert did at a [`Transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Its condition started to hold.
    Pending,
    /// It started firing.
    Firing,
    /// It stopped firing.
    Resolved,
    /// Its condition stopped holding before it fired.
    Cancelled,
}

impl Change {
    pub const ALL: [Change; 4] = [
        Change::Pending,
        Change::Firing,
        Change::Resolved,
        Change::Cancelled,
    ];

    /// The lowercase name, as serialized: the `change` label and the history API's filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Pending => "pending",
            Change::Firing => "firing",
            Change::Resolved => "resolved",
            Change::Cancelled => "cancelled",
        }
    }
}

/// One change of one alert, as seen at an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When it happened (event-time ms): the evaluation that saw it.
    #[serde(with = "ser::time")]
    pub at: i64,
    /// The rule.
    pub rule: String,
    /// What happened.
    pub change: Change,
    /// Every label of the alert, `severity` included.
    pub labels: BTreeMap<String, String>,
    /// Severity at that moment.
    pub severity: Severity,
    /// The value at the last evaluation where the condition held.
    pub value: f64,
    /// The threshold of `severity`.
    pub threshold: f64,
    /// Rendered annotations at that moment.
    pub annotations: BTreeMap<String, String>,
}

/// One alert from pending to resolved (or cancelled, or still open at the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The rule.
    pub rule: String,
    /// The alert's labels without `severity`: its identity within the rule.
    pub labels: BTreeMap<String, String>,
    /// The highest severity reached.
    pub severity: Severity,
    /// When its condition started to hold.
    #[serde(with = "ser::time")]
    pub pending_at: i64,
    /// When it started firing; `None` if it never fired.
    #[serde(with = "ser::opt_time")]
    pub fired_at: Option<i64>,
    /// When it was resolved; `None` while firing at the end.
    #[serde(with = "ser::opt_time")]
    pub resolved_at: Option<i64>,
    /// When it was dropped without firing.
    #[serde(with = "ser::opt_time")]
    pub cancelled_at: Option<i64>,
    /// The highest-severity value seen (the last one at that severity).
    pub value: f64,
    /// The threshold that value was compared with.
    pub threshold: f64,
    /// The summary annotation when it fired (or last rendered, if it never did).
    pub summary: String,
}

type Key = (String, BTreeMap<String, String>);

/// The open episodes, by rule and identity; what turns successive alert lists into history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tracker {
    /// Open episodes with the sequence number they started with.
    open: BTreeMap<Key, (u64, Episode)>,
    next: u64,
}

/// What one [`Tracker::track`] produced.
#[derive(Debug, Default)]
pub struct Tracked {
    /// The transitions, by time, then rule, then labels.
    pub transitions: Vec<Transition>,
    /// Episodes that ended, with their start sequence numbers.
    pub closed: Vec<(u64, Episode)>,
}

impl Tracker {
    /// Turns the alerts seen at `t` into transitions; closes the episodes that ended.
    pub fn track(&mut self, t: i64, alerts: &[Alert]) -> Tracked {
        let mut seen = BTreeSet::new();
        let mut out = Tracked::default();
        for a in alerts {
            let mut id = a.labels.clone();
            id.remove("severity");
            let key = (a.rule.clone(), id);
            let current = self
                .open
                .get(&key)
                .is_some_and(|(_, e)| e.pending_at == a.active_at);
            if !current {
                if a.state == AlertState::Resolved {
                    continue; // closed before
                }
                if let Some((seq, old)) = self.open.remove(&key) {
                    // Same identity, new activation: the previous one ended unseen.
                    close(seq, old, t, &mut out);
                }
                out.transitions
                    .push(transition(a.active_at, a, Change::Pending));
                let e = Episode {
                    rule: a.rule.clone(),
                    labels: key.1.clone(),
                    severity: a.severity,
                    pending_at: a.active_at,
                    fired_at: None,
                    resolved_at: None,
                    cancelled_at: None,
                    value: a.value,
                    threshold: a.threshold,
                    summary: summary(a),
                };
                self.open.insert(key.clone(), (self.next, e));
                self.next += 1;
            }
            seen.insert(key.clone());
            let Some((_, e)) = self.open.get_mut(&key) else {
                continue;
            };
            if a.severity >= e.severity {
                e.severity = a.severity;
                e.value = a.value;
                e.threshold = a.threshold;
            }
            if e.fired_at.is_none() {
                e.summary = summary(a);
            }
            if let (Some(fired), None) = (a.fired_at, e.fired_at) {
                e.fired_at = Some(fired);
                e.summary = summary(a);
                out.transitions.push(transition(fired, a, Change::Firing));
            }
            if a.state == AlertState::Resolved {
                let at = a.resolved_at.unwrap_or(t);
                e.resolved_at = Some(at);
                out.transitions.push(transition(at, a, Change::Resolved));
                if let Some(done) = self.open.remove(&key) {
                    out.closed.push(done);
                }
            }
        }
        let gone: Vec<Key> = self
            .open
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some((seq, e)) = self.open.remove(&k) {
                close(seq, e, t, &mut out);
            }
        }
        out.transitions
            .sort_by(|a, b| (a.at, &a.rule, &a.labels).cmp(&(b.at, &b.rule, &b.labels)));
        out
    }

    /// The episodes still open, with their start sequence numbers.
    pub fn open(&self) -> impl Iterator<Item = (u64, &Episode)> {
        self.open.values().map(|(s, e)| (*s, e))
    }
}

/// An open episode whose alert is no longer there: cancelled if pending, else resolved.
fn close(seq: u64, mut e: Episode, t: i64, out: &mut Tracked) {
    let change = if e.fired_at.is_some() {
        e.resolved_at = Some(t);
        Change::Resolved
    } else {
        e.cancelled_at = Some(t);
        Change::Cancelled
    };
    let mut labels = e.labels.clone();
    labels.insert("severity".to_string(), e.severity.as_str().to_string());
    out.transitions.push(Transition {
        at: t,
        rule: e.rule.clone(),
        change,
        labels,
        severity: e.severity,
        value: e.value,
        threshold: e.threshold,
        annotations: BTreeMap::new(),
    });
    out.closed.push((seq, e));
}

fn summary(a: &Alert) -> String {
    a.annotations.get("summary").cloned().unwrap_or_default()
}

fn transition(at: i64, a: &Alert, change: Change) -> Transition {
    Transition {
        at,
        rule: a.rule.clone(),
        change,
        labels: a.labels.clone(),
        severity: a.severity,
        value: a.value,
        threshold: a.threshold,
        annotations: a.annotations.clone(),
    }
}

/// Event-time milliseconds as RFC 3339 (`2026-01-05T00:00:00Z`), for JSON people also read.
pub mod ser {
    pub use crate::rules::template::rfc3339;

    fn parse<E: serde::de::Error>(s: &str) -> Result<i64, E> {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .or_else(|_| s.parse::<i64>())
            .map_err(|_| E::custom(format!("not an RFC 3339 time: {s:?}")))
    }

    /// `i64` ms <-> RFC 3339 string.
    pub mod time {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&super::rfc3339(*ms))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
            let s = String::deserialize(d)?;
            super::parse(&s)
        }
    }

    /// `Option<i64>` ms <-> RFC 3339 string or null.
    pub mod opt_time {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_some(&super::rfc3339(*ms)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => super::parse(&s).map(Some),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Change;

    #[test]
    fn change_names_are_the_serialized_names() {
        for c in Change::ALL {
            assert_eq!(
                serde_json::to_value(c).expect("serializes"),
                serde_json::Value::from(c.as_str())
            );
        }
    }
}
