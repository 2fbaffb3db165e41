//! ONNX models packaged as plugins: the example's scikit-learn, LightGBM and XGBoost
//! exports, packaged by the real binary without a Rust toolchain, served from a plugin
//! directory and from the registry, answering exactly as scikit-learn and onnxruntime do
//! on every held-out row; the schema read off the graph; and what packaging refuses.

use crate::examples::{Exported, assert_answers_match, exported, package, root, without_toolchain};
use crate::process::{HostProcess, Moto, cli_ok, env_of, run_cli};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Every 40th held-out row is also sent alone (the plugin's `predict`; batches go to
/// `predict-columns`).
const ALONE_EVERY: usize = 40;

/// Sends every held-out row in one batch, and some alone, and checks each answer.
async fn assert_serves_like_the_references(host: &HostProcess, exported: &Exported) {
    let rows = exported.predictions["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2000, "the held-out split");
    let response = host.client.post(host.url("/predict")).json(&rows).send().await.unwrap();
    let status = response.status();
    let answers: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{answers}");
    let answers = answers.as_array().unwrap().clone();
    assert_answers_match(exported, &(0..rows.len()).collect::<Vec<_>>(), &answers);

    let alone: Vec<usize> = (0..rows.len()).step_by(ALONE_EVERY).collect();
    let mut single = Vec::new();
    for &i in &alone {
        let response = host.client.post(host.url("/predict")).json(&rows[i]).send().await.unwrap();
        assert_eq!(response.status(), 200);
        single.push(response.json().await.unwrap());
    }
    assert_answers_match(exported, &alone, &single);
}

async fn wait_serving(host: &HostProcess, version: &str) {
    let started = Instant::now();
    while host.serving_version().await != version {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "version {version} never served:\n{}",
            host.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn packaged_models_answer_every_held_out_row_as_scikit_learn_and_onnxruntime_do() {
    let dir = tempfile::tempdir().unwrap();
    // A forest walks some 60,000 nodes per row: 2,000 rows in one call need more than
    // the default budget on a busy machine (with Winch's code, before Cranelift's).
    let host = HostProcess::start(&env_of(&[
        ("PLUGIN_DIR", dir.path().to_str().unwrap()),
        ("CALL_TIMEOUT_MS", "5000"),
    ]));
    host.wait_ready(Duration::from_secs(30)).await;
    for (version, kind) in
        ["logistic", "gradient-boosting", "random-forest", "lightgbm", "xgboost"].iter().enumerate()
    {
        let version = (version + 1).to_string();
        let exported = exported(kind);
        let staged = dir.path().join(".incoming");
        let summary = package(&exported, &staged);
        assert_eq!(summary["labels"], json!(["LA", "MM", "UM"]), "{kind}: {summary}");
        std::fs::copy(
            exported.file("metrics.json"),
            dir.path().join(format!("basket-{version}.metrics.json")),
        )
        .unwrap();
        std::fs::rename(&staged, dir.path().join(format!("basket-{version}.wasm"))).unwrap();
        wait_serving(&host, &version).await;
        assert_serves_like_the_references(&host, &exported).await;
        let (status, metrics) = host.get_json("/model/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(metrics["algorithm"], *kind);
        println!("{kind}: package {summary}, held-out accuracy {}", metrics["accuracy"]);
    }
}

#[tokio::test]
async fn onnx_models_are_published_to_the_registry_and_served_from_it() {
    let moto = Moto::start();
    let mut env = moto.aws_env();
    env.extend(env_of(&[
        ("MODEL_PACKAGE_GROUP", "retail-price-sensitivity-models"),
        ("PLUGIN_BUCKET", "retail-models"),
    ]));
    let cache = tempfile::tempdir().unwrap();
    let mut host_env = env.clone();
    let cache_dir = cache.path().to_str().unwrap();
    // A 2,000-row batch of a tree ensemble takes longer than the default 100 ms deadline
    // on a busy machine (as in the plugin-directory test above).
    host_env.extend(env_of(&[
        ("POLL_INTERVAL", "1s"),
        ("CACHE_DIR", cache_dir),
        ("CALL_TIMEOUT_MS", "5000"),
    ]));
    let host = HostProcess::start(&host_env);
    for kind in ["logistic", "lightgbm"] {
        let exported = exported(kind);
        // `publish` takes the .onnx itself and packages it on the way, with no Rust.
        let mut publisher = env.clone();
        publisher.extend(without_toolchain());
        let args = ["publish", &exported.file("model.onnx"), "--manifest", &exported.file("manifest.json")];
        let rest =
            ["--metrics", &exported.file("metrics.json"), "--approve", "--create-group", "--create-bucket"];
        let out: Value =
            serde_json::from_str(cli_ok(&[&args[..], &rest[..]].concat(), &publisher).trim()).unwrap();
        let version = out["version"].as_u64().unwrap().to_string();
        wait_serving(&host, &version).await;
        assert_serves_like_the_references(&host, &exported).await;
        let (_, metrics) = host.get_json("/model/metrics").await;
        assert_eq!(metrics["algorithm"], kind);
    }
}

#[tokio::test]
async fn the_served_schema_is_read_off_the_graph() {
    let exported = exported("logistic");
    let dir = tempfile::tempdir().unwrap();
    package(&exported, &dir.path().join("basket-1.wasm"));
    let host = HostProcess::start(&env_of(&[("PLUGIN_DIR", dir.path().to_str().unwrap())]));
    host.wait_ready(Duration::from_secs(30)).await;

    // The categories the encoder was fitted on: every value in the training split.
    let train =
        std::fs::read_to_string(Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-example-data/train.csv"))
            .unwrap();
    let header: Vec<&str> = train.lines().next().unwrap().split(',').collect();
    let categories = |field: &str| -> Vec<String> {
        let column = header.iter().position(|h| *h == field).unwrap();
        let values: BTreeSet<String> =
            train.lines().skip(1).map(|l| l.split(',').nth(column).unwrap().to_string()).collect();
        values.into_iter().collect()
    };
    let text = ["BASKET_SIZE", "BASKET_TYPE", "STORE_REGION", "STORE_FORMAT", "PROD_CODE_20", "PROD_CODE_30"];

    let (_, info) = host.get_json("/model/info").await;
    assert_eq!(info["name"], "price-sensitivity");
    assert_eq!(info["labels"], json!(["LA", "MM", "UM"]));
    let inputs = info["inputs"].as_array().unwrap_or_else(|| panic!("no inputs in {info}"));
    let names: Vec<&str> = inputs.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, [&text[..], &["SPEND", "QUANTITY"]].concat());
    for field in inputs {
        let name = field["name"].as_str().unwrap();
        if text.contains(&name) {
            assert_eq!(field["type"], "text", "{field}");
            assert_eq!(field["categories"], json!(categories(name)), "{field}");
        } else {
            assert_eq!(field["type"], "number", "{field}");
        }
    }

    let (_, openapi) = host.get_json("/openapi.json").await;
    let row = &openapi["components"]["schemas"]["PredictRow"];
    assert_eq!(row["properties"]["STORE_REGION"]["examples"], json!(categories("STORE_REGION")), "{row}");
    assert_eq!(row["properties"]["SPEND"]["type"], "number", "{row}");

    let (_, metadata) = host.get_json("/v2/models/price-sensitivity").await;
    let v2_inputs: Vec<(String, String)> = metadata["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().into(), i["datatype"].as_str().unwrap().into()))
        .collect();
    assert_eq!(v2_inputs[0], ("BASKET_SIZE".to_string(), "BYTES".to_string()));
    assert_eq!(v2_inputs[6], ("SPEND".to_string(), "FP64".to_string()));
    assert_eq!(metadata["outputs"][1]["shape"], json!([-1, 3]), "{metadata}");
}

/// Writes the refusal cases (see `onnx_refusals.py`) into `dir`.
fn refusal_models(dir: &Path) {
    let script = root().join("host/tests/api/onnx_refusals.py");
    let status = Command::new("python3").arg(script).arg(dir).status().expect("python3");
    assert!(status.success(), "onnx_refusals.py failed");
}

#[test]
fn packaging_refuses_what_cannot_serve_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    refusal_models(dir.path());
    let good = std::fs::read(exported("logistic").file("model.onnx")).unwrap();
    std::fs::write(dir.path().join("truncated.onnx"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.path().join("text.onnx"), "BASKET_SIZE,SPEND\nM,125.5\n").unwrap();
    std::fs::write(dir.path().join("plugin.onnx"), plugin_artifacts::PRICE_SENSITIVITY_WASM).unwrap();
    let cases = [
        ("unsupported.onnx", "unsupported operator: ai.onnx.ml:SVMClassifier"),
        (
            "image.onnx",
            "input \"image\" has shape [N, 3, 32, 32]: an image or sequence input cannot map to fields",
        ),
        ("sequence.onnx", "input \"words\" is a sequence"),
        ("raw_scores.onnx", "probabilities sum to"),
        ("regressor.onnx", "no output holds class probabilities"),
        ("truncated.onnx", "not an ONNX model: the file ends in the middle of a value (truncated?)"),
        ("text.onnx", "not an ONNX model: it does not start as an ONNX file does"),
        ("plugin.onnx", "is a WebAssembly file, not an ONNX model"),
    ];
    for (file, expected) in cases {
        let model = dir.path().join(file);
        let output = dir.path().join(format!("{file}.wasm"));
        let out = run_cli(
            &["package", model.to_str().unwrap(), "-o", output.to_str().unwrap()],
            &without_toolchain(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} was packaged");
        assert!(stderr.contains(expected), "{file}: expected {expected:?} in:\n{stderr}");
        assert!(!output.exists(), "{file}: a refused model left a plugin behind");
    }
}
