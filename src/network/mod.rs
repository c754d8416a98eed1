//! The classifier: a DenseNet read from a checkpoint, validated strictly, with its class names
//! and preprocessing. Knows nothing of the GUI.

mod architecture;
pub mod config;
pub mod differentiable;
pub mod inference;
pub mod output;
mod sidecar;
#[cfg(test)]
pub(crate) mod test_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, CheckpointError};
use crate::imaging::preprocess::Preprocessing;
pub use architecture::{infer_config, validate};
pub use config::{DenseNetConfig, ForwardOutput, Stage};
pub use differentiable::DifferentiableDenseNet;
pub use inference::InferenceEngine;
pub use output::{Activation, OutputRule, softmax};
pub use sidecar::{ModelSidecar, read_labels};
use sidecar::{complete_labels, model_sidecar_path, output_rule, read_sidecar};

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
    /// How the probabilities were computed from the logits (`"activation"`) and each class's
    /// threshold (`"thresholds"`), at the top level of the model's record.
    #[serde(flatten)]
    pub output: OutputRule,
}

/// A loaded, validated classifier ready to run.
///
/// It holds the weights twice: arranged for the inference engine, which `forward` runs (the
/// only forward pass a caller can reach), and as candle's differentiable network, which only
/// the gradient methods use (`crate::explain::methods`).
#[derive(Debug, Clone)]
pub struct Classifier {
    differentiable: DifferentiableDenseNet,
    engine: Arc<InferenceEngine>,
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
        let sidecar_path = model_sidecar_path(path);
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
        let engine = InferenceEngine::from_tensors(&config, &map)
            .map_err(|e| ModelError::Network(e, file.into()))?;
        let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
        let differentiable = DifferentiableDenseNet::new(&config, vb)
            .map_err(|e| ModelError::Network(e, file.into()))?;
        let mut sidecar = sidecar.unwrap_or_default();
        let labels = match labels_file {
            Some(p) => read_labels(p)?,
            None => sidecar.labels.take().unwrap_or_default(),
        };
        let labels = complete_labels(file, labels, config.num_classes)?;
        let output = output_rule(file, &sidecar, &labels)?;
        let info = ModelInfo {
            file: file.to_string(),
            sha256,
            architecture: config.architecture_name(),
            num_classes: config.num_classes,
            config,
            output,
        };
        Ok(Self {
            differentiable,
            engine: Arc::new(engine),
            info,
            labels,
            preprocessing: sidecar.preprocessing.unwrap_or_default(),
        })
    }

    /// Inference forward pass through the engine: the logits and the final feature maps
    /// (no gradient).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<ForwardOutput> {
        self.engine.forward(x)
    }

    /// The differentiable network, for the gradient methods only.
    pub(crate) fn differentiable(&self) -> &DifferentiableDenseNet {
        &self.differentiable
    }

    /// How the logits become probabilities and findings.
    pub fn output(&self) -> &OutputRule {
        &self.info.output
    }

    /// Reads the logits with `activation` instead of what the sidecar said (the thresholds
    /// stay).
    pub fn set_activation(&mut self, activation: Activation) {
        self.info.output.activation = activation;
    }

    pub fn config(&self) -> &DenseNetConfig {
        &self.info.config
    }

    /// The stages a map can be computed at, in network order.
    pub fn stages(&self) -> Vec<Stage> {
        self.info.config.stages()
    }

    /// The classifier's weight `[num_classes, num_features]` and bias `[num_classes]`: CAM's
    /// weights.
    pub fn head(&self) -> (&Tensor, Option<&Tensor>) {
        self.differentiable.classifier()
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
