//! One SageMaker data-capture record per request, as SageMaker endpoints write them:
//! `captureData.endpointInput` and `endpointOutput` (content type, mode, encoding, data),
//! `eventMetadata` (event id, inference time) and `eventVersion`. The input is the rows
//! the model read, as a JSON array of objects by field name; the output is the answer
//! `/predict` gives for them, a JSON array of `{prediction, probabilities,
//! model_version}`. Both are JSON text in `data`, declared with `encoding: "JSON"`.

use super::Event;
use crate::model::ScoresByLabel;
use crate::runtime::{Field, Prediction, Value};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use std::io::Write;
use std::time::SystemTime;

/// Appends `event` to `out` as one JSON line, without the `excluded` input fields.
pub fn write_line(event: &Event, excluded: &[String], out: &mut Vec<u8>) {
    let input = Rows { rows: &event.rows, excluded };
    let output = Answers(&event.predictions, &event.model.version);
    write_record(&event.id, event.time, &input, &output, out);
}

/// One record, written in one pass: the payloads' JSON goes straight into the record as
/// the contents of its `data` strings, escaped on the way, rather than built as text and
/// escaped after.
fn write_record(
    id: &str,
    time: SystemTime,
    input: &impl Serialize,
    output: &impl Serialize,
    out: &mut Vec<u8>,
) {
    const INPUT: &[u8] =
        br#"{"captureData":{"endpointInput":{"observedContentType":"application/json","mode":"INPUT","data":""#;
    const OUTPUT: &[u8] = br#"","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/json","mode":"OUTPUT","data":""#;
    const METADATA: &[u8] = br#"","encoding":"JSON"}},"eventMetadata":{"eventId":"#;
    out.extend_from_slice(INPUT);
    json(&mut Escaped(out), input);
    out.extend_from_slice(OUTPUT);
    json(&mut Escaped(out), output);
    out.extend_from_slice(METADATA);
    json(out, &id);
    let time = humantime::format_rfc3339_millis(time);
    write!(out, r#","inferenceTime":"{time}"}},"eventVersion":"0"}}"#).expect("writing to memory");
    out.push(b'\n');
}

fn json(out: &mut impl Write, value: &impl Serialize) {
    serde_json::to_writer(out, value).expect("rows, answers and ids serialize");
}

/// Writes JSON text as the contents of a JSON string. serde_json's compact output holds
/// no control characters (its strings escape them), so only quotes and backslashes need
/// escaping.
struct Escaped<'a>(&'a mut Vec<u8>);

impl Write for Escaped<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut run = 0;
        for (at, byte) in bytes.iter().enumerate() {
            if matches!(byte, b'"' | b'\\') {
                self.0.extend_from_slice(&bytes[run..at]);
                self.0.push(b'\\');
                // The byte itself starts the next run.
                run = at;
            }
        }
        self.0.extend_from_slice(&bytes[run..]);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The rows, leaving out `excluded` fields.
struct Rows<'a> {
    rows: &'a [Vec<Field>],
    excluded: &'a [String],
}

struct Row<'a>(&'a [Field], &'a [String]);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.rows.iter().map(|row| Row(row, self.excluded)))
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for field in self.0.iter().filter(|f| !self.1.contains(&f.name)) {
            match &field.value {
                Value::Number(x) => map.serialize_entry(&field.name, x)?,
                Value::Text(text) => map.serialize_entry(&field.name, text)?,
            }
        }
        map.end()
    }
}

/// One row's answer, as `/predict` writes it.
struct Answer<'a>(&'a Prediction, &'a str);

impl Serialize for Answer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("prediction", &self.0.label)?;
        map.serialize_entry("probabilities", &ScoresByLabel(&self.0.scores))?;
        map.serialize_entry("model_version", self.1)?;
        map.end()
    }
}

/// Every row's answer.
struct Answers<'a>(&'a [Prediction], &'a str);

impl Serialize for Answers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|p| Answer(p, self.1)))
    }
}

#[cfg(test)]
mod tests {
    use super::{Rows, write_record};
    use crate::runtime::{Field, Value};
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn excluded_fields_are_left_out_of_the_input() {
        let field = |name: &str, value| Field { name: name.into(), value };
        let rows = vec![vec![field("SIZE", Value::Text("M".into())), field("SPEND", Value::Number(12.5))]];
        let excluded = vec!["SPEND".to_string()];
        let text = serde_json::to_string(&Rows { rows: &rows, excluded: &excluded }).unwrap();
        assert_eq!(text, r#"[{"SIZE":"M"}]"#);
        let text = serde_json::to_string(&Rows { rows: &rows, excluded: &[] }).unwrap();
        assert_eq!(text, r#"[{"SIZE":"M","SPEND":12.5}]"#);
    }

    #[test]
    fn a_record_is_one_json_line_whose_payloads_decode_to_what_was_written() {
        let input = json!([{"TEXT": "quote \" backslash \\ newline \n tab \t é \u{1}", "N": -0.5}]);
        let output = json!([{"prediction": "a\"b", "probabilities": {"a\"b": 1.0}}]);
        let mut out = Vec::new();
        let time = UNIX_EPOCH + Duration::from_millis(1_796_180_645_678);
        write_record("id-\"1", time, &input, &output, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(out.ends_with(b"\n"));
        let record: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let data = |side: &str| -> serde_json::Value {
            serde_json::from_str(record["captureData"][side]["data"].as_str().unwrap()).unwrap()
        };
        assert_eq!(data("endpointInput"), input);
        assert_eq!(data("endpointOutput"), output);
        assert_eq!(record["captureData"]["endpointInput"]["mode"], "INPUT");
        assert_eq!(record["captureData"]["endpointOutput"]["encoding"], "JSON");
        assert_eq!(
            record["eventMetadata"],
            json!({"eventId": "id-\"1", "inferenceTime": "2026-12-02T03:04:05.678Z"})
        );
        assert_eq!(record["eventVersion"], "0");
    }
}
