//! The classifier: a DenseNet read from a checkpoint, validated strictly, with its class names
//! and preprocessing. Knows nothing of the GUI.

mod architecture;
pub mod config;
pub mod differentiable;
mod head;
pub mod inference;
mod locate;
pub mod output;
pub mod randomise;
mod sidecar;
#[cfg(test)]
pub(crate) mod test_support;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, CheckpointError};
use crate::imaging::preprocess::{PreprocessError, Preprocessing};
pub use architecture::{infer_config, validate};
pub use config::{DenseNetConfig, ForwardOutput, Stage};
pub use differentiable::DifferentiableDenseNet;
pub use head::{Head, HeadItem, HeadLayer};
pub use inference::InferenceEngine;
pub use locate::{LocatedNetwork, locate, place};
pub use output::{Activation, OutputRule, softmax};
pub use sidecar::{ModelSidecar, parse_labels, parse_sidecar, read_labels};
use sidecar::{complete_labels, model_sidecar_path, output_rule, read_sidecar};

/// Why a model could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{file}: not a DenseNet checkpoint: {reason}")]
    NotDenseNet { file: String, reason: String },
    #[error(
        "{file}: the network takes {channels} input channels (features.conv0.weight is \
         [{init}, {channels}, 7, 7]); camview feeds a network 1 (grayscale) or 3 (RGB) channels"
    )]
    InputChannels {
        file: String,
        init: usize,
        channels: usize,
    },
    /// The model's preprocessing (its sidecar's, or the default) cannot feed this network.
    #[error("{file}: {reason}")]
    Preprocessing {
        file: String,
        reason: crate::imaging::PreprocessError,
    },
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
    /// The DenseNet asked for is not in the file.
    #[error("{file}: {reason}")]
    Submodel { file: String, reason: String },
    /// The head cannot be read, or needs the sidecar's statement of its layers.
    #[error("{file}: {reason}")]
    Head { file: String, reason: String },
    /// A network of images that are not 2-D (a 3-D MONAI DenseNet).
    #[error("{file}: {reason}")]
    Spatial { file: String, reason: String },
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
    /// The prefix of the network's keys in the file (`""`: at the top level).
    #[serde(default)]
    pub prefix: String,
    /// The prefixes of the file's other DenseNets, which were not used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_networks: Vec<String>,
    /// The layers after global average pooling (empty in provenance older than heads).
    #[serde(default)]
    pub head: Head,
    /// How the probabilities were computed from the logits (`"activation"`) and each class's
    /// threshold (`"thresholds"`), at the top level of the model's record.
    #[serde(flatten)]
    pub output: OutputRule,
}

impl ModelInfo {
    /// A line for the user when the file holds other DenseNets than the one used.
    pub fn other_networks_note(&self) -> Option<String> {
        if self.other_networks.is_empty() {
            return None;
        }
        let others: Vec<String> = self.other_networks.iter().map(|p| place(p)).collect();
        Some(format!(
            "{} holds {} DenseNets: used the one {}; the others are {}",
            self.file,
            self.other_networks.len() + 1,
            place(&self.prefix),
            others.join(", ")
        ))
    }

    /// Whether CAM is defined for this model: its head is one linear map of the pooled
    /// features (`Head::is_one_linear_map`).
    pub fn cam_is_exact(&self) -> bool {
        self.head.is_one_linear_map()
    }
}

/// A loaded, validated classifier ready to run.
///
/// Its weights are arranged for the inference engine, which runs every forward pass and the
/// gradient methods' backward passes; candle's differentiable network is for training only.
#[derive(Debug, Clone)]
pub struct Classifier {
    engine: Arc<InferenceEngine>,
    /// The validated tensors under their canonical names, as read (the sanity checks redraw
    /// some of them: `randomise`).
    weights: Arc<std::collections::HashMap<String, Tensor>>,
    /// CAM's weights, when the head is one linear map: `[classes, features]` and `[classes]`.
    cam: Option<(Tensor, Option<Tensor>)>,
    pub info: ModelInfo,
    pub labels: Vec<String>,
    /// As it feeds this network: one mean and std per input channel.
    pub preprocessing: Preprocessing,
}

impl Classifier {
    /// Loads a checkpoint file, its sidecar `<model>.json` if present, and an optional labels file
    /// (which wins over the sidecar's labels).
    pub fn load(path: &Path, labels: Option<&Path>) -> Result<Self, ModelError> {
        Self::load_submodel(path, labels, None)
    }

    /// `load`, with the prefix of the DenseNet to use when the file holds several (`None`:
    /// the rule of `network::locate`).
    pub fn load_submodel(
        path: &Path,
        labels: Option<&Path>,
        submodel: Option<&str>,
    ) -> Result<Self, ModelError> {
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
        let source = Source {
            file: &file,
            sha256,
            submodel,
        };
        Self::from_tensors(source, tensors, sidecar, labels)
    }

    /// Loads a model held in memory (the embedded demo model).
    pub fn from_bytes(
        name: &str,
        bytes: &[u8],
        sidecar: Option<ModelSidecar>,
    ) -> Result<Self, ModelError> {
        let tensors = checkpoint::read_state_dict_from_bytes(name, bytes)?;
        let source = Source {
            file: name,
            sha256: hex_sha256(bytes),
            submodel: None,
        };
        Self::from_tensors(source, tensors, sidecar, None)
    }

    fn from_tensors(
        source: Source,
        tensors: Vec<(String, Tensor)>,
        sidecar: Option<ModelSidecar>,
        labels_file: Option<&Path>,
    ) -> Result<Self, ModelError> {
        let file = source.file;
        let mut sidecar = sidecar.unwrap_or_default();
        let tensors: Vec<(String, Tensor)> = tensors
            .into_iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .collect();
        let located = locate(file, tensors, source.submodel, sidecar.head.as_deref())?;
        let subject = located.subject(file);
        validate(&subject, &located.config, &located.head, &located.tensors)?;
        let LocatedNetwork {
            tensors: map,
            head,
            config,
            prefix,
            others,
        } = located;
        let engine = InferenceEngine::with_head(&config, &head, &map)
            .map_err(|e| ModelError::Network(e, file.into()))?;
        let cam = cam_weights(&head, &map).map_err(|e| ModelError::Network(e, file.into()))?;
        let labels = match labels_file {
            Some(p) => read_labels(p)?,
            None => sidecar.labels.take().unwrap_or_default(),
        };
        let labels = complete_labels(file, labels, config.num_classes)?;
        let output = output_rule(file, &sidecar, &labels)?;
        let mut preprocessing = sidecar.preprocessing.take().unwrap_or_default();
        if let Some(window) = sidecar.window.take() {
            if preprocessing.window.is_some() {
                return Err(ModelError::Preprocessing {
                    file: file.to_string(),
                    reason: PreprocessError::Invalid(
                        "the window is given twice (at the top and in preprocessing)".to_string(),
                    ),
                });
            }
            preprocessing.window = Some(window);
        }
        let preprocessing = preprocessing
            .for_channels(config.in_channels)
            .map_err(|reason| ModelError::Preprocessing {
                file: file.to_string(),
                reason,
            })?;
        let info = ModelInfo {
            file: file.to_string(),
            sha256: source.sha256,
            architecture: config.architecture_name(),
            num_classes: config.num_classes,
            config,
            prefix,
            other_networks: others,
            head,
            output,
        };
        Ok(Self {
            engine: Arc::new(engine),
            weights: Arc::new(map),
            cam,
            info,
            labels,
            preprocessing,
        })
    }

    /// Inference forward pass through the engine: the logits and the final feature maps
    /// (no gradient).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<ForwardOutput> {
        self.engine.forward(x)
    }

    /// The inference engine, for the gradient methods' traced forward and backward passes.
    pub(crate) fn engine(&self) -> &InferenceEngine {
        &self.engine
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

    /// CAM's weights: the classifier's weight `[num_classes, num_features]` and bias
    /// `[num_classes]`, when the head is one linear map (`ModelInfo::cam_is_exact`); `None`
    /// for a head of several layers, for which CAM is not defined.
    pub fn cam_weights(&self) -> Option<(&Tensor, Option<&Tensor>)> {
        self.cam
            .as_ref()
            .map(|(weight, bias)| (weight, bias.as_ref()))
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

/// The weight and bias of a head that is one linear map (`classifier`, see
/// `Head::canonical_key`), as f32; `None` for any other head.
fn cam_weights(
    head: &Head,
    map: &std::collections::HashMap<String, Tensor>,
) -> candle_core::Result<Option<(Tensor, Option<Tensor>)>> {
    if !head.is_one_linear_map() {
        return Ok(None);
    }
    let f32 = |key: &str| map.get(key).map(|t| t.to_dtype(DType::F32)).transpose();
    let weight = f32("classifier.weight")?
        .ok_or_else(|| candle_core::Error::Msg("missing tensor classifier.weight".into()))?;
    Ok(Some((weight, f32("classifier.bias")?)))
}

/// Where a model's tensors came from.
struct Source<'a> {
    /// The checkpoint's path, or the name of a model held in memory.
    file: &'a str,
    sha256: String,
    /// The prefix of the DenseNet asked for.
    submodel: Option<&'a str>,
}

/// Lower-case hex SHA-256 of some bytes.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
