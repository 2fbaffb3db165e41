//! A `/predict` body read into plugin rows. The JSON is walked once: each object's
//! values for the model's input fields are picked out by name as it goes (no map of the
//! object is built; fields the model does not know are skipped unread), then every row
//! is checked against the model's inputs, in order, so the first fault is the one named.

use super::error::ApiError;
use crate::runtime::{Field, FieldSpec, FieldType, Value as WitValue};
use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// One JSON object's values for the model's inputs, in the order of the inputs; `None`
/// where the object has no such field.
type RawRow = Vec<Option<Value>>;

/// The plugin rows of a `/predict` body (JSON text), and whether it was a single row (an
/// object) rather than a batch (an array of objects).
pub fn rows_from_json(
    body: &str,
    inputs: &[FieldSpec],
    max_rows: usize,
) -> Result<(Vec<Vec<Field>>, bool), ApiError> {
    let mut json = serde_json::Deserializer::from_str(body);
    let shape = Node { inputs, max_rows, top: true }
        .deserialize(&mut json)
        .and_then(|shape| json.end().map(|()| shape))
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    match shape {
        Shape::Object(raw) => Ok((vec![to_row(raw, 0, inputs)?], true)),
        Shape::Array { len: 0, .. } => Err(ApiError::invalid("empty batch: send at least one row")),
        Shape::Array { len, .. } if len > max_rows => {
            Err(ApiError::invalid(format!("batch of {len} rows exceeds the limit of {max_rows}")))
        }
        Shape::Array { items, .. } => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let row = u32::try_from(i).unwrap_or(u32::MAX);
                match item {
                    Shape::Object(raw) => to_row(raw, row, inputs),
                    _ => Err(ApiError::invalid_row(row, None, format!("row {row}: expected a JSON object"))),
                }
            })
            .collect::<Result<_, _>>()
            .map(|rows| (rows, false)),
        Shape::Other => Err(ApiError::invalid("expected a JSON object, or an array of objects")),
    }
}

/// Converts one object's values into a plugin row, checked against the model's inputs:
/// required fields present, numbers where numbers are expected, strings where text is.
fn to_row(raw: RawRow, row: u32, inputs: &[FieldSpec]) -> Result<Vec<Field>, ApiError> {
    let mut fields = Vec::with_capacity(inputs.len());
    for (spec, value) in inputs.iter().zip(raw) {
        let value = match (value, spec.type_) {
            (None | Some(Value::Null), _) if !spec.required => continue,
            (None, _) => {
                let message = format!("row {row}: missing required field \"{}\"", spec.name);
                return Err(ApiError::invalid_row(row, Some(&spec.name), message));
            }
            (Some(Value::Number(n)), FieldType::Number) => match n.as_f64() {
                Some(x) => WitValue::Number(x),
                None => return Err(wrong_type(row, spec, "a number out of range")),
            },
            (Some(Value::String(s)), FieldType::Text) => WitValue::Text(s),
            (Some(other), _) => return Err(wrong_type(row, spec, json_kind(&other))),
        };
        fields.push(Field { name: spec.name.clone(), value });
    }
    Ok(fields)
}

fn wrong_type(row: u32, spec: &FieldSpec, got: &str) -> ApiError {
    let expected = match spec.type_ {
        FieldType::Number => "a number",
        FieldType::Text => "a string",
    };
    let message = format!("row {row}: field \"{}\" must be {expected}, got {got}", spec.name);
    ApiError::invalid_row(row, Some(&spec.name), message)
}

/// How a JSON value's kind reads in an error message.
pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A body, or an item of a batch, as read.
enum Shape {
    Object(RawRow),
    /// A batch: its first `max_rows` items, and how many it has in all.
    Array {
        items: Vec<Shape>,
        len: usize,
    },
    Other,
}

/// Reads a body (`top`) or an item of a batch. Only the body's array is a batch: an array
/// inside one is an item of the wrong kind, skipped unread like any other.
#[derive(Clone, Copy)]
struct Node<'a> {
    inputs: &'a [FieldSpec],
    max_rows: usize,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Every kind of value that is neither an object nor an array reads as [`Shape::Other`].
macro_rules! other_for {
    ($($method:ident($type:ty)),*) => {
        $(fn $method<E: Error>(self, _: $type) -> Result<Shape, E> {
            Ok(Shape::Other)
        })*
    };
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object, or an array of objects")
    }

    other_for!(visit_bool(bool), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_str(&str));

    fn visit_unit<E: Error>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut raw: RawRow = vec![None; self.inputs.len()];
        while let Some(field) = map.next_key_seed(InputIndex(self.inputs))? {
            match field {
                Some(i) => raw[i] = Some(map.next_value()?),
                None => drop(map.next_value::<IgnoredAny>()?),
            }
        }
        Ok(Shape::Object(raw))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        if !self.top {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Shape::Other);
        }
        let item = Node { top: false, ..self };
        let mut items = Vec::new();
        let mut len = 0;
        // Items past the limit are counted, not kept: the error names the batch's size.
        loop {
            let read = if len < self.max_rows {
                seq.next_element_seed(item)?.map(|shape| items.push(shape))
            } else {
                seq.next_element::<IgnoredAny>()?.map(drop)
            };
            if read.is_none() {
                return Ok(Shape::Array { items, len });
            }
            len += 1;
        }
    }
}

/// Reads an object's key as the index of the model input it names, if any, without
/// allocating it.
struct InputIndex<'a>(&'a [FieldSpec]);

impl<'de> DeserializeSeed<'de> for InputIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for InputIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|spec| spec.name == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Vec<FieldSpec> {
        let spec = |name: &str, type_, required| FieldSpec {
            name: name.into(),
            type_,
            required,
            description: String::new(),
            categories: Vec::new(),
        };
        vec![
            spec("SIZE", FieldType::Text, true),
            spec("SPEND", FieldType::Number, true),
            spec("NOTE", FieldType::Text, false),
        ]
    }

    fn rows(body: &str, max_rows: usize) -> Result<(Vec<Vec<Field>>, bool), ApiError> {
        rows_from_json(body, &inputs(), max_rows)
    }

    fn message(error: ApiError) -> String {
        error.to_string()
    }

    #[test]
    fn an_object_is_one_row_in_the_order_of_the_inputs() {
        // Unknown fields (of any kind) are skipped; an escaped key names its field; the
        // last of two equal keys counts, as in any JSON object.
        let body = r#"{"extra": [1, {"a": []}], "SPEND": 1, "S\u0049ZE": "M", "SPEND": 2.5}"#;
        let (rows, single) = rows(body, 10).unwrap();
        assert!(single);
        let row = &rows[0];
        assert_eq!(row.len(), 2, "the optional field is left out when absent");
        assert!(
            matches!(&row[0], Field { name, value: WitValue::Text(size) } if name == "SIZE" && size == "M")
        );
        assert!(
            matches!(&row[1], Field { name, value: WitValue::Number(spend) } if name == "SPEND" && *spend == 2.5)
        );
    }

    #[test]
    fn an_array_is_a_batch_checked_row_by_row() {
        let (batch, single) =
            rows(r#"[{"SIZE": "S", "SPEND": 1}, {"SIZE": "L", "SPEND": 2, "NOTE": null}]"#, 10).unwrap();
        assert!(!single);
        assert_eq!(batch.len(), 2);

        let error = rows(r#"[{"SIZE": "S", "SPEND": 1}, [{"SIZE": "S", "SPEND": 1}]]"#, 10).unwrap_err();
        assert_eq!(message(error), "row 1: expected a JSON object");
        let error = rows(r#"[{"SIZE": "S", "SPEND": 1}, {"SIZE": "S", "SPEND": true}]"#, 10).unwrap_err();
        assert_eq!(message(error), "row 1: field \"SPEND\" must be a number, got a boolean");
        let error = rows(r#"[{"SPEND": 1}]"#, 10).unwrap_err();
        assert_eq!(message(error), "row 0: missing required field \"SIZE\"");
        let error = rows(r#"{"SIZE": null, "SPEND": 1}"#, 10).unwrap_err();
        assert_eq!(message(error), "row 0: field \"SIZE\" must be a string, got null");
    }

    #[test]
    fn a_batch_past_the_limit_is_refused_with_its_size() {
        let row = r#"{"SIZE": "S", "SPEND": 1}"#;
        let body = format!("[{}]", [row; 5].join(","));
        assert_eq!(rows(&body, 5).unwrap().0.len(), 5);
        assert_eq!(message(rows(&body, 3).unwrap_err()), "batch of 5 rows exceeds the limit of 3");
        assert_eq!(message(rows("[]", 3).unwrap_err()), "empty batch: send at least one row");
    }

    #[test]
    fn other_bodies_are_refused_and_broken_json_is_malformed() {
        for body in ["\"text\"", "12", "true", "null"] {
            assert_eq!(
                message(rows(body, 10).unwrap_err()),
                "expected a JSON object, or an array of objects"
            );
        }
        for body in ["{\"SIZE\": ", "{} {}", "[1,]"] {
            assert!(matches!(rows(body, 10), Err(ApiError::MalformedJson(_))), "{body}");
        }
    }
}
