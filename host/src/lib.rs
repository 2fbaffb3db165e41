//! predict-host: serves predictions from WebAssembly component plugins and swaps model
//! versions in place, with no restart and no failed request.
//!
//! The pipeline, one stage per module, in the order a version travels (no module depends
//! on one that depends on it: `tests/api/architecture.rs` checks):
//! source → artifact → loader → runtime → model → rollout → slot → api.

pub mod api;
pub mod artifact; // a version's bytes, digest and signature
pub mod loader; // checks a version and swaps it in, or refuses it with the reason
pub mod model; // a loaded version and the checks its every answer passes
pub mod rollout; // judges a new version on live traffic before it serves: shadow, canary, promote
pub mod runtime; // wasmtime: compiling, sandboxing and calling plugins
pub mod slot; // the serving version, the previous one, and refusals
pub mod source; // which version should serve: the registry, a plugin directory, the bundled plugin // HTTP: predictions, status, the operator API, V2, docs

pub mod aws; // AWS clients: the SageMaker Model Registry and S3
pub mod capture; // data capture for model monitoring: requests and answers as SageMaker records
pub mod commands; // the publisher's commands: new-plugin, package, publish, models, keygen, sign
pub mod config; // the command line and environment
pub mod server; // wires the stages together for `serve`
pub mod telemetry; // logs and metrics
