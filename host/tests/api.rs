//! End-to-end tests of the HTTP API: each starts the real server on a loopback port
//! with real plugin components built from source.

// The tests, in the folder of this name.
mod api {
    mod admin;
    mod architecture;
    mod capture;
    mod columns;
    mod compilers;
    mod deploy;
    mod documentation;
    mod faults;
    mod grpc;
    mod metrics;
    mod new_plugin;
    mod observability;
    mod onnx;
    mod openapi;
    mod predict;
    mod registry;
    mod reload;
    mod rollout;
    mod schema;
    mod shutdown;
    mod signing;
    mod v2;
}

// Shared with the soak tests; not every helper there is used here.
#[allow(dead_code)]
mod support;
use support::{examples, helpers, process};
