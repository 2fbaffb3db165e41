//! The two ways into a `batch-predictor` plugin: `predict-columns` (what the host sends
//! batches to) gives, row for row, the answers of `predict` (what it sends single rows
//! to), and refuses the same rows with the same words. A plugin without
//! `predict-columns` is served through `predict` alone.

use plugin_artifacts::{PRICE_SENSITIVITY_WASM, fixtures};
use predict_host::runtime::{
    Answer, BATCH_WORLD, Compiler, Field, ModelInfo, Plugin, PredictError, Prediction, Runtime,
    SandboxLimits, Value, WORLD, predictions_from_scores,
};
use std::sync::Arc;
use std::time::Duration;

fn runtime() -> Arc<Runtime> {
    let limits = SandboxLimits::DEFAULT.with_call_timeout(Duration::from_secs(5)).with_concurrent_calls(2);
    Runtime::new(limits, None).expect("runtime")
}

async fn bundled() -> (Plugin, ModelInfo) {
    let plugin = runtime()
        .prepare(PRICE_SENSITIVITY_WASM, "bundled", "bundled", Compiler::Cranelift)
        .expect("bundled plugin");
    plugin.set_serving(true);
    let info = plugin.info().await.expect("info");
    (plugin, info)
}

/// `count` baskets that visit every known category of every field and some unseen
/// ones, spends from 0 to thousands, fields in a different order from row to row,
/// and a field the model does not know.
pub fn varied_rows(info: &ModelInfo, count: usize) -> Vec<Vec<Field>> {
    (0..count)
        .map(|i| {
            let mut row: Vec<Field> = info
                .inputs
                .iter()
                .enumerate()
                .map(|(f, spec)| {
                    let value = if spec.categories.is_empty() {
                        Value::Number(((i * 37 + f * 11) % 500) as f64 * 7.25)
                    } else {
                        let pick = (i + f) % (spec.categories.len() + 1);
                        Value::Text(
                            spec.categories.get(pick).cloned().unwrap_or_else(|| format!("UNSEEN_{i}")),
                        )
                    };
                    Field { name: spec.name.clone(), value }
                })
                .collect();
            let fields = row.len();
            row.rotate_left(i % fields);
            row.push(Field { name: "LOYALTY_CARD".into(), value: Value::Text("yes".into()) });
            row
        })
        .collect()
}

async fn by_columns(
    plugin: &Plugin,
    info: &ModelInfo,
    rows: &[Vec<Field>],
) -> Result<Vec<Prediction>, PredictError> {
    match plugin.predict(rows, &info.inputs).await.expect("call") {
        Ok(Answer::Scores(scores)) => {
            Ok(predictions_from_scores(scores, &info.labels, rows.len()).expect("shape"))
        }
        Ok(Answer::Predictions(_)) => panic!("a batch-predictor answers by column"),
        Err(refusal) => Err(refusal),
    }
}

pub fn summary(predictions: &[Prediction]) -> Vec<(String, Vec<(String, f64)>)> {
    predictions
        .iter()
        .map(|p| (p.label.clone(), p.scores.iter().map(|s| (s.label.clone(), s.probability)).collect()))
        .collect()
}

#[tokio::test]
async fn predict_columns_gives_the_answers_of_predict() {
    let (plugin, info) = bundled().await;
    assert_eq!(plugin.world(), BATCH_WORLD);
    let rows = varied_rows(&info, 600);
    let by_rows = plugin.predict_rows(&rows).await.expect("call").expect("answers");
    let by_columns = by_columns(&plugin, &info, &rows).await.expect("answers");
    assert_eq!(summary(&by_columns), summary(&by_rows));
    let labels: std::collections::HashSet<_> = by_rows.iter().map(|p| p.label.as_str()).collect();
    assert!(labels.len() >= 2, "varied rows get varied labels: {labels:?}");
    // One row goes through `predict`, which costs less than a batch of one.
    let one = plugin.predict(&rows[..1], &info.inputs).await.expect("call");
    assert!(matches!(one, Ok(Answer::Predictions(_))), "one row is scored by row");
}

#[tokio::test]
async fn predict_columns_refuses_the_rows_predict_refuses() {
    let (plugin, info) = bundled().await;
    let breakages = [
        ("missing", "STORE_REGION", None),
        ("text for a number", "SPEND", Some(Value::Text("lots".into()))),
        ("number for a text", "STORE_REGION", Some(Value::Number(4.0))),
        ("negative", "SPEND", Some(Value::Number(-1.0))),
        ("not finite", "QUANTITY", Some(Value::Number(f64::INFINITY))),
    ];
    for (what, name, value) in breakages {
        let mut rows = varied_rows(&info, 5);
        let broken = &mut rows[3];
        let at = broken.iter().position(|f| f.name == name).expect("field");
        match value {
            Some(value) => broken[at].value = value,
            None => drop(broken.remove(at)),
        }
        let by_rows = plugin.predict_rows(&rows).await.expect("call");
        let by_columns = by_columns(&plugin, &info, &rows).await;
        match (by_rows, by_columns) {
            (Err(PredictError::InvalidInput(expected)), Err(PredictError::InvalidInput(got))) => {
                assert_eq!(got, expected, "{what}");
                assert_eq!(got.0, 3, "{what}: the broken row is named");
                assert!(got.1.contains(name), "{what}: the field is named: {}", got.1);
            }
            (rows, columns) => {
                panic!("{what}: both must refuse row 3: {:?} / {:?}", rows.err(), columns.err())
            }
        }
    }
}

#[tokio::test]
async fn a_plugin_without_predict_columns_is_served_by_predict() {
    let bytes = std::fs::read(fixtures::MISBEHAVE).expect("fixture");
    let plugin =
        runtime().prepare(&bytes, "fixture", "fixture", Compiler::Cranelift).expect("fixture plugin");
    assert_eq!(plugin.world(), WORLD);
    let info = plugin.info().await.expect("info");
    match plugin.predict(std::slice::from_ref(&info.sample), &info.inputs).await.expect("call") {
        Ok(Answer::Predictions(predictions)) => assert_eq!(predictions.len(), 1),
        Ok(Answer::Scores(_)) => panic!("answered by column without exporting predict-columns"),
        Err(refusal) => panic!("refused its own sample: {refusal:?}"),
    }
}
