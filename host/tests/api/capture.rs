//! Data capture against moto's S3 (the real AWS SDK on both sides) and a local
//! directory, with real hosts: every captured request once, with its exact input and
//! answer, for `/predict`, V2 REST and V2 gRPC; the sampled share; SageMaker's key layout
//! and record format, read back as Model Monitor reads them; excluded fields; an S3
//! outage under load; and the queue written out on SIGTERM.

use crate::helpers::{seed_payload, serve_args, spawn_ready_app};
use crate::process::{HostProcess, Moto, env_of, run_tool};
use base64::Engine;
use predict_host::server::Server;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUCKET: &str = "monitoring";
const PREFIX: &str = "data-capture";
const MODEL: &str = "price-sensitivity";
const LABELS: [&str; 3] = ["LA", "MM", "UM"];

/// One record read back: where it was, and its decoded parts.
struct Captured {
    key: String,
    id: String,
    input: Value,
    output: Value,
}

/// Reads a capture file as SageMaker Model Monitor does: one JSON record per line, each
/// payload decoded by its declared encoding. Checks the record's format, and that the
/// file's key is `<model>/<version>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl` with the
/// hour of its records.
fn read_capture(key: &str, text: &str) -> Vec<Captured> {
    let layout = regex::Regex::new(
        r"^([^/]+)/([^/]+)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/\d{2}-\d{2}-\d{3}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$",
    )
    .unwrap();
    let parts = layout.captures(key).unwrap_or_else(|| panic!("{key} is not in SageMaker's capture layout"));
    assert_eq!((&parts[1], &parts[2]), (MODEL, plugin_artifacts::PRICE_SENSITIVITY_VERSION), "{key}");
    let hour = format!("{}-{}-{}T{}", &parts[3], &parts[4], &parts[5], &parts[6]);
    assert!(text.ends_with('\n'), "{key}: every line ends");
    text.lines()
        .map(|line| {
            let record: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: not JSON ({e}): {line}"));
            assert_eq!(record["eventVersion"], "0", "{line}");
            let payload = |side: &str, mode: &str| {
                let payload = &record["captureData"][side];
                assert_eq!(payload["mode"], mode, "{line}");
                assert_eq!(payload["observedContentType"], "application/json", "{line}");
                let data = payload["data"].as_str().expect("data is text");
                let bytes = match payload["encoding"].as_str() {
                    Some("JSON") => data.as_bytes().to_vec(),
                    Some("BASE64") => base64::engine::general_purpose::STANDARD.decode(data).unwrap(),
                    other => panic!("unknown encoding {other:?}: {line}"),
                };
                serde_json::from_slice::<Value>(&bytes).expect("payload decodes as JSON")
            };
            let metadata = &record["eventMetadata"];
            let time = metadata["inferenceTime"].as_str().expect("inferenceTime");
            humantime::parse_rfc3339(time).unwrap_or_else(|e| panic!("inferenceTime {time}: {e}"));
            assert!(time.starts_with(&hour), "record at {time} in the hour folder {hour}");
            Captured {
                key: key.to_string(),
                id: metadata["eventId"].as_str().expect("eventId").to_string(),
                input: payload("endpointInput", "INPUT"),
                output: payload("endpointOutput", "OUTPUT"),
            }
        })
        .collect()
}

/// moto's S3, seen by the test through the real SDK.
struct Store {
    moto: Moto,
    s3: aws_sdk_s3::Client,
}

impl Store {
    async fn start() -> Self {
        let moto = Moto::start();
        let s3 = s3_client(&moto).await;
        let store = Self { moto, s3 };
        store.create_bucket().await;
        store
    }

    async fn create_bucket(&self) {
        self.s3.create_bucket().bucket(BUCKET).send().await.expect("bucket created");
    }

    /// Every capture file: its key under the prefix, and its text.
    async fn files(&self) -> Vec<(String, String)> {
        let mut files = Vec::new();
        let mut pages =
            self.s3.list_objects_v2().bucket(BUCKET).prefix(format!("{PREFIX}/")).into_paginator().send();
        while let Some(page) = pages.next().await {
            for object in page.expect("listed").contents() {
                let key = object.key().unwrap();
                let body = self.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap().body;
                let text = String::from_utf8(body.collect().await.unwrap().to_vec()).unwrap();
                files.push((key.strip_prefix(&format!("{PREFIX}/")).unwrap().to_string(), text));
            }
        }
        files
    }

    async fn records(&self) -> Vec<Captured> {
        self.files().await.iter().flat_map(|(key, text)| read_capture(key, text)).collect()
    }

    /// A host serving the bundled plugin, capturing to this S3 with `extra` settings.
    fn host(&self, extra: &[(&str, &str)]) -> HostProcess {
        let mut env = self.moto.aws_env();
        let uri = format!("s3://{BUCKET}/{PREFIX}/");
        env.extend(env_of(&[("DATA_CAPTURE_S3_URI", uri.as_str())]));
        env.extend(env_of(extra));
        HostProcess::start(&env)
    }
}

async fn s3_client(moto: &Moto) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{Credentials, Region};
    let shared = predict_host::aws::sdk_config()
        .endpoint_url(moto.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build())
}

/// The seed basket with `SPEND` set: the request's rows are told apart by it.
fn row(spend: f64) -> Value {
    let mut row = seed_payload();
    row["SPEND"] = json!(spend);
    row
}

/// V2 JSON tensors of `rows`.
fn tensors(rows: &[Value]) -> Value {
    let column = |field: &str| rows.iter().map(|row| row[field].clone()).collect::<Vec<_>>();
    let inputs: Vec<Value> = seed_payload()
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| {
            let datatype = if value.is_string() { "BYTES" } else { "FP64" };
            json!({"name": name, "shape": [rows.len()], "datatype": datatype, "data": column(name)})
        })
        .collect();
    json!({ "inputs": inputs })
}

/// A V2 answer as `/predict` answers: `{prediction, probabilities, model_version}` per row.
fn as_predict_answers(v2: &Value) -> Vec<Value> {
    let output = |name: &str| {
        let outputs = v2["outputs"].as_array().unwrap();
        outputs.iter().find(|o| o["name"] == name).unwrap()["data"].as_array().unwrap().clone()
    };
    let (labels, probabilities) = (output("label"), output("probabilities"));
    labels
        .iter()
        .enumerate()
        .map(|(row, label)| {
            let scores: serde_json::Map<String, Value> = LABELS
                .iter()
                .enumerate()
                .map(|(k, l)| (l.to_string(), probabilities[row * 3 + k].clone()))
                .collect();
            json!({"prediction": label, "probabilities": scores, "model_version": v2["model_version"]})
        })
        .collect()
}

/// Asserts that captured input rows are the rows sent: every field, with its value.
fn assert_same_rows(captured: &Value, sent: &[Value], id: &str) {
    let captured = captured.as_array().unwrap_or_else(|| panic!("{id}: input is an array"));
    assert_eq!(captured.len(), sent.len(), "{id}: rows");
    for (got, want) in captured.iter().zip(sent) {
        let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
        assert_eq!(got.len(), want.len(), "{id}: fields of {got:?}");
        for (name, value) in want {
            match value.as_f64() {
                Some(number) => assert_eq!(got[name].as_f64(), Some(number), "{id}: {name}"),
                None => assert_eq!(&got[name], value, "{id}: {name}"),
            }
        }
    }
}

/// Waits until `/model/info` counts `records` captured.
async fn wait_captured(host: &HostProcess, records: u64) -> Value {
    let started = Instant::now();
    loop {
        let capture = host.get_json("/model/info").await.1["capture"].clone();
        if capture["captured"].as_u64() >= Some(records) || started.elapsed() > Duration::from_secs(30) {
            return capture;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_captured_once_with_its_exact_input_and_answer() {
    let store = Store::start().await;
    let host = store.host(&[
        ("DATA_CAPTURE_PERCENT", "100"),
        ("DATA_CAPTURE_FLUSH_INTERVAL", "200ms"),
        ("DATA_CAPTURE_FLUSH_BYTES", "65536"),
    ]);
    host.wait_ready(Duration::from_secs(30)).await;

    // 2,000 requests over HTTP: single rows and batches of 3 on /predict, batches of 2 on
    // V2 REST; each row's SPEND is its own. Expected: id → (rows, answers).
    let mut expected: HashMap<String, (Vec<Value>, Vec<Value>)> = HashMap::new();
    for i in 0..2000u32 {
        let id = format!("http-{i}");
        let spend = |r: u32| 10.0 + f64::from(i * 3 + r) * 0.25;
        let (path, rows, body) = match i % 4 {
            0 => {
                let rows: Vec<Value> = (0..3).map(|r| row(spend(r))).collect();
                ("/predict".to_string(), rows.clone(), Value::Array(rows))
            }
            1 => {
                let rows: Vec<Value> = (0..2).map(|r| row(spend(r))).collect();
                (format!("/v2/models/{MODEL}/infer"), rows.clone(), tensors(&rows))
            }
            _ => ("/predict".to_string(), vec![row(spend(0))], row(spend(0))),
        };
        let response =
            host.client.post(host.url(&path)).header("x-request-id", &id).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let answer: Value = response.json().await.unwrap();
        let answers = match (i % 4, answer) {
            (1, v2) => as_predict_answers(&v2),
            (_, Value::Array(answers)) => answers,
            (_, answer) => vec![answer],
        };
        expected.insert(id, (rows, answers));
    }
    // And over gRPC, with Triton's client.
    let script = format!("{}/tests/api/capture_grpc.py", env!("CARGO_MANIFEST_DIR"));
    let grpc = host.grpc.clone();
    let sent = tokio::task::spawn_blocking(move || run_tool("python3", &[&script, &grpc, MODEL, "50"]))
        .await
        .unwrap();
    let sent: Vec<Value> = serde_json::from_str(sent.lines().last().unwrap()).unwrap();
    for request in sent {
        let probabilities: serde_json::Map<String, Value> = LABELS
            .iter()
            .zip(request["probabilities"].as_array().unwrap())
            .map(|(l, p)| (l.to_string(), p.clone()))
            .collect();
        let answer = json!({"prediction": request["prediction"], "probabilities": probabilities,
            "model_version": plugin_artifacts::PRICE_SENSITIVITY_VERSION});
        expected.insert(
            request["id"].as_str().unwrap().to_string(),
            (vec![request["row"].clone()], vec![answer]),
        );
    }

    let capture = wait_captured(&host, expected.len() as u64).await;
    assert_eq!(capture["captured"], expected.len(), "{capture}");
    assert_eq!((capture["dropped"].as_u64(), capture["failed"].as_u64()), (Some(0), Some(0)), "{capture}");
    assert_eq!(capture["destination"], format!("s3://{BUCKET}/{PREFIX}"));

    let records = store.records().await;
    let mut seen: HashMap<&str, &Captured> = HashMap::new();
    for record in &records {
        assert!(seen.insert(&record.id, record).is_none(), "{} captured twice", record.id);
    }
    assert_eq!(seen.len(), expected.len(), "one record per request");
    for (id, (rows, answers)) in &expected {
        let record = seen.get(id.as_str()).unwrap_or_else(|| panic!("{id} not captured"));
        assert_same_rows(&record.input, rows, id);
        assert_eq!(record.output, Value::Array(answers.clone()), "{id}: the answer as the client got it");
    }
    let files: std::collections::BTreeSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    assert!(files.len() > 1, "flushed by size and time: {} files", files.len());
    host.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenth_is_captured_and_excluded_fields_never_are() {
    let store = Store::start().await;
    let host = store.host(&[
        ("DATA_CAPTURE_PERCENT", "10"),
        ("DATA_CAPTURE_EXCLUDE_FIELDS", "SPEND,STORE_REGION"),
        ("DATA_CAPTURE_FLUSH_INTERVAL", "100ms"),
    ]);
    host.wait_ready(Duration::from_secs(30)).await;
    let capture = host.get_json("/model/info").await.1["capture"].clone();
    assert_eq!((&capture["enabled"], &capture["percent"]), (&json!(true), &json!(10.0)), "{capture}");
    assert_eq!(capture["excluded_fields"], json!(["SPEND", "STORE_REGION"]));

    const REQUESTS: usize = 10_000;
    let host = Arc::new(host);
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let host = Arc::clone(&host);
            tokio::spawn(async move {
                for _ in 0..REQUESTS / 8 {
                    let response = host.client.post(host.url("/predict")).json(&seed_payload()).send().await;
                    assert_eq!(response.unwrap().status(), 200);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let Ok(host) = Arc::try_unwrap(host) else { panic!("senders are done") };
    assert!(host.terminate().success());

    let mut records = Vec::new();
    for (key, text) in store.files().await {
        assert!(!text.contains("SPEND") && !text.contains("STORE_REGION"), "an excluded field in {key}");
        records.extend(read_capture(&key, &text));
    }
    let share = records.len() as f64 / REQUESTS as f64 * 100.0;
    assert!((9.0..=11.0).contains(&share), "captured {share:.2}% of {REQUESTS} requests at 10%");
    for record in &records {
        let fields = record.input[0].as_object().unwrap();
        assert_eq!(fields.len(), 6, "the other fields are all there: {fields:?}");
    }
}

#[tokio::test]
async fn a_directory_holds_whole_files_in_the_same_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let app = spawn_ready_app(&["--data-capture-percent", "100", "--data-capture-dir", path]).await;
    for i in 0..100 {
        assert_eq!(app.predict(&row(f64::from(i))).await.0, 200);
    }
    app.stop().await;
    let mut records = Vec::new();
    for file in walk(dir.path()) {
        let key = file.strip_prefix(dir.path()).unwrap().to_str().unwrap().to_string();
        records.extend(read_capture(&key, &std::fs::read_to_string(&file).unwrap()));
    }
    assert_eq!(records.len(), 100, "every record, and no partial file left");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// Sends the seed basket from 4 clients for `length`; returns each answer's status and time.
async fn load(host: &Arc<HostProcess>, length: Duration) -> Vec<(u16, Duration)> {
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let host = Arc::clone(host);
            tokio::spawn(async move {
                let (started, mut answers) = (Instant::now(), Vec::new());
                while started.elapsed() < length {
                    let sent = Instant::now();
                    let response = host.client.post(host.url("/predict")).json(&seed_payload()).send().await;
                    answers.push((response.map_or(0, |r| r.status().as_u16()), sent.elapsed()));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    answers
}

fn p99(answers: &[(u16, Duration)]) -> Duration {
    let mut times: Vec<Duration> = answers.iter().map(|a| a.1).collect();
    times.sort();
    times[times.len() * 99 / 100]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_under_load_fails_and_slows_no_request_and_capture_resumes() {
    let mut store = Store::start().await;
    let host =
        Arc::new(store.host(&[("DATA_CAPTURE_PERCENT", "100"), ("DATA_CAPTURE_FLUSH_INTERVAL", "200ms")]));
    host.wait_ready(Duration::from_secs(30)).await;

    let before = load(&host, Duration::from_secs(5)).await;
    store.moto.stop();
    let outage = load(&host, Duration::from_secs(30)).await;
    let during = host.get_json("/model/info").await.1["capture"].clone();
    store.moto.restart();
    store.create_bucket().await;
    let after = load(&host, Duration::from_secs(5)).await;

    for (phase, answers) in [("before", &before), ("during", &outage), ("after", &after)] {
        let failed = answers.iter().filter(|a| a.0 != 200).count();
        assert_eq!(failed, 0, "{failed} of {} requests failed {phase} the outage", answers.len());
    }
    let (p99_before, p99_during) = (p99(&before), p99(&outage));
    let slowest = outage.iter().map(|a| a.1).max().unwrap();
    assert!(
        p99_during <= p99_before * 3 + Duration::from_millis(20) && slowest < Duration::from_secs(1),
        "p99 {p99_during:?} during the outage against {p99_before:?} before; slowest {slowest:?}"
    );
    let lost = during["dropped"].as_u64().unwrap() + during["failed"].as_u64().unwrap();
    assert!(lost > 0, "records lost to the outage are counted: {during}");
    let metrics = host.client.get(host.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("data_capture_records_total{outcome=\"dropped\"}"), "{metrics}");

    // S3 is back (empty: moto keeps nothing across a restart): capture writes again.
    let resumed = wait_captured(&host, during["captured"].as_u64().unwrap() + 1).await;
    assert!(resumed["captured"].as_u64() > during["captured"].as_u64(), "{resumed}");
    assert!(!store.records().await.is_empty(), "new capture files after the outage");
    let log = host.log_text();
    let failure_lines = log.lines().filter(|l| l.contains("data capture")).count();
    assert!((1..=12).contains(&failure_lines), "failures logged, at most every 10 s: {failure_lines} lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_the_queued_records_before_the_exit() {
    let store = Store::start().await;
    let host = store.host(&[
        ("DATA_CAPTURE_PERCENT", "100"),
        ("DATA_CAPTURE_FLUSH_INTERVAL", "1h"),
        ("DATA_CAPTURE_FLUSH_BYTES", "1048576"),
    ]);
    host.wait_ready(Duration::from_secs(30)).await;
    for i in 0..300 {
        let response = host.client.post(host.url("/predict")).json(&row(f64::from(i))).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(store.files().await.is_empty(), "nothing is written before the file is due");
    assert!(host.terminate().success());
    let records = store.records().await;
    assert_eq!(records.len(), 300, "every queued record written on SIGTERM");
    let spends: std::collections::BTreeSet<u64> =
        records.iter().map(|r| r.input[0]["SPEND"].as_f64().unwrap() as u64).collect();
    assert_eq!(spends.len(), 300);
}

#[tokio::test]
async fn capture_settings_that_cannot_work_are_refused_at_start() {
    let nowhere = Server::bind(serve_args(&["--data-capture-percent", "5"])).await.err().unwrap();
    assert!(nowhere.to_string().contains("DATA_CAPTURE_S3_URI"), "{nowhere}");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    let share = Server::bind(serve_args(&["--data-capture-percent", "150", "--data-capture-dir", dir]))
        .await
        .err()
        .unwrap();
    assert!(share.to_string().contains("between 0 and 100"), "{share}");
    let uri = Server::bind(serve_args(&["--data-capture-percent", "5", "--data-capture-s3-uri", "s3:///x"]))
        .await
        .err()
        .unwrap();
    assert!(format!("{uri:#}").contains("names no bucket"), "{uri:#}");
    let off = spawn_ready_app(&[]).await;
    let capture = off.info().await["capture"].clone();
    assert_eq!(
        capture,
        json!({"enabled": false, "percent": 0.0, "destination": null,
        "excluded_fields": [], "captured": 0, "dropped": 0, "failed": 0})
    );
    off.stop().await;
}
