//! Trains the price-sensitivity model on the published synthetic dataset and writes
//! `weights.rs`, `metrics.json`, `train.csv` and `test.csv` into a directory.
//!
//! The plugin's build script runs the same fit, so this is for inspecting the data and
//! the model, not a step of the build.

use price_sensitivity_model::dataset::{self, Example};
use price_sensitivity_model::{FIELDS, LABELS, Value, evaluate, train};
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

fn to_csv(examples: &[Example]) -> String {
    let mut out: Vec<String> =
        vec![FIELDS.iter().map(|f| f.name).chain(["LABEL"]).collect::<Vec<_>>().join(",")];
    for e in examples {
        let cells = e.values.iter().map(|v| match v {
            Value::Number(x) => x.to_string(),
            Value::Text(s) => (*s).to_string(),
        });
        out.push(cells.chain([LABELS[e.label].to_string()]).collect::<Vec<_>>().join(","));
    }
    out.join("\n") + "\n"
}
