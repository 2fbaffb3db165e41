//! Logging to stderr (stdout stays for command output): JSON lines for machines
//! ([`json_line`]), plain text for people at a terminal.
//!
//! A busy server logs a line per request, and one `write` to stderr per line (with the
//! stderr lock contended between worker threads) cost a tenth or more of the host's
//! throughput (BENCHMARKS.md). So each tokio worker thread collects whole lines and
//! writes them in one go when [`BATCH_BYTES`] are waiting or the thread runs out of work,
//! whichever comes first ([`flush_worker`] runs before every park): an idle server writes
//! each line at once, and a busy one writes a few dozen lines per call. Every other
//! thread (the main thread, the blocking pool, the epoch ticker) writes each line
//! straight away.

mod json_line;
pub mod metrics;
mod request;
mod text_line;

use json_line::{JsonLine, SpanFields};
pub use request::RequestScope;
use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;
use text_line::TextLine;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Lines a worker thread holds back before writing them; a few dozen request lines.
pub const BATCH_BYTES: usize = 16 * 1024;

/// The target of each request's closing line, for filtering (`RUST_LOG`).
pub const ACCESS_LOG_TARGET: &str = "predict_host::access";

/// Whether lines are JSON (set once, by [`init`]).
static JSON_LINES: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// `Some` once this thread has parked as a tokio worker; lines wait here until flushed.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Lines waiting on one worker thread; written out when the thread ends, too.
struct Batch(Vec<u8>);

impl Batch {
    fn write_out(&mut self) {
        if !self.0.is_empty() {
            // Nowhere to report a failed write to stderr: the lines are dropped.
            let _ = std::io::stderr().write_all(&self.0);
            self.0.clear();
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.write_out();
    }
}

/// Writes this worker thread's waiting lines and batches its later ones. For tokio's
/// `on_thread_park`, which runs on worker threads only, each time one runs out of work.
pub fn flush_worker() {
    BATCH.with(|batch| {
        // Busy only while a line is being added, which a park never interrupts.
        if let Ok(mut batch) = batch.try_borrow_mut() {
            batch.get_or_insert_with(|| Batch(Vec::with_capacity(BATCH_BYTES))).write_out();
        }
    });
}

/// Writes this thread's waiting lines, if any, and stops batching. For tokio's
/// `on_thread_stop`, so a shutdown loses nothing.
pub fn end_thread() {
    BATCH.with(|batch| {
        if let Ok(mut batch) = batch.try_borrow_mut() {
            drop(batch.take());
        }
    });
}

/// The log destination: stderr, in per-worker batches of whole lines.
struct BatchedStderr;

/// One line on its way out (`tracing-subscriber` formats a whole line, then writes it once).
struct LineWriter;

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let batched = BATCH.with(|batch| {
            let Ok(mut batch) = batch.try_borrow_mut() else { return false };
            let Some(batch) = batch.as_mut() else { return false };
            batch.0.extend_from_slice(line);
            if batch.0.len() >= BATCH_BYTES {
                batch.write_out();
            }
            true
        });
        if !batched {
            std::io::stderr().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    Text,
    Json,
}

/// Installs the global subscriber; `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    JSON_LINES.store(json, Ordering::Relaxed);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(BatchedStderr);
    let _ = if json {
        builder.with_ansi(false).fmt_fields(SpanFields).event_format(JsonLine).try_init()
    } else {
        builder.event_format(TextLine::new()).try_init()
    };
}

/// RFC 3339 UTC with milliseconds, as every timestamp in the API is written.
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Serde helper for [`format_time`].
pub fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*time))
}
