//! A plugin that loops forever, traps or exhausts its memory on every request it is
//! asked to: other requests keep their latency, and the host's memory stays flat.

use crate::process::HostProcess;
use crate::{EXCLUSIVE, plugin_dir_env, quantile};
use plugin_artifacts::fixtures;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn misbehaving_host(extra: &[(&str, &str)]) -> (HostProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures::MISBEHAVE, dir.path().join("misbehave-1.wasm")).unwrap();
    (HostProcess::start(&plugin_dir_env(dir.path(), extra)), dir)
}

/// Sends one request asking the plugin for `action`; returns the status.
async fn ask(host: &HostProcess, action: &str) -> u16 {
    let response = host.client.post(host.url("/predict")).json(&json!({ "action": action })).send().await;
    response.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Latency of a good request sent right after one asking for `before`, `rounds` times.
async fn next_request_latency(host: &HostProcess, before: &str, rounds: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        ask(host, before).await;
        let started = Instant::now();
        assert_eq!(ask(host, "ok").await, 200, "good request after {before}");
        latencies.push(started.elapsed());
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loops_do_not_starve_other_requests_beyond_the_deadline() {
    let _exclusive = EXCLUSIVE.lock().await;
    const DEADLINE: Duration = Duration::from_millis(100);
    let (host, _dir) = misbehaving_host(&[("CALL_TIMEOUT_MS", "100")]);
    host.wait_ready(Duration::from_secs(30)).await;
    let host = Arc::new(host);

    // What one fault costs the request after it.
    for (before, rounds) in [("ok", 100), ("trap", 100), ("spin", 20)] {
        let mut latencies = next_request_latency(&host, before, rounds).await;
        println!(
            "good request after {before}: p50 {:?}, p90 {:?} ({rounds} rounds)",
            quantile(&mut latencies, 0.5),
            quantile(&mut latencies, 0.9)
        );
    }

    // One client keeps two infinite loops running for 10 s; a probe measures good requests.
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let (host, stop) = (Arc::clone(&host), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    statuses.push(ask(&host, "spin").await);
                }
                statuses
            })
        })
        .collect();
    let mut probe = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let sent = Instant::now();
        assert_eq!(ask(&host, "ok").await, 200, "good request during the loops");
        probe.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut timeouts = 0;
    for spinner in spinners {
        let statuses = spinner.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 504), "infinite loops answered {statuses:?}");
        timeouts += statuses.len();
    }
    let count = probe.len();
    let (p50, p99, max) = (quantile(&mut probe, 0.5), quantile(&mut probe, 0.99), quantile(&mut probe, 1.0));
    println!(
        "10 s of infinite loops ({timeouts} timeouts): {count} good requests, p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );
    assert!(timeouts >= 150, "the loops did not keep running: {timeouts} timeouts");
    assert!(max < DEADLINE, "a good request waited {max:?}, beyond the {DEADLINE:?} deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_faults_leave_memory_bounded() {
    let _exclusive = EXCLUSIVE.lock().await;
    const WORKERS: usize = 8;
    let (host, _dir) = misbehaving_host(&[
        ("CALL_TIMEOUT_MS", "20"),
        ("PLUGIN_MEMORY_LIMIT_MIB", "8"),
        ("MAX_CONCURRENT_CALLS", &WORKERS.to_string()),
    ]);
    host.wait_ready(Duration::from_secs(30)).await;
    let host = Arc::new(host);
    let idle = host.rss_kib();

    // Requests `from..to`, in turn a trap, an infinite loop and a memory bomb.
    let soak = |from: usize, to: usize| {
        let next = Arc::new(AtomicUsize::new(from));
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (host, next) = (Arc::clone(&host), Arc::clone(&next));
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= to {
                            return answers;
                        }
                        let action = ["trap", "spin", "grow"][i % 3];
                        answers.push((action, ask(&host, action).await));
                    }
                })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for worker in workers {
                answers.extend(worker.await.unwrap());
            }
            answers
        }
    };
    let started = Instant::now();
    let mut answers = soak(0, 100).await;
    let after_100 = host.rss_kib();
    answers.extend(soak(100, 10_000).await);
    let after_10_000 = host.rss_kib();
    let elapsed = started.elapsed();

    // Loops are 504; traps 500 and memory bombs 500 at their cap, unless on a machine this
    // busy (8 calls on 2 cores, a 20 ms deadline) the deadline comes first: 504. Anything
    // else, or a bomb that never reaches its cap, is a failure.
    let count = |action: &str, status: u16| answers.iter().filter(|a| **a == (action, status)).count();
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|(action, status)| {
            !matches!((*action, *status), ("trap" | "grow", 500 | 504) | ("spin", 504))
        })
        .collect();
    if !unexpected.is_empty() {
        let log = host.log_text();
        let errors: Vec<_> =
            log.lines().filter(|l| l.contains("ERROR") && !l.contains("asked to trap")).take(40).collect();
        panic!(
            "unexpected answers: {:?}\nerrors logged:\n{}",
            &unexpected[..unexpected.len().min(20)],
            errors.join("\n")
        );
    }
    assert!(
        count("grow", 500) > count("grow", 504),
        "memory bombs mostly timed out instead of hitting the cap"
    );
    println!(
        "fault soak: {} requests in {elapsed:?} ({} traps, {} loops and {} other calls cut by the deadline, {} memory caps); \
         RSS idle {idle} KiB, after 100 {after_100} KiB, after 10,000 {after_10_000} KiB",
        answers.len(),
        count("trap", 500),
        count("spin", 504),
        count("trap", 504) + count("grow", 504),
        count("grow", 500),
    );
    assert_eq!(ask(&host, "ok").await, 200, "served after the soak");
    assert!(
        after_10_000 as f64 <= after_100 as f64 * 1.2,
        "RSS grew from {after_100} KiB to {after_10_000} KiB"
    );
}
