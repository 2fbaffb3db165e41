//! A loaded model version: the plugin plus what the host learned about it at load,
//! the checks every answer of the plugin must pass before it reaches a client, and how
//! an answer's probabilities are written (by `/predict` and data capture alike).

use crate::artifact::Origin;
use crate::runtime::{
    Answer, CallError, ClassScore, Field, ModelInfo, Plugin, PluginText, PredictError, Prediction,
    predictions_from_scores,
};
use crate::telemetry::metrics::PluginCalls;
use serde::{Serialize, Serializer};
use std::time::{Duration, Instant, SystemTime};

/// Tolerance on the sum of one prediction's probabilities.
const PROBABILITY_SUM_TOLERANCE: f64 = 1e-6;

pub struct LoadedModel {
    pub version: String,
    pub digest: String,
    pub origin: Origin,
    pub info: ModelInfo,
    pub metrics: Option<serde_json::Value>,
    /// Whether the artifact came with a signature, and whether it was verified (only
    /// when a public key is configured, and then always).
    pub signed: bool,
    pub signature_verified: bool,
    pub loaded_at: SystemTime,
    /// Fetch-to-ready time: compile, checks and self-test.
    pub load_time: Duration,
    pub plugin: Plugin,
    /// This version's plugin-call metrics.
    pub calls: PluginCalls,
}

/// Why scoring a batch failed.
#[derive(Debug, thiserror::Error)]
pub enum PredictFailure {
    /// The caller's fault: the plugin rejected row `row`.
    #[error("row {row}: {message}")]
    InvalidInput { row: u32, message: PluginText },
    /// The plugin failed or timed out.
    #[error("the model plugin {0}")]
    Plugin(#[from] CallError),
    /// The plugin reported its own internal error.
    #[error("the model plugin reported an internal error: {0}")]
    Internal(PluginText),
    /// The plugin answered something the contract does not allow (the reason quotes
    /// the answer, so it is the plugin's text too).
    #[error("the model plugin returned an invalid answer: {0}")]
    BadOutput(PluginText),
}

impl LoadedModel {
    /// Scores `rows` and checks the answer. The plugin runs on the calling task and
    /// yields at every epoch tick, so it never holds a thread for long.
    pub async fn predict(&self, rows: &[Vec<Field>]) -> Result<Vec<Prediction>, PredictFailure> {
        let started = Instant::now();
        let outcome = self.score(rows).await;
        let failure = outcome.as_ref().err().and_then(PredictFailure::kind);
        self.calls.record(started.elapsed(), failure.map(PluginFailureKind::as_str));
        outcome
    }

    /// Scores `rows` and checks the answer, without counting it in the version's
    /// metrics: for measurements that are not a client's call (a rollout's shadow
    /// comparison).
    pub async fn score(&self, rows: &[Vec<Field>]) -> Result<Vec<Prediction>, PredictFailure> {
        let answer = self.plugin.predict(rows, &self.info.inputs).await?.map_err(|e| match e {
            PredictError::InvalidInput((row, message)) => {
                PredictFailure::InvalidInput { row, message: PluginText::new(message) }
            }
            PredictError::Internal(message) => PredictFailure::Internal(PluginText::new(message)),
        })?;
        let predictions = match answer {
            Answer::Predictions(predictions) => predictions,
            Answer::Scores(scores) => predictions_from_scores(scores, &self.info.labels, rows.len())
                .map_err(|why| PredictFailure::BadOutput(PluginText::new(why)))?,
        };
        check_predictions(&self.info.labels, rows.len(), &predictions)
            .map_err(|why| PredictFailure::BadOutput(PluginText::new(why)))?;
        Ok(predictions)
    }
}

impl PredictFailure {
    /// The kind of the plugin's failure, for metrics; `None` when the caller is at fault.
    pub fn kind(&self) -> Option<PluginFailureKind> {
        Some(match self {
            Self::InvalidInput { .. } => return None,
            Self::Plugin(CallError::Timeout(_)) => PluginFailureKind::Timeout,
            Self::Plugin(CallError::MemoryLimit(_)) => PluginFailureKind::MemoryLimit,
            Self::Plugin(CallError::Trap(_)) => PluginFailureKind::Trap,
            Self::Plugin(CallError::Instantiate(_)) => PluginFailureKind::Instantiate,
            Self::Internal(_) => PluginFailureKind::Internal,
            Self::BadOutput(_) => PluginFailureKind::InvalidOutput,
        })
    }
}

/// How a plugin call failed: the `kind` label of `plugin_call_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginFailureKind {
    Timeout,
    MemoryLimit,
    Trap,
    Instantiate,
    InvalidOutput,
    Internal,
}

impl PluginFailureKind {
    pub const ALL: [Self; 6] = [
        Self::Timeout,
        Self::MemoryLimit,
        Self::Trap,
        Self::Instantiate,
        Self::InvalidOutput,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::MemoryLimit => "memory_limit",
            Self::Trap => "trap",
            Self::Instantiate => "instantiate",
            Self::InvalidOutput => "invalid_output",
            Self::Internal => "internal",
        }
    }
}

/// One prediction per row; every label from `labels`; every label scored exactly once
/// with a finite probability in [0, 1]; probabilities summing to 1.
pub fn check_predictions(labels: &[String], rows: usize, predictions: &[Prediction]) -> Result<(), String> {
    if predictions.len() != rows {
        return Err(format!("{} predictions for {rows} rows", predictions.len()));
    }
    for (i, p) in predictions.iter().enumerate() {
        if !labels.contains(&p.label) {
            return Err(format!("row {i}: unknown label {:?}", p.label));
        }
        if p.scores.len() != labels.len() || !labels.iter().all(|l| p.scores.iter().any(|s| &s.label == l)) {
            return Err(format!("row {i}: scores must cover each of {labels:?} once"));
        }
        if let Some(bad) = p.scores.iter().find(|s| !(0.0..=1.0).contains(&s.probability)) {
            return Err(format!(
                "row {i}: probability {} for {:?} is not in [0, 1]",
                bad.probability, bad.label
            ));
        }
        let total: f64 = p.scores.iter().map(|s| s.probability).sum();
        if (total - 1.0).abs() > PROBABILITY_SUM_TOLERANCE {
            return Err(format!("row {i}: probabilities sum to {total}, not 1"));
        }
    }
    Ok(())
}

/// The same label, and each label's probability within rounding.
pub fn same_answer(a: &Prediction, b: &Prediction) -> bool {
    a.label == b.label
        && a.scores.len() == b.scores.len()
        && a.scores
            .iter()
            .zip(&b.scores)
            .all(|(x, y)| x.label == y.label && (x.probability - y.probability).abs() <= 1e-9)
}

/// Every label's probability, written as a JSON object with its labels in order.
// Borrowed from the plugin's answer: written out without copying it.
pub struct ScoresByLabel<'a>(pub &'a [ClassScore]);

impl Serialize for ScoresByLabel<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn entry(score: &ClassScore) -> (&str, f64) {
            (&score.label, score.probability)
        }
        if self.0.is_sorted_by(|a, b| a.label <= b.label) {
            return serializer.collect_map(self.0.iter().map(entry));
        }
        let mut sorted: Vec<&ClassScore> = self.0.iter().collect();
        sorted.sort_by(|a, b| a.label.cmp(&b.label));
        serializer.collect_map(sorted.into_iter().map(entry))
    }
}

#[cfg(test)]
mod scores_tests {
    use super::ScoresByLabel;
    use crate::runtime::ClassScore;

    #[test]
    fn probabilities_are_written_by_label_in_order_whatever_the_plugins_order() {
        let score = |label: &str, probability| ClassScore { label: label.into(), probability };
        for scores in [
            vec![score("LA", 0.25), score("MM", 0.5), score("UM", 0.25)],
            vec![score("UM", 0.25), score("LA", 0.25), score("MM", 0.5)],
        ] {
            let written = serde_json::to_string(&ScoresByLabel(&scores)).unwrap();
            assert_eq!(written, r#"{"LA":0.25,"MM":0.5,"UM":0.25}"#);
        }
    }
}
