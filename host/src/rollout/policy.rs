//! How a new version is rolled out: at once, or judged on live traffic first (shadow,
//! then canary, then promoted). The host's defaults come from the environment; a version
//! may carry overrides of its own, as JSON in its registry record (the `rollout`
//! property) or in a `<name>-<version>.rollout.json` file beside its plugin.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest policy a version may carry: SageMaker caps a metadata property at 256.
pub const MAX_POLICY_BYTES: usize = 256;

/// How a new version replaces the serving one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Swapped in as soon as it loads.
    Immediate,
    /// Shadow, then canary, then promoted, each phase judged against the thresholds.
    Phased,
}

/// A complete rollout policy.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RolloutPolicy {
    pub strategy: Strategy,
    /// Share of requests (percent) the candidate also scores, off the response path,
    /// during the shadow phase; 0 skips the phase.
    pub shadow_percent: f64,
    /// Share of requests (percent) the candidate answers during the canary phase; 0
    /// skips the phase.
    pub canary_percent: f64,
    /// Calls the candidate must make in a phase before it is judged.
    pub min_requests: u64,
    /// Time a phase lasts at least.
    #[serde(serialize_with = "duration_text")]
    #[schema(value_type = String, example = "60s")]
    pub min_duration: Duration,
    /// Least share of rows on which the candidate must choose the stable version's label
    /// (shadow phase), from 0 to 1.
    pub min_agreement: f64,
    /// Largest share of the candidate's calls that may fail, from 0 to 1.
    pub max_error_rate: f64,
    /// Largest ratio of the candidate's p99 plugin-call time to the stable version's.
    pub max_latency_ratio: f64,
}

impl RolloutPolicy {
    /// The host's defaults: every new version swapped in once it loads (as before
    /// rollouts existed), and the thresholds a phased rollout uses unless told otherwise.
    pub const DEFAULT: Self = Self {
        strategy: Strategy::Immediate,
        shadow_percent: 100.0,
        canary_percent: 10.0,
        min_requests: 1000,
        min_duration: Duration::from_secs(60),
        min_agreement: 0.95,
        max_error_rate: 0.01,
        max_latency_ratio: 2.0,
    };

    pub fn is_phased(&self) -> bool {
        self.strategy == Strategy::Phased
    }

    /// This policy with a version's overrides applied, checked.
    pub fn with_overrides(&self, text: Option<&str>) -> Result<Self, String> {
        let mut policy = self.clone();
        if let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) {
            if text.len() > MAX_POLICY_BYTES {
                return Err(format!("its rollout policy is longer than {MAX_POLICY_BYTES} bytes"));
            }
            let overrides: PolicyOverrides =
                serde_json::from_str(text).map_err(|e| format!("its rollout policy is not valid: {e}"))?;
            overrides.apply(&mut policy);
        }
        policy.check().map_err(|e| format!("its rollout policy is not valid: {e}"))?;
        Ok(policy)
    }

    /// Every figure in range, and a phased rollout with at least one phase.
    pub fn check(&self) -> Result<(), String> {
        for (name, percent) in
            [("shadow_percent", self.shadow_percent), ("canary_percent", self.canary_percent)]
        {
            if !(0.0..=100.0).contains(&percent) {
                return Err(format!("{name} is {percent}, not between 0 and 100"));
            }
        }
        for (name, share) in [("min_agreement", self.min_agreement), ("max_error_rate", self.max_error_rate)]
        {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} is {share}, not between 0 and 1"));
            }
        }
        if !(self.max_latency_ratio >= 1.0 && self.max_latency_ratio.is_finite()) {
            return Err(format!(
                "max_latency_ratio is {}, not a number of at least 1",
                self.max_latency_ratio
            ));
        }
        if self.is_phased() && self.shadow_percent == 0.0 && self.canary_percent == 0.0 {
            return Err("a phased rollout needs shadow_percent or canary_percent above 0".into());
        }
        Ok(())
    }
}

/// What a version's own policy may set; the rest comes from the host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverrides {
    strategy: Option<Strategy>,
    shadow_percent: Option<f64>,
    canary_percent: Option<f64>,
    min_requests: Option<u64>,
    #[serde(default, deserialize_with = "duration_from_text")]
    min_duration: Option<Duration>,
    min_agreement: Option<f64>,
    max_error_rate: Option<f64>,
    max_latency_ratio: Option<f64>,
}

impl PolicyOverrides {
    fn apply(self, policy: &mut RolloutPolicy) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *slot = value;
            }
        }
        set(&mut policy.strategy, self.strategy);
        set(&mut policy.shadow_percent, self.shadow_percent);
        set(&mut policy.canary_percent, self.canary_percent);
        set(&mut policy.min_requests, self.min_requests);
        set(&mut policy.min_duration, self.min_duration);
        set(&mut policy.min_agreement, self.min_agreement);
        set(&mut policy.max_error_rate, self.max_error_rate);
        set(&mut policy.max_latency_ratio, self.max_latency_ratio);
    }
}

fn duration_text<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}

fn duration_from_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map(Some).map_err(|e| {
        serde::de::Error::custom(format!("min_duration {text:?}: {e} (write it as \"90s\" or \"5m\")"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_what_they_name() {
        let policy = RolloutPolicy::DEFAULT
            .with_overrides(Some(r#"{"strategy":"phased","canary_percent":25,"min_duration":"90s"}"#))
            .unwrap();
        assert!(policy.is_phased());
        assert_eq!(policy.canary_percent, 25.0);
        assert_eq!(policy.min_duration, Duration::from_secs(90));
        assert_eq!(policy.shadow_percent, RolloutPolicy::DEFAULT.shadow_percent);
    }

    #[test]
    fn a_broken_policy_is_refused_with_what_is_wrong() {
        for (text, expected) in [
            (r#"{"canary_percent":120}"#, "canary_percent is 120"),
            (r#"{"min_agreement":1.5}"#, "min_agreement is 1.5"),
            (r#"{"max_latency_ratio":0.5}"#, "max_latency_ratio is 0.5"),
            (r#"{"strategy":"phased","shadow_percent":0,"canary_percent":0}"#, "needs shadow_percent"),
            (r#"{"canary":10}"#, "unknown field `canary`"),
            (r#"{"min_duration":"soon"}"#, "min_duration \"soon\""),
            ("not json", "not valid"),
        ] {
            let error = RolloutPolicy::DEFAULT.with_overrides(Some(text)).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let long = format!(r#"{{"strategy":"phased"{}}}"#, " ".repeat(MAX_POLICY_BYTES));
        assert!(RolloutPolicy::DEFAULT.with_overrides(Some(&long)).unwrap_err().contains("longer than"));
    }
}
