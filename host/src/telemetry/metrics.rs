//! Prometheus metrics: the process-wide recorder, and one function (or handle) per event
//! the host counts, so metric names and labels live in one place. Handles on the request
//! path are registered once and kept, and each registration installs the recorder first,
//! so no handle is made before it (it would record nothing).
//!
//! | metric | labels |
//! |---|---|
//! | `http_requests_total`, `http_request_duration_seconds` | `method` (`OTHER` beyond the standard ones), `route`, `status` |
//! | `http_requests_in_flight` | |
//! | `plugin_call_duration_seconds` | `model_version` |
//! | `plugin_call_failures_total` | `model_version`, `kind`: a `model::PluginFailureKind` |
//! | `requests_shed_total` | |
//! | `model_swaps_total` | |
//! | `model_load_failures_total` | `kind`: a `slot::LoadFailureKind` |
//! | `grpc_requests_total`, `grpc_request_duration_seconds` | `rpc`, `code` (the first only) |
//! | `model_serving` | `model_version`, `digest`: 1 for the serving version, 0 for those it replaced |
//! | `rollout_phase` | `phase` (`shadow`, `canary`): 1 for the phase a candidate is in, 0 otherwise |
//! | `rollout_agreement_ratio` | share of shadowed rows on which the candidate chose the stable label |
//! | `rollout_calls_total` | `model_version`, `role` (`stable`, `candidate`), `outcome` (`ok`, `failed`) |
//! | `rollout_shadow_skipped_total` | |
//! | `rollout_decisions_total` | `action`: a `rollout::Action` |
//! | `data_capture_records_total` | `outcome` (`captured`, `dropped`, `failed`) |

use axum::http::Method;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

/// Latency buckets in seconds: 50 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];
/// How often recorded histogram samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(5);

/// The recorder, installed on first use; every server in the process renders from it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder =
            PrometheusBuilder::new().set_buckets(BUCKETS).expect("buckets are not empty").build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

/// The handles of one request metric series, registered on first use.
struct RequestSeries {
    total: Counter,
    duration: Histogram,
}

/// An HTTP request series: its labels and handles.
struct HttpSeries {
    method: &'static str,
    status: u16,
    route: Box<str>,
    handles: RequestSeries,
}

thread_local! {
    /// Each worker's handles, most recently added last: registering a series means
    /// building its labels and a lookup in the shared registry, too much to do per
    /// request. A worker sees a few dozen series at most (methods, statuses and route
    /// patterns are bounded), so a scan that compares the status first costs less than
    /// hashing the route.
    static HTTP_SERIES: RefCell<Vec<HttpSeries>> = const { RefCell::new(Vec::new()) };
}

/// Counts and times one request. Methods outside HTTP's standard set are labelled
/// `OTHER`, so that no client can grow the label set.
pub fn http_request(method: &Method, route: &str, status: u16, elapsed: Duration) {
    let method = method_label(method);
    HTTP_SERIES.with_borrow_mut(|known| {
        let found = known.iter().position(|s| s.status == status && s.method == method && *s.route == *route);
        let index = found.unwrap_or_else(|| {
            prometheus();
            let labels = [
                ("method", method.to_string()),
                ("route", route.to_string()),
                ("status", status.to_string()),
            ];
            let handles = RequestSeries {
                total: counter!("http_requests_total", &labels),
                duration: histogram!("http_request_duration_seconds", &labels),
            };
            known.push(HttpSeries { method, status, route: route.into(), handles });
            known.len() - 1
        });
        let series = &known[index].handles;
        series.total.increment(1);
        series.duration.record(elapsed.as_secs_f64());
    });
}

fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    STANDARD.iter().find(|m| *m == method).map_or("OTHER", Method::as_str)
}

/// Tracks one request in flight until dropped.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        Self::gauge().increment(1.0);
        Self(())
    }

    fn gauge() -> &'static Gauge {
        static GAUGE: OnceLock<Gauge> = OnceLock::new();
        GAUGE.get_or_init(|| {
            prometheus();
            gauge!("http_requests_in_flight")
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        Self::gauge().decrement(1.0);
    }
}

/// One model version's plugin-call metrics, registered when the version loads.
pub struct PluginCalls {
    version: String,
    duration: Histogram,
}

impl PluginCalls {
    pub fn new(version: &str) -> Self {
        prometheus();
        let duration = histogram!("plugin_call_duration_seconds", "model_version" => version.to_string());
        Self { version: version.to_string(), duration }
    }

    pub fn record(&self, elapsed: Duration, failure: Option<&'static str>) {
        self.duration.record(elapsed.as_secs_f64());
        if let Some(kind) = failure {
            counter!("plugin_call_failures_total", "model_version" => self.version.clone(), "kind" => kind)
                .increment(1);
        }
    }
}

thread_local! {
    /// Each worker's handles of the gRPC series by (RPC, code), registered on first use,
    /// as the HTTP ones are.
    static GRPC_SERIES: RefCell<HashMap<(&'static str, &'static str), RequestSeries>> =
        RefCell::new(HashMap::new());
}

/// A gRPC call, by RPC and status code name (the duration by RPC only).
pub fn grpc_request(rpc: &'static str, code: &'static str, elapsed: Duration) {
    GRPC_SERIES.with_borrow_mut(|series| {
        let series = series.entry((rpc, code)).or_insert_with(|| {
            prometheus();
            RequestSeries {
                total: counter!("grpc_requests_total", "rpc" => rpc, "code" => code),
                duration: histogram!("grpc_request_duration_seconds", "rpc" => rpc),
            }
        });
        series.total.increment(1);
        series.duration.record(elapsed.as_secs_f64());
    });
}

pub fn request_shed() {
    counter!("requests_shed_total").increment(1);
}

pub fn swap(incoming: (&str, &str), outgoing: Option<(&str, &str)>) {
    counter!("model_swaps_total").increment(1);
    if let Some((version, digest)) = outgoing {
        gauge!("model_serving", "model_version" => version.to_string(), "digest" => digest.to_string())
            .set(0.0);
    }
    let (version, digest) = incoming;
    gauge!("model_serving", "model_version" => version.to_string(), "digest" => digest.to_string()).set(1.0);
}

/// A refused version, by its kind (`LoadFailureKind::as_str` of the slot).
pub fn load_failure(kind: &'static str) {
    counter!("model_load_failures_total", "kind" => kind).increment(1);
}

/// Declares every kind of refusal at zero, so that a dashboard's rate of each exists
/// before the first one happens.
pub fn declare_load_failure_kinds(kinds: impl IntoIterator<Item = &'static str>) {
    prometheus();
    for kind in kinds {
        counter!("model_load_failures_total", "kind" => kind).increment(0);
    }
}

/// One rollout's counts of judged plugin calls, registered when it starts: the shadow
/// thread counts without touching the registry (and its locks) per call.
pub struct RolloutCalls {
    /// By role (stable, candidate), then outcome (ok, failed).
    counters: [[Counter; 2]; 2],
}

impl RolloutCalls {
    pub fn new(stable: &str, candidate: &str) -> Self {
        prometheus();
        let series = |version: &str, role: &'static str| {
            ["ok", "failed"].map(|outcome| {
                let labels = [
                    ("model_version", version.to_string()),
                    ("role", role.to_string()),
                    ("outcome", outcome.to_string()),
                ];
                counter!("rollout_calls_total", &labels)
            })
        };
        Self { counters: [series(stable, "stable"), series(candidate, "candidate")] }
    }

    pub fn record(&self, candidate: bool, failed: bool) {
        self.counters[usize::from(candidate)][usize::from(failed)].increment(1);
    }
}

/// A shadow copy skipped because shadow work was behind.
pub fn rollout_shadow_skipped() {
    counter!("rollout_shadow_skipped_total").increment(1);
}

/// The phase a candidate is in (`None`: no rollout in progress).
pub fn rollout_phase(phase: Option<&'static str>) {
    for each in ["shadow", "canary"] {
        gauge!("rollout_phase", "phase" => each).set(if Some(each) == phase { 1.0 } else { 0.0 });
    }
}

/// The candidate's agreement with the stable version so far in its shadow phase.
pub fn rollout_agreement(agreement: Option<f64>) {
    if let Some(agreement) = agreement {
        gauge!("rollout_agreement_ratio").set(agreement);
    }
}

/// A rollout decision, by `rollout::Action`.
pub fn rollout_decision(action: &'static str) {
    counter!("rollout_decisions_total", "action" => action).increment(1);
}

/// Counts data-capture records by `outcome`: `captured`, `dropped` or `failed`.
pub fn capture_records(outcome: &'static str, records: u64) {
    counter!("data_capture_records_total", "outcome" => outcome).increment(records);
}

/// Declares every data-capture series at 0, so they exist before the first record.
pub fn declare_capture_outcomes() {
    for outcome in ["captured", "dropped", "failed"] {
        capture_records(outcome, 0);
    }
}
