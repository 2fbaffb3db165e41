//! Feature encoding and scoring of one observation.
//!
//! Encoding is sparse: a row has at most one active slot per field, so scoring costs
//! `fields × labels` multiply-adds whatever the number of categories.

use crate::schema::{FIELDS, FieldKind, N_FEATURES, N_LABELS, N_NUMERIC};

/// One field value of an observation, borrowed from the caller's input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    Text(&'a str),
}

/// One field value ready to encode: a number, or the position of a text among its
/// field's categories (`None` for an unseen one). A caller scoring many rows looks each
/// distinct text up once rather than once per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolved {
    Number(f64),
    Category(Option<usize>),
}

/// Z-scoring of one numeric input after `ln(1 + x)`, fitted on the training split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standardizer {
    pub mean: f64,
    pub std: f64,
}

impl Standardizer {
    pub fn apply(&self, raw: f64) -> f64 {
        (raw.max(0.0).ln_1p() - self.mean) / self.std
    }
}

/// A fitted multinomial logistic regression with its numeric scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearModel {
    /// One per numeric field, in field order.
    pub scaling: [Standardizer; N_NUMERIC],
    /// `weights[label][feature]`.
    pub weights: [[f64; N_FEATURES]; N_LABELS],
    pub bias: [f64; N_LABELS],
}

/// The active slots of an encoded row: `(feature index, value)`, one per field at most.
pub type SparseRow = [(usize, f64); FIELDS.len()];

impl LinearModel {
    /// Encodes `values` (given in [`FIELDS`] order) into its active feature slots.
    ///
    /// An unseen category leaves its block all zero, as scikit-learn's
    /// `OneHotEncoder(handle_unknown="ignore")` does. A value of the wrong kind is
    /// treated the same way; callers validate kinds before scoring.
    pub fn encode(&self, values: &[Value<'_>; FIELDS.len()]) -> SparseRow {
        let mut resolved = [Resolved::Category(None); FIELDS.len()];
        for ((spec, value), slot) in FIELDS.iter().zip(values).zip(resolved.iter_mut()) {
            *slot = match (spec.kind, value) {
                (_, Value::Number(x)) => Resolved::Number(*x),
                (kind, Value::Text(code)) => Resolved::Category(kind.category_index(code)),
            };
        }
        self.encode_resolved(&resolved)
    }

    /// Encodes values whose categories are already looked up (see [`Resolved`]).
    pub fn encode_resolved(&self, values: &[Resolved; FIELDS.len()]) -> SparseRow {
        let mut active = [(0, 0.0); FIELDS.len()];
        let mut offset = 0;
        let mut numeric = 0;
        for ((spec, value), slot) in FIELDS.iter().zip(values).zip(active.iter_mut()) {
            match (spec.kind, value) {
                (FieldKind::Number, Resolved::Number(x)) => {
                    *slot = (offset, self.scaling[numeric].apply(*x));
                }
                (FieldKind::Category(_), Resolved::Category(Some(i))) => *slot = (offset + i, 1.0),
                _ => {}
            }
            match spec.kind {
                FieldKind::Number => {
                    offset += 1;
                    numeric += 1;
                }
                FieldKind::Category(codes) => offset += codes.len(),
            }
        }
        active
    }

    /// Class probabilities, in [`crate::LABELS`] order.
    pub fn probabilities(&self, row: &SparseRow) -> [f64; N_LABELS] {
        let mut logits = self.bias;
        for (logit, weights) in logits.iter_mut().zip(&self.weights) {
            *logit += row.iter().map(|&(i, x)| weights[i] * x).sum::<f64>();
        }
        softmax(logits)
    }
}

/// Numerically stable softmax.
pub fn softmax(mut logits: [f64; N_LABELS]) -> [f64; N_LABELS] {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut total = 0.0;
    for z in logits.iter_mut() {
        *z = (*z - max).exp();
        total += *z;
    }
    logits.map(|z| z / total)
}

/// Index of the largest probability (the first one on a tie).
pub fn argmax(probabilities: &[f64; N_LABELS]) -> usize {
    let mut best = 0;
    for (i, p) in probabilities.iter().enumerate() {
        if *p > probabilities[best] {
            best = i;
        }
    }
    best
}
