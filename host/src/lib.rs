//! predict-host: serves predictions from WebAssembly component plugins and swaps model
//! versions in place, with no restart and no failed request.
//!
//! Stages, each in its own module: `source` decides which version should serve,
//! `artifact` carries its bytes and digest, `runtime` compiles and sandboxes it,
//! `loader` proves it works, `slot` holds the serving version, and `api` answers HTTP.

pub mod api;
pub mod artifact;
pub mod aws;
pub mod commands;
pub mod config;
pub mod loader;
pub mod model;
pub mod observe;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod slot;
pub mod source;
pub mod telemetry;
pub mod tier_up;
