//! The operators the engine runs: what the scikit-learn, LightGBM and XGBoost
//! converters emit for tabular classifiers, from the standard domain (`ai.onnx`) and the
//! ONNX-ML domain (`ai.onnx.ml`). An operator is built once per model from its
//! attributes (checked then), and run once per batch.

mod elementwise;
mod linear;
mod ml_encode;
mod ml_linear;
mod ml_trees;
mod post_transform;
mod shape;

use crate::attrs::Attrs;
use crate::tensor::{Strings, Tensor};

/// A built operator.
pub trait Kernel: Send + Sync {
    /// Computes the node's outputs; an absent optional input is `None`.
    fn run(&self, inputs: &[Option<&Tensor>], strings: &mut Strings<'_>) -> Result<Vec<Tensor>, String>;

    /// For an operator whose one output is its first input with another shape: that
    /// shape. The plan then moves the input instead of copying it, where nothing else
    /// reads it later.
    fn reshaped(&self, _inputs: &[Option<&Tensor>]) -> Option<Result<Vec<usize>, String>> {
        None
    }
}

/// The domain of the ONNX-ML operators.
pub const ML_DOMAIN: &str = "ai.onnx.ml";

/// What building an operator needs to know about its node.
pub struct NodeSpec<'a> {
    /// `""` for the standard domain, `ai.onnx.ml`, or another.
    pub domain: &'a str,
    pub op_type: &'a str,
    /// The version of the node's domain the model imports.
    pub opset: i64,
    pub attrs: Attrs<'a>,
}

/// Why an operator cannot be built.
pub enum BuildError {
    /// The engine does not implement the operator.
    Unsupported,
    /// It does, but not with these attributes.
    Invalid(String),
}

impl From<String> for BuildError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

/// Builds the operator of `node`, interning the texts of its attributes into `strings`.
pub fn build(node: &NodeSpec<'_>, strings: &mut Strings<'_>) -> Result<Box<dyn Kernel>, BuildError> {
    let kernel: Box<dyn Kernel> = match (node.domain, node.op_type) {
        ("", "Identity") => Box::new(shape::Identity),
        ("", "Constant") => Box::new(shape::Constant::new(node, strings)?),
        ("", "Cast") => Box::new(shape::Cast::new(node)?),
        ("", "Concat") => Box::new(shape::Concat::new(node)?),
        ("", "Reshape") => Box::new(shape::Reshape::new(node)),
        ("", "Flatten") => Box::new(shape::Flatten::new(node)),
        ("", "Squeeze") => Box::new(shape::Squeeze::new(node)),
        ("", "Unsqueeze") => Box::new(shape::Unsqueeze::new(node)),
        ("", "Shape") => Box::new(shape::Shape),
        ("", "Gather") => Box::new(shape::Gather::new(node)),
        ("", op @ ("Add" | "Sub" | "Mul" | "Div")) => Box::new(elementwise::Arithmetic::new(op)),
        (
            "",
            op @ ("Exp" | "Log" | "Sqrt" | "Abs" | "Neg" | "Reciprocal" | "Sigmoid" | "Tanh" | "Floor"
            | "Ceil"),
        ) => Box::new(elementwise::Unary::new(op)),
        ("", "MatMul") => Box::new(linear::MatMul),
        ("", "Gemm") => Box::new(linear::Gemm::new(node)),
        ("", "Softmax") => Box::new(linear::Softmax::new(node)),
        ("", op @ ("ArgMax" | "ArgMin")) => Box::new(linear::ArgExtreme::new(node, op == "ArgMax")),
        ("", op @ ("ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin")) => {
            Box::new(linear::Reduce::new(node, op))
        }
        (ML_DOMAIN, "OneHotEncoder") => Box::new(ml_encode::OneHotEncoder::new(node)?),
        (ML_DOMAIN, "Scaler") => Box::new(ml_encode::Scaler::new(node)?),
        (ML_DOMAIN, "Normalizer") => Box::new(ml_encode::Normalizer::new(node)?),
        (ML_DOMAIN, "Imputer") => Box::new(ml_encode::Imputer::new(node)?),
        (ML_DOMAIN, "Binarizer") => Box::new(ml_encode::Binarizer::new(node)),
        (ML_DOMAIN, "ArrayFeatureExtractor") => Box::new(ml_encode::ArrayFeatureExtractor),
        (ML_DOMAIN, "FeatureVectorizer") => Box::new(ml_encode::FeatureVectorizer::new(node)),
        (ML_DOMAIN, "LabelEncoder") => Box::new(ml_encode::LabelEncoder::new(node, strings)?),
        (ML_DOMAIN, "LinearClassifier") => Box::new(ml_linear::LinearClassifier::new(node, strings)?),
        (ML_DOMAIN, "TreeEnsembleClassifier") => {
            Box::new(ml_trees::TreeEnsembleClassifier::new(node, strings)?)
        }
        _ => return Err(BuildError::Unsupported),
    };
    Ok(kernel)
}

/// Every operator [`build`] accepts, as `domain:op_type`, for documentation and
/// refusal messages.
pub const SUPPORTED: &[&str] = &[
    "Abs",
    "Add",
    "ArgMax",
    "ArgMin",
    "Cast",
    "Ceil",
    "Concat",
    "Constant",
    "Div",
    "Exp",
    "Flatten",
    "Floor",
    "Gather",
    "Gemm",
    "Identity",
    "Log",
    "MatMul",
    "Mul",
    "Neg",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Unsqueeze",
    "ai.onnx.ml:ArrayFeatureExtractor",
    "ai.onnx.ml:Binarizer",
    "ai.onnx.ml:FeatureVectorizer",
    "ai.onnx.ml:Imputer",
    "ai.onnx.ml:LabelEncoder",
    "ai.onnx.ml:LinearClassifier",
    "ai.onnx.ml:Normalizer",
    "ai.onnx.ml:OneHotEncoder",
    "ai.onnx.ml:Scaler",
    "ai.onnx.ml:TreeEnsembleClassifier",
    "ai.onnx.ml:ZipMap",
];

/// Input `index`, which the operator requires.
pub(crate) fn required<'t>(inputs: &[Option<&'t Tensor>], index: usize) -> Result<&'t Tensor, String> {
    inputs.get(index).copied().flatten().ok_or_else(|| format!("input {index} is missing"))
}
