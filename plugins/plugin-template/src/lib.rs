//! A predictor plugin for predict-host: it tells the host what it takes and answers
//! (`info`), and scores rows (`predict`). Build it for WebAssembly with
//! `cargo build --release --target wasm32-wasip2`.
//!
//! The scoring below is a small hand-set scorecard over two fields, to show the shape;
//! replace it with your model. A plugin is sandboxed: it sees only the rows it is given
//! and its own static data (no files, network, clocks or environment).

wit_bindgen::generate!({ path: "wit", world: "predictor" });

use mlops::predictor::types::{ClassScore, Field, FieldSpec, FieldType, Value};

/// The labels `predict` may return, in the order of every prediction's scores.
const LABELS: [&str; 3] = ["LA", "MM", "UM"];

struct Plugin;

impl Guest for Plugin {
    fn info() -> ModelInfo {
        ModelInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Price sensitivity from spend per item and store format".into(),
            inputs: vec![
                FieldSpec {
                    name: "SPEND".into(),
                    type_: FieldType::Number,
                    required: true,
                    categories: vec![],
                    description: "basket spend".into(),
                },
                FieldSpec {
                    name: "QUANTITY".into(),
                    type_: FieldType::Number,
                    required: true,
                    categories: vec![],
                    description: "items in the basket".into(),
                },
                FieldSpec {
                    name: "STORE_FORMAT".into(),
                    type_: FieldType::Text,
                    required: false,
                    categories: vec!["LS".into(), "MS".into(), "SS".into(), "XLS".into()],
                    description: "store format; others score as unknown".into(),
                },
            ],
            labels: LABELS.iter().map(|l| (*l).into()).collect(),
            // The host scores this row before the version may serve.
            sample: vec![number("SPEND", 125.5), number("QUANTITY", 3.0), text("STORE_FORMAT", "LS")],
        }
    }

    fn predict(rows: Vec<Vec<Field>>) -> Result<Vec<Prediction>, PredictError> {
        rows.iter().enumerate().map(|(index, row)| score(row).map_err(|why| invalid(index, why))).collect()
    }
}

/// One row: a utility per label, then softmax.
fn score(row: &[Field]) -> Result<Prediction, String> {
    let spend = positive_number(row, "SPEND")?;
    let quantity = positive_number(row, "QUANTITY")?.max(1.0);
    let per_item = (spend / quantity).ln();
    let format_effect = match find(row, "STORE_FORMAT") {
        Some(Value::Text(format)) if format == "XLS" => 0.3,
        Some(Value::Text(format)) if format == "SS" => -0.3,
        Some(Value::Number(_)) => return Err("field \"STORE_FORMAT\" must be text, got a number".into()),
        _ => 0.0,
    };
    let utilities = [1.5 - per_item, 0.0, per_item - 2.5 + format_effect];
    let max = utilities.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = utilities.iter().map(|u| (u - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    let best = (0..LABELS.len()).fold(0, |best, i| if exps[i] > exps[best] { i } else { best });
    Ok(Prediction {
        label: LABELS[best].into(),
        scores: LABELS
            .iter()
            .zip(&exps)
            .map(|(label, e)| ClassScore { label: (*label).into(), probability: e / total })
            .collect(),
    })
}

fn find<'a>(row: &'a [Field], name: &str) -> Option<&'a Value> {
    row.iter().find(|f| f.name == name).map(|f| &f.value)
}

/// A required, finite, non-negative number; the error is the caller's (HTTP 422).
fn positive_number(row: &[Field], name: &str) -> Result<f64, String> {
    match find(row, name) {
        Some(Value::Number(x)) if x.is_finite() && *x >= 0.0 => Ok(*x),
        Some(Value::Number(x)) => Err(format!("field \"{name}\" must be a finite number >= 0, got {x}")),
        Some(Value::Text(_)) => Err(format!("field \"{name}\" must be a number, got text")),
        None => Err(format!("missing required field \"{name}\"")),
    }
}

fn invalid(index: usize, why: String) -> PredictError {
    PredictError::InvalidInput((u32::try_from(index).unwrap_or(u32::MAX), why))
}

fn number(name: &str, x: f64) -> Field {
    Field { name: name.into(), value: Value::Number(x) }
}

fn text(name: &str, value: &str) -> Field {
    Field { name: name.into(), value: Value::Text(value.into()) }
}

export!(Plugin);
