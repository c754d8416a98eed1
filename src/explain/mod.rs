//! The explanation maths: one forward pass gives an `Analysis`; class activation maps for any
//! class come from it without running the network again.

pub mod faithfulness;
pub mod methods;
pub mod scores;

pub use crate::network::Stage;
pub use methods::{ExplainError, LayerActivations, MethodOptions, NoProgress, Progress};

use candle_core::Tensor;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::imaging::{PreprocessError, Preprocessing, Region};
use crate::network::Classifier;

/// How a map was computed. The names are the CLI's; every method but `cam` follows
/// pytorch-grad-cam's definition exactly (see `methods`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
pub enum Method {
    /// Zhou et al. 2016: the classifier's weights applied to the final feature maps (norm5 only).
    #[default]
    #[serde(rename = "cam")]
    #[value(name = "cam")]
    Cam,
    /// Selvaraju et al. 2017: channels weighted by their mean gradient.
    #[serde(rename = "gradcam")]
    #[value(name = "gradcam")]
    GradCam,
    /// Chattopadhyay et al. 2018: higher-order gradient weights.
    #[serde(rename = "gradcam++")]
    #[value(name = "gradcam++")]
    GradCamPlusPlus,
    /// Fu et al. 2020: gradients weighted by the normalised activation.
    #[serde(rename = "xgradcam")]
    #[value(name = "xgradcam")]
    XGradCam,
    /// Draelos and Carin 2020: gradient times activation, element-wise, summed over channels.
    #[serde(rename = "hirescam")]
    #[value(name = "hirescam")]
    HiResCam,
    /// Jiang et al. 2021: positive gradient times activation, element-wise.
    #[serde(rename = "layercam")]
    #[value(name = "layercam")]
    LayerCam,
    /// Wang et al. 2020: channels weighted by the class score of the input masked by them.
    #[serde(rename = "scorecam")]
    #[value(name = "scorecam")]
    ScoreCam,
    /// Muhammad and Yeasin 2020: first principal component of the activations (class-agnostic).
    #[serde(rename = "eigencam")]
    #[value(name = "eigencam")]
    EigenCam,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Self::Cam,
        Self::GradCam,
        Self::GradCamPlusPlus,
        Self::XGradCam,
        Self::HiResCam,
        Self::LayerCam,
        Self::ScoreCam,
        Self::EigenCam,
    ];

    /// The CLI's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cam => "cam",
            Self::GradCam => "gradcam",
            Self::GradCamPlusPlus => "gradcam++",
            Self::XGradCam => "xgradcam",
            Self::HiResCam => "hirescam",
            Self::LayerCam => "layercam",
            Self::ScoreCam => "scorecam",
            Self::EigenCam => "eigencam",
        }
    }

    /// The name people write in papers (the viewer's picker, captions).
    pub fn title(self) -> &'static str {
        match self {
            Self::Cam => "CAM",
            Self::GradCam => "Grad-CAM",
            Self::GradCamPlusPlus => "Grad-CAM++",
            Self::XGradCam => "XGrad-CAM",
            Self::HiResCam => "HiResCAM",
            Self::LayerCam => "LayerCAM",
            Self::ScoreCam => "Score-CAM",
            Self::EigenCam => "Eigen-CAM",
        }
    }

    /// Whether the method back-propagates the class score.
    pub fn uses_gradients(self) -> bool {
        matches!(
            self,
            Self::GradCam
                | Self::GradCamPlusPlus
                | Self::XGradCam
                | Self::HiResCam
                | Self::LayerCam
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{file}: {source}")]
    Preprocess {
        file: String,
        source: PreprocessError,
    },
    #[error("{file}: the network failed: {source}")]
    Network {
        file: String,
        source: candle_core::Error,
    },
}

/// A raw class activation map: `height x width` values over `region` of the original image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassActivationMap {
    pub class: usize,
    pub method: Method,
    /// The stage whose activations it weighs.
    pub layer: Stage,
    pub width: usize,
    pub height: usize,
    /// Row-major, before any normalisation.
    pub values: Vec<f32>,
    /// Where the network's input (and so this map) sits on the original image.
    pub region: Region,
}

impl ClassActivationMap {
    pub fn min_max(&self) -> (f32, f32) {
        self.values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// The map's values scaled by `(v - lo) / (hi - lo)` into `[0, 1]` (all 0 when hi == lo).
    pub fn scaled(&self, (lo, hi): (f32, f32)) -> Vec<f32> {
        let span = hi - lo;
        self.values
            .iter()
            .map(|&v| {
                if span > 0.0 {
                    ((v - lo) / span).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Bilinear upsampling (PyTorch's `F.interpolate(.., mode="bilinear", align_corners=False)`)
    /// of `values` onto a `width x height` image, placed over `self.region`. Pixels whose centre
    /// is outside the region are NaN (no heat there). Computed separably: each map row is
    /// interpolated across the width once, then every output row blends two of those (the same
    /// arithmetic as blending four neighbours, 5-10x faster: the viewer runs it on every class
    /// change).
    pub fn upsample(&self, values: &[f32], width: u32, height: u32) -> Vec<f32> {
        let r = self.region;
        let (mw, mh) = (self.width, self.height);
        let (w, h) = (width as usize, height as usize);
        if mw == 0 || mh == 0 || values.len() < mw * mh {
            return vec![f32::NAN; w * h];
        }
        let axis = |n: u32, start: f64, len: f64, m: usize| -> Vec<Option<(usize, usize, f32)>> {
            (0..n)
                .map(|i| {
                    let centre = f64::from(i) + 0.5;
                    if centre < start || centre > start + len {
                        return None;
                    }
                    let src = ((centre - start) * m as f64 / len - 0.5).max(0.0);
                    let i0 = (src.floor() as usize).min(m - 1);
                    let i1 = (i0 + 1).min(m - 1);
                    Some((i0, i1, (src - i0 as f64) as f32))
                })
                .collect()
        };
        let xs = axis(width, r.x, r.width, mw);
        let ys = axis(height, r.y, r.height, mh);
        let mut rows = vec![f32::NAN; mh * w];
        for (j, row) in rows.chunks_exact_mut(w.max(1)).enumerate() {
            let map_row = &values[j * mw..(j + 1) * mw];
            for (out, x) in row.iter_mut().zip(&xs) {
                if let Some((x0, x1, lx)) = *x {
                    *out = map_row[x0] * (1.0 - lx) + map_row[x1] * lx;
                }
            }
        }
        let mut out = Vec::with_capacity(w * h);
        for y in &ys {
            match *y {
                Some((y0, y1, ly)) => {
                    let top = &rows[y0 * w..(y0 + 1) * w];
                    let bottom = &rows[y1 * w..(y1 + 1) * w];
                    out.extend(top.iter().zip(bottom).map(|(t, b)| t * (1.0 - ly) + b * ly));
                }
                None => out.extend(std::iter::repeat_n(f32::NAN, w)),
            }
        }
        out
    }
}

/// How maps are scaled to `[0, 1]` before colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Normalisation {
    /// Each map's own min..max (like the original script): best contrast, not comparable.
    #[default]
    PerMap,
    /// One min..max over the maps of all classes of the image: classes can be compared.
    Shared,
}

/// Everything one forward pass gives, cached so that class, opacity and colormap changes never
/// run the network again.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
    pub predicted: usize,
    /// Raw CAM of every class.
    pub cams: Vec<ClassActivationMap>,
    /// Where the network's input sits on the original image.
    pub region: Region,
    /// The network's input size, `(width, height)`.
    pub input_size: (u32, u32),
    /// `A`, `[num_features, h, w]`, kept for other methods.
    pub features: Tensor,
    /// The network's input `[1, 3, H, W]`, kept for the methods and scores that run the
    /// network again (Score-CAM, faithfulness, other layers).
    pub input: Tensor,
}

impl Analysis {
    /// Classes by decreasing probability.
    pub fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.probabilities.len()).collect();
        order.sort_by(|&a, &b| self.probabilities[b].total_cmp(&self.probabilities[a]));
        order
    }

    /// The value range that maps `class` to `[0, 1]` under `normalisation`.
    pub fn range(&self, class: usize, normalisation: Normalisation) -> (f32, f32) {
        match normalisation {
            Normalisation::PerMap => self.cams[class].min_max(),
            Normalisation::Shared => self
                .cams
                .iter()
                .map(ClassActivationMap::min_max)
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (a, b)| {
                    (lo.min(a), hi.max(b))
                }),
        }
    }
}

/// Softmax in f64 (stable for large logits).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// `M[c] = sum_k W[c, k] A[k]` for every class at once: `[classes, h, w]`.
pub fn class_activation_maps(features: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    let (k, h, w) = features.dims3()?;
    let flat = features.reshape((k, h * w))?;
    weight.matmul(&flat)?.reshape(((), h, w))
}

/// What one forward pass gives, as plain vectors.
struct ForwardMaps {
    logits: Vec<f32>,
    features: Tensor,
    /// Every class's raw map, row-major `height x width`.
    maps: Vec<Vec<f32>>,
    width: usize,
    height: usize,
}

fn forward_maps(classifier: &Classifier, input: &Tensor) -> candle_core::Result<ForwardMaps> {
    let out = classifier.forward(input)?;
    let logits: Vec<f32> = out.logits.squeeze(0)?.to_vec1()?;
    let features = out.features.squeeze(0)?;
    let (weight, _) = classifier.net.classifier();
    let maps = class_activation_maps(&features, weight)?;
    let (_, height, width) = maps.dims3()?;
    let maps = maps.flatten_from(1)?.to_vec2()?;
    Ok(ForwardMaps {
        logits,
        features,
        maps,
        width,
        height,
    })
}

/// Runs the network once on an image and computes every class's CAM.
pub fn analyse(
    classifier: &Classifier,
    image_name: &str,
    image: &RgbImage,
    preprocessing: &Preprocessing,
) -> Result<Analysis, AnalysisError> {
    let input = preprocessing
        .prepare(image)
        .map_err(|source| AnalysisError::Preprocess {
            file: image_name.to_string(),
            source,
        })?;
    let ForwardMaps {
        logits,
        features,
        maps,
        width: w,
        height: h,
    } = forward_maps(classifier, &input.tensor).map_err(|source| AnalysisError::Network {
        file: image_name.to_string(),
        source,
    })?;
    let probabilities = softmax(&logits);
    let cams = maps
        .into_iter()
        .enumerate()
        .map(|(class, values)| ClassActivationMap {
            class,
            method: Method::Cam,
            layer: Stage::Norm5,
            width: w,
            height: h,
            values,
            region: input.region,
        })
        .collect();
    let predicted = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok(Analysis {
        logits,
        probabilities,
        predicted,
        cams,
        region: input.region,
        input_size: input.pixels.dimensions(),
        features,
        input: input.tensor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(values: Vec<f32>, w: usize, h: usize, region: Region) -> ClassActivationMap {
        ClassActivationMap {
            class: 0,
            method: Method::Cam,
            layer: Stage::Norm5,
            width: w,
            height: h,
            values,
            region,
        }
    }

    #[test]
    fn upsampling_matches_pytorch_half_pixel_rule() {
        // F.interpolate([[0, 1], [2, 3]], size=(4, 4), bilinear, align_corners=False)
        let m = map(vec![0.0, 1.0, 2.0, 3.0], 2, 2, Region::whole(4, 4));
        let up = m.upsample(&m.values, 4, 4);
        let expected = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(up, expected);
    }

    #[test]
    fn pixels_outside_the_region_get_no_heat() {
        let region = Region {
            x: 2.0,
            y: 0.0,
            width: 4.0,
            height: 4.0,
        };
        let m = map(vec![1.0; 4], 2, 2, region);
        let up = m.upsample(&m.values, 8, 4);
        for y in 0..4 {
            for x in 0..8 {
                let v = up[y * 8 + x];
                assert_eq!(v.is_nan(), !(2..6).contains(&x), "x={x} y={y} v={v}");
            }
        }
    }

    #[test]
    fn scaling_and_softmax() {
        let m = map(vec![-1.0, 1.0, 3.0, 3.0], 2, 2, Region::whole(2, 2));
        assert_eq!(m.min_max(), (-1.0, 3.0));
        assert_eq!(m.scaled(m.min_max()), [0.0, 0.5, 1.0, 1.0]);
        assert_eq!(m.scaled((2.0, 2.0)), [0.0; 4]);
        let p = softmax(&[1000.0, 1000.0, f32::NEG_INFINITY]);
        assert_eq!(p, [0.5, 0.5, 0.0]);
    }
}
