//! Pre-initialisation of a `packaged-predictor` component (the ONNX runner): one
//! instance is given its model through `load-model`, and a snapshot of its memory and
//! globals (wasmtime's Wizer) becomes the plugin. Every instance of that plugin then
//! starts with the model read and planned, and a host never sees `load-model` called.
//!
//! The instance runs in the same sandbox as a served plugin (the allowed WASI subset,
//! the memory cap); the runner must not touch stdio while loading, since the handles it
//! would hold are not part of a snapshot.

use super::compiler::{Compiler, Tier};
use super::sandbox::PluginState;
use std::future::Future;
use wasmtime::Store;
use wasmtime::component::{Component, Instance, Lift, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// The export that loads a model (see the `packaged-predictor` world).
const LOAD_MODEL: &str = "load-model";

#[derive(Debug, thiserror::Error)]
pub enum PreinitError {
    /// The component refused the model; its message says why (an operator it does not
    /// run, an input it cannot map, …).
    #[error("{0}")]
    Refused(String),
    /// The component could not be instantiated, failed while loading, or could not be
    /// snapshotted.
    #[error("{0}")]
    Failed(String),
}

/// Loads `model` (with `manifest`, JSON or empty) into the `packaged-predictor`
/// component `runner`, and returns the component that starts from the loaded state.
/// Its instance may grow its memory to `memory_limit` bytes.
pub async fn load_into(
    runner: &[u8],
    model: &[u8],
    manifest: &str,
    memory_limit: usize,
) -> Result<Vec<u8>, PreinitError> {
    let failed = |what: &str, e: wasmtime::Error| PreinitError::Failed(format!("{what}: {e:#}"));
    let mut wizer = Wizer::new();
    // Wizer would remove the init export from the core module but not from the
    // component, leaving a component that does not validate.
    wizer.init_func(LOAD_MODEL).keep_init_func(true);
    let (context, instrumented) =
        wizer.instrument_component(runner).map_err(|e| failed("instrumenting the runner", e))?;
    let tier = Tier::new(Compiler::Cranelift, None).map_err(|e| PreinitError::Failed(format!("{e:#}")))?;
    let component =
        Component::new(&tier.engine, &instrumented).map_err(|e| failed("compiling the runner", e))?;
    let mut store = Store::new(&tier.engine, PluginState::new(memory_limit, 16 * 1024));
    store.limiter(|state| &mut state.memory);
    // No ticker advances this engine's epoch: the load has no deadline.
    store.set_epoch_deadline(u64::MAX);
    let instance = tier
        .linker
        .instantiate_async(&mut store, &component)
        .await
        .map_err(|e| failed("instantiating the runner", e))?;
    let load = instance
        .get_typed_func::<(&[u8], &str), (Result<(), String>,)>(&mut store, LOAD_MODEL)
        .map_err(|e| failed("the runner's load-model export", e))?;
    let outcome = load.call_async(&mut store, (model, manifest)).await;
    let (result,) = outcome.map_err(|e| {
        let state = store.data();
        if state.memory.exceeded {
            return PreinitError::Refused(format!(
                "loading the model needs more than the {} MiB of memory a plugin may use",
                memory_limit >> 20
            ));
        }
        let (printed, _) = state.stderr.take();
        let printed = String::from_utf8_lossy(&printed);
        PreinitError::Failed(format!("the runner failed while loading the model: {e:#} {}", printed.trim()))
    })?;
    result.map_err(PreinitError::Refused)?;
    wizer
        .snapshot_component(&context, &mut Snapshot { store: &mut store, instance })
        .await
        .map_err(|e| failed("snapshotting the loaded runner", e))
}

/// Reads an instrumented instance's state for Wizer through the accessor functions the
/// instrumentation exports.
struct Snapshot<'a> {
    store: &'a mut Store<PluginState>,
    instance: Instance,
}

impl Snapshot<'_> {
    async fn call<R: Lift + Send + Sync + 'static, T>(
        &mut self,
        interface: &str,
        func: &str,
        read: impl FnOnce(&Store<PluginState>, R) -> T,
    ) -> T {
        // The accessors are Wizer's own code, added by the instrumentation: a failure
        // here is a bug in that step, not something a model can cause.
        let (_, exported) =
            self.instance.get_export(&mut *self.store, None, interface).expect("accessor interface");
        let (_, func) = self.instance.get_export(&mut *self.store, Some(&exported), func).expect("accessor");
        let typed = self.instance.get_typed_func::<(), (R,)>(&mut *self.store, func).expect("accessor type");
        let (value,) = typed.call_async(&mut *self.store, ()).await.expect("accessor call");
        read(self.store, value)
    }
}

impl ComponentInstanceState for Snapshot<'_> {
    fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        self.call(instance, func, |store, list: WasmList<u8>| contents(list.as_le_slice(store)))
    }

    fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> impl Future<Output = i32> + Send {
        self.call(instance, func, |_, value| value)
    }

    fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> impl Future<Output = i64> + Send {
        self.call(instance, func, |_, value| value)
    }

    fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> impl Future<Output = u32> + Send {
        self.call(instance, func, |_, value: f32| value.to_bits())
    }

    fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> impl Future<Output = u64> + Send {
        self.call(instance, func, |_, value: f64| value.to_bits())
    }
}
