//! Supplier feeds: each supplier's own CSV / JSON format mapped to canonical events.
//!
//! In: feed definition files (`feeds/*.yaml`, one feed each; the format is docs/feeds.md) and,
//! per feed, the raw Kafka payloads of its topic. Out: a checked [`FeedSet`] (or every
//! definition error as `file:line:col: feed "name": message`), and per message the
//! [`MappedRecord`]s: for each record either the canonical JSON events that
//! [`EventDecoder`](crate::ingest::decode::EventDecoder) accepts, or one [`MapReject`] (reason,
//! field, detail) for the dead-letter topic.
//!
//! The stages, one file each:
//! - `def.rs`: the checked definition ([`Feed`], [`Mapping`], [`ValueSpec`]);
//! - `load.rs`: positioned YAML tree -> [`Feed`], every error collected;
//! - `codes.rs`: built-in code tables (X12 214 AT7, GS1 CBV bizSteps) and units;
//! - `read.rs`: message bytes -> records (encoding, BOM, CSV rows with lines, JSON records);
//! - `map.rs`: record -> canonical events, or the first problem;
//! - [`validate`]: the dry run of `chainwatch feeds validate FEED --sample FILE`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ingest::decode::RejectReason;
use crate::rules::Location;

pub mod codes;
mod def;
mod load;
mod map;
mod read;
pub mod validate;

pub use def::{
    CodeTable, CsvFormat, FieldPath, Format, JsonFormat, Mapping, Step, Supplier, Supply,
    TemplatePart, ValueSource, ValueSpec, ValueType, When, WhenTest, Zone,
};

/// File extensions `load_dir` reads.
const EXTENSIONS: [&str; 2] = ["yaml", "yml"];

pub use def::Feed;

/// One problem in a feed definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {}{message}", feed.as_ref().map(|f| format!("feed {f:?}: ")).unwrap_or_default())]
pub struct FeedError {
    /// Where: the key or value at fault (line 0 when the file cannot be read).
    pub location: Location,
    /// The feed's name when it could be read.
    pub feed: Option<String>,
    /// Lowercase message.
    pub message: String,
}

/// Every checked feed of a directory, by name and by topic.
#[derive(Debug, Clone, Default)]
pub struct FeedSet {
    feeds: BTreeMap<String, Arc<Feed>>,
    topics: HashMap<String, Arc<Feed>>,
}

impl FeedSet {
    /// The feed named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Feed>> {
        self.feeds.get(name)
    }

    /// The feed whose messages arrive on `topic`.
    pub fn by_topic(&self, topic: &str) -> Option<&Arc<Feed>> {
        self.topics.get(topic)
    }

    /// The feeds, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Feed>> {
        self.feeds.values()
    }

    /// The topics of all feeds, sorted.
    pub fn topics(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.topics.keys().map(String::as_str).collect();
        t.sort_unstable();
        t
    }

    /// Feed name -> content hash, to tell which feeds a reload changed.
    pub fn hashes(&self) -> BTreeMap<String, u64> {
        self.feeds
            .iter()
            .map(|(n, f)| (n.clone(), f.hash))
            .collect()
    }

    /// Number of feeds.
    pub fn len(&self) -> usize {
        self.feeds.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }
}

/// Loads and checks one definition file.
pub fn load_file(path: &Path) -> Result<Feed, Vec<FeedError>> {
    let bytes = std::fs::read(path).map_err(|e| vec![file_error(path, format!("{e}"))])?;
    load::load_bytes(path, &bytes)
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (not recursive), checks each, and checks that
/// no two feeds share a name or a topic. Errors are sorted by file, line and column.
pub fn load_dir(dir: &Path) -> Result<FeedSet, Vec<FeedError>> {
    let entries = std::fs::read_dir(dir).map_err(|e| vec![file_error(dir, format!("{e}"))])?;
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => {
                let p = e.path();
                let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
                if p.is_file() && EXTENSIONS.contains(&ext) {
                    paths.push(p);
                }
            }
            Err(e) => errors.push(file_error(dir, format!("{e}"))),
        }
    }
    paths.sort();
    let mut set = FeedSet::default();
    for path in &paths {
        let feed = match load_file(path) {
            Ok(f) => f,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        if let Some(other) = set.feeds.get(&feed.name) {
            errors.push(error_at(
                &feed,
                feed.name_pos,
                format!(
                    "duplicate feed name, also defined at {}",
                    location(&other.path, other.name_pos)
                ),
            ));
            continue;
        }
        if let Some(other) = set.topics.get(&feed.topic) {
            errors.push(error_at(
                &feed,
                feed.topic_pos,
                format!(
                    "topic {:?} is already the topic of feed {:?} ({})",
                    feed.topic,
                    other.name,
                    location(&other.path, other.topic_pos)
                ),
            ));
            continue;
        }
        let feed = Arc::new(feed);
        set.topics.insert(feed.topic.clone(), feed.clone());
        set.feeds.insert(feed.name.clone(), feed);
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        errors.sort_by(|a, b| a.location.cmp(&b.location));
        Err(errors)
    }
}

fn location(path: &Path, pos: crate::rules::Pos) -> Location {
    Location {
        file: path.to_path_buf(),
        line: pos.line,
        col: pos.col,
    }
}

fn error_at(feed: &Feed, pos: crate::rules::Pos, message: String) -> FeedError {
    FeedError {
        location: location(&feed.path, pos),
        feed: Some(feed.name.clone()),
        message,
    }
}

fn file_error(path: &Path, message: String) -> FeedError {
    FeedError {
        location: Location {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
        },
        feed: None,
        message,
    }
}

/// One record of a message and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    /// 1-based record number in the message (0: the message as a whole could not be read).
    pub row: usize,
    /// CSV: the physical line where the record starts (the header is line 1).
    pub line: Option<u64>,
    /// The record's own source text (one CSV row as UTF-8, or the JSON record; the whole
    /// payload for row 0), for the dead-letter topic.
    pub raw: Vec<u8>,
    /// The canonical JSON events (one per matching mapping; none = skipped), or why not.
    pub result: Result<Vec<Vec<u8>>, MapReject>,
}

/// Why a record was not mapped: the first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapReject {
    /// The dead-letter reason.
    pub reason: RejectReason,
    /// The canonical field at fault, if one is.
    pub field: Option<String>,
    /// What and where: `column "Promised" = "31.02.2026" matches none of %d.%m.%Y`.
    pub detail: String,
}

impl fmt::Display for MapReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {field}: {}", self.reason.as_str(), self.detail),
            None => write!(f, "{}: {}", self.reason.as_str(), self.detail),
        }
    }
}

impl Feed {
    /// Maps one Kafka message (one "file" of the feed) to its records. Never panics.
    pub fn map_message(&self, payload: &[u8]) -> Vec<MappedRecord> {
        map::map_message(self, payload)
            .into_iter()
            .map(|t| t.record)
            .collect()
    }
}

/// FNV-1a, 64 bit: stable across runs and builds (unlike `DefaultHasher`'s documented lack of
/// a guarantee), for content hashes and derived event ids.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
