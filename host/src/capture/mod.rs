//! Data capture for model monitoring: a share of answered requests (their input rows and
//! the answer) written as SageMaker data-capture records, JSON lines in S3 or a local
//! directory, for SageMaker Model Monitor and any other reader of that format.
//!
//! A request only draws whether it is captured and, once its response is written, hands
//! its rows and predictions (moved, not copied) to a bounded queue ([`Pending::record`]).
//! A [`writer`] thread of its own wakes every few milliseconds, turns what is queued into
//! records and writes them: requests never wake it, and its work never runs on the
//! threads that serve. A full queue drops the record (counted), so a slow or unreachable
//! sink never delays or fails a request.

mod record;
pub mod sink;
mod writer;

use crate::model::LoadedModel;
use crate::runtime::{Field, Prediction};
use serde::Serialize;
use sink::Sink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant, SystemTime};
use utoipa::ToSchema;

/// How records are batched into objects.
#[derive(Debug, Clone, Copy)]
pub struct FlushRule {
    /// An object is written once its records reach this many bytes…
    pub bytes: usize,
    /// …or once its first record has waited this long.
    pub interval: Duration,
}

/// What a host captures and where it writes it.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// Share of answered requests captured, 0 to 100.
    pub percent: f64,
    pub sink: Sink,
    /// Input fields left out of every record.
    pub exclude_fields: Vec<String>,
    pub flush: FlushRule,
    /// Records that may wait for the writer; beyond them, records are dropped.
    pub queue_records: usize,
}

/// One answered request, on its way to becoming a record.
pub struct Event {
    /// The request id (`x-request-id`).
    pub id: String,
    pub time: SystemTime,
    /// The version that answered.
    pub model: Arc<LoadedModel>,
    pub rows: Vec<Vec<Field>>,
    pub predictions: Vec<Prediction>,
}

/// Records by outcome since the host started.
#[derive(Debug, Default)]
pub struct Counts {
    /// Written to the sink.
    pub captured: AtomicU64,
    /// Not queued: the queue was full (the sink is slower than the traffic) or closed.
    pub dropped: AtomicU64,
    /// Queued, but the sink refused or did not answer the write that held them.
    pub failed: AtomicU64,
}

/// The request path's handle on capture: cheap to clone, and inert when capture is off.
#[derive(Clone, Default)]
pub struct Capture(Option<Arc<Active>>);

struct Active {
    percent: f64,
    destination: String,
    exclude_fields: Vec<String>,
    queue: SyncSender<Event>,
    counts: Arc<Counts>,
    /// Milliseconds after `started` of the last "records dropped" log line.
    last_drop_log: AtomicU64,
    started: Instant,
}

/// Drops are logged at most this often, with the count so far.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Capture {
    /// Capture off: nothing is sampled.
    pub fn off() -> Self {
        Self(None)
    }

    /// Starts the writer thread for `settings` (none if the share is 0) and returns the
    /// handle requests use, and the writer's [`Closer`]. Writes to S3 run on `runtime`.
    pub fn start(
        settings: CaptureSettings,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<(Self, Closer)> {
        if settings.percent <= 0.0 {
            return Ok((Self::off(), Closer::default()));
        }
        let (queue, events) = std::sync::mpsc::sync_channel(settings.queue_records.max(1));
        let counts = Arc::new(Counts::default());
        let closing = Arc::new(AtomicBool::new(false));
        let (done, finished) = tokio::sync::oneshot::channel();
        let destination = settings.sink.to_string();
        let writer = writer::Writer::new(
            settings.sink,
            settings.flush,
            settings.exclude_fields.clone(),
            Arc::clone(&counts),
            runtime,
        );
        let thread = {
            let closing = Arc::clone(&closing);
            std::thread::Builder::new().name("data-capture".into()).spawn(move || {
                writer.run(&events, &closing);
                let _ = done.send(());
            })?
        };
        tracing::info!(percent = settings.percent, %destination, "data capture on");
        let active = Active {
            percent: settings.percent.min(100.0),
            destination,
            exclude_fields: settings.exclude_fields,
            queue,
            counts,
            last_drop_log: AtomicU64::new(0),
            started: Instant::now(),
        };
        let closer = Closer(Some(Closing { closing, thread: thread.thread().clone(), finished }));
        Ok((Self(Some(Arc::new(active))), closer))
    }

    /// Whether to capture the request at hand: a draw against the configured share.
    pub fn sample(&self) -> bool {
        match &self.0 {
            None => false,
            Some(active) if active.percent >= 100.0 => true,
            Some(active) => rand::random::<f64>() * 100.0 < active.percent,
        }
    }

    /// A sampled request's capture, waiting for its answer: `rows` as the model read
    /// them, under the request's id (or a new one).
    pub fn pending(&self, request_id: Option<&str>, rows: Vec<Vec<Field>>) -> Pending {
        let id = request_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
        Pending { capture: self.clone(), id, rows }
    }

    /// Queues `event` for the writer, or drops (and counts) it if the queue is full.
    fn queue(&self, event: Event) {
        let Some(active) = &self.0 else { return };
        if active.queue.try_send(event).is_ok() {
            return;
        }
        let dropped = active.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        crate::telemetry::metrics::capture_records("dropped", 1);
        let now = (active.started.elapsed().as_millis() as u64).max(1);
        let last = active.last_drop_log.load(Ordering::Relaxed);
        let due = last == 0 || now - last.min(now) >= LOG_EVERY.as_millis() as u64;
        if due
            && active.last_drop_log.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(
                dropped_total = dropped,
                destination = %active.destination,
                "data capture is behind: records dropped (the sink is slow or unreachable)"
            );
        }
    }

    /// What `/model/info` says of capture.
    pub fn status(&self) -> CaptureStatus {
        match &self.0 {
            None => CaptureStatus::default(),
            Some(active) => CaptureStatus {
                enabled: true,
                percent: active.percent,
                destination: Some(active.destination.clone()),
                excluded_fields: active.exclude_fields.clone(),
                captured: active.counts.captured.load(Ordering::Relaxed),
                dropped: active.counts.dropped.load(Ordering::Relaxed),
                failed: active.counts.failed.load(Ordering::Relaxed),
            },
        }
    }
}

/// A sampled request's rows, waiting for the answer it was given.
pub struct Pending {
    capture: Capture,
    id: String,
    rows: Vec<Vec<Field>>,
}

impl Pending {
    /// Queues the record of the request: its rows, and `predictions` by `model`.
    pub fn record(self, model: Arc<LoadedModel>, predictions: Vec<Prediction>) {
        let event = Event { id: self.id, time: SystemTime::now(), model, rows: self.rows, predictions };
        self.capture.queue(event);
    }
}

/// Ends capture: the writer writes what is queued, then stops.
#[derive(Default)]
pub struct Closer(Option<Closing>);

struct Closing {
    closing: Arc<AtomicBool>,
    thread: std::thread::Thread,
    finished: tokio::sync::oneshot::Receiver<()>,
}

impl Closer {
    /// Writes every queued record, within `within`; what is left after it is lost
    /// (and logged).
    pub async fn close(self, within: Duration) {
        let Some(Closing { closing, thread, finished }) = self.0 else { return };
        closing.store(true, Ordering::Release);
        thread.unpark();
        if tokio::time::timeout(within, finished).await.is_err() {
            tracing::warn!(
                within_secs = within.as_secs(),
                "data capture: queued records not written in time"
            );
        }
    }
}

/// Data capture as `/model/info` reports it.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct CaptureStatus {
    /// Whether requests are captured (`DATA_CAPTURE_PERCENT` above 0).
    pub enabled: bool,
    /// Percent of answered requests captured.
    pub percent: f64,
    /// Where records go: `s3://bucket/prefix` or a local directory.
    pub destination: Option<String>,
    /// Input fields never written to a record.
    pub excluded_fields: Vec<String>,
    /// Records written since the host started.
    pub captured: u64,
    /// Records dropped because the queue was full (the sink slow or down).
    pub dropped: u64,
    /// Records lost to a failed write.
    pub failed: u64,
}
