//! How a classifier's logits are read. Under softmax the classes exclude each other: one
//! distribution, one finding (the predicted class). Under sigmoid (multi-label models such as
//! CheXNet's) each class is a finding of its own with its own probability, positive at or
//! above its own threshold: an image may have several positive findings, or none.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The function from logits to probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// One softmax over the classes: the probabilities sum to 1.
    #[default]
    Softmax,
    /// A sigmoid per class: each probability stands alone (multi-label).
    Sigmoid,
}

impl Activation {
    pub const ALL: [Self; 2] = [Self::Softmax, Self::Sigmoid];

    /// The name the sidecars, the provenance and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Sigmoid => "sigmoid",
        }
    }

    /// Each class's probability, computed in f64 so that large logits stay exact.
    pub fn probabilities(self, logits: &[f32]) -> Vec<f32> {
        match self {
            Self::Softmax => softmax(logits),
            Self::Sigmoid => logits.iter().map(|&l| sigmoid(l)).collect(),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Softmax in f64 (stable for large logits).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// The logistic function in f64: `exp` overflows to infinity only where the probability is 0
/// in f32 anyway, so this one form is exact at both ends.
pub fn sigmoid(logit: f32) -> f32 {
    (1.0 / (1.0 + (-f64::from(logit)).exp())) as f32
}

/// A class's threshold when the model's sidecar gives none (and in provenance files written
/// before thresholds were recorded).
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// How the logits become probabilities and findings: recorded with the model (`ModelInfo`), so
/// every provenance file says how its probabilities were computed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutputRule {
    #[serde(default)]
    pub activation: Activation,
    /// Each class's threshold, used under sigmoid only (a softmax model's finding is its
    /// predicted class). Empty in older provenance files: 0.5 for every class.
    #[serde(default)]
    pub thresholds: Vec<f32>,
}

impl OutputRule {
    /// `activation` with the default threshold for each of `classes`.
    pub fn new(activation: Activation, classes: usize) -> Self {
        Self {
            activation,
            thresholds: vec![DEFAULT_THRESHOLD; classes],
        }
    }

    pub fn threshold(&self, class: usize) -> f32 {
        self.thresholds
            .get(class)
            .copied()
            .unwrap_or(DEFAULT_THRESHOLD)
    }

    /// The one threshold every class shares, if they do (so one number describes them all).
    pub fn uniform_threshold(&self) -> Option<f32> {
        let first = self.threshold(0);
        self.thresholds.iter().all(|&t| t == first).then_some(first)
    }

    /// The positive classes in index order. Under sigmoid: every class whose probability is at
    /// or above its threshold (none, one or several). Under softmax: the predicted class
    /// alone, as the classes exclude each other.
    pub fn positives(&self, probabilities: &[f32], predicted: usize) -> Vec<usize> {
        match self.activation {
            Activation::Softmax => vec![predicted],
            Activation::Sigmoid => probabilities
                .iter()
                .enumerate()
                .filter(|&(c, &p)| p >= self.threshold(c))
                .map(|(c, _)| c)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let p = softmax(&[1000.0, 1000.0, f32::NEG_INFINITY]);
        assert_eq!(p, [0.5, 0.5, 0.0]);
    }

    #[test]
    fn sigmoid_is_exact_at_the_extremes_and_symmetric() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        // Far in the tail the probability keeps its relative precision.
        assert!((sigmoid(-30.0) / 9.357_623e-14 - 1.0).abs() < 1e-6);
        for x in [0.1f32, 1.0, 2.5, 7.0] {
            assert!((sigmoid(x) + sigmoid(-x) - 1.0).abs() < 1e-7, "{x}");
        }
    }

    #[test]
    fn sigmoid_probabilities_stand_alone_and_positives_follow_each_threshold() {
        let logits = [2.0, -1.0, 0.3, 0.0];
        let p = Activation::Sigmoid.probabilities(&logits);
        assert!(p.iter().sum::<f32>() > 1.0, "{p:?}");
        let half = OutputRule::new(Activation::Sigmoid, 4);
        assert_eq!(half.positives(&p, 0), [0, 2, 3]);
        assert_eq!(half.uniform_threshold(), Some(0.5));
        let own = OutputRule {
            activation: Activation::Sigmoid,
            thresholds: vec![0.9, 0.2, 0.6, 0.5],
        };
        // 0.881 < 0.9, 0.269 >= 0.2, 0.574 < 0.6, 0.5 >= 0.5 (at the threshold is positive).
        assert_eq!(own.positives(&p, 0), [1, 3]);
        assert_eq!(own.uniform_threshold(), None);
        let none = OutputRule {
            activation: Activation::Sigmoid,
            thresholds: vec![1.0; 4],
        };
        assert!(none.positives(&p, 0).is_empty());
        // Softmax: the predicted class alone, whatever the thresholds say.
        assert_eq!(
            OutputRule {
                activation: Activation::Softmax,
                ..own
            }
            .positives(&p, 2),
            [2]
        );
    }

    #[test]
    fn names_are_the_serde_names() {
        for a in Activation::ALL {
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        }
        let rule: OutputRule = serde_json::from_str("{}").unwrap();
        assert_eq!(rule.activation, Activation::Softmax);
        assert_eq!(rule.threshold(7), DEFAULT_THRESHOLD);
    }
}
