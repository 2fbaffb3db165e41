//! Runs the ONNX graphs of tabular classifiers (what `skl2onnx` makes of a scikit-learn
//! pipeline, and `onnxmltools` of a LightGBM or XGBoost model) on batches of rows.
//!
//! A model is read once ([`Model::load`]): the protobuf decoded, every operator built
//! from its attributes, constant parts of the graph computed, and the request schema
//! (fields, their categories, the class labels) read off the graph. Scoring a batch then
//! only runs the planned operators. The engine knows nothing of WebAssembly; the
//! `onnx-runner` plugin wraps it.

mod attrs;
mod evaluate;
mod graph;
mod manifest;
mod model;
mod ops;
mod proto;
mod schema;
mod tensor;

pub use evaluate::{NamedTensor, Values, evaluate};
pub use manifest::{FieldNote, Manifest};
pub use model::{Batch, Cell, Info, LoadError, Model, SampleValue, ScoreError, Scores};
pub use ops::SUPPORTED as SUPPORTED_OPERATORS;
pub use schema::{FieldKind, FieldSpec};
