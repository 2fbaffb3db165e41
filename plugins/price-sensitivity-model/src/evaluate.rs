//! Held-out evaluation: the metrics JSON published beside every plugin version.

use crate::dataset::{self, Example};
use crate::features::{LinearModel, argmax};
use crate::schema::{LABELS, N_LABELS};
use crate::train;
use serde_json::{Value as Json, json};

/// Confusion matrix on `examples`: `counts[true label][predicted label]`.
pub fn confusion(model: &LinearModel, examples: &[Example]) -> [[usize; N_LABELS]; N_LABELS] {
    let mut counts = [[0; N_LABELS]; N_LABELS];
    for e in examples {
        let predicted = argmax(&model.probabilities(&model.encode(&e.values)));
        counts[e.label][predicted] += 1;
    }
    counts
}

/// Share of `examples` whose predicted label is the true one.
pub fn accuracy(counts: &[[usize; N_LABELS]; N_LABELS]) -> f64 {
    let total: usize = counts.iter().flatten().sum();
    let correct: usize = (0..N_LABELS).map(|k| counts[k][k]).sum();
    correct as f64 / total as f64
}

/// The metrics document: accuracy, macro-F1, per-class precision/recall/F1, log loss,
/// the confusion matrix, split sizes and the dataset's provenance.
pub fn metrics_json(model: &LinearModel, splits: &dataset::Splits, name: &str, version: &str) -> Json {
    let counts = confusion(model, &splits.test);
    let mut per_class = serde_json::Map::new();
    let mut f1_sum = 0.0;
    for (k, label) in LABELS.iter().enumerate() {
        let tp = counts[k][k] as f64;
        let predicted: usize = (0..N_LABELS).map(|t| counts[t][k]).sum();
        let support: usize = counts[k].iter().sum();
        let precision = ratio(tp, predicted as f64);
        let recall = ratio(tp, support as f64);
        let f1 = ratio(2.0 * precision * recall, precision + recall);
        f1_sum += f1;
        per_class.insert(
            (*label).to_string(),
            json!({ "precision": precision, "recall": recall, "f1": f1, "support": support }),
        );
    }
    json!({
        "model": name,
        "model_version": version,
        "algorithm": "multinomial logistic regression (one-hot categoricals, standardised ln(1+x) numerics)",
        "dataset": {
            "generator": "price_sensitivity_model::dataset (seeded synthetic baskets)",
            "seed": dataset::SEED,
            "n_rows": splits.train.len() + splits.test.len(),
            "test_fraction": dataset::TEST_FRACTION,
        },
        "n_train": splits.train.len(),
        "n_test": splits.test.len(),
        "accuracy": accuracy(&counts),
        "macro_f1": f1_sum / N_LABELS as f64,
        "log_loss": train::log_loss(model, &splits.test),
        "per_class": per_class,
        "confusion_matrix": { "labels": LABELS, "counts": counts },
    })
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 { 0.0 } else { numerator / denominator }
}
