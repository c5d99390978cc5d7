//! The backtest report and its renderings: a text table, JSON, and a self-contained HTML page.
//!
//! In: a [`ReplayOutcome`], the [`RuleScore`]s, and what was replayed (source, counts, step,
//! horizon). Out: a [`Report`] (serializable as is: `--format json`), [`Report::table`] for a
//! terminal and [`Report::html`]: one page with inline CSS and an inline SVG timeline of alert
//! episodes and breaches per rule and key, no script and no external resource.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::breaches::{rfc3339, Breach, BreachKind};
use super::replay::{Episode, Problem, ReplayOutcome, Transition};
use super::score::RuleScore;
use crate::alerts::Severity;
use crate::state::DAY_MS;

/// Rejected records listed in a report; the rest are counted.
const MAX_REJECTS: usize = 100;
/// Timeline rows drawn per rule; the rest are counted.
const MAX_ROWS_PER_RULE: usize = 40;

/// What was replayed, for the report header.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The events file or topics.
    pub source: String,
    /// The rules directory.
    pub rules_dir: String,
    /// Records read.
    pub records: usize,
    /// Valid events.
    pub events: usize,
    /// Rejected records, `place: reason: detail`.
    pub rejects: Vec<String>,
    /// Evaluation step, as given.
    pub step: String,
    /// Scoring horizon, as given.
    pub horizon: String,
    /// Static labels of each rule (hidden where the subject of an alert is shown).
    pub static_labels: BTreeMap<String, BTreeSet<String>>,
}

/// The full backtest result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The events file or topics replayed.
    pub source: String,
    /// The rules directory.
    pub rules_dir: String,
    /// Records read.
    pub records: usize,
    /// Records that were not valid events.
    pub rejected: usize,
    /// The first rejected records, `place: reason: detail`.
    pub rejects: Vec<String>,
    /// Events applied (duplicates by event id excluded).
    pub applied: u64,
    /// First evaluation.
    #[serde(serialize_with = "super::ser::time")]
    pub start: i64,
    /// Last evaluation.
    #[serde(serialize_with = "super::ser::time")]
    pub end: i64,
    /// Evaluation step.
    pub step: String,
    /// Scoring horizon.
    pub horizon: String,
    /// Evaluations run.
    pub evaluations: u64,
    /// Per rule: counts, precision, recall, lead time.
    pub rules: Vec<RuleScore>,
    /// Breaches per kind.
    pub breach_counts: BTreeMap<BreachKind, usize>,
    /// Every alert episode, in the order they started.
    pub episodes: Vec<Episode>,
    /// Every breach, by time.
    pub breaches: Vec<Breach>,
    /// Every alert transition, by time.
    pub transitions: Vec<Transition>,
    /// Indicator and rule errors met while replaying.
    pub problems: Vec<Problem>,
    /// Problems not listed.
    pub problems_dropped: u64,
    #[serde(skip)]
    static_labels: BTreeMap<String, BTreeSet<String>>,
}

impl Report {
    /// Assembles the report.
    pub fn new(meta: Meta, outcome: ReplayOutcome, rules: Vec<RuleScore>) -> Report {
        let mut breach_counts = BTreeMap::new();
        for b in &outcome.breaches {
            *breach_counts.entry(b.kind).or_insert(0) += 1;
        }
        Report {
            source: meta.source,
            rules_dir: meta.rules_dir,
            records: meta.records,
            rejected: meta.records.saturating_sub(meta.events),
            rejects: meta.rejects.into_iter().take(MAX_REJECTS).collect(),
            applied: outcome.applied,
            start: outcome.schedule.start,
            end: outcome.schedule.end,
            step: meta.step,
            horizon: meta.horizon,
            evaluations: outcome.evaluations,
            rules,
            breach_counts,
            episodes: outcome.episodes,
            breaches: outcome.breaches,
            transitions: outcome.transitions,
            problems: outcome.problems,
            problems_dropped: outcome.problems_dropped,
            static_labels: meta.static_labels,
        }
    }

    /// The labels that tell alerts of one rule apart: without alertname, reason_code and the
    /// rule's static labels.
    fn subject(&self, rule: &str, labels: &BTreeMap<String, String>) -> String {
        let hidden = self.static_labels.get(rule);
        let parts: Vec<String> = labels
            .iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "alertname" | "reason_code" | "severity")
                    && !hidden.is_some_and(|h| h.contains(*k))
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.join(" ")
    }

    fn header(&self) -> String {
        format!(
            "{} events ({} rejected) from {}, rules {}; {} .. {}, step {} ({} evaluations), horizon {}",
            self.records - self.rejected,
            self.rejected,
            self.source,
            self.rules_dir,
            rfc3339(self.start),
            rfc3339(self.end),
            self.step,
            self.evaluations,
            self.horizon
        )
    }

    fn breach_line(&self) -> String {
        let late = self.breach_counts.get(&BreachKind::LateDelivery).copied();
        let open = self
            .breaches
            .iter()
            .filter(|b| b.kind == BreachKind::LateDelivery && b.open)
            .count();
        format!(
            "breaches: {} late deliveries ({open} of them still open at the end), {} stock-outs",
            late.unwrap_or(0),
            self.breach_counts
                .get(&BreachKind::StockOut)
                .copied()
                .unwrap_or(0)
        )
    }

    /// Per-rule table, then breaches, then every episode; for a terminal.
    pub fn table(&self) -> String {
        let mut out = format!("chainwatch backtest: {}\n\n", self.header());
        let head = [
            "RULE",
            "BREACH",
            "EPISODES",
            "FIRED",
            "TP",
            "FP",
            "UNDECIDED",
            "PRECISION",
            "BREACH-EP",
            "RECALLED",
            "RECALL",
            "LEAD-MEDIAN",
            "LEAD-P90",
        ];
        let rows: Vec<Vec<String>> = self
            .rules
            .iter()
            .map(|r| {
                let scored = r.mapping.breach.is_some();
                let n = |v: usize| if scored { v.to_string() } else { "-".into() };
                vec![
                    r.rule.clone(),
                    r.mapping
                        .breach
                        .map_or("-".into(), |b| b.as_str().to_string()),
                    r.episodes.to_string(),
                    r.fired.to_string(),
                    n(r.true_positives),
                    n(r.false_positives),
                    n(r.undecided),
                    ratio(r.precision),
                    n(r.breach_episodes),
                    n(r.recalled),
                    ratio(r.recall),
                    days(r.lead_median_days),
                    days(r.lead_p90_days),
                ]
            })
            .collect();
        out.push_str(&columns(&head, &rows));
        out.push('\n');
        for r in &self.rules {
            let _ = writeln!(
                out,
                "  {}: {}{}",
                r.rule,
                r.mapping.note,
                if r.mapping.match_labels.is_empty() {
                    String::new()
                } else {
                    format!(" (matched on {})", r.mapping.match_labels.join(", "))
                }
            );
        }
        let _ = writeln!(out, "\n{}", self.breach_line());
        if self.rejected > 0 {
            let _ = writeln!(out, "rejected records: {}", self.rejected);
            for r in self.rejects.iter().take(5) {
                let _ = writeln!(out, "  {r}");
            }
        }
        if !self.problems.is_empty() {
            let _ = writeln!(
                out,
                "evaluation problems: {}",
                self.problems.len() as u64 + self.problems_dropped
            );
            for p in self.problems.iter().take(5) {
                let _ = writeln!(out, "  {}: {}", rfc3339(p.at), p.message);
            }
        }
        let _ = writeln!(out, "\nalert episodes: {}", self.episodes.len());
        let head = [
            "RULE", "SEVERITY", "PENDING", "FIRED", "RESOLVED", "SUBJECT",
        ];
        let rows: Vec<Vec<String>> = self
            .episodes
            .iter()
            .map(|e| {
                vec![
                    e.rule.clone(),
                    e.severity.as_str().to_string(),
                    rfc3339(e.pending_at),
                    e.fired_at.map_or("-".into(), rfc3339),
                    match (e.resolved_at, e.cancelled_at) {
                        (Some(t), _) => rfc3339(t),
                        (None, Some(t)) => format!("cancelled {}", rfc3339(t)),
                        (None, None) => "firing at end".into(),
                    },
                    self.subject(&e.rule, &e.labels),
                ]
            })
            .collect();
        out.push_str(&columns(&head, &rows));
        out
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report as one self-contained HTML page.
    pub fn html(&self) -> String {
        let mut h = String::with_capacity(64 * 1024);
        h.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>chainwatch backtest</title>\n<style>\n",
        );
        h.push_str(CSS);
        h.push_str("</style></head><body>\n<h1>chainwatch backtest</h1>\n");
        let _ = writeln!(h, "<p class=\"meta\">{}</p>", esc(&self.header()));
        let _ = writeln!(h, "<p class=\"meta\">{}</p>", esc(&self.breach_line()));
        h.push_str("<h2>Rules</h2>\n<table><thead><tr><th>rule</th><th>scored against</th><th>episodes</th><th>fired</th><th>true / false / undecided</th><th>precision</th><th>breach episodes</th><th>recalled</th><th>recall</th><th>lead median</th><th>lead p90</th></tr></thead><tbody>\n");
        for r in &self.rules {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.rule),
                esc(&r.mapping.note),
                r.episodes,
                r.fired,
                r.true_positives,
                r.false_positives,
                r.undecided,
                ratio(r.precision),
                r.breach_episodes,
                r.recalled,
                ratio(r.recall),
                days(r.lead_median_days),
                days(r.lead_p90_days)
            );
        }
        h.push_str("</tbody></table>\n<h2>Timeline</h2>\n");
        h.push_str(
            "<p class=\"legend\"><span class=\"k pending\"></span>pending \
             <span class=\"k warning\"></span>firing, warning \
             <span class=\"k critical\"></span>firing, critical \
             <span class=\"k late\"></span>late delivery \
             <span class=\"k stock\"></span>stock-out</p>\n",
        );
        h.push_str(&self.svg());
        h.push_str("\n<h2>Alert episodes</h2>\n<table><thead><tr><th>rule</th><th>severity</th><th>subject</th><th>pending</th><th>fired</th><th>resolved</th><th>summary</th></tr></thead><tbody>\n");
        for e in &self.episodes {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.rule),
                e.severity.as_str(),
                e.severity.as_str(),
                esc(&self.subject(&e.rule, &e.labels)),
                rfc3339(e.pending_at),
                e.fired_at.map_or("-".into(), rfc3339),
                match (e.resolved_at, e.cancelled_at) {
                    (Some(t), _) => rfc3339(t),
                    (None, Some(t)) => format!("cancelled {}", rfc3339(t)),
                    (None, None) => "firing at end".into(),
                },
                esc(&e.summary)
            );
        }
        h.push_str("</tbody></table>\n<h2>Breaches</h2>\n<table><thead><tr><th>time</th><th>kind</th><th>key</th><th>detail</th></tr></thead><tbody>\n");
        for b in &self.breaches {
            let key: Vec<String> = b.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rfc3339(b.at),
                b.kind.as_str(),
                esc(&key.join(" ")),
                esc(&b.detail)
            );
        }
        h.push_str("</tbody></table>\n</body></html>\n");
        h
    }

    /// The timeline: per rule, one row per key with alert episodes or matching breaches.
    fn svg(&self) -> String {
        const LEFT: f64 = 360.0;
        const WIDTH: f64 = 1200.0;
        const ROW: f64 = 16.0;
        const TOP: f64 = 24.0;
        let span = (self.end - self.start).max(1) as f64;
        let x = |t: i64| {
            LEFT + (t.clamp(self.start, self.end) - self.start) as f64 / span
                * (WIDTH - LEFT - 10.0)
        };
        let mut body = String::new();
        let mut y = TOP;
        for r in &self.rules {
            let _ = writeln!(
                body,
                "<text class=\"rule\" x=\"4\" y=\"{:.1}\">{}</text>",
                y + 12.0,
                esc(&r.rule)
            );
            y += ROW + 2.0;
            let rows = self.rows_of(r);
            let hidden = rows.len().saturating_sub(MAX_ROWS_PER_RULE);
            for (label, episodes, breaches) in rows.into_iter().take(MAX_ROWS_PER_RULE) {
                let _ = writeln!(
                    body,
                    "<text x=\"14\" y=\"{:.1}\">{}</text><line class=\"row\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
                    y + 11.0,
                    esc(&shorten(&label, 52)),
                    WIDTH - 10.0,
                    y + ROW / 2.0,
                    y + ROW / 2.0
                );
                for e in episodes {
                    let until_pending = e.fired_at.or(e.cancelled_at).unwrap_or(self.end);
                    let (x0, x1) = (x(e.pending_at), x(until_pending));
                    let tip = format!(
                        "{} {}: pending {}, fired {}, resolved {}",
                        e.rule,
                        e.severity.as_str(),
                        rfc3339(e.pending_at),
                        e.fired_at.map_or("-".into(), rfc3339),
                        e.resolved_at.map_or("-".into(), rfc3339)
                    );
                    let _ = write!(
                        body,
                        "<g><title>{}</title><rect class=\"pending\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
                        esc(&tip),
                        y + 3.0,
                        (x1 - x0).max(1.0),
                        ROW - 6.0
                    );
                    if let Some(f) = e.fired_at {
                        let (f0, f1) = (x(f), x(e.resolved_at.unwrap_or(self.end)));
                        let class = match e.severity {
                            Severity::Critical => "critical",
                            Severity::Warning => "warning",
                        };
                        let _ = write!(
                            body,
                            "<rect class=\"{class}\" x=\"{f0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
                            y + 2.0,
                            (f1 - f0).max(1.5),
                            ROW - 4.0
                        );
                    }
                    body.push_str("</g>\n");
                }
                for b in breaches {
                    let (cx, cy) = (x(b.at), y + ROW / 2.0);
                    let class = match b.kind {
                        BreachKind::LateDelivery => "late",
                        BreachKind::StockOut => "stock",
                    };
                    let _ = writeln!(
                        body,
                        "<path class=\"{class}\" d=\"M{cx:.1} {:.1} L{:.1} {cy:.1} L{cx:.1} {:.1} L{:.1} {cy:.1} Z\"><title>{} {}: {}</title></path>",
                        cy - 5.0,
                        cx + 4.0,
                        cy + 5.0,
                        cx - 4.0,
                        b.kind.as_str(),
                        rfc3339(b.at),
                        esc(&b.detail)
                    );
                }
                y += ROW;
            }
            if hidden > 0 {
                let _ = writeln!(
                    body,
                    "<text class=\"more\" x=\"14\" y=\"{:.1}\">... {hidden} more keys not drawn</text>",
                    y + 11.0
                );
                y += ROW;
            }
            y += 6.0;
        }
        let height = y + 10.0;
        let mut axis = String::new();
        let first_day = self.start.div_euclid(DAY_MS) * DAY_MS;
        let mut day = first_day;
        while day <= self.end {
            if day >= self.start {
                let dx = x(day);
                let weekly = (day / DAY_MS) % 7 == 0;
                let _ = writeln!(
                    axis,
                    "<line class=\"{}\" x1=\"{dx:.1}\" x2=\"{dx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
                    if weekly { "week" } else { "day" },
                    TOP - 4.0,
                    height - 6.0
                );
                // A label needs about 60px: none that would be cut at the right edge.
                if weekly && dx < WIDTH - 70.0 {
                    let _ = writeln!(
                        axis,
                        "<text class=\"axis\" x=\"{dx:.1}\" y=\"14\">{}</text>",
                        rfc3339(day).get(..10).unwrap_or_default()
                    );
                }
            }
            day += DAY_MS;
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\">\n{axis}{body}</svg>"
        )
    }

    /// Timeline rows of one rule: `(label, episodes, breaches)`; keys with episodes first.
    fn rows_of(&self, r: &RuleScore) -> Vec<(String, Vec<&Episode>, Vec<&Breach>)> {
        // `lane` says what `origin` and `destination` would: shorter row labels without them.
        let has_lane = r.mapping.match_labels.iter().any(|d| d == "lane");
        let dims: Vec<String> = r
            .mapping
            .match_labels
            .iter()
            .filter(|d| !(has_lane && matches!(d.as_str(), "origin" | "destination")))
            .cloned()
            .collect();
        let dims = &dims;
        let mut rows: BTreeMap<String, (Vec<&Episode>, Vec<&Breach>)> = BTreeMap::new();
        for e in self.episodes.iter().filter(|e| e.rule == r.rule) {
            let label = if dims.is_empty() {
                self.subject(&e.rule, &e.labels)
            } else {
                key_label(dims.iter().map(|d| {
                    (
                        d.as_str(),
                        e.labels.get(d).map(String::as_str).unwrap_or(""),
                    )
                }))
            };
            rows.entry(label).or_default().0.push(e);
        }
        if let Some(kind) = r.mapping.breach {
            for b in self.breaches.iter().filter(|b| b.kind == kind) {
                for label in breach_labels(b, dims) {
                    rows.entry(label).or_default().1.push(b);
                }
            }
        }
        let mut rows: Vec<_> = rows.into_iter().map(|(k, (e, b))| (k, e, b)).collect();
        rows.sort_by(|a, b| {
            let rank = |r: &(String, Vec<&Episode>, Vec<&Breach>)| {
                (r.1.is_empty(), std::cmp::Reverse(r.2.len()), r.0.clone())
            };
            rank(a).cmp(&rank(b))
        });
        rows
    }
}

fn key_label<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The row labels a breach appears on for `dims` (one per location for `location`).
fn breach_labels(b: &Breach, dims: &[String]) -> Vec<String> {
    let mut labels = vec![Vec::<(String, String)>::new()];
    for d in dims {
        let values: Vec<String> = if d == "location" {
            b.locations.clone()
        } else {
            b.key.get(d).cloned().into_iter().collect()
        };
        labels = labels
            .into_iter()
            .flat_map(|l| {
                values.iter().map(move |v| {
                    let mut l = l.clone();
                    l.push((d.clone(), v.clone()));
                    l
                })
            })
            .collect();
    }
    labels
        .into_iter()
        .map(|l| key_label(l.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
        .collect()
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}", v))
}

fn days(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}d"))
}

/// Left-aligned columns separated by two spaces.
fn columns(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<w$}  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:24px}.meta{color:#555}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.critical{color:#b00020;font-weight:600}td.warning{color:#b26a00}\
svg.timeline{border:1px solid #ddd;background:#fff}svg text{font:11px system-ui,sans-serif;fill:#333}\
svg text.rule{font-weight:600}svg text.axis{fill:#666}svg text.more{fill:#888;font-style:italic}\
line.row{stroke:#f0f0f0}line.day{stroke:#f6f6f6}line.week{stroke:#ddd}\
rect.pending{fill:#f3d98b}rect.warning{fill:#f0a030}rect.critical{fill:#d0302f}\
path.late{fill:#2b59c3}path.stock{fill:#7b2cbf}\
.legend .k{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px;vertical-align:middle}\
.k.pending{background:#f3d98b}.k.warning{background:#f0a030}.k.critical{background:#d0302f}\
.k.late{background:#2b59c3}.k.stock{background:#7b2cbf}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn columns_align_and_trim() {
        let t = columns(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn breach_rows_fan_out_over_locations() {
        let b = Breach {
            kind: BreachKind::LateDelivery,
            at: 0,
            key: BTreeMap::from([("supplier".to_string(), "S".to_string())]),
            locations: vec!["A".into(), "B".into()],
            detail: String::new(),
            open: false,
        };
        assert_eq!(
            breach_labels(&b, &["location".to_string()]),
            ["location=A", "location=B"]
        );
        assert_eq!(breach_labels(&b, &["supplier".to_string()]), ["supplier=S"]);
        assert!(breach_labels(&b, &["lane".to_string()]).is_empty());
    }
}
