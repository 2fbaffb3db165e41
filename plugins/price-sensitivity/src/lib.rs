//! The price-sensitivity predictor plugin: scores retail baskets as `LA`, `MM` or `UM`,
//! row by row (`predict`) or a whole batch by column (`predict-columns`), with the same
//! checks and the same answers.
//!
//! Weights are fitted at build time (see `build.rs`) and embedded as static data, so an
//! instance scores its first row without parsing anything.

use price_sensitivity_model::{FIELDS, FieldKind, LABELS, LinearModel, Resolved, Value, features};

wit_bindgen::generate!({ path: "../../wit", world: "batch-predictor" });

use mlops::predictor::columns::Cell;
use mlops::predictor::types::{ClassScore, Field, FieldSpec, FieldType, Value as WitValue};

include!(concat!(env!("OUT_DIR"), "/weights.rs"));

struct PriceSensitivity;

impl Guest for PriceSensitivity {
    fn info() -> ModelInfo {
        ModelInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
            inputs: FIELDS.iter().map(field_spec).collect(),
            labels: LABELS.iter().map(|l| (*l).into()).collect(),
            sample: sample_row(),
        }
    }

    fn predict(rows: Vec<Vec<Field>>) -> Result<Vec<Prediction>, PredictError> {
        rows.iter()
            .enumerate()
            .map(|(index, row)| {
                let values = read_row(row).map_err(|why| invalid_row(index, why))?;
                Ok(score(&MODEL, &values))
            })
            .collect()
    }

    fn predict_columns(batch: Batch) -> Result<BatchScores, PredictError> {
        let Batch { rows, texts, columns } = batch;
        let rows = rows as usize;
        if columns.len() != FIELDS.len() || columns.iter().any(|c| c.len() != rows) {
            return Err(PredictError::Internal(format!(
                "expected {} columns of {rows} cells, one per input",
                FIELDS.len()
            )));
        }
        // Each distinct text is looked up among a field's categories once per batch.
        let categories: Vec<Vec<Option<usize>>> =
            FIELDS.iter().map(|spec| texts.iter().map(|t| spec.kind.category_index(t)).collect()).collect();
        let mut labels = Vec::with_capacity(rows);
        let mut probabilities = Vec::with_capacity(rows * LABELS.len());
        for row in 0..rows {
            let mut values = [Resolved::Category(None); FIELDS.len()];
            for (field, (value, column)) in values.iter_mut().zip(&columns).enumerate() {
                let given = match column[row] {
                    Cell::Absent => None,
                    Cell::Number(x) => Some(Given::Number(x)),
                    Cell::Text(index) => Some(Given::Text(index as usize)),
                };
                *value = match check(&FIELDS[field], given) {
                    Ok(Given::Number(x)) => Resolved::Number(x),
                    Ok(Given::Text(index)) => match categories[field].get(index) {
                        Some(category) => Resolved::Category(*category),
                        None => {
                            return Err(PredictError::Internal(format!("text {index} is not in the batch")));
                        }
                    },
                    Err(why) => return Err(invalid_row(row, why)),
                };
            }
            let row_probabilities = MODEL.probabilities(&MODEL.encode_resolved(&values));
            labels.push(features::argmax(&row_probabilities) as u32);
            probabilities.extend(row_probabilities);
        }
        Ok(BatchScores { labels, probabilities })
    }
}

fn invalid_row(index: usize, why: String) -> PredictError {
    PredictError::InvalidInput((u32::try_from(index).unwrap_or(u32::MAX), why))
}

fn score(model: &LinearModel, values: &[Value<'_>; FIELDS.len()]) -> Prediction {
    let probabilities = model.probabilities(&model.encode(values));
    Prediction {
        label: LABELS[features::argmax(&probabilities)].into(),
        scores: LABELS
            .iter()
            .zip(probabilities)
            .map(|(label, probability)| ClassScore { label: (*label).into(), probability })
            .collect(),
    }
}

/// Picks the schema's fields out of `row`, checking presence, kind and range.
fn read_row(row: &[Field]) -> Result<[Value<'_>; FIELDS.len()], String> {
    let mut values = [Value::Number(0.0); FIELDS.len()];
    for (spec, value) in FIELDS.iter().zip(values.iter_mut()) {
        let given = row.iter().find(|f| f.name == spec.name).map(|field| match &field.value {
            WitValue::Number(x) => Given::Number(*x),
            WitValue::Text(code) => Given::Text(code.as_str()),
        });
        *value = match check(spec, given)? {
            Given::Number(x) => Value::Number(x),
            Given::Text(code) => Value::Text(code),
        };
    }
    Ok(values)
}

/// One field's value in one row, as either export receives it: a text is a `&str` in
/// `predict` and an index into the batch's texts in `predict-columns`.
enum Given<T> {
    Number(f64),
    Text(T),
}

/// Checks one field of one row against its spec (present, of its kind, a finite
/// number >= 0), so that both exports refuse the same rows with the same words.
fn check<T>(spec: &price_sensitivity_model::FieldSpec, given: Option<Given<T>>) -> Result<Given<T>, String> {
    let name = spec.name;
    match (spec.kind, given) {
        (_, None) => Err(format!("missing required field \"{name}\"")),
        (FieldKind::Number, Some(Given::Number(x))) if x.is_finite() && x >= 0.0 => Ok(Given::Number(x)),
        (FieldKind::Number, Some(Given::Number(x))) => {
            Err(format!("field \"{name}\" must be a finite number >= 0, got {x}"))
        }
        (FieldKind::Category(_), Some(text @ Given::Text(_))) => Ok(text),
        (FieldKind::Number, Some(Given::Text(_))) => {
            Err(format!("field \"{name}\" must be a number, got text"))
        }
        (FieldKind::Category(_), Some(Given::Number(_))) => {
            Err(format!("field \"{name}\" must be text, got a number"))
        }
    }
}

fn field_spec(spec: &price_sensitivity_model::FieldSpec) -> FieldSpec {
    let (kind, categories) = match spec.kind {
        FieldKind::Number => (FieldType::Number, Vec::new()),
        FieldKind::Category(codes) => (FieldType::Text, codes.iter().map(|c| (*c).into()).collect()),
    };
    FieldSpec {
        name: spec.name.into(),
        type_: kind,
        required: true,
        categories,
        description: spec.description.into(),
    }
}

/// The seed basket of the runbook: scored by the host before this version may serve.
fn sample_row() -> Vec<Field> {
    let text = |name: &str, code: &str| Field { name: name.into(), value: WitValue::Text(code.into()) };
    let number = |name: &str, x: f64| Field { name: name.into(), value: WitValue::Number(x) };
    vec![
        text("BASKET_SIZE", "M"),
        text("BASKET_TYPE", "MIXED"),
        text("STORE_REGION", "LONDON"),
        text("STORE_FORMAT", "LS"),
        number("SPEND", 125.50),
        number("QUANTITY", 3.0),
        text("PROD_CODE_20", "FOOD"),
        text("PROD_CODE_30", "FRESH"),
    ]
}

export!(PriceSensitivity);
