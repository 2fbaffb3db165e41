//! The capture writer, on a thread of its own: every [`PACE`] it takes what is queued,
//! turns it into record lines, one open file per model version and hour, and writes a
//! file once it is large enough or old enough. A failed write loses that file's records
//! (counted, and logged at most every ten seconds) and the writer goes on with the next:
//! records are never held back for a sink that is down, so memory stays bounded by the
//! queue and the open files.

use super::record::write_line;
use super::sink::{Sink, file_key};
use super::{Counts, Event, FlushRule, LOG_EVERY};
use crate::model::LoadedModel;
use crate::telemetry::metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// How often the writer wakes: requests never wake it (a wake-up per request would cost
/// each one a system call), and a few milliseconds of records are a few hundred at most.
const PACE: Duration = Duration::from_millis(5);

/// Records of one model version and hour, waiting to be written as one file.
struct OpenFile {
    /// Keeps the version (whose address keys this file) alive while the file is open.
    _model: Arc<LoadedModel>,
    key: String,
    lines: Vec<u8>,
    records: u64,
    opened: Instant,
}

pub struct Writer {
    sink: Sink,
    flush: FlushRule,
    exclude_fields: Vec<String>,
    counts: Arc<Counts>,
    /// The runtime S3 writes run on (the writer blocks on them).
    runtime: tokio::runtime::Handle,
    /// By the version's address and the hour since the epoch.
    open: HashMap<(usize, u64), OpenFile>,
    /// Failures since the last log line, and when that was.
    unlogged_failures: u64,
    last_failure_log: Option<Instant>,
}

impl Writer {
    pub fn new(
        sink: Sink,
        flush: FlushRule,
        exclude_fields: Vec<String>,
        counts: Arc<Counts>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            sink,
            flush,
            exclude_fields,
            counts,
            runtime,
            open: HashMap::new(),
            unlogged_failures: 0,
            last_failure_log: None,
        }
    }

    /// Writes events as they come until `closing` (or every sender is gone), then
    /// writes whatever is queued and open.
    pub fn run(mut self, events: &Receiver<Event>, closing: &AtomicBool) {
        loop {
            // Read before draining: whatever was queued before the close is written.
            let closed = closing.load(Ordering::Acquire);
            let disconnected = loop {
                match events.try_recv() {
                    Ok(event) => self.add(event),
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if closed || disconnected {
                break;
            }
            self.write_due(false);
            std::thread::park_timeout(PACE);
        }
        self.write_due(true);
        self.log_failures(true);
    }

    fn add(&mut self, event: Event) {
        let hour = event.time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 3600;
        let slot = (Arc::as_ptr(&event.model) as usize, hour);
        let capacity = self.flush.bytes + 64 * 1024;
        let file = self.open.entry(slot).or_insert_with(|| OpenFile {
            key: file_key(&event.model.info.name, &event.model.version, event.time),
            _model: Arc::clone(&event.model),
            lines: Vec::with_capacity(capacity),
            records: 0,
            opened: Instant::now(),
        });
        write_line(&event, &self.exclude_fields, &mut file.lines);
        file.records += 1;
        if file.lines.len() >= self.flush.bytes
            && let Some(file) = self.open.remove(&slot)
        {
            self.write(file);
        }
    }

    /// Writes the files that have waited their interval (all of them, if `all`).
    fn write_due(&mut self, all: bool) {
        let interval = self.flush.interval;
        let due: Vec<_> = self
            .open
            .iter()
            .filter(|(_, f)| all || f.opened.elapsed() >= interval)
            .map(|(k, _)| *k)
            .collect();
        for slot in due {
            if let Some(file) = self.open.remove(&slot) {
                self.write(file);
            }
        }
        self.log_failures(false);
    }

    fn write(&mut self, file: OpenFile) {
        match self.runtime.block_on(self.sink.put(&file.key, file.lines)) {
            Ok(()) => {
                self.counts.captured.fetch_add(file.records, Ordering::Relaxed);
                metrics::capture_records("captured", file.records);
            }
            Err(error) => {
                self.counts.failed.fetch_add(file.records, Ordering::Relaxed);
                metrics::capture_records("failed", file.records);
                self.unlogged_failures += file.records;
                if self.last_failure_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    tracing::warn!(records = self.unlogged_failures, %error, "data capture: write failed, records lost");
                    self.unlogged_failures = 0;
                    self.last_failure_log = Some(Instant::now());
                }
            }
        }
    }

    /// Reports failures not yet logged, once the last line is old enough (or `now`).
    fn log_failures(&mut self, now: bool) {
        let due = now || self.last_failure_log.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if self.unlogged_failures > 0 && due {
            tracing::warn!(
                records = self.unlogged_failures,
                "data capture: more writes failed, records lost"
            );
            self.unlogged_failures = 0;
            self.last_failure_log = Some(Instant::now());
        }
    }
}
