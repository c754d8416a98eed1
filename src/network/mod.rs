//! The classifier: a DenseNet read from a checkpoint, validated strictly, with its class names
//! and preprocessing. Knows nothing of the GUI.

pub mod densenet;
pub mod fast;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, CheckpointError};
use crate::imaging::preprocess::Preprocessing;
pub use densenet::{DenseNet, DenseNetConfig, ForwardOutput, Stage};
pub use fast::FastDenseNet;

/// Why a model could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{file}: not a DenseNet checkpoint: {reason}")]
    NotDenseNet { file: String, reason: String },
    #[error("{file}: the tensors do not match a {architecture}: {details}")]
    Mismatch {
        file: String,
        architecture: String,
        details: String,
    },
    #[error("{file}: {reason}")]
    Labels { file: String, reason: String },
    #[error("{file}: cannot read the model: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}: {reason}")]
    NoModel { file: String, reason: String },
    #[error("{file}: the network failed: {0}", file = .1)]
    Network(candle_core::Error, String),
}

/// Where the model came from, for the provenance of every map drawn with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// The checkpoint's path, or `embedded:<name>` for the built-in demo model.
    pub file: String,
    pub sha256: String,
    pub architecture: String,
    pub config: DenseNetConfig,
    pub num_classes: usize,
}

/// Optional `<model>.json` beside a checkpoint: class names and preprocessing.
///
/// ```json
/// { "labels": ["normal", "lesion"],
///   "preprocessing": { "input_size": 224, "geometry": "stretch",
///                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225] } }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSidecar {
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub preprocessing: Option<Preprocessing>,
}

/// A loaded, validated classifier ready to run.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The differentiable network (training, gradient methods).
    pub net: DenseNet,
    /// The same weights arranged for the inference engine (`Classifier::forward`).
    pub engine: Arc<FastDenseNet>,
    pub info: ModelInfo,
    pub labels: Vec<String>,
    pub preprocessing: Preprocessing,
}

impl Classifier {
    /// Loads a checkpoint file, its sidecar `<model>.json` if present, and an optional labels file
    /// (which wins over the sidecar's labels).
    pub fn load(path: &Path, labels: Option<&Path>) -> Result<Self, ModelError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
            file: file.clone(),
            reason: crate::describe_io_error(&e),
        })?;
        let sidecar_path = path.with_extension("json");
        let sidecar = if sidecar_path.is_file() {
            Some(read_sidecar(&sidecar_path)?)
        } else {
            None
        };
        // The digest (for provenance) and the parse are independent: one core each.
        let (tensors, sha256) = rayon::join(
            || checkpoint::read_state_dict_from_bytes(&file, &bytes),
            || hex_sha256(&bytes),
        );
        let tensors = tensors?;
        // The file's bytes are no longer needed: free them before the networks are built.
        drop(bytes);
        Self::from_tensors(&file, sha256, tensors, sidecar, labels)
    }

    /// Loads a model held in memory (the embedded demo model).
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        sidecar: Option<ModelSidecar>,
    ) -> Result<Self, ModelError> {
        let tensors = checkpoint::read_state_dict_from_bytes(name, bytes)?;
        Self::from_tensors(name, hex_sha256(bytes), tensors, sidecar, None)
    }

    fn from_tensors(
        file: &str,
        sha256: String,
        tensors: Vec<(String, Tensor)>,
        sidecar: Option<ModelSidecar>,
        labels_file: Option<&Path>,
    ) -> Result<Self, ModelError> {
        let map: HashMap<String, Tensor> = tensors
            .into_iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        let config = infer_config(file, &map)?;
        validate(file, &config, &map)?;
        let engine = FastDenseNet::from_tensors(&config, &map)
            .map_err(|e| ModelError::Network(e, file.into()))?;
        let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
        let net = DenseNet::new(&config, vb).map_err(|e| ModelError::Network(e, file.into()))?;
        let sidecar = sidecar.unwrap_or_default();
        let labels = match labels_file {
            Some(p) => read_labels(p)?,
            None => sidecar.labels.unwrap_or_default(),
        };
        let labels = complete_labels(file, labels, config.num_classes)?;
        let info = ModelInfo {
            file: file.to_string(),
            sha256,
            architecture: config.architecture_name(),
            num_classes: config.num_classes,
            config,
        };
        Ok(Self {
            net,
            engine: Arc::new(engine),
            info,
            labels,
            preprocessing: sidecar.preprocessing.unwrap_or_default(),
        })
    }

    /// Inference forward pass through the engine: the logits and the final feature maps, as
    /// `DenseNet::forward` gives them (no gradient).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<ForwardOutput> {
        self.engine.forward(x)
    }

    /// Resolves a class given as an index or a name (case-insensitive).
    pub fn class_index(&self, class: &str) -> Option<usize> {
        if let Ok(i) = class.parse::<usize>() {
            return (i < self.labels.len()).then_some(i);
        }
        self.labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(class.trim()))
    }
}

/// Lower-case hex SHA-256 of some bytes.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_sidecar(path: &Path) -> Result<ModelSidecar, ModelError> {
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

fn complete_labels(
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

fn dims(map: &HashMap<String, Tensor>, key: &str) -> Option<Vec<usize>> {
    map.get(key).map(|t| t.dims().to_vec())
}

/// Reads the architecture off the tensors: the user never has to say "densenet121".
pub fn infer_config(
    file: &str,
    map: &HashMap<String, Tensor>,
) -> Result<DenseNetConfig, ModelError> {
    let not_densenet = |reason: String| ModelError::NotDenseNet {
        file: file.to_string(),
        reason,
    };
    let conv0 = dims(map, "features.conv0.weight");
    let classifier = dims(map, "classifier.weight");
    let (Some(conv0), Some(classifier)) = (conv0, classifier) else {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        let sample: Vec<&str> = keys.iter().take(4).map(|k| k.as_str()).collect();
        return Err(not_densenet(format!(
            "it has no features.conv0.weight / classifier.weight ({} tensors, e.g. {})",
            map.len(),
            if sample.is_empty() {
                "none".to_string()
            } else {
                sample.join(", ")
            }
        )));
    };
    let [init, 3, 7, 7] = conv0[..] else {
        return Err(not_densenet(format!(
            "features.conv0.weight has shape {conv0:?}, expected [C, 3, 7, 7]"
        )));
    };
    let [num_classes, _] = classifier[..] else {
        return Err(not_densenet(format!(
            "classifier.weight has shape {classifier:?}, expected [classes, features]"
        )));
    };
    let mut block_config = Vec::new();
    while map.contains_key(&format!(
        "features.denseblock{}.denselayer1.conv1.weight",
        block_config.len() + 1
    )) {
        let b = block_config.len() + 1;
        let mut layers = 0;
        while map.contains_key(&format!(
            "features.denseblock{b}.denselayer{}.conv1.weight",
            layers + 1
        )) {
            layers += 1;
        }
        block_config.push(layers);
    }
    let conv1 = dims(map, "features.denseblock1.denselayer1.conv1.weight");
    let conv2 = dims(map, "features.denseblock1.denselayer1.conv2.weight");
    let (Some(conv1), Some(conv2)) = (conv1, conv2) else {
        return Err(not_densenet("it has no dense blocks".to_string()));
    };
    let growth_rate = conv2.first().copied().unwrap_or(0);
    let inner = conv1.first().copied().unwrap_or(0);
    if growth_rate == 0 || inner == 0 || inner % growth_rate != 0 {
        return Err(not_densenet(format!(
            "the first dense layer's shapes ({conv1:?}, {conv2:?}) are not a DenseNet's"
        )));
    }
    Ok(DenseNetConfig {
        growth_rate,
        block_config,
        num_init_features: init,
        bn_size: inner / growth_rate,
        num_classes,
    })
}

/// Strict validation: every expected tensor present with its exact shape, nothing else.
/// A model is never run half-loaded.
pub fn validate(
    file: &str,
    config: &DenseNetConfig,
    map: &HashMap<String, Tensor>,
) -> Result<(), ModelError> {
    const SHOWN: usize = 5;
    let expected: BTreeMap<String, Vec<usize>> = config.expected_tensors().into_iter().collect();
    let mut missing = Vec::new();
    let mut shapes = Vec::new();
    for (key, shape) in &expected {
        match map.get(key) {
            None => missing.push(key.clone()),
            Some(t) if t.dims() != shape.as_slice() => {
                shapes.push(format!("{key} is {:?}, expected {shape:?}", t.dims()))
            }
            Some(_) => {}
        }
    }
    let mut unexpected: Vec<String> = map
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    unexpected.sort();
    let mut parts = Vec::new();
    for (what, list) in [
        ("missing", &missing),
        ("unexpected", &unexpected),
        ("wrong shape", &shapes),
    ] {
        if !list.is_empty() {
            let shown: Vec<&str> = list.iter().take(SHOWN).map(String::as_str).collect();
            let more = list.len().saturating_sub(SHOWN);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            parts.push(format!("{} {what}: {}{tail}", list.len(), shown.join(", ")));
        }
    }
    if parts.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Mismatch {
            file: file.to_string(),
            architecture: config.architecture_name(),
            details: parts.join("; "),
        })
    }
}

/// The checkpoint path a user gave, or the embedded demo model.
#[derive(Debug, Clone)]
pub enum ModelSource {
    File {
        path: PathBuf,
        labels: Option<PathBuf>,
    },
    Demo,
}

impl ModelSource {
    pub fn load(&self) -> Result<Classifier, ModelError> {
        match self {
            Self::File { path, labels } => Classifier::load(path, labels.as_deref()),
            Self::Demo => crate::demo::demo_classifier(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    /// A randomly initialised model's tensors, by name, as a checkpoint would hold them.
    fn tensors_of(config: &DenseNetConfig) -> HashMap<String, Tensor> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        DenseNet::new(config, vb).unwrap();
        varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    #[test]
    fn infers_every_torchvision_preset_and_custom_configs() {
        for config in [
            DenseNetConfig::densenet121(2),
            DenseNetConfig::densenet161(5),
            DenseNetConfig::densenet169(3),
            DenseNetConfig::densenet201(1000),
            DenseNetConfig {
                growth_rate: 4,
                block_config: vec![1, 2, 1],
                num_init_features: 8,
                bn_size: 3,
                num_classes: 2,
            },
        ] {
            let map = tensors_of(&config);
            assert_eq!(map.len(), config.expected_tensors().len());
            let inferred = infer_config("m.pth", &map).unwrap();
            assert_eq!(inferred, config);
            validate("m.pth", &inferred, &map).unwrap();
        }
        assert_eq!(
            DenseNetConfig::densenet161(5).architecture_name(),
            "densenet161"
        );
    }

    #[test]
    fn validation_names_missing_unexpected_and_misshapen_tensors() {
        let config = DenseNetConfig {
            growth_rate: 4,
            block_config: vec![1, 2, 1],
            num_init_features: 8,
            bn_size: 3,
            num_classes: 2,
        };
        let mut map = tensors_of(&config);
        map.remove("features.norm5.running_var");
        map.insert(
            "extra.weight".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        map.insert(
            "features.norm0.bias".into(),
            Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = validate("m.pth", &config, &map).unwrap_err().to_string();
        assert!(err.starts_with("m.pth: the tensors do not match"), "{err}");
        assert!(
            err.contains("1 missing: features.norm5.running_var"),
            "{err}"
        );
        assert!(err.contains("1 unexpected: extra.weight"), "{err}");
        assert!(
            err.contains("features.norm0.bias is [7], expected [8]"),
            "{err}"
        );
    }

    #[test]
    fn a_resnet_is_not_a_densenet() {
        let mut map = HashMap::new();
        for k in ["conv1.weight", "fc.weight"] {
            map.insert(
                k.to_string(),
                Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
            );
        }
        let err = infer_config("r.pth", &map).unwrap_err().to_string();
        assert!(err.starts_with("r.pth: not a DenseNet checkpoint"), "{err}");
        assert!(err.contains("conv1.weight"), "{err}");
    }

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
