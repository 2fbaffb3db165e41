//! Host bindings for the two worlds of the repository's `wit/`: `predictor` (`info` and
//! `predict`) and `batch-predictor` (the same plus `predict-columns`). A plugin is bound
//! to `batch-predictor` when it exports `predict-columns`, to `predictor` otherwise, so
//! plugins built against 1.0.0 of the contract still load. Only the types the rest of
//! the host needs are re-exported.

use super::sandbox::PluginState;
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};

mod generated {
    // Exports are called with `call_async`: a call runs on a fiber that yields to the
    // async executor at every epoch tick, so a slow plugin never holds a worker thread.
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "batch-predictor",
        exports: { default: async },
    });
}

mod rows_only {
    // The same types as `batch-predictor`'s, so one `Prediction` serves both worlds.
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "predictor",
        exports: { default: async },
        with: { "mlops:predictor/types": super::generated::mlops::predictor::types },
    });
}

pub use generated::mlops::predictor::columns::{Batch, BatchScores, Cell};
pub use generated::mlops::predictor::types::{
    ClassScore, Field, FieldSpec, FieldType, ModelInfo, PredictError, Prediction, Value,
};
use generated::{BatchPredictor, BatchPredictorPre};
use rows_only::{Predictor, PredictorPre};

/// The world every plugin must implement.
pub const WORLD: &str = "mlops:predictor/predictor@1.1.0";
/// The world of plugins that also score by column.
pub const BATCH_WORLD: &str = "mlops:predictor/batch-predictor@1.1.0";
/// The export that makes a plugin a `batch-predictor`.
const PREDICT_COLUMNS: &str = "predict-columns";

/// A plugin's exports, checked against its world and ready to instantiate.
pub enum ExportsPre {
    Rows(PredictorPre<PluginState>),
    Columns(BatchPredictorPre<PluginState>),
}

impl ExportsPre {
    /// Binds `pre` to `batch-predictor` if the plugin exports `predict-columns` (then
    /// with the type the contract gives it), and to `predictor` otherwise.
    pub fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        let component = pre.component();
        let exports_columns =
            component.component_type().exports(component.engine()).any(|(name, _)| name == PREDICT_COLUMNS);
        if exports_columns {
            BatchPredictorPre::new(pre).map(Self::Columns)
        } else {
            PredictorPre::new(pre).map(Self::Rows)
        }
    }

    /// The engine the plugin was compiled for.
    pub fn engine(&self) -> &Engine {
        match self {
            Self::Rows(pre) => pre.engine(),
            Self::Columns(pre) => pre.engine(),
        }
    }

    /// The world the plugin is bound to.
    pub fn world(&self) -> &'static str {
        match self {
            Self::Rows(_) => WORLD,
            Self::Columns(_) => BATCH_WORLD,
        }
    }

    pub async fn instantiate_async(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Exports> {
        Ok(match self {
            Self::Rows(pre) => Exports::Rows(pre.instantiate_async(store).await?),
            Self::Columns(pre) => Exports::Columns(pre.instantiate_async(store).await?),
        })
    }
}

/// The exports of one plugin instance.
pub enum Exports {
    Rows(Predictor),
    Columns(BatchPredictor),
}

impl Exports {
    pub async fn call_info(&self, store: &mut Store<PluginState>) -> wasmtime::Result<ModelInfo> {
        match self {
            Self::Rows(p) => p.call_info(store).await,
            Self::Columns(p) => p.call_info(store).await,
        }
    }

    pub async fn call_predict(
        &self,
        store: &mut Store<PluginState>,
        rows: &[Vec<Field>],
    ) -> wasmtime::Result<Result<Vec<Prediction>, PredictError>> {
        match self {
            Self::Rows(p) => p.call_predict(store, rows).await,
            Self::Columns(p) => p.call_predict(store, rows).await,
        }
    }
}
