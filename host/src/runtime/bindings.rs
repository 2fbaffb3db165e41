//! Host bindings for the `predictor` world, generated from the repository's `wit/`.
//! Only the types the rest of the host needs are re-exported.

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "predictor",
    });
}

pub use generated::mlops::predictor::types::{
    ClassScore, Field, FieldSpec, FieldType, ModelInfo, PredictError, Prediction, Value,
};
pub use generated::{Predictor, PredictorPre};

/// The world a plugin must implement, as reported in `/model/info`.
pub const WORLD: &str = "mlops:predictor/predictor@1.0.0";
