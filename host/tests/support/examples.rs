//! The ONNX example as a data scientist runs it: the project's dataset written as CSV,
//! `examples/sklearn/train.py` training and exporting a model (Python tools installed by
//! `scripts/test.sh`), and `predict-host package` with no Rust toolchain on `PATH`.

use super::process::run_cli;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// One trained and exported model: `model.onnx`, `manifest.json`, `metrics.json` and
/// `predictions.json` (every held-out row with scikit-learn's and onnxruntime's answers).
pub struct Exported {
    pub dir: PathBuf,
    pub predictions: Value,
}

impl Exported {
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The published dataset's splits as `train.csv` and `test.csv`, written once.
fn dataset() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        use price_sensitivity_model::dataset::{published, to_csv};
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-example-data");
        std::fs::create_dir_all(&dir).unwrap();
        let splits = published();
        std::fs::write(dir.join("train.csv"), to_csv(&splits.train)).unwrap();
        std::fs::write(dir.join("test.csv"), to_csv(&splits.test)).unwrap();
        dir
    })
}

/// `train.py --model kind`, run once per kind in this process.
pub fn exported(kind: &str) -> Arc<Exported> {
    static DONE: OnceLock<Mutex<HashMap<String, Arc<Exported>>>> = OnceLock::new();
    let mut done = DONE.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(exported) = done.get(kind) {
        return Arc::clone(exported);
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("onnx-example-{kind}"));
    let predictions = dir.join("predictions.json");
    let output = Command::new("python3")
        .arg(root().join("examples/sklearn/train.py"))
        .args(["--data", dataset().to_str().unwrap(), "--out", dir.to_str().unwrap(), "--model", kind])
        .args(["--predictions", predictions.to_str().unwrap()])
        .output()
        .expect("python3 (scripts/test.sh installs examples/sklearn/requirements.txt)");
    assert!(
        output.status.success(),
        "train.py --model {kind} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let predictions = serde_json::from_slice(&std::fs::read(predictions).unwrap()).unwrap();
    let exported = Arc::new(Exported { dir, predictions });
    done.insert(kind.to_string(), Arc::clone(&exported));
    exported
}

/// The environment of a publisher's machine without Rust: a `PATH` with no `cargo`,
/// `rustc` or anything else on it.
pub fn without_toolchain() -> HashMap<String, String> {
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    HashMap::from([("PATH".to_string(), empty.to_str().unwrap().to_string())])
}

/// `predict-host package` of `exported`'s model (with its manifest) to `output`; returns
/// the command's JSON summary.
pub fn package(exported: &Exported, output: &Path) -> Value {
    let args = ["package", &exported.file("model.onnx"), "--manifest", &exported.file("manifest.json")];
    let out = run_cli(&[&args[..], &["-o", output.to_str().unwrap()]].concat(), &without_toolchain());
    assert!(out.status.success(), "package failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("package prints JSON")
}

/// Checks a host's answers for the held-out rows against scikit-learn's and
/// onnxruntime's: the same label, every probability within 1e-5. `rows` are the
/// indices of the answered rows.
pub fn assert_answers_match(exported: &Exported, rows: &[usize], answers: &[Value]) {
    let expected = &exported.predictions;
    let labels: Vec<&str> =
        expected["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(rows.len(), answers.len());
    for (&row, answer) in rows.iter().zip(answers) {
        for reference in ["sklearn", "onnxruntime"] {
            let theirs = &expected[reference];
            assert_eq!(
                answer["prediction"], theirs["labels"][row],
                "row {row}: label differs from {reference}: {answer}"
            );
            for (j, label) in labels.iter().enumerate() {
                let ours = answer["probabilities"][label].as_f64().unwrap();
                let reference_value = theirs["probabilities"][row][j].as_f64().unwrap();
                assert!(
                    (ours - reference_value).abs() <= 1e-5,
                    "row {row}, {label}: {ours} vs {reference}'s {reference_value}"
                );
            }
        }
    }
}
