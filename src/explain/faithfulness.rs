//! Is a map faithful to the model? Scores that change the input as the map says and watch the
//! class probability move: under the classifier's own activation (softmax of the logits, or
//! for a multi-label model the sigmoid of the class's own logit, which no other class moves).
//!
//! - **Deletion** (Petsiuk et al. 2018, RISE): remove pixels from the most to the least salient,
//!   in `steps` equal steps; a faithful map makes the probability fall fast (low AUC is good).
//!   Removed pixels become 0 in the normalised input (the dataset's mean colour), as in RISE's
//!   code.
//! - **Insertion**: start from a blurred input (Gaussian, 11 x 11, sigma 5, zero padding: RISE's
//!   `gkern(11, 5)`) and put the original pixels back in the same order; a faithful map makes
//!   the probability rise fast (high AUC is good).
//! - **Average Drop** and **Increase in Confidence** (Chattopadhyay et al. 2018, Grad-CAM++):
//!   the input multiplied by the map (min-max scaled to 0..1 at input resolution, in the
//!   normalised input space like pytorch-grad-cam's `CamMultImageConfidenceChange`);
//!   drop = `max(0, Y - O) / Y`, increase = `O > Y`, with `Y` the probability of the class on
//!   the input and `O` on the masked input. Over a data set: the mean drop in percent (lower is
//!   better) and the share of images whose confidence increased, in percent (higher is better).
//!
//! Pixels are ordered by the map bilinearly upsampled to the input (ties: row-major order).
//! AUCs use the trapezoid rule over the fraction of pixels changed (0 to 1), like RISE's `auc`.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{ClassActivationMap, ExplainError, Progress};
use crate::network::Classifier;

/// Something that gives class probabilities for a batch of normalised inputs `[n, C, H, W]`.
pub trait Scorer {
    fn probabilities(&self, batch: &Tensor) -> candle_core::Result<Vec<Vec<f32>>>;
}

/// Through the inference engine (the curves need no gradient), under the classifier's
/// activation: the probabilities the classes list shows.
impl Scorer for Classifier {
    fn probabilities(&self, batch: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
        let logits: Vec<Vec<f32>> = self.forward(batch)?.logits.to_vec2()?;
        let activation = self.output().activation;
        Ok(logits.iter().map(|l| activation.probabilities(l)).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessOptions {
    /// Steps of the deletion and insertion curves (each curve has `steps + 1` points, one
    /// forward pass each).
    pub steps: usize,
    /// Inputs per forward pass.
    pub batch: usize,
}

impl Default for FaithfulnessOptions {
    fn default() -> Self {
        Self {
            steps: DEFAULT_STEPS,
            batch: 8,
        }
    }
}

pub const DEFAULT_STEPS: usize = 20;

/// A deletion or insertion curve: the class probability after each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// Fraction of the pixels removed (deletion) or inserted (insertion), 0 to 1.
    pub fractions: Vec<f32>,
    pub probabilities: Vec<f32>,
    /// Area under the curve (trapezoid rule), 0 to 1.
    pub auc: f32,
}

/// The faithfulness scores of one map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    pub class: usize,
    pub deletion: Curve,
    pub insertion: Curve,
    /// `Y`: the class probability on the input.
    pub probability: f32,
    /// `O`: the class probability on the input multiplied by the map.
    pub masked_probability: f32,
    /// `max(0, Y - O) / Y` in percent (Average Drop's term for this image).
    pub drop_percent: f32,
    /// `O > Y` (Increase in Confidence's term for this image).
    pub increase: bool,
}

/// The scores of `map` (for `map.class`) on the network input `input` (`[1, C, H, W]`: every
/// channel is blurred, masked and deleted alike, whatever their number).
pub fn faithfulness(
    model: &dyn Scorer,
    input: &Tensor,
    map: &ClassActivationMap,
    options: &FaithfulnessOptions,
    progress: &dyn Progress,
) -> Result<Faithfulness, ExplainError> {
    let (_, channels, h, w) = input.dims4()?;
    let saliency: Vec<f32> = map
        .on_input_grid(w, h)
        .into_iter()
        .map(|v| if v.is_nan() { f32::NEG_INFINITY } else { v })
        .collect();
    let order = salience_order(&saliency);
    let steps = options.steps.max(1);
    let pixels = w * h;
    let counts: Vec<usize> = (0..=steps)
        .map(|s| ((s * pixels) as f64 / steps as f64).round() as usize)
        .collect();
    let original: Vec<f32> = input.flatten_all()?.to_vec1()?;
    let blurred = gaussian_blur(&original, channels, w, h, 11, 5.0);
    let class = map.class;
    let total = 2 * counts.len() + 2;
    let mut done = 0;
    let mut score = |inputs: Vec<Vec<f32>>| -> Result<Vec<f32>, ExplainError> {
        let mut out = Vec::with_capacity(inputs.len());
        for group in inputs.chunks(options.batch.max(1)) {
            if progress.cancelled() {
                return Err(ExplainError::Cancelled);
            }
            let flat: Vec<f32> = group.iter().flatten().copied().collect();
            let batch = Tensor::from_vec(flat, (group.len(), channels, h, w), &Device::Cpu)?;
            for p in model.probabilities(&batch)? {
                out.push(p.get(class).copied().unwrap_or(0.0));
            }
            done += group.len();
            progress.report(done, total);
        }
        Ok(out)
    };

    // Average Drop / Increase: the input times the min-max scaled map.
    let (lo, hi) = saliency
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, u), &v| {
            (l.min(v), u.max(v))
        });
    let scaled: Vec<f32> = saliency
        .iter()
        .map(|&v| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 })
        .collect();
    let masked: Vec<f32> = original
        .iter()
        .enumerate()
        .map(|(i, &v)| v * scaled[i % pixels])
        .collect();
    let ends = score(vec![original.clone(), masked])?;
    let (y, o) = (ends[0], ends[1]);

    let curve_inputs = |start: &[f32], fill: &[f32]| -> Vec<Vec<f32>> {
        // Step s: the first counts[s] pixels of `order` taken from `fill`, the rest from `start`.
        let mut current = start.to_vec();
        let mut out = Vec::with_capacity(counts.len());
        let mut changed = 0;
        for &n in &counts {
            for &p in &order[changed..n] {
                for c in 0..channels {
                    current[c * pixels + p] = fill[c * pixels + p];
                }
            }
            changed = n;
            out.push(current.clone());
        }
        out
    };
    let zeros = vec![0f32; original.len()];
    let deletion = score(curve_inputs(&original, &zeros))?;
    let insertion = score(curve_inputs(&blurred, &original))?;
    let fractions: Vec<f32> = counts.iter().map(|&n| n as f32 / pixels as f32).collect();
    let curve = |probabilities: Vec<f32>| Curve {
        auc: auc(&fractions, &probabilities),
        fractions: fractions.clone(),
        probabilities,
    };
    Ok(Faithfulness {
        class,
        deletion: curve(deletion),
        insertion: curve(insertion),
        probability: y,
        masked_probability: o,
        drop_percent: if y > 0.0 {
            100.0 * (y - o).max(0.0) / y
        } else {
            0.0
        },
        increase: o > y,
    })
}

/// Pixel indices from the most to the least salient (stable: ties keep row-major order).
fn salience_order(saliency: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..saliency.len()).collect();
    order.sort_by(|&a, &b| saliency[b].total_cmp(&saliency[a]));
    order
}

/// Area under `(x, y)` by the trapezoid rule.
pub fn auc(x: &[f32], y: &[f32]) -> f32 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0)
        .sum()
}

/// Separable Gaussian blur of `[channels, h, w]` with zero padding (RISE's `gkern` and
/// `conv2d(padding = size / 2)`).
fn gaussian_blur(
    x: &[f32],
    channels: usize,
    w: usize,
    h: usize,
    size: usize,
    sigma: f32,
) -> Vec<f32> {
    let half = (size / 2) as isize;
    let mut kernel: Vec<f32> = (-half..=half)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);
    // One 1-D pass along rows (step 1, length w) or columns (step w, length h) of each plane.
    let pass = |src: &[f32], step: usize, len: usize| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for (i, o) in out.iter_mut().enumerate() {
            let at = (i / step) % len; // position along the pass
            let mut s = 0.0;
            for (t, k) in kernel.iter().enumerate() {
                let j = at as isize + t as isize - half;
                if (0..len as isize).contains(&j) {
                    s += k * src[(i as isize + (j - at as isize) * step as isize) as usize];
                }
            }
            *o = s;
        }
        out
    };
    debug_assert_eq!(x.len(), channels * w * h);
    pass(&pass(x, 1, w), w, h)
}

/// Faithfulness over a data set: means of the per-image scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FaithfulnessSummary {
    pub images: usize,
    /// Mean deletion AUC (lower is better).
    pub deletion_auc: f32,
    /// Mean insertion AUC (higher is better).
    pub insertion_auc: f32,
    /// Average Drop in percent (lower is better).
    pub average_drop: f32,
    /// Increase in Confidence: percent of images whose confidence rose (higher is better).
    pub increase_in_confidence: f32,
}

impl FaithfulnessSummary {
    pub fn of(scores: &[Faithfulness]) -> Self {
        let n = scores.len();
        if n == 0 {
            return Self::default();
        }
        let mean = |f: &dyn Fn(&Faithfulness) -> f32| scores.iter().map(f).sum::<f32>() / n as f32;
        Self {
            images: n,
            deletion_auc: mean(&|s| s.deletion.auc),
            insertion_auc: mean(&|s| s.insertion.auc),
            average_drop: mean(&|s| s.drop_percent),
            increase_in_confidence: 100.0 * mean(&|s| f32::from(u8::from(s.increase))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{Method, NoProgress, Stage};
    use crate::imaging::Region;

    /// A "model" that looks only at the mean of the top-left quarter of the first channel:
    /// p(class 1) = sigmoid(4 * mean).
    struct CornerModel;

    impl Scorer for CornerModel {
        fn probabilities(&self, batch: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
            let (n, _, h, w) = batch.dims4()?;
            let v: Vec<f32> = batch.flatten_all()?.to_vec1()?;
            let per = v.len() / n;
            Ok((0..n)
                .map(|i| {
                    let mut s = 0.0;
                    for y in 0..h / 2 {
                        for x in 0..w / 2 {
                            s += v[i * per + y * w + x];
                        }
                    }
                    let p = 1.0 / (1.0 + (-4.0 * s / (h * w / 4) as f32).exp());
                    vec![1.0 - p, p]
                })
                .collect())
        }
    }

    fn map(values: Vec<f32>) -> ClassActivationMap {
        ClassActivationMap {
            transposed: false,
            score_cam_most_active: None,
            class: 1,
            method: Method::Cam,
            layer: Stage::Norm5,
            width: 2,
            height: 2,
            values,
            region: Region::whole(16, 16),
        }
    }

    #[test]
    fn a_map_on_the_informative_pixels_beats_its_inverse() {
        let input = Tensor::full(1f32, (1, 3, 16, 16), &Device::Cpu).unwrap();
        let options = FaithfulnessOptions { steps: 8, batch: 4 };
        let good = faithfulness(
            &CornerModel,
            &input,
            &map(vec![1.0, 0.0, 0.0, 0.0]),
            &options,
            &NoProgress,
        )
        .unwrap();
        let bad = faithfulness(
            &CornerModel,
            &input,
            &map(vec![0.0, 1.0, 1.0, 1.0]),
            &options,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(good.deletion.probabilities.len(), 9);
        assert!(
            good.deletion.auc < bad.deletion.auc,
            "deletion: {} vs {}",
            good.deletion.auc,
            bad.deletion.auc
        );
        assert!(
            good.insertion.auc > bad.insertion.auc,
            "insertion: {} vs {}",
            good.insertion.auc,
            bad.insertion.auc
        );
        assert!(
            good.drop_percent < bad.drop_percent,
            "drop: {} vs {}",
            good.drop_percent,
            bad.drop_percent
        );
        // Both curves start and end where they must.
        let full = good.probability;
        assert!((good.deletion.probabilities[0] - full).abs() < 1e-6);
        assert!((good.insertion.probabilities[8] - full).abs() < 1e-6);
        assert!((good.deletion.probabilities[8] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn trapezoid_auc() {
        assert!((auc(&[0.0, 0.5, 1.0], &[1.0, 1.0, 0.0]) - 0.75).abs() < 1e-6);
    }

    #[test]
    fn blur_keeps_a_constant_interior() {
        let x = vec![1f32; 32 * 32];
        let b = gaussian_blur(&x, 1, 32, 32, 11, 5.0);
        assert!((b[16 * 32 + 16] - 1.0).abs() < 1e-5);
        assert!(b[0] < 0.6, "zero padding darkens the corner: {}", b[0]);
    }
}
