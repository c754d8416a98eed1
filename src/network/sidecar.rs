//! What a model file does not say about itself: class names and preprocessing, from the sidecar
//! `<model>.json` or a labels file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::head::HeadItem;
use crate::imaging::Preprocessing;

/// Optional `<model>.json` beside a checkpoint: class names, preprocessing, and the layers of a
/// head of several linear layers (which a state dict cannot tell).
///
/// ```json
/// { "labels": ["normal", "lesion"],
///   "preprocessing": { "input_size": 224, "geometry": "stretch",
///                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225] },
///   "head": ["linear", "relu", "dropout", "linear"] }
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
}

pub(super) fn read_sidecar(path: &Path) -> Result<ModelSidecar, ModelError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Labels {
        file: file.clone(),
        reason: crate::describe_io_error(&e),
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Labels {
        file,
        reason: format!("not a valid model sidecar: {e}"),
    })
}

/// Reads class names: one per line, or a JSON array of strings.
pub fn read_labels(path: &Path) -> Result<Vec<String>, ModelError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Labels {
        file: file.clone(),
        reason: crate::describe_io_error(&e),
    })?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| ModelError::Labels {
            file,
            reason: format!("not a JSON array of class names: {e}"),
        });
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
}
