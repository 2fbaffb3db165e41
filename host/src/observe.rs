//! Prometheus metrics: the process-wide recorder, and one function per event the host
//! counts, so metric names and labels live in one place.
//!
//! | metric | labels |
//! |---|---|
//! | `http_requests_total`, `http_request_duration_seconds` | `method`, `route`, `status` |
//! | `http_requests_in_flight` | |
//! | `plugin_call_duration_seconds` | `model_version` |
//! | `plugin_call_failures_total` | `model_version`, `kind` (timeout, memory_limit, trap, instantiate, invalid_output, internal) |
//! | `requests_shed_total` | |
//! | `model_swaps_total` | |
//! | `model_load_failures_total` | `kind` (signature, component, imports, world, info, self_test, fetch) |
//! | `model_serving` | `model_version`, `digest`: 1 for the serving version, 0 for those it replaced |

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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

pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels =
        [("method", method.to_string()), ("route", route.to_string()), ("status", status.to_string())];
    counter!("http_requests_total", &labels).increment(1);
    histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Tracks one request in flight until dropped.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> Self {
        gauge!("http_requests_in_flight").increment(1.0);
        Self(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("http_requests_in_flight").decrement(1.0);
    }
}

pub fn plugin_call(version: &str, elapsed: Duration, failure: Option<&'static str>) {
    histogram!("plugin_call_duration_seconds", "model_version" => version.to_string())
        .record(elapsed.as_secs_f64());
    if let Some(kind) = failure {
        counter!("plugin_call_failures_total", "model_version" => version.to_string(), "kind" => kind)
            .increment(1);
    }
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

pub fn load_failure(kind: &'static str) {
    counter!("model_load_failures_total", "kind" => kind).increment(1);
}
