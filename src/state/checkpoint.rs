//! Checkpoints: the state, the alerts and the consumed offsets, written together, atomically.
//!
//! In: a [`Checkpoint`] assembled along the pipeline like a Flink barrier: ingest asks for one
//! right after a flush (the offsets it has consumed and its per-partition watermark clocks),
//! the state stage adds the state and the event buffer as they are after the last step it
//! sent, the evaluator adds the alert engine, the open alert episodes and the alert history
//! after evaluating that step. Out: a file in the checkpoint directory, and on start the
//! newest readable one.
//!
//! A checkpoint is a consistent cut: every event before its offsets is either in the state or
//! in the buffer, and no event after them is in either. Restoring it and consuming from its
//! offsets therefore gives the same state, the same evaluations and the same alert
//! transitions as a run that never stopped.
//!
//! File: `checkpoint-<sequence>.bin` = magic, format version, xxHash64 of the body, body
//! (postcard, serde); the buffer's events as Arrow IPC streams inside it. Written to a
//! temporary file, fsynced, renamed into place, directory fsynced: a crash leaves either the
//! previous checkpoint or the new one, never half of one. The newest [`KEEP`] are kept; a
//! file that fails its checksum or does not decode is skipped with a warning and the one
//! before is used.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::{EventBuffer, State};
use crate::alerts::history::{Tracker, Transition};
use crate::alerts::EngineSnapshot;
use crate::ingest::watermark::SavedWatermark;

/// Checkpoint files kept (the newest ones).
pub const KEEP: usize = 3;

const MAGIC: &[u8; 8] = b"CWCKPT\0\x01";
/// Bumped when the body's layout changes; an older file is then not read.
/// 2: event ids for de-duplication kept as 128-bit hashes.
const VERSION: u32 = 2;

/// Checkpoint problems.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The directory or a file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Encoding failed (not expected for valid state).
    #[error("encoding a checkpoint: {0}")]
    Encode(String),
    /// A file is not a readable checkpoint (truncated, corrupted, other version).
    #[error("{path}: not a readable checkpoint: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The checkpoint belongs to another deployment.
    #[error("{path}: written for consumer group {found:?}, this is {expected:?}: use another checkpoint.dir or the same kafka.group_id")]
    OtherGroup {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

/// What ingest hands along with the batch a checkpoint is cut after.
#[derive(Debug, Clone)]
pub struct CheckpointRequest {
    /// Next offset to read per (topic, partition): everything before is in the cut.
    pub offsets: BTreeMap<(String, i32), i64>,
    /// Ingest's event-time clocks per partition.
    pub watermark: SavedWatermark,
    /// The checkpoint written at shutdown.
    pub last: bool,
}

/// The state stage's share of a checkpoint.
#[derive(Debug)]
pub struct StatePart {
    pub request: CheckpointRequest,
    pub state: State,
    pub buffer: EventBuffer,
}

/// Everything a checkpoint holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Consumer group it was written for.
    pub group_id: String,
    /// Wall-clock time it was written (ms).
    pub written_at: i64,
    /// Next offset per (topic, partition).
    pub offsets: Vec<(String, i32, i64)>,
    pub watermark: SavedWatermark,
    pub state: State,
    /// Buffered steps: (step end, Arrow IPC stream of its events).
    buffer: Vec<(i64, Vec<u8>)>,
    pub engine: EngineSnapshot,
    pub tracker: Tracker,
    /// The newest alert transitions, oldest first.
    pub history: Vec<Transition>,
    /// Evaluations run so far.
    pub evaluations: u64,
}

/// The evaluator's share of a checkpoint.
#[derive(Debug)]
pub struct EvaluatorPart {
    pub engine: EngineSnapshot,
    pub tracker: Tracker,
    pub history: Vec<Transition>,
    pub evaluations: u64,
}

impl Checkpoint {
    /// Put the two shares together.
    pub fn assemble(
        group_id: &str,
        state: StatePart,
        evaluator: EvaluatorPart,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut buffer = Vec::new();
        for (end, batches) in state.buffer.steps() {
            buffer.push((end, ipc(batches)?));
        }
        Ok(Checkpoint {
            group_id: group_id.to_string(),
            written_at: chrono::Utc::now().timestamp_millis(),
            offsets: state
                .request
                .offsets
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, *o))
                .collect(),
            watermark: state.request.watermark,
            state: state.state,
            buffer,
            engine: evaluator.engine,
            tracker: evaluator.tracker,
            history: evaluator.history,
            evaluations: evaluator.evaluations,
        })
    }

    /// The event buffer, with steps of `step_ms` (the events are bucketed anew: the step may
    /// have changed since the checkpoint).
    pub fn buffer(&self, step_ms: i64) -> Result<EventBuffer, CheckpointError> {
        let mut b = EventBuffer::new(step_ms);
        for (_, bytes) in &self.buffer {
            let reader = StreamReader::try_new(bytes.as_slice(), None)
                .map_err(|e| CheckpointError::Encode(format!("reading buffered events: {e}")))?;
            let batches = reader
                .collect::<Result<Vec<RecordBatch>, _>>()
                .map_err(|e| CheckpointError::Encode(format!("reading buffered events: {e}")))?;
            for batch in batches {
                b.push(batch)
                    .map_err(|e| CheckpointError::Encode(format!("buffered events: {e}")))?;
            }
        }
        Ok(b)
    }

    /// Events held in the buffer (not yet applied).
    pub fn buffered_steps(&self) -> usize {
        self.buffer.len()
    }
}

fn ipc(batches: &[RecordBatch]) -> Result<Vec<u8>, CheckpointError> {
    let schema = crate::events::event_schema();
    let mut out = Vec::new();
    let err = |e: arrow::error::ArrowError| CheckpointError::Encode(e.to_string());
    let mut w = StreamWriter::try_new(&mut out, &schema).map_err(err)?;
    for b in batches {
        w.write(b).map_err(err)?;
    }
    w.finish().map_err(err)?;
    drop(w);
    Ok(out)
}

/// The checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
    group_id: String,
}

impl CheckpointStore {
    /// The store in `dir` (created when missing) for consumer group `group_id`.
    pub fn open(dir: &Path, group_id: &str) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(CheckpointStore {
            dir: dir.to_path_buf(),
            group_id: group_id.to_string(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checkpoint files, newest first, with their sequence numbers.
    fn files(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| CheckpointError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut files: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let seq = name
                    .strip_prefix("checkpoint-")?
                    .strip_suffix(".bin")?
                    .parse()
                    .ok()?;
                Some((seq, e.path()))
            })
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(files)
    }

    /// Write `cp` as the newest checkpoint; returns its path and size in bytes. Older files
    /// beyond [`KEEP`] are removed.
    pub fn write(&self, cp: &Checkpoint) -> Result<(PathBuf, u64), CheckpointError> {
        let body = postcard::to_stdvec(cp).map_err(|e| CheckpointError::Encode(e.to_string()))?;
        let files = self.files()?;
        let seq = files.first().map_or(1, |(s, _)| s + 1);
        let path = self.dir.join(format!("checkpoint-{seq:012}.bin"));
        let tmp = self.dir.join(format!(".checkpoint-{seq:012}.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io { path, source }
        };
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(MAGIC).map_err(io(&tmp))?;
            f.write_all(&VERSION.to_le_bytes()).map_err(io(&tmp))?;
            let sum = twox_hash::XxHash64::oneshot(0, &body);
            f.write_all(&sum.to_le_bytes()).map_err(io(&tmp))?;
            f.write_all(&body).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename itself must reach the disk before older checkpoints go.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        for (_, old) in files.iter().skip(KEEP - 1) {
            let _ = std::fs::remove_file(old);
        }
        let size = (MAGIC.len() + 12 + body.len()) as u64;
        Ok((path, size))
    }

    /// The newest readable checkpoint, if any. An unreadable file is skipped (logged); one
    /// for another consumer group is an error.
    pub fn latest(&self) -> Result<Option<(PathBuf, Checkpoint)>, CheckpointError> {
        for (_, path) in self.files()? {
            match read(&path) {
                Ok(cp) if cp.group_id != self.group_id => {
                    return Err(CheckpointError::OtherGroup {
                        path,
                        found: cp.group_id,
                        expected: self.group_id.clone(),
                    })
                }
                Ok(cp) => return Ok(Some((path, cp))),
                Err(e) => tracing::warn!(error = %e, "Skipped an unreadable checkpoint."),
            }
        }
        Ok(None)
    }
}

/// Read and check one checkpoint file.
pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < MAGIC.len() + 12 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("no checkpoint header".into()));
    }
    let rest = &bytes[MAGIC.len()..];
    let version = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if version != VERSION {
        return Err(corrupt(format!(
            "format version {version}, this chainwatch reads {VERSION}"
        )));
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&rest[4..12]);
    let body = &rest[12..];
    if twox_hash::XxHash64::oneshot(0, body) != u64::from_le_bytes(sum) {
        return Err(corrupt("checksum mismatch".into()));
    }
    postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(group: &str, applied_events: usize) -> Checkpoint {
        let mut state = State::default();
        let payloads: Vec<Vec<u8>> = (0..applied_events)
            .map(|i| {
                serde_json::json!({
                    "event_id": format!("inv-{i}"), "kind": "inventory_position", "source": "wms",
                    "event_time": "2026-03-01T00:00:00Z", "site": "S", "part": format!("P{i}"),
                    "on_hand": 1.0, "daily_demand": 1.0
                })
                .to_string()
                .into_bytes()
            })
            .collect();
        let slices: Vec<Option<&[u8]>> = payloads.iter().map(|p| Some(p.as_slice())).collect();
        let mut buffer = EventBuffer::new(60_000);
        if let Some(b) = crate::ingest::decode::EventDecoder::new(1 << 20)
            .decode(&slices)
            .batch
        {
            state.apply(&b, 0);
            buffer.push(b).unwrap();
        }
        let part = StatePart {
            request: CheckpointRequest {
                offsets: BTreeMap::from([(("erp".to_string(), 0), 42)]),
                watermark: SavedWatermark::default(),
                last: false,
            },
            state,
            buffer,
        };
        let ev = EvaluatorPart {
            engine: EngineSnapshot::default(),
            tracker: Tracker::default(),
            history: Vec::new(),
            evaluations: 7,
        };
        Checkpoint::assemble(group, part, ev).unwrap()
    }

    #[test]
    fn round_trip_and_the_newest_readable_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), "g").unwrap();
        assert!(store.latest().unwrap().is_none());
        store.write(&checkpoint("g", 2)).unwrap();
        let (second, _) = store.write(&checkpoint("g", 3)).unwrap();
        let (path, cp) = store.latest().unwrap().unwrap();
        assert_eq!(path, second);
        assert_eq!(cp.state.positions(), 3);
        assert_eq!(cp.offsets, vec![("erp".to_string(), 0, 42)]);
        assert_eq!(cp.evaluations, 7);
        let buffer = cp.buffer(60_000).unwrap();
        assert_eq!(buffer.len(), 3);

        // A torn or corrupted newest file: the one before is used.
        let mut bytes = std::fs::read(&second).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&second, &bytes).unwrap();
        let (path, cp) = store.latest().unwrap().unwrap();
        assert_ne!(path, second);
        assert_eq!(cp.state.positions(), 2);
        std::fs::write(&second, b"CWCK").unwrap();
        assert_eq!(store.latest().unwrap().unwrap().1.state.positions(), 2);
    }

    #[test]
    fn only_the_newest_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path(), "g").unwrap();
        for i in 0..(KEEP + 3) {
            store.write(&checkpoint("g", i)).unwrap();
        }
        assert_eq!(store.files().unwrap().len(), KEEP);
        assert_eq!(
            store.latest().unwrap().unwrap().1.state.positions(),
            KEEP + 2
        );
    }

    #[test]
    fn another_groups_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        CheckpointStore::open(dir.path(), "a")
            .unwrap()
            .write(&checkpoint("a", 1))
            .unwrap();
        let e = CheckpointStore::open(dir.path(), "b")
            .unwrap()
            .latest()
            .unwrap_err()
            .to_string();
        assert!(e.contains("consumer group \"a\""), "{e}");
    }
}
