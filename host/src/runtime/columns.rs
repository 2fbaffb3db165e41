//! The column layout of `predict-columns`: rows turned into a batch on the way in, the
//! batch's scores turned back into one prediction per row on the way out.
//!
//! Crossing into a plugin costs a call into its allocator for every string and list.
//! Row by row that is 13 strings per basket (8 names, 5 texts); by column it is one
//! list per field plus each distinct text once, whatever the batch size.

use super::bindings::{Batch, BatchScores, Cell, ClassScore, Field, FieldSpec, Prediction, Value};
use std::collections::HashMap;

/// Lays `rows` out as one column per entry of `inputs`. A field a row lacks is
/// `absent`; fields not in `inputs` are left out, as the plugin would ignore them.
pub fn batch_from_rows(rows: &[Vec<Field>], inputs: &[FieldSpec]) -> Batch {
    let mut columns: Vec<Vec<Cell>> = inputs.iter().map(|_| Vec::with_capacity(rows.len())).collect();
    let mut texts: Vec<String> = Vec::new();
    let mut text_index: HashMap<&str, u32> = HashMap::new();
    for row in rows {
        // Rows the API builds hold the inputs in order, so the next field is
        // tried first; any other row is searched by name.
        let mut next = 0;
        for (spec, column) in inputs.iter().zip(columns.iter_mut()) {
            let position = match row.get(next) {
                Some(field) if field.name == spec.name => Some(next),
                _ => row.iter().position(|f| f.name == spec.name),
            };
            column.push(match position.map(|p| &row[p].value) {
                None => Cell::Absent,
                Some(Value::Number(x)) => Cell::Number(*x),
                Some(Value::Text(text)) => {
                    Cell::Text(*text_index.entry(text.as_str()).or_insert_with(|| {
                        texts.push(text.clone());
                        u32::try_from(texts.len() - 1).expect("fewer texts than u32::MAX")
                    }))
                }
            });
            if let Some(p) = position {
                next = p + 1;
            }
        }
    }
    let rows = u32::try_from(rows.len()).expect("batches are far smaller than u32::MAX rows");
    Batch { rows, texts, columns }
}

/// One prediction per row from a batch's scores, with `labels` (the plugin's
/// `model-info.labels`) for the label indices. Fails on an answer of the wrong shape;
/// the probabilities themselves are checked by the caller, as for any answer.
pub fn predictions_from_scores(
    scores: BatchScores,
    labels: &[String],
    rows: usize,
) -> Result<Vec<Prediction>, String> {
    let BatchScores { labels: chosen, probabilities } = scores;
    if chosen.len() != rows {
        return Err(format!("{} labels for {rows} rows", chosen.len()));
    }
    if probabilities.len() != rows * labels.len() {
        return Err(format!(
            "{} probabilities for {rows} rows of {} labels",
            probabilities.len(),
            labels.len()
        ));
    }
    chosen
        .iter()
        .zip(probabilities.chunks_exact(labels.len().max(1)))
        .enumerate()
        .map(|(row, (&index, row_probabilities))| {
            let label = labels.get(index as usize).ok_or_else(|| {
                format!("row {row}: label index {index} is not one of the {} labels", labels.len())
            })?;
            let scores = labels
                .iter()
                .zip(row_probabilities)
                .map(|(label, &probability)| ClassScore { label: label.clone(), probability })
                .collect();
            Ok(Prediction { label: label.clone(), scores })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FieldType;

    fn spec(name: &str, type_: FieldType) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            type_,
            required: false,
            categories: Vec::new(),
            description: String::new(),
        }
    }

    fn field(name: &str, value: Value) -> Field {
        Field { name: name.into(), value }
    }

    #[test]
    fn rows_become_columns_in_input_order_with_each_text_once() {
        let inputs = [spec("spend", FieldType::Number), spec("region", FieldType::Text)];
        let rows = vec![
            vec![field("region", Value::Text("WALES".into())), field("spend", Value::Number(1.5))],
            vec![field("spend", Value::Number(2.0)), field("unknown", Value::Text("x".into()))],
            vec![field("region", Value::Text("WALES".into())), field("region", Value::Text("LONDON".into()))],
            vec![field("spend", Value::Number(0.0)), field("region", Value::Text("LONDON".into()))],
        ];
        let batch = batch_from_rows(&rows, &inputs);
        assert_eq!(batch.rows, 4);
        assert_eq!(batch.texts, ["WALES", "LONDON"]);
        assert_eq!(
            format!("{:?}", batch.columns),
            format!(
                "{:?}",
                [
                    vec![Cell::Number(1.5), Cell::Number(2.0), Cell::Absent, Cell::Number(0.0)],
                    // A repeated field counts once, as its first occurrence, as plugins read it.
                    vec![Cell::Text(0), Cell::Absent, Cell::Text(0), Cell::Text(1)],
                ]
            )
        );
    }

    fn labels() -> Vec<String> {
        vec!["LA".into(), "UM".into()]
    }

    #[test]
    fn scores_become_one_prediction_per_row() {
        let scores = BatchScores { labels: vec![1, 0], probabilities: vec![0.25, 0.75, 0.9, 0.1] };
        let predictions = predictions_from_scores(scores, &labels(), 2).expect("well formed");
        let summary: Vec<_> = predictions
            .iter()
            .map(|p| {
                (
                    p.label.as_str(),
                    p.scores.iter().map(|s| (s.label.as_str(), s.probability)).collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [("UM", vec![("LA", 0.25), ("UM", 0.75)]), ("LA", vec![("LA", 0.9), ("UM", 0.1)])]
        );
    }

    #[test]
    fn scores_of_the_wrong_shape_are_refused() {
        let cases = [
            (vec![0], vec![0.5, 0.5, 0.5, 0.5], "1 labels for 2 rows"),
            (vec![0, 1], vec![0.5, 0.5, 1.0], "3 probabilities for 2 rows of 2 labels"),
            (vec![0, 2], vec![0.5, 0.5, 0.5, 0.5], "row 1: label index 2 is not one of the 2 labels"),
        ];
        for (chosen, probabilities, expected) in cases {
            let scores = BatchScores { labels: chosen, probabilities };
            assert_eq!(predictions_from_scores(scores, &labels(), 2).err().as_deref(), Some(expected));
        }
    }
}
