//! Which model the user asked for, with which overrides: the one place where both front ends
//! (the command line and the viewer) turn a request into a `Classifier`. The demo model is one
//! source among others, so the engine (`network`) never has to know that it exists.

use std::path::PathBuf;

use crate::demo;
use crate::imaging::{Geometry, NetworkWindow};
use crate::network::{Activation, Classifier, ModelError};

/// A checkpoint file (with an optional labels file), or the embedded demo model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    File {
        path: PathBuf,
        labels: Option<PathBuf>,
    },
    Demo,
}

/// A model to load, with the overrides of its sidecar's preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    pub source: ModelSource,
    /// The network's input size instead of the sidecar's.
    pub input_size: Option<u32>,
    /// How the image becomes the input, instead of the sidecar's.
    pub geometry: Option<Geometry>,
    /// The prefix of the DenseNet to use in a file holding several (`network::locate`).
    pub submodel: Option<String>,
    /// How the logits become probabilities, instead of the sidecar's (softmax when neither
    /// says).
    pub activation: Option<Activation>,
    /// The window the network's input is made with, instead of the sidecar's.
    pub window: Option<NetworkWindow>,
}

impl ModelRequest {
    pub fn demo() -> Self {
        Self {
            source: ModelSource::Demo,
            input_size: None,
            geometry: None,
            submodel: None,
            activation: None,
            window: None,
        }
    }

    /// A checkpoint file with its own sidecar, no overrides.
    pub fn file(path: PathBuf) -> Self {
        Self {
            source: ModelSource::File { path, labels: None },
            input_size: None,
            geometry: None,
            submodel: None,
            activation: None,
            window: None,
        }
    }

    /// The checkpoint's path, if the model comes from a file.
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.source {
            ModelSource::File { path, .. } => Some(path),
            ModelSource::Demo => None,
        }
    }

    /// The file name, or "the demo model".
    pub fn name(&self) -> String {
        match &self.source {
            ModelSource::File { path, .. } => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
            ModelSource::Demo => "the demo model".to_string(),
        }
    }

    /// Reads and validates the model, then applies the overrides.
    pub fn load(&self) -> Result<Classifier, ModelError> {
        let mut classifier = match &self.source {
            ModelSource::File { path, labels } => {
                Classifier::load_submodel(path, labels.as_deref(), self.submodel.as_deref())?
            }
            ModelSource::Demo => demo::demo_classifier()?,
        };
        if let Some(size) = self.input_size {
            classifier.preprocessing.input_size = size;
        }
        if let Some(geometry) = self.geometry {
            classifier.preprocessing.geometry = geometry;
        }
        if let Some(window) = &self.window {
            classifier.preprocessing.window = Some(window.clone());
        }
        if let Some(activation) = self.activation {
            classifier.set_activation(activation);
        }
        Ok(classifier)
    }
}
