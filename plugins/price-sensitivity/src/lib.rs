//! The price-sensitivity predictor plugin: scores retail baskets as `LA`, `MM` or `UM`.
//!
//! Weights are fitted at build time (see `build.rs`) and embedded as static data, so an
//! instance scores its first row without parsing anything.

use price_sensitivity_model::{FIELDS, FieldKind, LABELS, LinearModel, Value, features};

wit_bindgen::generate!({ path: "../../wit", world: "predictor" });

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
                let values = read_row(row).map_err(|why| {
                    PredictError::InvalidInput((u32::try_from(index).unwrap_or(u32::MAX), why))
                })?;
                Ok(score(&MODEL, &values))
            })
            .collect()
    }
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
        let field = row
            .iter()
            .find(|f| f.name == spec.name)
            .ok_or_else(|| format!("missing required field \"{}\"", spec.name))?;
        *value = match (spec.kind, &field.value) {
            (FieldKind::Number, WitValue::Number(x)) if x.is_finite() && *x >= 0.0 => Value::Number(*x),
            (FieldKind::Number, WitValue::Number(x)) => {
                return Err(format!("field \"{}\" must be a finite number >= 0, got {x}", spec.name));
            }
            (FieldKind::Category(_), WitValue::Text(code)) => Value::Text(code),
            (FieldKind::Number, WitValue::Text(_)) => {
                return Err(format!("field \"{}\" must be a number, got text", spec.name));
            }
            (FieldKind::Category(_), WitValue::Number(_)) => {
                return Err(format!("field \"{}\" must be text, got a number", spec.name));
            }
        };
    }
    Ok(values)
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
