//! Sustained abuse and churn against the real binary: a fault soak that must leave
//! memory bounded and good requests answered within the deadline, swaps between two
//! versions under continuous load, a rolling upgrade behind a load balancer, and a
//! schema-driven fuzzer. A test binary of its own, so it runs after the
//! timing-sensitive end-to-end tests rather than beside them; and one test at a time,
//! since each saturates the machine on purpose.

// The tests, in the folder of this name.
mod soak {
    mod faults;
    mod fuzz;
    mod rollout;
    mod swaps;
}

// Shared with the end-to-end tests; not every helper there is used here.
#[allow(dead_code)]
mod support;
use support::{examples, process};

/// Held by each test for its whole run.
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `q` quantile (0..=1) of `samples`, which it sorts.
fn quantile(samples: &mut [std::time::Duration], q: f64) -> std::time::Duration {
    samples.sort();
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index]
}

/// Environment for a host serving the plugin directory `dir`, plus `extra`.
fn plugin_dir_env(
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let mut env = process::env_of(&[("PLUGIN_DIR", dir.to_str().unwrap())]);
    env.extend(process::env_of(extra));
    env
}
