//! Every operator the engine runs, each on small models that `operators.py` writes,
//! against onnxruntime's outputs for the same inputs (onnxruntime is installed by
//! `scripts/test.sh`).

use onnx_engine::{NamedTensor, SUPPORTED_OPERATORS, Values, evaluate};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Floats agree when within this, absolutely or relative to onnxruntime's value:
/// onnxruntime computes in single precision, the engine partly in double.
const TOLERANCE: f64 = 1e-5;

fn number(value: &Value) -> f64 {
    match value {
        Value::String(s) if s == "nan" => f64::NAN,
        other => other.as_f64().expect("a number"),
    }
}

fn tensor(document: &Value) -> NamedTensor {
    let values = document["values"].as_array().unwrap();
    let floats = || values.iter().map(number);
    NamedTensor {
        name: document["name"].as_str().unwrap().into(),
        shape: document["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect(),
        values: match document["dtype"].as_str().unwrap() {
            "float" => Values::Float(floats().map(|x| x as f32).collect()),
            "double" => Values::Double(floats().collect()),
            "int64" => Values::Int64(values.iter().map(|v| v.as_i64().unwrap()).collect()),
            "int32" => Values::Int32(values.iter().map(|v| v.as_i64().unwrap() as i32).collect()),
            "string" => Values::Text(values.iter().map(|v| v.as_str().unwrap().to_string()).collect()),
            other => panic!("dtype {other}"),
        },
    }
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours.is_nan() && theirs.is_nan()) || (ours - theirs).abs() <= TOLERANCE * theirs.abs().max(1.0)
}

/// Why `ours` differs from onnxruntime's `theirs`, if it does.
fn difference(ours: &NamedTensor, theirs: &NamedTensor) -> Option<String> {
    if ours.shape != theirs.shape {
        return Some(format!("shape {:?}, onnxruntime {:?}", ours.shape, theirs.shape));
    }
    let as_floats = |v: &Values| -> Option<Vec<f64>> {
        match v {
            Values::Float(x) => Some(x.iter().map(|&e| f64::from(e)).collect()),
            Values::Double(x) => Some(x.clone()),
            _ => None,
        }
    };
    match (as_floats(&ours.values), as_floats(&theirs.values)) {
        (Some(a), Some(b)) => a
            .iter()
            .zip(&b)
            .position(|(x, y)| !close(*x, *y))
            .map(|i| format!("element {i}: {} where onnxruntime has {}", a[i], b[i])),
        _ => (ours.values != theirs.values)
            .then(|| format!("{:?}, onnxruntime {:?}", ours.values, theirs.values)),
    }
}

#[test]
fn every_operator_agrees_with_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/operators.py");
    let status = Command::new("python3").arg(&script).arg(dir.path()).status().expect("python3");
    assert!(status.success(), "operators.py failed (scripts/test.sh installs onnx and onnxruntime)");

    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    let mut cases = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        cases += 1;
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let document: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        covered.extend(
            document["operators"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()),
        );
        let model = std::fs::read(path.with_extension("onnx")).unwrap();
        let inputs = document["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let outputs = match evaluate(&model, inputs) {
            Ok(outputs) => outputs,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        for expected in document["outputs"].as_array().unwrap().iter().map(tensor) {
            let ours = outputs.iter().find(|o| o.name == expected.name).expect("every output");
            if let Some(why) = difference(ours, &expected) {
                failures.push(format!("{name}, output {}: {why}", expected.name));
            }
        }
    }
    assert!(cases >= 40, "only {cases} cases were written");
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
    // ZipMap's output is a list of maps: the engine reads it as the matrix it came from,
    // which the exported pipelines' tests check.
    let untested: Vec<_> = SUPPORTED_OPERATORS
        .iter()
        .filter(|op| **op != "ai.onnx.ml:ZipMap" && !covered.contains(**op))
        .collect();
    assert!(untested.is_empty(), "operators without a case: {untested:?}");
}
