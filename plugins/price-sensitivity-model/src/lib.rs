//! The retail basket price-sensitivity model: its input schema, feature encoding and
//! scoring, shared by the plugin (which scores) and the trainer (which fits the weights).
//!
//! The model is a multinomial logistic regression over one-hot categoricals and
//! standardised log-numerics. Scoring needs no allocation and no parsing: the plugin
//! embeds a [`LinearModel`] as static data, so a fresh instance is ready at once.

pub mod features;
pub mod schema;

#[cfg(feature = "train")]
pub mod dataset;
#[cfg(feature = "train")]
pub mod evaluate;
#[cfg(feature = "train")]
pub mod train;

pub use features::{LinearModel, Resolved, Standardizer, Value};
pub use schema::{FIELDS, FieldKind, FieldSpec, LABELS, N_FEATURES, N_LABELS};
