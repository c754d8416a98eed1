//! The one analysis path. A forward pass (`analyse`) gives an `Analysis` with every class's CAM;
//! the chosen method's maps (`methods::explain_maps`) then replace them (`Analysis::showing`).
//! `explain_image` does both and is what `render`, `batch`, `predict --map` and `faithfulness`
//! call (`explain_image_each`: several methods from one forward pass, `render --method all`);
//! the viewer runs the same two steps as separate jobs so it can cache each, and saves through
//! the same composition (`crate::export::OverlayRequest`).

use std::sync::Arc;

use candle_core::Tensor;

use super::methods::{self, Classes, ExplainError, LayerActivations, NoProgress, Progress};
use super::{ClassActivationMap, MapChoice, Method, Normalisation, Stage};
use crate::imaging::{PreprocessError, Preprocessing, Region, SourceImage};
use crate::network::{Activation, Classifier};

/// Why an image could not be analysed. Every message names the image.
///
/// Each message is whole (it holds its cause's text), so the cause is not also reported as a
/// `source`, which would print it twice in a chain.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{file}: {reason}")]
    Preprocess {
        file: String,
        reason: PreprocessError,
    },
    #[error("{file}: the network failed: {reason}")]
    Network {
        file: String,
        reason: candle_core::Error,
    },
    #[error("{file}: cannot compute {method} at {layer}: {reason}")]
    Map {
        file: String,
        method: Method,
        layer: Stage,
        reason: ExplainError,
    },
    #[error(
        "{file}: the network's output is not a number for {count} of its {classes} classes \
         (NaN or infinite): the model {model} is damaged (NaN weights, as a training run that \
         diverged leaves them)"
    )]
    NotFinite {
        file: String,
        model: String,
        count: usize,
        classes: usize,
    },
}

/// Everything one forward pass gives, cached so that class, opacity and colormap changes never
/// run the network again.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub logits: Vec<f32>,
    /// Each class's probability under `activation`: a distribution under softmax, independent
    /// findings under sigmoid.
    pub probabilities: Vec<f32>,
    pub activation: Activation,
    /// The class with the largest logit: what is drawn when no class is asked for.
    pub predicted: usize,
    /// The positive findings in class order (`OutputRule::positives`): under sigmoid every
    /// class at or above its threshold (maybe none, maybe several); under softmax the
    /// predicted class alone.
    pub positives: Vec<usize>,
    /// Raw maps in class order, each saying its class, method and layer (look one up with
    /// `map`): straight after the forward pass, every class's by `forward_pass_choice` (CAM,
    /// or Grad-CAM at norm5 for a head CAM is not defined for); or the chosen method's
    /// (`showing`), of the classes a front end asked for (`methods::Classes`).
    pub maps: Vec<ClassActivationMap>,
    /// Where the network's input sits on the original image.
    pub region: Region,
    /// The network saw the image transposed (`Preprocessing::transpose`); the maps are turned
    /// back into the image's orientation.
    pub transposed: bool,
    /// The network's input size, `(width, height)`.
    pub input_size: (u32, u32),
    /// `A`, `[num_features, h, w]`, kept for other methods.
    pub features: Tensor,
    /// The network's input `[1, C, H, W]` (`C` its input channels), kept for the methods and
    /// scores that run the network again (Score-CAM, faithfulness, other layers).
    pub input: Tensor,
}

impl Analysis {
    /// Classes by decreasing probability.
    pub fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.probabilities.len()).collect();
        order.sort_by(|&a, &b| self.probabilities[b].total_cmp(&self.probabilities[a]));
        order
    }

    /// Whether these are `choice`'s maps as the forward pass gave them (CAM or Grad-CAM at
    /// norm5, which have no options), so nothing needs computing.
    pub fn shows(&self, choice: &MapChoice) -> bool {
        matches!(choice.method, Method::Cam | Method::GradCam)
            && self
                .maps
                .first()
                .is_some_and(|m| m.method == choice.method && m.layer == choice.layer)
    }

    /// Whether `class` is a positive finding.
    pub fn is_positive(&self, class: usize) -> bool {
        self.positives.contains(&class)
    }

    /// The same forward pass showing `maps` (a method's, at some layer) instead of its own.
    pub fn showing(&self, maps: Vec<ClassActivationMap>) -> Self {
        Self {
            maps,
            ..self.clone()
        }
    }

    /// `class`'s map, when it has been computed.
    pub fn map(&self, class: usize) -> Option<&ClassActivationMap> {
        self.maps.iter().find(|m| m.class == class)
    }

    /// Whether every class's map is here (what a shared normalisation needs).
    pub fn has_every_map(&self) -> bool {
        self.maps.len() == self.logits.len()
    }

    /// The value range that maps `map` (one of this analysis's) to `[0, 1]` under
    /// `normalisation`: its own, or shared by the maps of every class (which the front ends
    /// compute whenever the normalisation is shared).
    pub fn range(&self, map: &ClassActivationMap, normalisation: Normalisation) -> (f32, f32) {
        match normalisation {
            Normalisation::PerMap => map.min_max(),
            Normalisation::Shared => self
                .maps
                .iter()
                .map(ClassActivationMap::min_max)
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (a, b)| {
                    (lo.min(a), hi.max(b))
                }),
        }
    }
}

/// `M[c] = sum_k W[c, k] A[k]` for every class at once: `[classes, h, w]`.
pub fn class_activation_maps(features: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    let (k, h, w) = features.dims3()?;
    let flat = features.reshape((k, h * w))?;
    weight.matmul(&flat)?.reshape(((), h, w))
}

/// The maps the forward pass comes with: CAM at norm5 when the head is one linear map;
/// otherwise Grad-CAM at norm5 (CAM is not defined for such a head, and the gradient to norm5
/// crosses only the head, so it costs next to nothing).
pub fn forward_pass_choice(classifier: &Classifier) -> MapChoice {
    let method = if classifier.info.cam_is_exact() {
        Method::Cam
    } else {
        Method::GradCam
    };
    MapChoice::new(method, Stage::Norm5)
}

/// Runs the network once on an image and computes every class's map of
/// `forward_pass_choice` (the forward pass alone; `explain_image` adds the chosen method).
pub fn analyse(
    classifier: &Classifier,
    image: &SourceImage,
    preprocessing: &Preprocessing,
) -> Result<Analysis, AnalysisError> {
    analyse_keeping(classifier, image, preprocessing, Stage::Norm5).map(|(analysis, _)| analysis)
}

/// `analyse`, whose forward pass also keeps the activations at `stage` and what the gradient
/// back to them needs (the inference engine's trace), so that a map at that layer runs no
/// second forward pass; none at norm5, whose activations are the analysis's features.
fn analyse_keeping(
    classifier: &Classifier,
    image: &SourceImage,
    preprocessing: &Preprocessing,
    stage: Stage,
) -> Result<(Analysis, Option<Arc<LayerActivations>>), AnalysisError> {
    let image_name = image.name.as_str();
    let input = preprocessing
        .prepare(
            &image.network_rgb(preprocessing.window.as_ref()),
            classifier.config().in_channels,
        )
        .map_err(|reason| AnalysisError::Preprocess {
            file: image_name.to_string(),
            reason,
        })?;
    let network_error = |reason| AnalysisError::Network {
        file: image_name.to_string(),
        reason,
    };
    let (logits, features, kept) = if stage == Stage::Norm5 {
        let out = classifier.forward(&input.tensor).map_err(network_error)?;
        let logits: Vec<f32> = out
            .logits
            .squeeze(0)
            .and_then(|l| l.to_vec1())
            .map_err(network_error)?;
        let features = out.features.squeeze(0).map_err(network_error)?;
        (logits, features, None)
    } else {
        let kept =
            LayerActivations::traced(classifier, &input.tensor, stage).map_err(network_error)?;
        let (logits, features) = kept.forward_output().map_err(network_error)?;
        (logits, features, Some(Arc::new(kept)))
    };
    let count = logits.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(AnalysisError::NotFinite {
            file: image_name.to_string(),
            model: classifier.info.file.clone(),
            count,
            classes: logits.len(),
        });
    }
    let output = classifier.output();
    let probabilities = output.activation.probabilities(&logits);
    let predicted = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let positives = output.positives(&probabilities, predicted);
    let mut analysis = Analysis {
        logits,
        probabilities,
        activation: output.activation,
        predicted,
        positives,
        maps: Vec::new(),
        region: input.region,
        transposed: preprocessing.transpose,
        input_size: input.pixels.dimensions(),
        features: features.clone(),
        input: input.tensor,
    };
    let choice = forward_pass_choice(classifier);
    let map_error = |reason| AnalysisError::Map {
        file: image_name.to_string(),
        method: choice.method,
        layer: choice.layer,
        reason,
    };
    let acts = LayerActivations::at_norm5(&features).map_err(map_error)?;
    analysis.maps = methods::class_maps(
        classifier,
        &analysis,
        &acts,
        choice.method,
        &choice.options,
        &Classes::All,
        &NoProgress,
    )
    .map_err(map_error)?;
    Ok((analysis, kept))
}

/// The forward pass on `image`, then `choice`'s maps of `classes`: the one analysis path of
/// every front end.
pub fn explain_image(
    classifier: &Classifier,
    image: &SourceImage,
    choice: &MapChoice,
    classes: &Classes,
    progress: &dyn Progress,
) -> Result<Analysis, AnalysisError> {
    let (analysis, mut kept) = forward_keeping(classifier, image, std::slice::from_ref(choice))?;
    explain_with(
        classifier, image, &analysis, choice, classes, &mut kept, progress,
    )
}

/// `explain_image` for several choices at once (every method side by side): one forward pass,
/// and the activations of each layer computed once and shared by the choices at that layer.
/// One answer per choice, in order: a choice the model cannot satisfy (CAM for a head of
/// several layers) fails alone; the forward pass failing fails them all.
pub fn explain_image_each(
    classifier: &Classifier,
    image: &SourceImage,
    choices: &[MapChoice],
    classes: &Classes,
    progress: &dyn Progress,
) -> Result<Vec<Result<Analysis, AnalysisError>>, AnalysisError> {
    let (analysis, mut kept) = forward_keeping(classifier, image, choices)?;
    Ok(choices
        .iter()
        .map(|choice| {
            explain_with(
                classifier, image, &analysis, choice, classes, &mut kept, progress,
            )
        })
        .collect())
}

/// The forward pass, keeping the activations of the first of `choices` at a layer this model
/// has (other than CAM's norm5, which the forward pass gives anyway), so that its maps run no
/// second forward pass.
fn forward_keeping(
    classifier: &Classifier,
    image: &SourceImage,
    choices: &[MapChoice],
) -> Result<(Analysis, Vec<Arc<LayerActivations>>), AnalysisError> {
    let keep = choices
        .iter()
        .find(|c| classifier.stages().contains(&c.layer) && c.method != Method::Cam)
        .map_or(Stage::Norm5, |c| c.layer);
    let (analysis, activations) =
        analyse_keeping(classifier, image, &classifier.preprocessing, keep)?;
    Ok((analysis, activations.into_iter().collect()))
}

/// `choice`'s maps of `classes` from the forward pass's `analysis`, with the activations
/// `kept` so far (those of a new layer are added to them).
fn explain_with(
    classifier: &Classifier,
    image: &SourceImage,
    analysis: &Analysis,
    choice: &MapChoice,
    classes: &Classes,
    kept: &mut Vec<Arc<LayerActivations>>,
    progress: &dyn Progress,
) -> Result<Analysis, AnalysisError> {
    if analysis.shows(choice) {
        return Ok(analysis.clone());
    }
    let activations = kept.iter().find(|a| a.stage() == choice.layer).cloned();
    let explained =
        methods::explain_maps(classifier, analysis, choice, classes, activations, progress)
            .map_err(|reason| AnalysisError::Map {
                file: image.name.clone(),
                method: choice.method,
                layer: choice.layer,
                reason,
            })?;
    if !kept
        .iter()
        .any(|a| a.stage() == explained.activations.stage())
    {
        kept.push(explained.activations);
    }
    Ok(analysis.showing(explained.maps))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::network::OutputRule;

    /// A model whose weights hold NaN (here one class's bias, as a training run that diverged
    /// leaves them) is refused at the forward pass, not shown with NaN probabilities.
    #[test]
    fn a_network_whose_output_is_not_finite_is_refused() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut bytes = std::fs::read(fixtures.join("models/tiny.safetensors")).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let start = header["classifier.bias"]["data_offsets"][0]
            .as_u64()
            .unwrap() as usize;
        bytes[8 + n + start..][..4].copy_from_slice(&f32::NAN.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("diverged.safetensors");
        std::fs::write(&model, bytes).unwrap();
        let classifier = Classifier::load(&model, None).unwrap();
        let image = crate::imaging::decode_image(
            "rgb24.bmp",
            &std::fs::read(fixtures.join("images/rgb24.bmp")).unwrap(),
        )
        .unwrap();
        let err = analyse(&classifier, &image, &classifier.preprocessing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "rgb24.bmp: the network's output is not a number for 1 of its 3 classes (NaN \
                 or infinite): the model {} is damaged (NaN weights, as a training run that \
                 diverged leaves them)",
                model.display()
            )
        );
    }

    /// `tests/fixtures/models/multilabel/expected.json` (make_multilabel_fixtures.py).
    #[derive(serde::Deserialize)]
    struct Expected {
        thresholds: Vec<f32>,
        images: BTreeMap<String, ExpectedImage>,
    }

    #[derive(serde::Deserialize)]
    struct ExpectedImage {
        logits: Vec<f32>,
        sigmoid: Vec<f32>,
        softmax: Vec<f32>,
        positives: Vec<usize>,
        #[serde(rename = "positives_at_0.5")]
        positives_at_half: Vec<usize>,
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    fn assert_close(ours: &[f32], torch: &[f32], tolerance: f32, what: &str) {
        assert_eq!(ours.len(), torch.len(), "{what}");
        for (a, b) in ours.iter().zip(torch) {
            assert!(
                (a - b).abs() <= tolerance,
                "{what}: ours {ours:?}, PyTorch {torch:?}"
            );
        }
    }

    #[test]
    fn a_multi_label_model_gives_pytorchs_sigmoids_and_its_own_thresholds_positives() {
        let dir = fixtures().join("models/multilabel");
        let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
        let expected: Expected = serde_json::from_str(&text).unwrap();
        let mut model = Classifier::load(&dir.join("chest5.pth"), None).unwrap();
        assert_eq!(
            model.output(),
            &OutputRule {
                activation: Activation::Sigmoid,
                thresholds: expected.thresholds.clone(),
            }
        );
        let at_half = OutputRule::new(Activation::Sigmoid, expected.thresholds.len());
        let analyse_all = |model: &Classifier| -> Vec<(&String, &ExpectedImage, Analysis)> {
            (expected.images.iter())
                .map(|(name, e)| {
                    let path = fixtures().join("images").join(name);
                    let image = crate::imaging::open_image(&path).unwrap();
                    let a = analyse(model, &image, &model.preprocessing).unwrap();
                    assert_close(&a.logits, &e.logits, 1e-4, &format!("{name}: logits"));
                    (name, e, a)
                })
                .collect()
        };
        for (name, e, a) in analyse_all(&model) {
            assert_close(
                &a.probabilities,
                &e.sigmoid,
                1e-6,
                &format!("{name}: sigmoid"),
            );
            assert_eq!(a.activation, Activation::Sigmoid);
            assert_eq!(a.positives, e.positives, "{name}: positives");
            let half = at_half.positives(&a.probabilities, a.predicted);
            assert_eq!(half, e.positives_at_half, "{name}: positives at 0.5");
        }
        // The same file read with a softmax: one distribution, the predicted class its finding.
        model.set_activation(Activation::Softmax);
        for (name, e, a) in analyse_all(&model) {
            assert_close(
                &a.probabilities,
                &e.softmax,
                1e-6,
                &format!("{name}: softmax"),
            );
            assert_eq!(a.positives, [a.predicted], "{name}");
        }
    }

    #[test]
    fn the_classes_asked_for_get_the_same_maps_as_every_class_gives() {
        let fixtures = fixtures();
        let classifier =
            Classifier::load(&fixtures.join("models/multilabel/chest5.pth"), None).unwrap();
        let image = crate::imaging::open_image(&fixtures.join("images/gray8.png")).unwrap();
        for method in [
            Method::GradCam,
            Method::LayerCam,
            Method::EigenCam,
            Method::Cam,
        ] {
            let layer = if method == Method::Cam {
                Stage::Norm5
            } else {
                Stage::DenseBlock(2)
            };
            let choice = MapChoice::new(method, layer);
            let all =
                explain_image(&classifier, &image, &choice, &Classes::All, &NoProgress).unwrap();
            assert_eq!(all.maps.len(), 5);
            assert!(all.has_every_map());
            let some = Classes::Only(vec![3, 1, 3]);
            let two = explain_image(&classifier, &image, &choice, &some, &NoProgress).unwrap();
            let classes: Vec<usize> = two.maps.iter().map(|m| m.class).collect();
            // CAM at norm5 is the forward pass's own: every class comes with it
            if method == Method::Cam {
                assert_eq!(classes, [0, 1, 2, 3, 4]);
            } else {
                assert_eq!(classes, [1, 3], "{method}");
                assert!(!two.has_every_map());
                assert!(two.map(0).is_none());
            }
            for class in [1, 3] {
                assert_eq!(two.map(class).unwrap(), all.map(class).unwrap(), "{method}");
            }
            let predicted = explain_image(
                &classifier,
                &image,
                &choice,
                &Classes::Predicted,
                &NoProgress,
            )
            .unwrap();
            let class = predicted.predicted;
            assert_eq!(predicted.map(class).unwrap(), all.map(class).unwrap());
        }
        let choice = MapChoice::new(Method::GradCam, Stage::DenseBlock(2));
        let err = explain_image(
            &classifier,
            &image,
            &choice,
            &Classes::Only(vec![5]),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("this model has no class 5; it has 5 (0 to 4)"),
            "{err}"
        );
    }

    #[test]
    fn every_method_from_one_forward_pass_gives_each_methods_own_maps() {
        let fixtures = fixtures();
        let classifier =
            Classifier::load(&fixtures.join("models/multilabel/chest5.pth"), None).unwrap();
        let image = crate::imaging::open_image(&fixtures.join("images/gray8.png")).unwrap();
        let classes = Classes::Only(vec![1]);
        for layer in [Stage::Norm5, Stage::DenseBlock(2)] {
            let choices: Vec<MapChoice> = Method::ALL
                .iter()
                .map(|&m| MapChoice::new(m, layer))
                .collect();
            let each =
                explain_image_each(&classifier, &image, &choices, &classes, &NoProgress).unwrap();
            assert_eq!(each.len(), choices.len());
            for (choice, shared) in choices.iter().zip(each) {
                let alone = explain_image(&classifier, &image, choice, &classes, &NoProgress);
                match (shared, alone) {
                    (Ok(shared), Ok(alone)) => {
                        assert_eq!(shared.maps, alone.maps, "{} at {layer}", choice.method);
                        assert_eq!(shared.logits, alone.logits);
                    }
                    (Err(shared), Err(alone)) => {
                        assert_eq!(shared.to_string(), alone.to_string());
                        assert_eq!((choice.method, layer), (Method::Cam, Stage::DenseBlock(2)));
                    }
                    (shared, alone) => panic!(
                        "{} at {layer}: together {:?}, alone {:?}",
                        choice.method,
                        shared.err(),
                        alone.err()
                    ),
                }
            }
        }
    }
}
