//! A rolling upgrade as Kubernetes performs it, rehearsed on loopback: two hosts behind
//! a load balancer (a small HTTP proxy here, choosing a backend per request as an ALB
//! does), and for each replica in turn: start the new host, wait until it is ready, add
//! it to the pool, take the old one out and send it SIGTERM. Under continuous load, no
//! request may fail, and every request in flight at SIGTERM must complete.

use crate::process::HostProcess;
use crate::{EXCLUSIVE, plugin_dir_env, quantile};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use plugin_artifacts::fixtures;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The load balancer: a pool of backends, round robin per request.
#[derive(Clone)]
struct Balancer {
    pool: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl Balancer {
    fn set_pool(&self, backends: &[&HostProcess]) {
        *self.pool.lock().unwrap() = backends.iter().map(|h| h.base.clone()).collect();
    }
}

async fn forward(
    State(lb): State<Balancer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    let backend = {
        let pool = lb.pool.lock().unwrap();
        pool[lb.next.fetch_add(1, Ordering::Relaxed) % pool.len()].clone()
    };
    let mut request = lb.client.request(method, format!("{backend}{uri}")).body(body);
    if let Some(content_type) = headers.get("content-type") {
        request = request.header("content-type", content_type);
    }
    match request.send().await {
        Ok(response) => (response.status(), response.bytes().await.unwrap_or_default()),
        Err(e) => (StatusCode::BAD_GATEWAY, Bytes::from(format!("backend {backend}: {e}"))),
    }
}

async fn start_balancer(lb: Balancer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(forward).with_state(lb);
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// A host as the Deployment runs it: not ready for a moment after SIGTERM, then draining.
/// Its call deadline is far above a slow request's time (tens of milliseconds on a quiet
/// machine): on a machine half as fast, with a replica compiling its plugin beside the
/// load, the default 100 ms failed slow requests with 504s that say nothing of the rollout.
fn replica(dir: &std::path::Path) -> HostProcess {
    HostProcess::start(&plugin_dir_env(
        dir,
        &[("SHUTDOWN_DELAY_SECS", "1"), ("DRAIN_TIMEOUT_SECS", "10"), ("CALL_TIMEOUT_MS", "2000")],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_under_load_loses_no_request() {
    let _exclusive = EXCLUSIVE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures::MISBEHAVE, dir.path().join("misbehave-1.wasm")).unwrap();
    let old = [replica(dir.path()), replica(dir.path())];
    for host in &old {
        host.wait_ready(Duration::from_secs(30)).await;
    }
    let lb = Balancer {
        pool: Arc::new(Mutex::new(Vec::new())),
        next: Arc::new(AtomicUsize::new(0)),
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
    };
    lb.set_pool(&[&old[0], &old[1]]);
    let address = start_balancer(lb.clone()).await;

    // Clients: quick requests and slow ones (busy in the plugin for tens of milliseconds),
    // so that requests are in flight whenever a SIGTERM lands.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let client = reqwest::Client::new();
            let url = format!("http://{address}/predict");
            let action = if i % 2 == 0 { "ok" } else { "slow" };
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let response = client.post(&url).json(&json!({ "action": action })).send().await;
                    outcomes.push(match response {
                        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                        Err(e) => (0, e.to_string()),
                    });
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The rollout: one replica at a time, surge one, never fewer ready than wanted.
    let [old_a, old_b] = old;
    let mut drains = Vec::new();
    let new_a = replica(dir.path());
    new_a.wait_ready(Duration::from_secs(30)).await;
    lb.set_pool(&[&new_a, &old_b]);
    drains.push(terminate(old_a));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new_b = replica(dir.path());
    new_b.wait_ready(Duration::from_secs(30)).await;
    lb.set_pool(&[&new_a, &new_b]);
    drains.push(terminate(old_b));
    let mut drain_times = Vec::new();
    for drain in drains {
        drain_times.push(drain.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for client in clients {
        let outcomes = client.await.unwrap();
        let failed: Vec<_> = outcomes.iter().filter(|(status, _)| *status != 200).collect();
        assert!(failed.is_empty(), "failed requests during the rollout: {failed:?}");
        total += outcomes.len();
    }
    println!(
        "rolling upgrade: {total} requests, none failed; SIGTERM to exit: {:?} and {:?} (1 s not ready, then drain)",
        drain_times[0], drain_times[1]
    );
    let mut times = drain_times.clone();
    assert!(quantile(&mut times, 1.0) < Duration::from_secs(10), "a drain hit its timeout: {drain_times:?}");
}

/// Sends SIGTERM at once and, in the background, waits for a clean exit; returns the time
/// from the signal to the exit.
fn terminate(host: HostProcess) -> tokio::task::JoinHandle<Duration> {
    host.send_sigterm();
    let signalled = Instant::now();
    tokio::task::spawn_blocking(move || {
        let status = host.wait_exit();
        assert!(status.success(), "the old host did not exit cleanly: {status:?}");
        signalled.elapsed()
    })
}
