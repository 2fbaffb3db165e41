//! Following the SageMaker Model Registry and S3 (a real `moto` server on loopback, the
//! real AWS SDK, the real binary): publish, approve, reject, broken artifacts, outages,
//! and restarts from the cache.

use crate::helpers::within;
use crate::process::{HostProcess, Moto, cli_ok, env_of, write_file};
use plugin_artifacts::fixtures;
use predict_host::artifact::sha256_hex;
use predict_host::aws::AwsClients;
use predict_host::aws::s3::{ObjectStore, S3Url};
use predict_host::aws::sagemaker::{ModelRegistry, NewVersion, RegistryError, VersionDetails};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const GROUP: &str = "retail-price-sensitivity-models";
const BUCKET: &str = "retail-models";
const POLL: Duration = Duration::from_secs(1);

/// A moto server, a scratch directory with the bundled plugin and metrics, and the
/// environment for the binary.
struct Registry {
    moto: Moto,
    scratch: tempfile::TempDir,
    plugin: String,
}

impl Registry {
    fn start() -> Self {
        let moto = Moto::start();
        let scratch = tempfile::tempdir().unwrap();
        let plugin =
            write_file(scratch.path(), "price-sensitivity.wasm", plugin_artifacts::PRICE_SENSITIVITY_WASM);
        Self { moto, scratch, plugin }
    }

    fn env(&self) -> HashMap<String, String> {
        let mut env = self.moto.aws_env();
        env.insert("MODEL_PACKAGE_GROUP".into(), GROUP.into());
        env.insert("PLUGIN_BUCKET".into(), BUCKET.into());
        env
    }

    /// Metrics for a version: the trainer's, tagged so versions can be told apart.
    fn metrics(&self, tag: &str) -> (String, Value) {
        let mut metrics: Value = serde_json::from_str(plugin_artifacts::PRICE_SENSITIVITY_METRICS).unwrap();
        metrics["release"] = json!(tag);
        let path =
            write_file(self.scratch.path(), &format!("metrics-{tag}.json"), metrics.to_string().as_bytes());
        (path, metrics)
    }

    /// `predict-host publish` of the bundled plugin; returns the created version.
    fn publish(&self, approve: bool, tag: &str) -> (u32, Value) {
        self.publish_file(&self.plugin, approve, tag)
    }

    /// `predict-host publish` of the plugin at `plugin`; returns the created version.
    fn publish_file(&self, plugin: &str, approve: bool, tag: &str) -> (u32, Value) {
        self.publish_with(plugin, approve, tag, &[])
    }

    /// `predict-host publish` with `extra` flags.
    fn publish_with(&self, plugin: &str, approve: bool, tag: &str, extra: &[&str]) -> (u32, Value) {
        let (metrics_path, metrics) = self.metrics(tag);
        let mut args =
            vec!["publish", plugin, "--metrics", &metrics_path, "--create-group", "--create-bucket"];
        if approve {
            args.push("--approve");
        }
        args.extend_from_slice(extra);
        let out: Value =
            serde_json::from_str(cli_ok(&args, &self.env()).trim()).expect("publish prints JSON");
        (out["version"].as_u64().unwrap() as u32, metrics)
    }

    /// `publish` of the bundled plugin, and its record as read back, with a registry client
    /// of the test's own for registering more by hand.
    async fn publish_and_describe(&self, approve: bool, tag: &str) -> (ModelRegistry, VersionDetails) {
        let (version, _) = self.publish(approve, tag);
        let models = ModelRegistry::new(self.clients().await.sagemaker, GROUP);
        let details = models.describe(&models.arn_of(version).await.unwrap()).await.unwrap();
        (models, details)
    }

    fn models(&self, action: &str, version: u32) {
        cli_ok(&["models", action, &version.to_string()], &self.env());
    }

    fn host(&self, cache: &Path) -> HostProcess {
        self.host_with(cache, &[])
    }

    /// A host on this registry with `extra` environment on top of the usual.
    fn host_with(&self, cache: &Path, extra: &[(&str, &str)]) -> HostProcess {
        let mut env = self.env();
        env.insert("POLL_INTERVAL".into(), format!("{}ms", POLL.as_millis()));
        env.insert("CACHE_DIR".into(), cache.to_str().unwrap().into());
        env.extend(env_of(extra));
        HostProcess::start(&env)
    }

    /// SDK clients of the test itself, for registering and tampering by hand.
    async fn clients(&self) -> AwsClients {
        use aws_sdk_s3::config::{Credentials, Region};
        let shared = predict_host::aws::sdk_config()
            .endpoint_url(self.moto.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .load()
            .await;
        AwsClients::from_config(&shared, true)
    }
}

/// A version registered by the test itself rather than `publish`: pending, unsigned, no
/// metrics, the plugin and digest as given.
fn by_hand<'a>(artifact_url: &'a str, sha256: &'a str) -> NewVersion<'a> {
    NewVersion {
        artifact_url,
        sha256,
        world: "mlops:predictor/predictor@1.0.0",
        signature: None,
        metrics_url: None,
        description: Some("registered by hand"),
        container_image: "predict-host",
        approve: false,
        rollout: None,
    }
}

const SEED: &str = r#"{"BASKET_SIZE":"M","BASKET_TYPE":"MIXED","STORE_REGION":"LONDON","STORE_FORMAT":"LS","SPEND":125.50,"QUANTITY":3,"PROD_CODE_20":"FOOD","PROD_CODE_30":"FRESH"}"#;

/// Sends the seed basket continuously until `stop`; returns (status, version) per answer.
fn load(host: &Arc<HostProcess>, stop: &Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(u16, String)>> {
    let (host, stop) = (Arc::clone(host), Arc::clone(stop));
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let request = host.client.post(host.url("/predict")).header("content-type", "application/json");
            match request.body(SEED).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    seen.push((status, body["model_version"].as_str().unwrap_or("").to_string()));
                }
                Err(e) => seen.push((0, e.to_string())),
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_swaps_in_under_load_and_rejection_rolls_back() {
    let registry = Registry::start();
    let (v1, metrics1) = registry.publish(true, "first");
    assert_eq!(v1, 1);
    let cache = tempfile::tempdir().unwrap();
    let host = Arc::new(registry.host(cache.path()));
    host.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(host.serving_version().await, "1");
    assert_eq!(host.get_json("/model/metrics").await, (200, metrics1));

    let info = host.get_json("/model/info").await.1;
    assert_eq!(info["source"]["kind"], "registry");
    assert_eq!(info["source"]["model_package_group"], GROUP);
    assert_eq!(info["source"]["approval_status"], "Approved");
    assert!(info["source"]["model_package_arn"].as_str().unwrap().ends_with(&format!("{GROUP}/1")));
    assert!(info["source"]["artifact_url"].as_str().unwrap().starts_with(&format!("s3://{BUCKET}/")));
    let digest = format!("sha256:{}", sha256_hex(plugin_artifacts::PRICE_SENSITIVITY_WASM));
    assert_eq!(info["digest"], digest);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3).map(|_| load(&host, &stop)).collect();
    let (v2, metrics2) = registry.publish(false, "second");
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(host.serving_version().await, "1", "a pending version does not serve");

    let approved = Instant::now();
    registry.models("approve", v2);
    let switched = within(Duration::from_secs(10), || async { host.serving_version().await == "2" }).await;
    let approve_to_serving = approved.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    assert!(switched.is_some(), "never switched to version 2");
    println!("approve-to-serving: {approve_to_serving:?}");
    assert!(approve_to_serving < POLL + Duration::from_secs(2), "took {approve_to_serving:?}");
    for client in clients {
        let seen = client.await.unwrap();
        assert!(
            seen.iter().all(|(status, _)| *status == 200),
            "failed requests: {:?}",
            seen.iter().filter(|s| s.0 != 200).collect::<Vec<_>>()
        );
        let first = seen.iter().position(|(_, v)| v == "2").expect("client saw version 2");
        assert!(seen[..first].iter().all(|(_, v)| v == "1") && seen[first..].iter().all(|(_, v)| v == "2"));
    }
    assert_eq!(host.get_json("/model/metrics").await, (200, metrics2));

    registry.models("reject", v2);
    let back = within(POLL + Duration::from_secs(2), || async { host.serving_version().await == "1" }).await;
    assert!(back.is_some(), "rejection did not roll back to version 1");
}

#[tokio::test]
async fn broken_artifacts_are_refused_and_the_serving_version_stays() {
    let registry = Registry::start();
    registry.publish(true, "good");
    let cache = tempfile::tempdir().unwrap();
    let host = registry.host(cache.path());
    host.wait_ready(Duration::from_secs(30)).await;
    let clients = registry.clients().await;
    let store = ObjectStore::new(clients.s3.clone());
    let models = ModelRegistry::new(clients.sagemaker.clone(), GROUP);

    // Tampered: the object is replaced after publishing, so its digest no longer matches.
    // (A plugin of its own, so no cached copy of the same bytes can stand in for it.)
    let (tampered, _) = registry.publish_file(fixtures::MISBEHAVE, false, "tampered");
    let details = models.describe(&models.arn_of(tampered).await.unwrap()).await.unwrap();
    let url = S3Url::parse(&details.artifact_url).unwrap();
    let mut altered = std::fs::read(fixtures::MISBEHAVE).unwrap();
    altered.extend_from_slice(b"\0tampered");
    store.put(&url, altered, "application/wasm").await.unwrap();

    // Missing: registered by hand, pointing at an object that does not exist.
    let not_a_component = b"not a component".to_vec();
    let models = &models;
    let hand_registered = |url: String, sha256: String, metrics_url: Option<String>| async move {
        models
            .create_version(&NewVersion { metrics_url: metrics_url.as_deref(), ..by_hand(&url, &sha256) })
            .await
            .unwrap()
    };
    let missing = hand_registered(format!("s3://{BUCKET}/nowhere/missing.wasm"), "ab".repeat(32), None).await;
    // Not a component: uploaded and registered by hand with its true digest.
    let junk_url = S3Url { bucket: BUCKET.into(), key: "by-hand/junk.wasm".into() };
    store.put(&junk_url, not_a_component.clone(), "application/wasm").await.unwrap();
    let junk = hand_registered(junk_url.to_string(), sha256_hex(&not_a_component), None).await;
    // Metrics past the size limit: refused by length, before they are read whole.
    let plugin = std::fs::read(fixtures::TRAP_IN_INFO).unwrap();
    let plugin_url = S3Url { bucket: BUCKET.into(), key: "by-hand/trap.wasm".into() };
    store.put(&plugin_url, plugin.clone(), "application/wasm").await.unwrap();
    let metrics_url = S3Url { bucket: BUCKET.into(), key: "by-hand/huge-metrics.json".into() };
    let huge = vec![b' '; predict_host::artifact::MAX_SIDECAR_BYTES as usize + 1];
    store.put(&metrics_url, huge, "application/json").await.unwrap();
    let oversized =
        hand_registered(plugin_url.to_string(), sha256_hex(&plugin), Some(metrics_url.to_string())).await;

    for (version, expected) in [
        (tampered, "but the registry says"),
        (missing, "fetching"),
        (junk, "not a valid WebAssembly component"),
        (oversized, "is larger than 1048576 bytes"),
    ] {
        registry.models("approve", version);
        let wanted = version.to_string();
        let reason_of = |info: &Value| {
            let errors = info["load_errors"].as_array().cloned().unwrap_or_default();
            errors
                .into_iter()
                .find(|e| e["version"].as_str() == Some(&wanted))
                .map(|e| e["reason"].to_string())
        };
        let refused = within(Duration::from_secs(15), || async {
            reason_of(&host.get_json("/model/info").await.1).is_some()
        })
        .await;
        assert!(refused.is_some(), "version {version} not refused; log:\n{}", host.log_text());
        let info = host.get_json("/model/info").await.1;
        let reason = reason_of(&info).unwrap();
        assert!(reason.contains(expected), "version {version}: {reason}");
        assert_eq!(info["model_version"], "1", "serving version stays");
        let response = host.client.post(host.url("/predict")).header("content-type", "application/json");
        assert_eq!(response.body(SEED).send().await.unwrap().status(), 200);
    }

    // Refused versions are not retried in a loop. Those that failed to load never are;
    // the two whose fetch failed are, after 2 s and then 4 s: at most 4 attempts in 4
    // polls, where a retry at every poll would make 8.
    let attempts =
        || host.logs.lock().unwrap().iter().filter(|l| l.contains("model version refused")).count();
    let before = attempts();
    tokio::time::sleep(POLL * 4).await;
    assert!(attempts() - before <= 4, "refusals repeat: {} in 4 polls", attempts() - before);
}

/// A newer Approved version whose record is broken (here a plugin-sha256 that is not a
/// digest, which would otherwise name a path in the cache) is refused on its own: a host
/// starting cold serves the older good one, and says why the newer one is not serving.
#[tokio::test]
async fn a_broken_registry_record_keeps_out_only_its_own_version() {
    let registry = Registry::start();
    let (models, details) = registry.publish_and_describe(true, "good").await;
    let good = details.version;
    let created = models
        .create_version(&NewVersion {
            approve: true,
            ..by_hand(&details.artifact_url, "../sha256/not-a-digest")
        })
        .await;
    // The package is created; reading it back is what fails.
    assert!(matches!(created, Err(RegistryError::Malformed(..))), "{created:?}");
    let broken = good + 1;
    models.arn_of(broken).await.expect("the broken version is registered");

    let cache = tempfile::tempdir().unwrap();
    let host = registry.host(cache.path());
    host.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(host.serving_version().await, good.to_string());
    let info = host.get_json("/model/info").await.1;
    let errors = info["load_errors"].as_array().cloned().unwrap_or_default();
    let wanted = broken.to_string();
    let refusal = errors.iter().find(|e| e["version"].as_str() == Some(wanted.as_str()));
    let refusal = refusal.unwrap_or_else(|| panic!("version {broken} not listed as refused: {info}"));
    assert_eq!(refusal["kind"], "record", "{refusal}");
    assert!(refusal["reason"].as_str().unwrap().contains("plugin-sha256"), "{refusal}");
    assert!(info["source_error"].is_null(), "the registry itself answered: {info}");
    for entry in std::fs::read_dir(cache.path().join("artifacts/sha256")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert_eq!(name, format!("{}.wasm", details.sha256), "only the good plugin is cached");
    }
}

/// Version lists span every page: with more versions than one page of the listing holds,
/// the oldest can still be approved, and `models list` shows it.
#[tokio::test]
async fn the_oldest_of_more_than_a_page_of_versions_can_be_approved() {
    let registry = Registry::start();
    let (models, details) = registry.publish_and_describe(false, "first").await;
    let first = details.version;
    for _ in 0..100 {
        models.create_version(&by_hand(&details.artifact_url, &details.sha256)).await.unwrap();
    }
    registry.models("approve", first);
    let listed = cli_ok(&["models", "list"], &registry.env());
    let versions = models.versions().await.unwrap();
    assert_eq!(versions.len(), 101);
    let oldest = versions.last().unwrap();
    assert_eq!((oldest.version, oldest.status.as_str()), (first, "Approved"));
    assert!(listed.contains("Approved"), "{listed}");
}

#[tokio::test]
async fn registry_outage_keeps_serving_and_a_later_approval_is_picked_up() {
    let mut registry = Registry::start();
    registry.publish(true, "before");
    let cache = tempfile::tempdir().unwrap();
    let host = registry.host(cache.path());
    host.wait_ready(Duration::from_secs(30)).await;

    registry.moto.stop();
    let outage = Instant::now();
    while outage.elapsed() < POLL * 4 {
        let response = host.client.post(host.url("/predict")).header("content-type", "application/json");
        assert_eq!(response.body(SEED).send().await.unwrap().status(), 200, "serving through the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info = host.get_json("/model/info").await.1;
    assert!(info["source_error"]["error"].as_str().is_some(), "outage visible in /model/info: {info}");
    assert!(host.is_ready().await);

    // The registry comes back (empty, as moto keeps no state) and a newer version is approved.
    registry.moto.restart();
    registry.publish(true, "after-1");
    let (v2, _) = registry.publish(true, "after-2");
    let picked =
        within(Duration::from_secs(30), || async { host.serving_version().await == v2.to_string() }).await;
    assert!(picked.is_some(), "newer approval not picked up; log:\n{}", host.log_text());
    assert!(host.get_json("/model/info").await.1["source_error"].is_null(), "outage cleared");
}

#[tokio::test]
async fn restart_with_a_warm_cache_serves_while_the_registry_is_down() {
    let mut registry = Registry::start();
    let (_, metrics) = registry.publish(true, "cached");
    let cache = tempfile::tempdir().unwrap();
    let first = registry.host(cache.path());
    let cold = first.wait_ready(Duration::from_secs(30)).await;
    assert!(first.terminate().success());

    registry.moto.stop();
    let warm_host = registry.host(cache.path());
    let warm = warm_host.wait_ready(Duration::from_secs(10)).await;
    println!("ready after start: cold cache {cold:?}, warm cache with the registry down {warm:?}");
    assert!(warm < Duration::from_secs(1), "warm start took {warm:?}");
    assert_eq!(warm_host.serving_version().await, "1");
    assert_eq!(warm_host.get_json("/model/metrics").await, (200, metrics));
    drop(warm_host);

    // Without a cache, a host whose registry is down is alive but not ready, and stays up.
    let empty = tempfile::tempdir().unwrap();
    let blind = registry.host(empty.path());
    tokio::time::sleep(POLL * 3).await;
    let (status, body) = blind.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(blind.get_json("/health").await.0, 200);
    let (status, body) = blind.get_json("/model/info").await;
    assert_eq!(status, 503);
    assert!(body["error"].as_str().is_some());
}

/// `POST /admin/<action>` with the test token; returns status and body.
async fn admin(host: &HostProcess, action: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = host.client.post(host.url(&format!("/admin/{action}"))).bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

const ADMIN_TOKEN: &str = "registry-test-token";

#[tokio::test]
async fn a_pin_holds_against_newer_approvals_until_unpin() {
    let registry = Registry::start();
    registry.publish(true, "one");
    registry.publish(true, "two");
    let cache = tempfile::tempdir().unwrap();
    let host = registry.host_with(cache.path(), &[("ADMIN_TOKEN", ADMIN_TOKEN)]);
    host.wait_ready(Duration::from_secs(30)).await;
    assert!(
        within(Duration::from_secs(10), || async { host.serving_version().await == "2" }).await.is_some()
    );

    let (status, body) = admin(&host, "pin", Some(json!({"version": 1}))).await;
    assert_eq!((status, &body["serving"], &body["pinned"]), (200, &json!("1"), &json!("1")), "{body}");
    let (v3, _) = registry.publish(true, "three");
    tokio::time::sleep(POLL * 3).await;
    assert_eq!(host.serving_version().await, "1", "a newer approval replaced the pinned version");
    let (status, _) = admin(&host, "reload", None).await;
    assert_eq!(status, 200);
    assert_eq!(host.serving_version().await, "1", "reload replaced the pinned version");
    let (_, body) = admin(&host, "pin", Some(json!({"version": 99}))).await;
    assert!(body["error"].as_str().unwrap().contains("no version 99"), "{body}");

    let (status, body) = admin(&host, "unpin", None).await;
    assert_eq!((status, &body["serving"]), (200, &json!(v3.to_string())), "{body}");
    assert_eq!(host.serving_version().await, v3.to_string());
}

#[tokio::test]
async fn reload_checks_the_registry_now() {
    let registry = Registry::start();
    registry.publish(true, "one");
    let cache = tempfile::tempdir().unwrap();
    let host = registry.host_with(cache.path(), &[("ADMIN_TOKEN", ADMIN_TOKEN), ("POLL_INTERVAL", "1h")]);
    host.wait_ready(Duration::from_secs(30)).await;
    let (v2, _) = registry.publish(true, "two");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(host.serving_version().await, "1", "nothing polls within the hour");
    let (status, body) = admin(&host, "reload", None).await;
    assert_eq!((status, &body["serving"]), (200, &json!(v2.to_string())), "{body}");
    let (status, versions) = host.get_json("/admin/versions").await;
    assert_eq!(status, 401, "listing needs the token too: {versions}");
}

#[tokio::test]
async fn with_a_public_key_only_versions_published_with_the_signing_key_serve() {
    let registry = Registry::start();
    let key_path = registry.scratch.path().join("publisher.pem");
    let public_key = cli_ok(&["keygen", "--private-key", key_path.to_str().unwrap()], &registry.env());
    let public_key = public_key.trim();
    let (unsigned, _) = registry.publish(true, "unsigned");
    let cache = tempfile::tempdir().unwrap();
    let host = registry.host_with(cache.path(), &[("PLUGIN_PUBLIC_KEY", public_key)]);
    let unsigned = unsigned.to_string();
    let refused = within(Duration::from_secs(15), || async {
        let (status, body) = host.get_json("/model/info").await;
        status == 503 && body["last_load_error"]["version"] == unsigned.as_str()
    })
    .await;
    assert!(refused.is_some(), "unsigned version not refused; log:\n{}", host.log_text());
    let (_, body) = host.get_json("/model/info").await;
    assert!(body["last_load_error"]["reason"].as_str().unwrap().contains("unsigned"), "{body}");

    let key_arg = key_path.to_str().unwrap();
    let (signed, _) = registry.publish_with(&registry.plugin, true, "signed", &["--sign-key", key_arg]);
    host.wait_ready(Duration::from_secs(15)).await;
    assert_eq!(host.serving_version().await, signed.to_string());
    let info = host.get_json("/model/info").await.1;
    assert_eq!((info["signed"].as_bool(), info["signature_verified"].as_bool()), (Some(true), Some(true)));
}

/// `/model/info`'s rollout of `host`, once `check` holds of it (within 30 s).
async fn rollout_when(host: &HostProcess, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let rollout = host.get_json("/model/info").await.1["rollout"].clone();
        if check(&rollout) {
            return rollout;
        }
        if started.elapsed() > Duration::from_secs(30) {
            panic!("rollout never reached {what}: {rollout:#}\nlog:\n{}", host.log_text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Judging version 2 in shadow, nothing counted against it yet.
fn judging_afresh(rollout: &Value) -> bool {
    rollout["candidate_version"] == "2" && rollout["phase"] == "shadow" && rollout["outcome"].is_null()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_rollout_judges_the_candidate_again_and_a_rollback_rejects_it() {
    let registry = Registry::start();
    let (v1, _) = registry.publish_file(fixtures::MISBEHAVE, true, "stable");
    assert_eq!(v1, 1);
    let never = [("ROLLOUT_STRATEGY", "phased"), ("ROLLOUT_MIN_REQUESTS", "1000000000")];
    let cache = tempfile::tempdir().unwrap();
    let first = registry.host_with(cache.path(), &never);
    first.wait_ready(Duration::from_secs(30)).await;

    // Version 2 is approved and judged in shadow; it has been shadowing for a while when
    // the host stops.
    let (v2, _) = registry.publish_with(
        fixtures::CANDIDATE,
        true,
        "candidate",
        &["--rollout", r#"{"canary_percent": 20}"#],
    );
    assert_eq!(v2, 2);
    rollout_when(&first, "shadow", judging_afresh).await;
    for i in 0..50 {
        let body = json!({ "action": format!("ok-{i}") });
        let response = first.client.post(first.url("/predict")).json(&body).send().await.unwrap();
        assert_eq!(response.headers()["x-model-version"], "1");
    }
    let judged =
        rollout_when(&first, "shadowed requests", |r| r["figures"]["compared_rows"].as_u64() > Some(0)).await;
    assert_eq!(judged["policy"]["canary_percent"], 20.0, "the version's own policy applies");
    assert!(first.terminate().success());

    // Restarted on the same cache: the last promoted version serves and the candidate is
    // judged from the start, not promoted.
    let restarted = registry.host_with(cache.path(), &never);
    restarted.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(restarted.serving_version().await, "1");
    let again = rollout_when(&restarted, "shadow", judging_afresh).await;
    assert_eq!(again["decisions"].as_array().unwrap().len(), 1, "{again:#}");

    // A new pod with an empty cache: the version before the newest serves first, and the
    // newest is judged against it.
    let empty = tempfile::tempdir().unwrap();
    let fresh = registry.host_with(empty.path(), &never);
    fresh.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(fresh.serving_version().await, "1");
    rollout_when(&fresh, "shadow", judging_afresh).await;

    // A pod that judges quickly and may reject: the candidate disagrees on every row,
    // is rolled back, and marked Rejected, so the other pods drop it too.
    let strict = [
        ("ROLLOUT_STRATEGY", "phased"),
        ("ROLLOUT_MIN_REQUESTS", "50"),
        ("ROLLOUT_REJECT_IN_REGISTRY", "true"),
    ];
    let judge_cache = tempfile::tempdir().unwrap();
    let judge = registry.host_with(judge_cache.path(), &strict);
    judge.wait_ready(Duration::from_secs(30)).await;
    rollout_when(&judge, "shadow", judging_afresh).await;
    for i in 0..200 {
        let body = json!({ "action": format!("differ-{i}") });
        let response = judge.client.post(judge.url("/predict")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let rolled_back = rollout_when(&judge, "a rollback", |r| r["outcome"] == "roll_back").await;
    assert!(rolled_back["decisions"].to_string().contains("label on 0.00%"), "{rolled_back:#}");
    let models = ModelRegistry::new(registry.clients().await.sagemaker, GROUP);
    let rejected = within(Duration::from_secs(30), || async {
        let arn = models.arn_of(v2).await.unwrap();
        models.describe(&arn).await.unwrap().approval_status == "Rejected"
    });
    assert!(rejected.await.is_some(), "version 2 was not rejected; log:\n{}", judge.log_text());
    for host in [&restarted, &fresh] {
        let withdrawn = rollout_when(host, "a withdrawal", |r| r["outcome"] == "supersede").await;
        assert!(withdrawn["decisions"].to_string().contains("no longer approved"), "{withdrawn:#}");
        assert_eq!(host.serving_version().await, "1");
    }
}
