//! Host bindings for the `predictor` world, generated from the repository's `wit/`.
//! Only the types the rest of the host needs are re-exported.

mod generated {
    // Exports are called with `call_async`: a call runs on a fiber that yields to the
    // async executor at every epoch tick, so a slow plugin never holds a worker thread.
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "predictor",
        exports: { default: async },
    });
}

pub use generated::mlops::predictor::types::{
    ClassScore, Field, FieldSpec, FieldType, ModelInfo, PredictError, Prediction, Value,
};
pub use generated::{Predictor, PredictorPre};

/// The world a plugin must implement, as reported in `/model/info`.
pub const WORLD: &str = "mlops:predictor/predictor@1.0.0";
