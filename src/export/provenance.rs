//! How an overlay was made, written beside it (the JSON sidecar) and into it (PNG text chunks).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::explain::{Analysis, ClassActivationMap, Method, Normalisation, Stage};
use crate::imaging::dicom::DicomInfo;
use crate::imaging::{DisplayWindow, NetworkWindow, Preprocessing, Region, SourceImage};
use crate::network::{Activation, Classifier, ModelInfo};
use crate::render::{Annotation, Colormap, OverlayStyle};

/// Everything needed to know how an overlay was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    pub camview_version: String,
    pub image: ImageRecord,
    pub model: ModelInfo,
    pub labels: Vec<String>,
    pub class: ClassRecord,
    /// The class with the largest logit.
    pub predicted: ClassRecord,
    /// The positive findings (`Analysis::positives`): under sigmoid every class at or above its
    /// threshold, maybe none; under softmax the predicted class. How the probabilities were
    /// computed, and the thresholds, are in `model` (`activation`, `thresholds`).
    #[serde(default)]
    pub positives: Vec<ClassRecord>,
    pub method: Method,
    /// The layer the map explains (older sidecars, CAM only, have none: norm5).
    #[serde(default)]
    pub layer: Stage,
    /// Score-CAM that weighed only this many of the layer's most active channels (absent:
    /// every channel, or another method; sidecars older than it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_cam_most_active: Option<usize>,
    pub opacity: f32,
    pub colormap: Colormap,
    pub threshold: f32,
    pub normalisation: Normalisation,
    /// The raw map values drawn as the colour bar's two ends.
    pub map_range: (f32, f32),
    /// Where the network's input sits on the image.
    pub region: Region,
    /// How the image became the network's input (absent in provenance older than it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
    /// The viewer's marks burnt into the overlay, in image pixel coordinates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    /// The caption band and colour bar drawn under the overlay (absent in provenance older
    /// than this record, and in records of no saved image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decorations: Option<DecorationRecord>,
}

/// What was drawn under an overlay besides the image and its heat map.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DecorationRecord {
    pub caption: bool,
    pub colour_bar: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    pub file: String,
    pub width: u32,
    pub height: u32,
    #[serde(flatten)]
    pub details: ImageDetails,
}

/// How much of a DICOM file's identity an output carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvenanceDetail {
    /// No patient-identifying attribute and no UID (the default).
    #[default]
    Minimal,
    /// Also the Study, Series and SOP Instance UIDs, to link a result back to its source.
    Full,
}

impl ProvenanceDetail {
    pub const ALL: [Self; 2] = [Self::Minimal, Self::Full];

    pub fn name(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Full => "full",
        }
    }
}

/// What an output says about its source image beyond its name and size: the file's SHA-256,
/// the safe DICOM attributes (never patient data: `DicomInfo`), and the windows. Shared by the
/// overlay sidecars and `predict`'s records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dicom: Option<DicomInfo>,
    /// Study, Series and SOP Instance UIDs, only with `ProvenanceDetail::Full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uids: Option<UidRecord>,
    /// The window the network's 8-bit input was made with (images with more than 8 bits of
    /// gray only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_window: Option<String>,
    /// The window the image under the overlay was shown with (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_window: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UidRecord {
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
}

impl ImageRecord {
    /// The record of `image`, read from `file` when it has one, as an output's provenance
    /// names it (`ImageDetails::of` for the rest).
    pub fn of(
        image: &SourceImage,
        file: Option<&Path>,
        network_window: Option<&NetworkWindow>,
        display: Option<&DisplayWindow>,
        detail: ProvenanceDetail,
    ) -> Self {
        Self {
            file: file.map_or_else(|| image.name.clone(), |p| p.display().to_string()),
            width: image.width(),
            height: image.height(),
            details: ImageDetails::of(image, network_window, display, detail),
        }
    }
}

impl ImageDetails {
    /// The details of `image` analysed through `network_window` and shown through `display`.
    pub fn of(
        image: &SourceImage,
        network_window: Option<&NetworkWindow>,
        display: Option<&DisplayWindow>,
        detail: ProvenanceDetail,
    ) -> Self {
        let uids = image
            .dicom
            .as_ref()
            .filter(|_| detail == ProvenanceDetail::Full)
            .map(|d| UidRecord {
                study_instance_uid: d.identifiers.study.clone(),
                series_instance_uid: d.identifiers.series.clone(),
                sop_instance_uid: d.identifiers.sop_instance.clone(),
            });
        Self {
            sha256: image.sha256.clone(),
            dicom: image.dicom.as_deref().cloned(),
            uids,
            network_window: image.network_window_name(network_window),
            display_window: image.display_window_name(display),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassRecord {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

impl Provenance {
    /// Reads a sidecar, as `batch --resume` does. A record that would not read back the same
    /// after being written is refused: serde_json reads a number beyond f32's range (say a
    /// threshold of 1e123) into an f32 as infinity, and writes infinity as `null`, which it
    /// then cannot read. camview writes no such record (found by the `overlay_sidecar` fuzz
    /// target).
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        let record: Self = serde_json::from_slice(bytes).ok()?;
        let written = serde_json::to_vec(&record).ok()?;
        let again: Self = serde_json::from_slice(&written).ok()?;
        (again == record).then_some(record)
    }

    pub fn new(
        image: ImageRecord,
        classifier: &Classifier,
        analysis: &Analysis,
        map: &ClassActivationMap,
        style: &OverlayStyle,
    ) -> Self {
        let class = map.class;
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
            positives: analysis.positives.iter().map(|&c| record(c)).collect(),
            method: map.method,
            layer: map.layer,
            score_cam_most_active: map.score_cam_most_active,
            opacity: style.opacity,
            colormap: style.colormap,
            threshold: style.threshold,
            normalisation: style.normalisation,
            map_range: analysis.range(map, style.normalisation),
            region: analysis.region,
            preprocessing: Some(classifier.preprocessing.clone()),
            logits: analysis.logits.clone(),
            probabilities: analysis.probabilities.clone(),
            annotations: Vec::new(),
            decorations: None,
        }
    }

    /// What the network found, in a few words. Under softmax the predicted class; under
    /// sigmoid the positive findings by name ("positive: none" when no class reaches its
    /// threshold), never one "predicted" class, since several findings may be present.
    pub fn findings(&self) -> String {
        match self.model.output.activation {
            Activation::Softmax => format!(
                "predicted: {} ({:.1}%)",
                self.predicted.label,
                100.0 * self.predicted.probability
            ),
            Activation::Sigmoid if self.positives.is_empty() => "positive: none".to_string(),
            Activation::Sigmoid => {
                let mut positives: Vec<&ClassRecord> = self.positives.iter().collect();
                positives.sort_by(|a, b| b.probability.total_cmp(&a.probability));
                let names: Vec<&str> = positives.iter().map(|r| r.label.as_str()).collect();
                format!("positive: {}", names.join(", "))
            }
        }
    }

    /// The caption band's lines: what was seen (`subject_line`), then how (the method and
    /// layer, then `model_line`).
    pub fn caption_lines(&self) -> Vec<String> {
        vec![
            self.subject_line(),
            format!(
                "{} at {}  |  {}",
                self.method.title(),
                self.layer,
                self.model_line()
            ),
        ]
    }

    /// The image (and frame), the class drawn with its probability, and the findings.
    pub fn subject_line(&self) -> String {
        let mut image = Path::new(&self.image.file)
            .file_name()
            .map_or(self.image.file.clone(), |n| {
                n.to_string_lossy().into_owned()
            });
        if let Some(d) = self.image.details.dicom.as_ref().filter(|d| d.frames > 1) {
            image.push_str(&format!(" frame {}/{}", d.frame, d.frames));
        }
        format!(
            "{image}  |  {}: {:.1}%{}  |  {}",
            self.class.label,
            100.0 * self.class.probability,
            match self.model.output.activation {
                Activation::Softmax => "",
                Activation::Sigmoid => " (sigmoid)",
            },
            self.findings()
        )
    }

    /// The model's file name and architecture.
    pub fn model_line(&self) -> String {
        let model = Path::new(&self.model.file)
            .file_name()
            .map_or(self.model.file.clone(), |n| {
                n.to_string_lossy().into_owned()
            });
        format!("{model}  |  {}", self.model.architecture)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::explain::analyse;

    /// The sidecar the fuzzer found (a threshold of 1e123: infinity as an f32) is read by
    /// serde, but refused by `from_json`; the same record with a threshold in range is read.
    #[test]
    fn a_sidecar_with_a_number_beyond_f32_is_refused() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sidecars/threshold_1e123.json");
        let bytes = std::fs::read(path).unwrap();
        let read: Provenance = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read.model.output.thresholds[2], f32::INFINITY);
        assert!(Provenance::from_json(&bytes).is_none());
        // The threshold is written out in 124 digits.
        let mut text = String::from_utf8(bytes).unwrap();
        let start = text.find("1111111111").unwrap();
        let end = start + text[start..].find('\n').unwrap();
        text.replace_range(start..end, "0.25");
        let record = Provenance::from_json(text.as_bytes()).unwrap();
        assert_eq!(record.model.output.thresholds[2], 0.25);
    }

    /// The caption's first line for `image` analysed by the multi-label fixture, after `adjust`.
    fn first_caption_line(adjust: impl Fn(&mut Classifier), class: usize) -> String {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let model = fixtures.join("models/multilabel/chest5.pth");
        let mut classifier = Classifier::load(&model, None).unwrap();
        adjust(&mut classifier);
        let image = crate::imaging::open_image(&fixtures.join("images/gray8.png")).unwrap();
        let analysis = analyse(&classifier, &image, &classifier.preprocessing).unwrap();
        let record = ImageRecord {
            file: "scans/gray8.png".into(),
            details: ImageDetails::default(),
            width: 80,
            height: 60,
        };
        let provenance = Provenance::new(
            record,
            &classifier,
            &analysis,
            analysis.map(class).unwrap(),
            &OverlayStyle::default(),
        );
        provenance.caption_lines()[0].clone()
    }

    #[test]
    fn the_caption_names_the_positive_findings_under_sigmoid_and_the_predicted_class_otherwise() {
        let line = first_caption_line(|_| {}, 4);
        assert!(
            line.starts_with("gray8.png  |  Nodule: ") && line.contains("% (sigmoid)  |  "),
            "{line}"
        );
        assert!(
            line.ends_with("|  positive: Atelectasis, Effusion"),
            "{line}"
        );
        let none = first_caption_line(|c| c.info.output.thresholds = vec![1.0; 5], 0);
        assert!(none.ends_with("% (sigmoid)  |  positive: none"), "{none}");
        let softmax = first_caption_line(|c| c.set_activation(Activation::Softmax), 4);
        assert!(softmax.starts_with("gray8.png  |  Nodule: "), "{softmax}");
        assert!(!softmax.contains("sigmoid"), "{softmax}");
        assert!(
            softmax.contains("%  |  predicted: Atelectasis ("),
            "{softmax}"
        );
    }
}
