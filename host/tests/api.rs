//! End-to-end tests of the HTTP API: each starts the real server on a loopback port
//! with real plugin components built from source.

mod admin;
mod columns;
mod compilers;
mod deploy;
mod examples;
mod faults;
mod helpers;
mod metrics;
mod new_plugin;
mod observability;
mod onnx;
mod openapi;
mod predict;
mod process;
mod registry;
mod reload;
mod shutdown;
mod signing;
mod v2;
