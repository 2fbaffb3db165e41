//! Trains the price-sensitivity model on the published synthetic dataset and writes
//! `weights.rs`, `metrics.json`, `train.csv` and `test.csv` into a directory.
//!
//! The plugin's build script runs the same fit, so this is for inspecting the data and
//! the model, not a step of the build.

use price_sensitivity_model::dataset::{self, to_csv};
use price_sensitivity_model::{evaluate, train};
use std::path::PathBuf;
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let out = PathBuf::from(env::args().nth(1).unwrap_or_else(|| "model-out".into()));
    fs::create_dir_all(&out)?;
    let splits = dataset::published();
    let model = train::fit(&splits.train);
    let metrics = evaluate::metrics_json(&model, &splits, "price-sensitivity", "dev");
    fs::write(out.join("weights.rs"), train::to_rust_source(&model))?;
    fs::write(out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?)?;
    fs::write(out.join("train.csv"), to_csv(&splits.train))?;
    fs::write(out.join("test.csv"), to_csv(&splits.test))?;
    println!(
        "accuracy {:.4}, macro-F1 {:.4} on {} held-out rows; wrote {}",
        metrics["accuracy"],
        metrics["macro_f1"],
        splits.test.len(),
        out.display()
    );
    Ok(())
}
