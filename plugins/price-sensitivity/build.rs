//! Fits the model on the published synthetic dataset and writes, into `OUT_DIR`,
//! `weights.rs` (embedded by the plugin as static data) and `metrics.json` (its
//! held-out evaluation, published beside the plugin). The fit is seeded, so every
//! build of the same source embeds the same weights.

use price_sensitivity_model::{dataset, evaluate, train};
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let version = env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let name = env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME");

    let splits = dataset::published();
    let model = train::fit(&splits.train);
    let metrics = evaluate::metrics_json(&model, &splits, &name, &version);

    fs::write(out.join("weights.rs"), train::to_rust_source(&model)).expect("write weights.rs");
    fs::write(out.join("metrics.json"), format!("{metrics:#}\n")).expect("write metrics.json");
}
