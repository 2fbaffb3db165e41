//! Warm instances: a plugin instance that returned cleanly may serve the next call.
//!
//! Instantiating costs more than scoring a row, so each plugin keeps a few idle
//! instances. An instance goes back to the idle list only if its call returned without
//! a trap, a timeout or a refused memory growth, its memory grew little, it has served
//! fewer than `calls_per_instance` calls, and its plugin is serving: a version that
//! stops serving drops its idle instances at once, so their pool slots are free for
//! the next one.

use super::bindings::Exports;
use super::sandbox::PluginState;
use std::sync::Mutex;
use wasmtime::Store;

/// Most an instance's memory may have grown beyond its initial size and the instance
/// still be kept: a call that needed more (a very large batch) returns that memory to
/// the pool instead. Growth, not size: a packaged model starts with megabytes of model.
pub const MAX_WARM_GROWTH: usize = 4 << 20;

/// One instantiated plugin with the store that owns it.
pub struct Instance {
    pub store: Store<PluginState>,
    pub exports: Exports,
    /// Calls this instance has served.
    pub calls: u32,
}

/// The idle instances of one plugin.
pub struct WarmInstances {
    state: Mutex<Idle>,
    capacity: usize,
    calls_per_instance: u32,
}

struct Idle {
    /// Whether instances are kept at all (only while the plugin serves).
    keeping: bool,
    instances: Vec<Instance>,
}

impl WarmInstances {
    pub fn new(capacity: usize, calls_per_instance: u32) -> Self {
        Self {
            state: Mutex::new(Idle { keeping: false, instances: Vec::with_capacity(capacity) }),
            capacity,
            calls_per_instance,
        }
    }

    /// An idle instance, if one is kept.
    pub fn take(&self) -> Option<Instance> {
        self.state.lock().expect("warm instances lock").instances.pop()
    }

    /// Keeps `instance` for a later call if it may be reused; drops it otherwise.
    /// `clean` says the call returned normally.
    pub fn give_back(&self, instance: Instance, clean: bool) {
        let memory = &instance.store.data().memory;
        let reusable = clean
            && !memory.exceeded
            && memory.grown <= MAX_WARM_GROWTH
            && instance.calls < self.calls_per_instance;
        if !reusable {
            return;
        }
        let mut idle = self.state.lock().expect("warm instances lock");
        if idle.keeping && idle.instances.len() < self.capacity {
            idle.instances.push(instance);
        }
    }

    /// Starts keeping instances, or stops and drops the idle ones.
    pub fn keep(&self, keeping: bool) {
        let dropped = {
            let mut idle = self.state.lock().expect("warm instances lock");
            idle.keeping = keeping;
            if keeping { Vec::new() } else { std::mem::take(&mut idle.instances) }
        };
        // Dropping stores returns their slots to the pool; done outside the lock.
        drop(dropped);
    }
}
