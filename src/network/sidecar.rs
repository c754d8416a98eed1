//! What a model file does not say about itself: class names, preprocessing and how its outputs
//! are read, from the sidecar `<model>.json` or a labels file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::head::HeadItem;
use super::output::{Activation, OutputRule};
use crate::imaging::{NetworkWindow, Preprocessing};

/// Optional `<model>.json` beside a checkpoint: class names, preprocessing, the layers of a
/// head of several linear layers (which a state dict cannot tell), and for a multi-label model
/// its activation and per-class thresholds.
///
/// ```json
/// { "labels": ["normal", "lesion"],
///   "preprocessing": { "input_size": 224, "geometry": "stretch",
///                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225] },
///   "head": ["linear", "relu", "dropout", "linear"],
///   "activation": "sigmoid", "thresholds": [0.5, 0.62],
///   "window": { "center": -600, "width": 1500 } }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSidecar {
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub preprocessing: Option<Preprocessing>,
    /// The head's layers in the order the model runs them (see `network::head`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Vec<HeadItem>>,
    /// How the logits become probabilities: softmax when the sidecar says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// One threshold per class for sigmoid outputs (0.5 each when absent). torchxrayvision
    /// calls them operating points (`op_threshs`), so that name is read too.
    #[serde(default, alias = "op_threshs", skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<f32>>,
    /// The window the model was trained with, for DICOM and 16-bit images: `{"center": -600,
    /// "width": 1500}`, a preset's name, or `"minmax"` (also accepted inside `preprocessing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<NetworkWindow>,
}

/// Where a checkpoint's sidecar sits: `<model>.json` beside it.
pub(super) fn model_sidecar_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

pub(super) fn read_sidecar(path: &Path) -> Result<ModelSidecar, ModelError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Labels {
        file: file.clone(),
        reason: crate::describe_io_error(&e),
    })?;
    parse_sidecar(&text).map_err(|reason| ModelError::Labels { file, reason })
}

/// A model sidecar's text read, or why it is not one (the reason, without the file's name).
pub fn parse_sidecar(text: &str) -> Result<ModelSidecar, String> {
    serde_json::from_str(text).map_err(|e| format!("not a valid model sidecar: {e}"))
}

/// Reads class names: one per line, or a JSON array of strings.
pub fn read_labels(path: &Path) -> Result<Vec<String>, ModelError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Labels {
        file: file.clone(),
        reason: crate::describe_io_error(&e),
    })?;
    parse_labels(&text).map_err(|reason| ModelError::Labels { file, reason })
}

/// Class names from a labels file's text: one per line (blank lines skipped), or a JSON array
/// of strings.
pub fn parse_labels(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed)
            .map_err(|e| format!("not a JSON array of class names: {e}"));
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

pub(super) fn complete_labels(
    file: &str,
    labels: Vec<String>,
    classes: usize,
) -> Result<Vec<String>, ModelError> {
    if labels.is_empty() {
        return Ok((0..classes).map(|i| format!("class {i}")).collect());
    }
    if labels.len() != classes {
        return Err(ModelError::Labels {
            file: file.to_string(),
            reason: format!(
                "{} class names were given but the model has {classes} classes",
                labels.len()
            ),
        });
    }
    Ok(labels)
}

/// The sidecar's activation and thresholds, checked against the model's classes (`labels`,
/// already complete). A refusal names the sidecar beside `model`.
pub(super) fn output_rule(
    model: &str,
    sidecar: &ModelSidecar,
    labels: &[String],
) -> Result<OutputRule, ModelError> {
    let activation = sidecar.activation.unwrap_or_default();
    let Some(thresholds) = &sidecar.thresholds else {
        return Ok(OutputRule::new(activation, labels.len()));
    };
    let refuse = |reason: String| ModelError::Labels {
        file: model_sidecar_path(Path::new(model)).display().to_string(),
        reason,
    };
    if thresholds.len() != labels.len() {
        return Err(refuse(format!(
            "{} thresholds were given but the model has {} classes (one threshold per class)",
            thresholds.len(),
            labels.len()
        )));
    }
    if let Some((c, t)) = thresholds
        .iter()
        .enumerate()
        .find(|(_, t)| !(0.0..=1.0).contains(*t))
    {
        return Err(refuse(format!(
            "the threshold of {} (class {c}) is {t}: a threshold is a probability from 0 to 1",
            labels[c]
        )));
    }
    Ok(OutputRule {
        activation,
        thresholds: thresholds.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_one_per_line_or_json() {
        let dir = tempfile::tempdir().unwrap();
        let lines = dir.path().join("l.txt");
        std::fs::write(&lines, "normal\r\nlesion\n\n").unwrap();
        assert_eq!(read_labels(&lines).unwrap(), ["normal", "lesion"]);
        let json = dir.path().join("l.json");
        std::fs::write(&json, r#"["a", "b", "c"]"#).unwrap();
        assert_eq!(read_labels(&json).unwrap(), ["a", "b", "c"]);
        let err = complete_labels("m", vec!["a".into()], 2)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m: 1 class names were given but the model has 2 classes"
        );
        assert_eq!(
            complete_labels("m", vec![], 2).unwrap(),
            ["class 0", "class 1"]
        );
    }

    #[test]
    fn thresholds_are_one_probability_per_class() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let sidecar: ModelSidecar =
            serde_json::from_str(r#"{"activation": "sigmoid", "op_threshs": [0.5, 0.3, 0.7]}"#)
                .unwrap();
        let rule = output_rule("dir/m.pth", &sidecar, &labels).unwrap();
        assert_eq!(rule.activation, Activation::Sigmoid);
        assert_eq!(rule.thresholds, [0.5, 0.3, 0.7]);
        let silent = output_rule("m.pth", &ModelSidecar::default(), &labels).unwrap();
        assert_eq!(silent, OutputRule::new(Activation::Softmax, 3));

        let too_few = ModelSidecar {
            thresholds: Some(vec![0.5, 0.5]),
            ..sidecar.clone()
        };
        let err = output_rule("dir/m.pth", &too_few, &labels)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dir/m.json: 2 thresholds were given but the model has 3 classes (one threshold \
             per class)"
        );
        let outside = ModelSidecar {
            thresholds: Some(vec![0.5, f32::NAN, 0.5]),
            ..sidecar
        };
        let err = output_rule("m.pth", &outside, &labels)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m.json: the threshold of b (class 1) is NaN: a threshold is a probability from 0 to 1"
        );
        let unknown = serde_json::from_str::<ModelSidecar>(r#"{"activation": "relu"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("unknown variant `relu`, expected `softmax` or `sigmoid`"),
            "{unknown}"
        );
    }
}
