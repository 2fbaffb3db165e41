//! The optional manifest packaged beside a model: what its graph cannot say (a name, a
//! version, descriptions, which fields may be left out, names for integer classes and
//! for the columns of a multi-column input, and a sample row).

use serde::Deserialize;
use std::collections::BTreeMap;

/// ```json
/// {
///   "name": "price-sensitivity-sklearn", "version": "2.0.0",
///   "description": "One-hot + scaled numerics, logistic regression",
///   "labels": ["LA", "MM", "UM"],
///   "fields": {"SPEND": {"description": "basket spend in GBP"}, "PROD_CODE_30": {"required": false}},
///   "columns": {"float_input": ["SPEND", "QUANTITY"]},
///   "sample": {"BASKET_SIZE": "M", "SPEND": 125.5},
///   "probabilities_output": "probabilities"
/// }
/// ```
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    /// Names for the model's classes, in its class order (XGBoost exports number them).
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldNote>,
    /// Field names for the columns of a graph input of shape `[N, K]`, by input name.
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
    /// A row the host scores before the version may serve; unset fields take their
    /// first category, or 0.
    pub sample: Option<serde_json::Map<String, serde_json::Value>>,
    /// The graph output that holds the class probabilities, where it has several.
    pub probabilities_output: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldNote {
    pub description: Option<String>,
    /// Whether a request must give the field (default true). A text field left out is
    /// scored as an unseen category, a number as missing (NaN).
    pub required: Option<bool>,
}

impl Manifest {
    /// Parses a manifest; empty text is no manifest.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(text).map_err(|e| format!("the manifest is not valid: {e}"))
    }
}
