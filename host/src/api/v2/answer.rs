//! The outputs every model answers with, `label` and `probabilities`, read off the plugin's
//! predictions once and written however the transport asks: JSON, binary after a JSON
//! header (REST), typed contents or raw bytes (gRPC).

use super::binary;
use super::schema::{Datatype, OutputName};
use crate::model::LoadedModel;
use crate::runtime::Prediction;
use serde_json::Value;

/// One output of one answer.
pub(super) struct Output<'a> {
    pub name: OutputName,
    pub datatype: Datatype,
    /// `[batch]` for `label`, `[batch, labels]` for `probabilities`.
    pub shape: Vec<i64>,
    predictions: &'a [Prediction],
    labels: &'a [String],
}

impl<'a> Output<'a> {
    pub fn new(name: OutputName, predictions: &'a [Prediction], model: &'a LoadedModel) -> Self {
        let labels = &model.info.labels;
        let rows = i64::try_from(predictions.len()).unwrap_or(i64::MAX);
        let (datatype, shape) = match name {
            OutputName::Label => (Datatype::Bytes, vec![rows]),
            OutputName::Probabilities => {
                (Datatype::Fp64, vec![rows, i64::try_from(labels.len()).unwrap_or(i64::MAX)])
            }
        };
        Self { name, datatype, shape, predictions, labels }
    }

    /// The chosen label of each row.
    pub fn chosen(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.predictions.iter().map(|p| p.label.as_str())
    }

    /// Every row's probability of every label, in the model's label order.
    pub fn probabilities(&self) -> impl Iterator<Item = f64> + use<'a> {
        let labels = self.labels;
        // `LoadedModel::predict` has checked that every label is scored exactly once.
        self.predictions.iter().flat_map(move |p| {
            labels
                .iter()
                .map(|label| p.scores.iter().find(|s| &s.label == label).map_or(0.0, |s| s.probability))
        })
    }

    /// The elements as JSON values.
    pub fn json(&self) -> Vec<Value> {
        match self.name {
            OutputName::Label => self.chosen().map(|label| Value::String(label.to_string())).collect(),
            OutputName::Probabilities => self.probabilities().map(Value::from).collect(),
        }
    }

    /// Appends the elements to `buffer` in the binary layout; returns the bytes written.
    pub fn encode(&self, buffer: &mut Vec<u8>) -> usize {
        match self.name {
            OutputName::Label => binary::encode_texts(self.chosen(), buffer),
            OutputName::Probabilities => binary::encode_fp64(self.probabilities(), buffer),
        }
    }
}
