//! How an overlay was made, written beside it (the JSON sidecar) and into it (PNG text chunks).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::explain::{Analysis, Method, Normalisation, Stage};
use crate::imaging::Region;
use crate::network::{Classifier, ModelInfo};
use crate::render::{Annotation, Colormap, OverlayStyle};

/// Everything needed to know how an overlay was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    pub camview_version: String,
    pub image: ImageRecord,
    pub model: ModelInfo,
    pub labels: Vec<String>,
    pub class: ClassRecord,
    pub predicted: ClassRecord,
    pub method: Method,
    /// The layer the map explains (older sidecars, CAM only, have none: norm5).
    #[serde(default)]
    pub layer: Stage,
    pub opacity: f32,
    pub colormap: Colormap,
    pub threshold: f32,
    pub normalisation: Normalisation,
    /// The raw map values drawn as the colour bar's two ends.
    pub map_range: (f32, f32),
    /// Where the network's input sits on the image.
    pub region: Region,
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
    /// The viewer's marks burnt into the overlay, in image pixel coordinates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    pub file: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassRecord {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

impl Provenance {
    pub fn new(
        image: ImageRecord,
        classifier: &Classifier,
        analysis: &Analysis,
        class: usize,
        style: &OverlayStyle,
    ) -> Self {
        let record = |i: usize| ClassRecord {
            index: i,
            label: classifier.labels[i].clone(),
            probability: analysis.probabilities[i],
        };
        Self {
            camview_version: env!("CARGO_PKG_VERSION").to_string(),
            image,
            model: classifier.info.clone(),
            labels: classifier.labels.clone(),
            class: record(class),
            predicted: record(analysis.predicted),
            method: analysis.maps[class].method,
            layer: analysis.maps[class].layer,
            opacity: style.opacity,
            colormap: style.colormap,
            threshold: style.threshold,
            normalisation: style.normalisation,
            map_range: analysis.range(class, style.normalisation),
            region: analysis.region,
            logits: analysis.logits.clone(),
            probabilities: analysis.probabilities.clone(),
            annotations: Vec::new(),
        }
    }

    /// The caption band's lines.
    pub fn caption_lines(&self) -> Vec<String> {
        let model = Path::new(&self.model.file)
            .file_name()
            .map_or(self.model.file.clone(), |n| {
                n.to_string_lossy().into_owned()
            });
        let image = Path::new(&self.image.file)
            .file_name()
            .map_or(self.image.file.clone(), |n| {
                n.to_string_lossy().into_owned()
            });
        vec![
            format!(
                "{image}  |  {}: {:.1}%  |  predicted: {} ({:.1}%)",
                self.class.label,
                100.0 * self.class.probability,
                self.predicted.label,
                100.0 * self.predicted.probability
            ),
            format!(
                "{} at {}  |  {}  |  {}",
                self.method.title(),
                self.layer,
                model,
                self.model.architecture
            ),
        ]
    }
}
