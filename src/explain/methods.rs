//! The Grad-CAM family at any named stage of the network, with pytorch-grad-cam's definitions.
//!
//! Every method starts from the activation `A` (`[K, h, w]`) of one stage (`Stage`), computed
//! once per image and stage (`layer_activations`; at `features.norm5` it is the `Analysis`'s
//! own features, so switching method there runs no network at all). Then:
//!
//! | method | map for class `c` (before the final ReLU) |
//! | --- | --- |
//! | `cam` | `sum_k W[c,k] A_k` (norm5 only, and only for a head that is one linear map, see `network::Head`; no ReLU: the raw CAM, `mean + b[c] = logit[c]`) |
//! | `gradcam` | `sum_k mean(G_k) A_k` |
//! | `gradcam++` | `sum_k (sum_ij relu(G) a) A_k`, `a = G^2 / (2 G^2 + sum(A_k) G^3 + 1e-6)` (0 where G = 0) |
//! | `xgradcam` | `sum_k (sum_ij G A / (sum(A_k) + 1e-7)) A_k` |
//! | `hirescam` | `sum_k G_k * A_k` (element-wise) |
//! | `layercam` | `sum_k relu(G_k) * A_k` (element-wise) |
//! | `scorecam` | `sum_k softmax_k(logit_c(x * m_k)) A_k`, `m_k` = `A_k` upsampled (align corners), min-max scaled |
//! | `eigencam` | `A` centred per channel, projected on its first right singular vector |
//!
//! `G = d logit[c] / d A` by the inference engine's backward pass (`network::inference::Trace`:
//! the forward pass to the logits keeps what the way back needs, then one backward pass per
//! class on the engine's buffers, no autograd). Like pytorch-grad-cam, every method but `cam` ends with a
//! ReLU; the maps here are at the stage's resolution and NOT min-max scaled or resized (the
//! renderer does that, or pytorch-grad-cam's `scale_cam_image` does: `tests/parity.rs`).

use std::sync::Arc;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::map::transpose;
use super::{Analysis, ClassActivationMap, MapChoice, Method};
use crate::network::inference::{ActivationView, Trace};
use crate::network::{Classifier, Stage};

/// Why a map could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(
        "CAM is defined only at features.norm5 (it weighs the final maps with the classifier), \
         not at {layer}"
    )]
    CamNeedsNorm5 { layer: Stage },
    #[error(
        "CAM is not defined for this model: its head ({head}) is not one linear map of the \
         pooled features, so the classifier's weights on the final maps are not the evidence \
         its decision is made of; the gradient methods (Grad-CAM, Grad-CAM++, XGrad-CAM, \
         HiResCAM, LayerCAM) follow the decision through the whole head"
    )]
    CamNeedsLinearHead { head: String },
    #[error("this model has no class {class}; it has {count} (0 to {})", count.saturating_sub(1))]
    NoSuchClass { class: usize, count: usize },
    #[error("this model has no layer {layer}; its layers are {available}")]
    NoSuchLayer { layer: Stage, available: String },
    #[error("the network failed: {0}")]
    Network(#[from] candle_core::Error),
    #[error("cancelled")]
    Cancelled,
}

/// Reports progress of long computations (Score-CAM, faithfulness) and lets the caller stop them.
pub trait Progress: Sync {
    /// `done` of `total` units of work are finished.
    fn report(&self, _done: usize, _total: usize) {}
    /// Checked between batches: `true` stops the work with `ExplainError::Cancelled`.
    fn cancelled(&self) -> bool {
        false
    }
}

/// No progress reporting, never cancelled.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The options of the methods that have any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MethodOptions {
    /// Score-CAM: masked forward passes for at most this many channels, those with the largest
    /// activation (L2 norm over the map); `None` = every channel, as pytorch-grad-cam does.
    /// The other channels get weight 0. The softmax runs over the kept channels only, which
    /// scales every weight by one factor (invisible after min-max scaling); what is lost is the
    /// dropped channels' own terms, which are the weakest activations.
    pub score_cam_channels: Option<usize>,
    /// Score-CAM: masked images per forward pass (pytorch-grad-cam's `batch_size`, 16).
    pub score_cam_batch: usize,
}

impl MethodOptions {
    /// What a map of `method` records of these options: Score-CAM's channel limit.
    pub fn most_active(&self, method: Method) -> Option<usize> {
        (method == Method::ScoreCam)
            .then_some(self.score_cam_channels)
            .flatten()
    }
}

impl Default for MethodOptions {
    fn default() -> Self {
        Self {
            score_cam_channels: Some(DEFAULT_SCORE_CAM_CHANNELS),
            score_cam_batch: 16,
        }
    }
}

/// Channels Score-CAM keeps by default: every channel of the demo model's and most reduced
/// models' layers, 1/16 of DenseNet-121's norm5 (one forward pass per kept channel).
pub const DEFAULT_SCORE_CAM_CHANNELS: usize = 64;

/// The activation of one stage for one image, with what the backward pass from the logits to
/// it needs (the inference engine's `Trace`).
#[derive(Debug)]
pub struct LayerActivations {
    trace: Trace,
}

impl LayerActivations {
    /// The final feature maps a forward pass gave (`[K, h, w]`), as the activation at norm5.
    pub fn at_norm5(features: &Tensor) -> Result<Self, ExplainError> {
        let (k, h, w) = features.dims3()?;
        let values = features.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        Ok(Self {
            trace: Trace::at_norm5(values, k, h, w),
        })
    }

    pub fn stage(&self) -> Stage {
        self.trace.stage()
    }

    /// `A`, `[K, h * w]` row-major.
    pub fn activation(&self) -> ActivationView<'_> {
        self.trace.activation()
    }
}

/// The activation at `stage`: the analysis's own features at norm5, otherwise the inference
/// engine's forward pass up to the stage (and on to the logits, keeping what the gradient
/// needs).
pub fn layer_activations(
    classifier: &Classifier,
    analysis: &Analysis,
    stage: Stage,
) -> Result<LayerActivations, ExplainError> {
    let stages = classifier.stages();
    if !stages.contains(&stage) {
        return Err(ExplainError::NoSuchLayer {
            layer: stage,
            available: stages
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if stage == Stage::Norm5 {
        return LayerActivations::at_norm5(&analysis.features);
    }
    Ok(LayerActivations::traced(
        classifier,
        &analysis.input,
        stage,
    )?)
}

impl LayerActivations {
    /// The inference engine's forward pass of `input` (`[1, C, H, W]`) keeping what the
    /// gradient back to `stage` needs; its logits and final features are the analysis's.
    pub(crate) fn traced(
        classifier: &Classifier,
        input: &Tensor,
        stage: Stage,
    ) -> candle_core::Result<Self> {
        let (_, _, h, w) = input.dims4()?;
        let image: Vec<f32> = input.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let trace = classifier.engine().trace(&image, h, w, stage)?;
        Ok(Self { trace })
    }

    /// The traced forward pass's logits and `relu(norm5)` maps `[K, h, w]`.
    pub(crate) fn forward_output(&self) -> candle_core::Result<(Vec<f32>, Tensor)> {
        let f = self.trace.features();
        let features = Tensor::from_slice(
            f.values,
            (f.channels, f.height, f.width),
            &candle_core::Device::Cpu,
        )?;
        Ok((self.trace.logits().to_vec(), features))
    }
}

/// Which classes' maps to compute. The gradient methods cost one backward pass per class, so
/// a front end asks for what it shows (the viewer: the class on screen first, the others
/// after it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Classes {
    /// Every class (a shared normalisation needs them all).
    #[default]
    All,
    /// The class the network predicts (the largest logit).
    Predicted,
    /// These classes (maps come back in class order).
    Only(Vec<usize>),
}

impl Classes {
    /// The class indices, in order, for an analysis of `count` classes predicting
    /// `predicted`; a class the model does not have is an error.
    fn resolve(&self, count: usize, predicted: usize) -> Result<Vec<usize>, ExplainError> {
        let mut classes = match self {
            Self::All => (0..count).collect(),
            Self::Predicted => vec![predicted],
            Self::Only(classes) => classes.clone(),
        };
        classes.sort_unstable();
        classes.dedup();
        match classes.iter().find(|&&c| c >= count) {
            Some(&class) => Err(ExplainError::NoSuchClass { class, count }),
            None => Ok(classes),
        }
    }
}

/// The maps of `classes` by `method` at the stage of `acts`, in class order.
pub fn class_maps(
    classifier: &Classifier,
    analysis: &Analysis,
    acts: &LayerActivations,
    method: Method,
    options: &MethodOptions,
    classes: &Classes,
    progress: &dyn Progress,
) -> Result<Vec<ClassActivationMap>, ExplainError> {
    let view = acts.activation();
    let (k, h, w) = (view.channels, view.height, view.width);
    let classes = classes.resolve(analysis.logits.len(), analysis.predicted)?;
    let a = view.values;
    let maps: Vec<Vec<f32>> = match method {
        Method::Cam => {
            let Some((weight, _)) = classifier.cam_weights() else {
                return Err(ExplainError::CamNeedsLinearHead {
                    head: classifier.info.head.to_string(),
                });
            };
            if acts.stage() != Stage::Norm5 {
                return Err(ExplainError::CamNeedsNorm5 {
                    layer: acts.stage(),
                });
            }
            let features = Tensor::from_slice(a, (k, h, w), weight.device())?;
            let rows: Vec<Tensor> = classes
                .iter()
                .map(|&c| weight.narrow(0, c, 1))
                .collect::<candle_core::Result<_>>()?;
            super::class_activation_maps(&features, &Tensor::cat(&rows, 0)?)?
                .flatten_from(1)?
                .to_vec2()?
        }
        m if m.uses_gradients() => classes
            .iter()
            .map(|&class| {
                let g = classifier.engine().gradient(&acts.trace, class)?;
                Ok(relu(gradient_map(m, a, &g, k, h * w)))
            })
            .collect::<Result<_, ExplainError>>()?,
        Method::ScoreCam => {
            let weights = score_cam(classifier, analysis, acts, options, progress)?;
            classes
                .iter()
                .map(|&class| relu(weighted_sum(&weights[class], a, h * w)))
                .collect()
        }
        _ => {
            let map = relu(eigen_projection(a, k, h * w));
            vec![map; classes.len()]
        }
    };
    // The maps leave in the image's orientation; a network that saw the image transposed
    // made them on the transposed grid.
    let (width, height) = if analysis.transposed { (h, w) } else { (w, h) };
    Ok(maps
        .into_iter()
        .zip(classes)
        .map(|(values, class)| ClassActivationMap {
            class,
            method,
            layer: acts.stage(),
            width,
            height,
            values: if analysis.transposed {
                transpose(&values, w, h)
            } else {
                values
            },
            region: analysis.region,
            transposed: analysis.transposed,
            score_cam_most_active: options.most_active(method),
        })
        .collect())
}

/// A method's maps of the classes asked for, with the activations they came from (the viewer
/// keeps them for the next method at the same layer, and the other classes' maps).
pub struct ExplainedMaps {
    pub activations: Arc<LayerActivations>,
    pub maps: Vec<ClassActivationMap>,
}

/// `choice`'s maps of `classes` from the forward pass's `analysis`: `layer_activations` (or
/// `activations`, when they are the chosen layer's), then `class_maps`.
pub fn explain_maps(
    classifier: &Classifier,
    analysis: &Analysis,
    choice: &MapChoice,
    classes: &Classes,
    activations: Option<Arc<LayerActivations>>,
    progress: &dyn Progress,
) -> Result<ExplainedMaps, ExplainError> {
    choice.check()?;
    let activations = match activations {
        Some(a) if a.stage() == choice.layer => a,
        _ => Arc::new(layer_activations(classifier, analysis, choice.layer)?),
    };
    let maps = class_maps(
        classifier,
        analysis,
        &activations,
        choice.method,
        &choice.options,
        classes,
        progress,
    )?;
    Ok(ExplainedMaps { activations, maps })
}

fn relu(mut v: Vec<f32>) -> Vec<f32> {
    for x in &mut v {
        *x = x.max(0.0);
    }
    v
}

/// The gradient methods' map before their ReLU; `a` and `g` are `[K, n]` row-major.
fn gradient_map(method: Method, a: &[f32], g: &[f32], k: usize, n: usize) -> Vec<f32> {
    let channel = |c: usize| (&a[c * n..(c + 1) * n], &g[c * n..(c + 1) * n]);
    match method {
        Method::HiResCam | Method::LayerCam => {
            let mut map = vec![0f32; n];
            for c in 0..k {
                let (ac, gc) = channel(c);
                for ((m, &av), &gv) in map.iter_mut().zip(ac).zip(gc) {
                    let gv = if method == Method::LayerCam {
                        gv.max(0.0)
                    } else {
                        gv
                    };
                    *m += gv * av;
                }
            }
            map
        }
        _ => {
            let weights: Vec<f32> = (0..k)
                .map(|c| {
                    let (ac, gc) = channel(c);
                    channel_weight(method, ac, gc)
                })
                .collect();
            weighted_sum(&weights, a, n)
        }
    }
}

/// One channel's weight, in f32 like pytorch-grad-cam's NumPy arithmetic.
fn channel_weight(method: Method, a: &[f32], g: &[f32]) -> f32 {
    let sum_a: f32 = a.iter().sum();
    match method {
        Method::GradCam => g.iter().map(|&v| f64::from(v)).sum::<f64>() as f32 / g.len() as f32,
        Method::GradCamPlusPlus => g
            .iter()
            .map(|&gv| {
                if gv == 0.0 {
                    return 0.0;
                }
                let g2 = gv * gv;
                let g3 = g2 * gv;
                let aij = g2 / (2.0 * g2 + sum_a * g3 + 1e-6);
                gv.max(0.0) * aij
            })
            .sum(),
        Method::XGradCam => g
            .iter()
            .zip(a)
            .map(|(&gv, &av)| gv * av / (sum_a + 1e-7))
            .sum(),
        _ => 0.0,
    }
}

/// `sum_k weights[k] * A_k` over `[K, n]` row-major activations.
fn weighted_sum(weights: &[f32], a: &[f32], n: usize) -> Vec<f32> {
    let mut map = vec![0f32; n];
    for (c, &wk) in weights.iter().enumerate() {
        if wk == 0.0 {
            continue;
        }
        for (m, &av) in map.iter_mut().zip(&a[c * n..(c + 1) * n]) {
            *m += wk * av;
        }
    }
    map
}

/// Score-CAM's channel weights for every class: `[classes][K]`.
///
/// Each channel is scored by the class's raw logit on the masked input (pytorch-grad-cam's
/// `ClassifierOutputTarget`), and the softmax runs over the channels, not over the classes:
/// the model's activation (softmax or sigmoid) does not enter the method's definition.
fn score_cam(
    classifier: &Classifier,
    analysis: &Analysis,
    acts: &LayerActivations,
    options: &MethodOptions,
    progress: &dyn Progress,
) -> Result<Vec<Vec<f32>>, ExplainError> {
    let view = acts.activation();
    let (k, h, w, a) = (view.channels, view.height, view.width, view.values);
    // [1, C, H, W]: each mask [1, H, W] multiplies every input channel alike.
    let input = &analysis.input;
    let (_, _, ih, iw) = input.dims4()?;
    let chosen = score_cam_channels(a, k, h * w, options.score_cam_channels);
    let classes = analysis.logits.len();
    let mut scores: Vec<Vec<f32>> = Vec::with_capacity(chosen.len()); // [chosen][classes]
    let batch = options.score_cam_batch.max(1);
    progress.report(0, chosen.len());
    for (done, group) in chosen.chunks(batch).enumerate() {
        if progress.cancelled() {
            return Err(ExplainError::Cancelled);
        }
        let mut masks = Vec::with_capacity(group.len() * ih * iw);
        for &c in group {
            let up = upsample_align_corners(&a[c * h * w..(c + 1) * h * w], w, h, iw, ih);
            let (lo, hi) = up
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, u), &v| {
                    (l.min(v), u.max(v))
                });
            masks.extend(up.iter().map(|&v| (v - lo) / (hi - lo + 1e-8)));
        }
        let masks = Tensor::from_vec(masks, (group.len(), 1, ih, iw), input.device())?;
        let masked = input.broadcast_mul(&masks)?;
        let logits: Vec<Vec<f32>> = classifier.forward(&masked)?.logits.to_vec2()?;
        scores.extend(logits);
        progress.report((done * batch + group.len()).min(chosen.len()), chosen.len());
    }
    Ok((0..classes)
        .map(|class| {
            let max = scores
                .iter()
                .map(|s| s[class])
                .fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f64> = scores
                .iter()
                .map(|s| f64::from(s[class] - max).exp())
                .collect();
            let sum: f64 = exps.iter().sum();
            let mut weights = vec![0f32; k];
            for (&c, e) in chosen.iter().zip(&exps) {
                weights[c] = (e / sum) as f32;
            }
            weights
        })
        .collect())
}

/// The channels Score-CAM runs: all, or the `limit` with the largest L2 norm (ties by index),
/// in channel order.
fn score_cam_channels(a: &[f32], k: usize, n: usize, limit: Option<usize>) -> Vec<usize> {
    let mut channels: Vec<usize> = (0..k).collect();
    if let Some(limit) = limit.filter(|&l| l < k) {
        let norm = |c: usize| -> f64 {
            a[c * n..(c + 1) * n]
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum()
        };
        let norms: Vec<f64> = (0..k).map(norm).collect();
        channels.sort_by(|&x, &y| norms[y].total_cmp(&norms[x]).then(x.cmp(&y)));
        channels.truncate(limit);
        channels.sort_unstable();
    }
    channels
}

/// PyTorch's `UpsamplingBilinear2d` (bilinear, `align_corners=True`) of one `w x h` map.
pub fn upsample_align_corners(
    map: &[f32],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    let axis = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|i| {
                let src = if n_out > 1 {
                    i as f32 * (n_in as f32 - 1.0) / (n_out as f32 - 1.0)
                } else {
                    0.0
                };
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    if w == 0 || h == 0 {
        return vec![0.0; out_w * out_h];
    }
    let xs = axis(out_w, w);
    let ys = axis(out_h, h);
    let mut out = Vec::with_capacity(out_w * out_h);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let top = map[y0 * w + x0] * (1.0 - lx) + map[y0 * w + x1] * lx;
            let bottom = map[y1 * w + x0] * (1.0 - lx) + map[y1 * w + x1] * lx;
            out.push(top * (1.0 - ly) + bottom * ly);
        }
    }
    out
}

/// Eigen-CAM: the activations as `n` samples of `K` features, centred per channel, projected
/// on their first principal direction (pytorch-grad-cam's `get_2d_projection`).
///
/// SVD leaves the sign of a singular vector free (NumPy's LAPACK picks one arbitrarily), so we
/// fix it as pytorch-grad-cam's `get_2d_projection_with_sign_correction` does: the map is
/// flipped when its most negative value is larger in magnitude than its largest.
fn eigen_projection(a: &[f32], k: usize, n: usize) -> Vec<f32> {
    // X: n x K, centred columns.
    let mut x = vec![0f64; n * k];
    for c in 0..k {
        let row = &a[c * n..(c + 1) * n];
        let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n.max(1) as f64;
        for (i, &v) in row.iter().enumerate() {
            x[i * k + c] = f64::from(v) - mean;
        }
    }
    // The projection X v1 equals sqrt(l1) u1 with u1 the top eigenvector of X X^T (n x n), and
    // X v1 with v1 the top eigenvector of X^T X (K x K): use the smaller Gram matrix.
    let projection: Vec<f64> = if n <= k {
        let gram = gram(&x, n, k, true);
        let (u, lambda) = top_eigenvector(&gram, n);
        u.iter().map(|v| v * lambda.max(0.0).sqrt()).collect()
    } else {
        let gram = gram(&x, n, k, false);
        let (v, _) = top_eigenvector(&gram, k);
        (0..n)
            .map(|i| (0..k).map(|c| x[i * k + c] * v[c]).sum())
            .collect()
    };
    let (lo, hi) = projection
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, u), &v| {
            (l.min(v), u.max(v))
        });
    let sign = if lo.abs() > hi.abs() { -1.0 } else { 1.0 };
    projection.iter().map(|v| (sign * v) as f32).collect()
}

/// `X X^T` (`rows = true`, n x n) or `X^T X` (K x K) of the n x K matrix `x`.
fn gram(x: &[f64], n: usize, k: usize, rows: bool) -> Vec<f64> {
    if rows {
        let mut g = vec![0f64; n * n];
        for i in 0..n {
            for j in i..n {
                let s: f64 = x[i * k..(i + 1) * k]
                    .iter()
                    .zip(&x[j * k..(j + 1) * k])
                    .map(|(p, q)| p * q)
                    .sum();
                g[i * n + j] = s;
                g[j * n + i] = s;
            }
        }
        g
    } else {
        let mut g = vec![0f64; k * k];
        for i in 0..n {
            let row = &x[i * k..(i + 1) * k];
            for p in 0..k {
                let xp = row[p];
                if xp == 0.0 {
                    continue;
                }
                for (q, &xq) in row.iter().enumerate().skip(p) {
                    g[p * k + q] += xp * xq;
                }
            }
        }
        for p in 0..k {
            for q in 0..p {
                g[p * k + q] = g[q * k + p];
            }
        }
        g
    }
}

/// The eigenvector of the largest eigenvalue of a symmetric positive semi-definite `m x m`
/// matrix, and that eigenvalue: a few squarings (to widen the eigenvalue gap) then power
/// iteration until the vector stops moving.
fn top_eigenvector(g: &[f64], m: usize) -> (Vec<f64>, f64) {
    if m == 0 {
        return (Vec::new(), 0.0);
    }
    let mul = |a: &[f64], v: &[f64]| -> Vec<f64> {
        (0..m)
            .map(|i| {
                a[i * m..(i + 1) * m]
                    .iter()
                    .zip(v)
                    .map(|(p, q)| p * q)
                    .sum()
            })
            .collect()
    };
    let normalise = |v: &mut Vec<f64>| {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    };
    // Powers of g (scaled by their trace) separate the top eigenvalue faster; four squarings
    // give g^16.
    let mut power = g.to_vec();
    for _ in 0..4 {
        let trace: f64 = (0..m).map(|i| power[i * m + i]).sum();
        if trace <= 0.0 {
            break;
        }
        let scaled: Vec<f64> = power.iter().map(|v| v / trace).collect();
        let mut next = vec![0f64; m * m];
        for i in 0..m {
            for l in 0..m {
                let s = scaled[i * m + l];
                if s == 0.0 {
                    continue;
                }
                let row = &scaled[l * m..(l + 1) * m];
                for (o, r) in next[i * m..(i + 1) * m].iter_mut().zip(row) {
                    *o += s * r;
                }
            }
        }
        power = next;
    }
    // Start from a fixed vector with no symmetry, so it is never orthogonal to the answer.
    let mut v: Vec<f64> = (0..m).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
    normalise(&mut v);
    for _ in 0..2000 {
        let mut next = mul(&power, &v);
        normalise(&mut next);
        let moved: f64 = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
        v = next;
        if moved < 1e-13 {
            break;
        }
    }
    let gv = mul(g, &v);
    let lambda: f64 = gv.iter().zip(&v).map(|(a, b)| a * b).sum();
    (v, lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_projection_finds_the_dominant_direction() {
        // Two channels, four positions: channel 1 = 2 * channel 0, so all variance lies along
        // (1, 2); the projection is proportional to the centred channel 0.
        let a = [0.0, 1.0, 2.0, 5.0, 0.0, 2.0, 4.0, 10.0];
        let p = eigen_projection(&a, 2, 4);
        let centred = [-2.0f32, -1.0, 0.0, 3.0];
        let scale = 5f32.sqrt();
        for (got, c) in p.iter().zip(centred) {
            assert!((got - c * scale).abs() < 1e-4, "{p:?}");
        }
        // n > K and n <= K give the same projection.
        let q = eigen_projection(&[0.0, 1.0, 2.0, 5.0, 0.0, 2.0, 4.0, 10.0], 4, 2);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn upsampling_with_aligned_corners_keeps_the_corners() {
        let up = upsample_align_corners(&[0.0, 1.0, 2.0, 3.0], 2, 2, 3, 3);
        assert_eq!(up, [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
    }

    #[test]
    fn score_cam_keeps_the_strongest_channels() {
        let a = [1.0, 1.0, 5.0, 5.0, 0.0, 0.0, 3.0, 3.0];
        assert_eq!(score_cam_channels(&a, 4, 2, Some(2)), [1, 3]);
        assert_eq!(score_cam_channels(&a, 4, 2, None), [0, 1, 2, 3]);
    }
}
