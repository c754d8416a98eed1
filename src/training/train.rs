//! Training a torchvision-style DenseNet with candle-nn on the CPU: the demo model is made this
//! way, through the same differentiable DenseNet (and so the same key names) as users' checkpoints.

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use image::{GrayImage, Pixel, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::imaging::{PreprocessError, Preprocessing};
use crate::network::{DenseNetConfig, DifferentiableDenseNet};

/// The demo model's architecture: two dense blocks, so the final maps are 1/8 of the input
/// (16 x 16 at 128 pixels: fine enough to point at small lesions, where torchvision's four
/// blocks would give 4 x 4), compact enough to train in minutes on two cores.
pub fn demo_config() -> DenseNetConfig {
    DenseNetConfig {
        in_channels: 3,
        growth_rate: 12,
        block_config: vec![3, 4],
        num_init_features: 24,
        bn_size: 4,
        num_classes: 2,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub model: DenseNetConfig,
    pub preprocessing: Preprocessing,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Share of the samples held out for validation.
    pub validation_fraction: f64,
    /// Weight of the localisation term (see [`localisation_loss`]); 0 trains on image labels
    /// only and ignores the masks.
    pub mask_weight: f64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: demo_config(),
            preprocessing: Preprocessing {
                input_size: 128,
                ..Preprocessing::default()
            },
            epochs: 8,
            batch_size: 16,
            learning_rate: 3e-3,
            weight_decay: 1e-4,
            validation_fraction: 0.15,
            mask_weight: 0.0,
            seed: 1,
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub validation_loss: f32,
    pub validation_accuracy: f32,
    pub seconds: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "training needs at least two samples of each class (got {positives} positive, {negatives} negative)"
    )]
    TooFewSamples { positives: usize, negatives: usize },
    #[error("sample {index}: {source}")]
    Preprocess {
        index: usize,
        source: PreprocessError,
    },
    #[error("the network failed: {0}")]
    Network(#[from] candle_core::Error),
}

/// An image to train on: its class and, when known, the mask of what makes it that class
/// (255 inside a lesion), the same size as the image.
pub struct LabelledImage {
    pub image: RgbImage,
    pub label: u32,
    pub mask: Option<GrayImage>,
}

/// A labelled training image, already at the network's input size (8-bit, what PIL would give);
/// its mask stretched to the same size.
pub struct Sample {
    pub pixels: RgbImage,
    pub label: u32,
    pub mask: Option<GrayImage>,
}

/// Resizes images (and masks) to the network's input size once, so epochs only augment and
/// normalise. Training stretches (`Resize((S, S))`), so the mask is stretched the same way.
pub fn prepare_samples(
    images: impl Iterator<Item = LabelledImage>,
    preprocessing: &Preprocessing,
    channels: usize,
) -> Result<Vec<Sample>, TrainError> {
    images
        .enumerate()
        .map(|(index, item)| {
            let input = preprocessing
                .prepare(&item.image, channels)
                .map_err(|source| TrainError::Preprocess { index, source })?;
            let (w, h) = input.pixels.dimensions();
            let mask = item
                .mask
                .map(|m| image::imageops::resize(&m, w, h, image::imageops::FilterType::Triangle));
            Ok(Sample {
                pixels: input.pixels,
                label: item.label,
                mask,
            })
        })
        .collect()
}

/// One random flip-and-shift, applied alike to an image and its mask.
struct Augmentation {
    flip_x: bool,
    flip_y: bool,
    dx: i64,
    dy: i64,
}

impl Augmentation {
    /// Random flips and a shift of up to 1/8 of the side: the lesion's position and
    /// orientation must not matter.
    fn draw(side: u32, rng: &mut ChaCha8Rng) -> Self {
        let max_shift = i64::from(side / 8);
        Self {
            flip_x: rng.random_bool(0.5),
            flip_y: rng.random_bool(0.5),
            dx: rng.random_range(-max_shift..=max_shift),
            dy: rng.random_range(-max_shift..=max_shift),
        }
    }

    /// The image shifted (edges repeated), then flipped.
    fn apply<P: Pixel>(
        &self,
        pixels: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    ) -> image::ImageBuffer<P, Vec<P::Subpixel>> {
        let (w, h) = pixels.dimensions();
        image::ImageBuffer::from_fn(w, h, |x, y| {
            let sx = (i64::from(x) + self.dx).clamp(0, i64::from(w) - 1) as u32;
            let sy = (i64::from(y) + self.dy).clamp(0, i64::from(h) - 1) as u32;
            let sx = if self.flip_x { w - 1 - sx } else { sx };
            let sy = if self.flip_y { h - 1 - sy } else { sy };
            *pixels.get_pixel(sx, sy)
        })
    }
}

/// A batch as tensors, with its masks as augmented.
struct Batch {
    x: Tensor,
    y: Tensor,
    labels: Vec<u32>,
    masks: Vec<Option<GrayImage>>,
}

fn batch_tensor(
    samples: &[&Sample],
    preprocessing: &Preprocessing,
    channels: usize,
    rng: Option<&mut ChaCha8Rng>,
) -> Result<Batch, TrainError> {
    let mut inputs = Vec::with_capacity(samples.len());
    let mut masks = Vec::with_capacity(samples.len());
    let mut rng = rng;
    for s in samples {
        let (pixels, mask) = match rng.as_deref_mut() {
            Some(r) => {
                let a = Augmentation::draw(s.pixels.width().min(s.pixels.height()), r);
                (a.apply(&s.pixels), s.mask.as_ref().map(|m| a.apply(m)))
            }
            None => (s.pixels.clone(), s.mask.clone()),
        };
        inputs.push(preprocessing.to_tensor(&pixels, channels)?);
        masks.push(mask);
    }
    let x = Tensor::cat(&inputs, 0)?;
    let labels: Vec<u32> = samples.iter().map(|s| s.label).collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu)?;
    Ok(Batch {
        x,
        y,
        labels,
        masks,
    })
}

/// How much of each final feature cell's centre a mask covers, `[h * w]` in 0..=1: the mean of
/// the mask over the middle half of the cell (in each direction). A bilinearly upsampled map
/// peaks at a cell centre, so these are the cells whose maximum would land on the lesion.
fn cell_targets(mask: &GrayImage, h: usize, w: usize) -> Vec<f32> {
    let (mw, mh) = (mask.width() as f32, mask.height() as f32);
    let span = |k: usize, n: usize, side: f32| {
        let cell = side / n as f32;
        let lo = (k as f32 * cell + cell / 4.0).floor() as u32;
        let hi = ((k as f32 + 1.0) * cell - cell / 4.0)
            .ceil()
            .max(lo as f32 + 1.0) as u32;
        (lo, hi.min(side as u32))
    };
    let mut out = Vec::with_capacity(h * w);
    for i in 0..h {
        let (y0, y1) = span(i, h, mh);
        for j in 0..w {
            let (x0, x1) = span(j, w, mw);
            let (mut sum, mut count) = (0u32, 0u32);
            for y in y0..y1 {
                for x in x0..x1 {
                    sum += u32::from(mask.get_pixel(x, y).0[0]);
                    count += 1;
                }
            }
            out.push(sum as f32 / (255 * count.max(1)) as f32);
        }
    }
    out
}

/// The localisation term: for each sample with a non-empty mask, `-ln` of the share of a
/// spatial softmax of its class's map that falls on the mask's cells (see [`cell_targets`]),
/// averaged; `None` when no sample of the batch has a lesion. The map is CAM's, from the
/// classifier with its rows centred (the form [`Trainer::state_dict`] saves), so the term
/// shapes exactly the map `camview` draws. It asks the network to put its evidence where the
/// lesion is, not merely somewhere that predicts one.
fn localisation_loss(
    features: &Tensor,
    classifier: &Tensor,
    labels: &[u32],
    masks: &[Option<GrayImage>],
) -> Result<Option<Tensor>, candle_core::Error> {
    let (_, c, h, w) = features.dims4()?;
    let (mut rows, mut classes, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (label, mask)) in labels.iter().zip(masks).enumerate() {
        let Some(mask) = mask else { continue };
        let t = cell_targets(mask, h, w);
        if t.iter().any(|v| *v > 0.0) {
            rows.push(i as u32);
            classes.push(*label);
            targets.extend(t);
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let device = features.device();
    let p = rows.len();
    let features = features
        .index_select(&Tensor::new(rows.as_slice(), device)?, 0)?
        .reshape((p, c, h * w))?;
    let centred = classifier.broadcast_sub(&classifier.mean_keepdim(0)?)?;
    let weights = centred.index_select(&Tensor::new(classes.as_slice(), device)?, 0)?;
    let maps = weights.unsqueeze(1)?.matmul(&features)?.squeeze(1)?;
    let spatial = candle_nn::ops::log_softmax(&maps, 1)?.exp()?;
    let targets = Tensor::from_vec(targets, (p, h * w), device)?;
    let inside = (spatial * targets)?.sum(1)?;
    Ok(Some((inside + 1e-4)?.log()?.neg()?.mean_all()?))
}

/// A model being trained: its variables and the network reading them.
pub struct Trainer {
    pub varmap: VarMap,
    pub net: DifferentiableDenseNet,
    optimizer: AdamW,
    config: TrainConfig,
    rng: ChaCha8Rng,
}

/// What one optimisation step did.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub loss: f32,
    /// Images of the batch classified right (before the step).
    pub correct: usize,
}

/// Loss and accuracy over a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation {
    pub loss: f32,
    pub accuracy: f32,
}

impl Trainer {
    pub fn new(config: TrainConfig) -> Result<Self, TrainError> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = DifferentiableDenseNet::new(&config.model, vb)?;
        // Seed every weight: VarMap's initialisers draw from candle's own RNG, so re-draw
        // each trainable tensor from ours (kaiming-uniform-like scale) for reproducibility.
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        reseed(&varmap, &mut rng)?;
        let trainable: Vec<Var> = trainable_vars(&varmap);
        let optimizer = AdamW::new(
            trainable,
            ParamsAdamW {
                lr: config.learning_rate,
                weight_decay: config.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        Ok(Self {
            varmap,
            net,
            optimizer,
            config,
            rng,
        })
    }

    /// One optimisation step on a batch. The loss is the cross-entropy plus, with a mask
    /// weight, that weight times [`localisation_loss`].
    pub fn step(&mut self, batch: &[&Sample]) -> Result<StepReport, TrainError> {
        let b = batch_tensor(
            batch,
            &self.config.preprocessing,
            self.config.model.in_channels,
            Some(&mut self.rng),
        )?;
        let out = self.net.forward_t(&b.x, true)?;
        let mut loss = candle_nn::loss::cross_entropy(&out.logits, &b.y)?;
        if self.config.mask_weight > 0.0 {
            let (classifier, _) = self.net.classifier();
            if let Some(term) = localisation_loss(&out.features, classifier, &b.labels, &b.masks)? {
                loss = (loss + (term * self.config.mask_weight)?)?;
            }
        }
        self.optimizer.backward_step(&loss)?;
        Ok(StepReport {
            loss: loss.to_scalar::<f32>()?,
            correct: correct(&out.logits, &b.y)?,
        })
    }

    /// Loss and accuracy in inference mode (running batch-norm statistics, no augmentation).
    pub fn evaluate(&self, samples: &[Sample]) -> Result<Evaluation, TrainError> {
        let mut loss_sum = 0.0;
        let mut right = 0;
        for chunk in samples.chunks(self.config.batch_size.max(1)) {
            let refs: Vec<&Sample> = chunk.iter().collect();
            let b = batch_tensor(
                &refs,
                &self.config.preprocessing,
                self.config.model.in_channels,
                None,
            )?;
            let logits = self.net.forward(&b.x)?.logits;
            loss_sum += candle_nn::loss::cross_entropy(&logits, &b.y)?.to_scalar::<f32>()?
                * chunk.len() as f32;
            right += correct(&logits, &b.y)?;
        }
        let n = samples.len().max(1) as f32;
        Ok(Evaluation {
            loss: loss_sum / n,
            accuracy: right as f32 / n,
        })
    }

    /// Trains for the configured epochs; `on_step` is called after every batch (for progress)
    /// and `on_epoch` after every epoch with the trainer as it stands (e.g. to save it), and
    /// may stop the training early with `ControlFlow::Break`.
    pub fn fit(
        &mut self,
        train: &[Sample],
        validation: &[Sample],
        mut on_step: impl FnMut(usize, f32),
        mut on_epoch: impl FnMut(&EpochReport, &Self) -> ControlFlow<()>,
    ) -> Result<Vec<EpochReport>, TrainError> {
        let mut reports = Vec::new();
        let steps_per_epoch = train.len().div_ceil(self.config.batch_size.max(1));
        for epoch in 1..=self.config.epochs {
            let start = std::time::Instant::now();
            // Cosine decay of the learning rate over all steps.
            let mut order: Vec<usize> = (0..train.len()).collect();
            order.shuffle(&mut self.rng);
            let (mut loss_sum, mut right) = (0.0, 0);
            for (i, chunk) in order.chunks(self.config.batch_size.max(1)).enumerate() {
                let progress = ((epoch - 1) * steps_per_epoch + i) as f64
                    / (self.config.epochs * steps_per_epoch).max(1) as f64;
                let lr = self.config.learning_rate
                    * 0.5
                    * (1.0 + (std::f64::consts::PI * progress).cos());
                self.optimizer.set_learning_rate(lr);
                let batch: Vec<&Sample> = chunk.iter().map(|&j| &train[j]).collect();
                let step = self.step(&batch)?;
                loss_sum += step.loss * batch.len() as f32;
                right += step.correct;
                on_step(i, step.loss);
            }
            let n = train.len().max(1) as f32;
            let held_out = self.evaluate(validation)?;
            let report = EpochReport {
                epoch,
                train_loss: loss_sum / n,
                train_accuracy: right as f32 / n,
                validation_loss: held_out.loss,
                validation_accuracy: held_out.accuracy,
                seconds: start.elapsed().as_secs_f32(),
            };
            let flow = on_epoch(&report, self);
            reports.push(report);
            if flow.is_break() {
                break;
            }
        }
        Ok(reports)
    }

    /// The weights as a torchvision state dict, ready for `.safetensors`. The classifier's
    /// rows (weights and biases) are centred, their mean over the classes subtracted: every
    /// softmax output stays the same, and each class's CAM becomes its evidence against the
    /// average class instead of carrying a part common to all classes that training never
    /// constrains.
    pub fn state_dict(&self) -> Result<Vec<(String, Tensor)>, candle_core::Error> {
        let Ok(data) = self.varmap.data().lock() else {
            return Ok(Vec::new());
        };
        let mut tensors = data
            .iter()
            .map(|(k, v)| {
                let t = v.as_tensor();
                let t = if k == "classifier.weight" || k == "classifier.bias" {
                    t.broadcast_sub(&t.mean_keepdim(0)?)?
                } else {
                    t.clone()
                };
                Ok((k.clone(), t))
            })
            .collect::<Result<Vec<_>, candle_core::Error>>()?;
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tensors)
    }
}

/// Splits samples into training and validation sets with both classes in each.
pub fn split(
    samples: Vec<Sample>,
    validation_fraction: f64,
    seed: u64,
) -> Result<(Vec<Sample>, Vec<Sample>), TrainError> {
    let positives = samples.iter().filter(|s| s.label == 1).count();
    let negatives = samples.len() - positives;
    if positives < 2 || negatives < 2 {
        return Err(TrainError::TooFewSamples {
            positives,
            negatives,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut samples = samples;
    samples.shuffle(&mut rng);
    let n_val =
        ((samples.len() as f64 * validation_fraction).round() as usize).clamp(2, samples.len() - 2);
    let train = samples.split_off(n_val);
    Ok((train, samples))
}

fn correct(logits: &Tensor, y: &Tensor) -> Result<usize, candle_core::Error> {
    let predicted = logits.argmax(1)?;
    Ok(predicted
        .eq(y)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as usize)
}

/// Batch norm's running statistics are buffers, not parameters: the optimiser must not see them.
fn trainable_vars(varmap: &VarMap) -> Vec<Var> {
    let data = varmap.data().lock();
    data.map(|d| {
        let mut named: Vec<(&String, &Var)> = d
            .iter()
            .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
            .collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        named.into_iter().map(|(_, v)| v.clone()).collect()
    })
    .unwrap_or_default()
}

/// Redraws every weight from `rng` so that a seed fixes the initial model: convolutions and the
/// classifier uniformly in ±sqrt(6 / fan_in) (He), batch norm weights 1 and biases 0 as PyTorch.
fn reseed(varmap: &VarMap, rng: &mut ChaCha8Rng) -> Result<(), candle_core::Error> {
    let Ok(data) = varmap.data().lock() else {
        return Ok(());
    };
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let Some(var) = data.get(name) else { continue };
        let dims = var.dims().to_vec();
        let is_conv_or_linear = name.ends_with("weight") && dims.len() >= 2;
        if !is_conv_or_linear {
            if name.starts_with("classifier") && name.ends_with("bias") {
                var.set(&Tensor::zeros(dims.as_slice(), DType::F32, &Device::Cpu)?)?;
            }
            continue;
        }
        let fan_in: usize = dims[1..].iter().product();
        let bound = (6.0 / fan_in as f64).sqrt() as f32;
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        var.set(&Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::test_support::max_abs_diff;

    fn tiny_config() -> TrainConfig {
        TrainConfig {
            model: DenseNetConfig {
                in_channels: 3,
                growth_rate: 4,
                block_config: vec![1, 1],
                num_init_features: 8,
                bn_size: 2,
                num_classes: 2,
            },
            preprocessing: Preprocessing {
                input_size: 32,
                ..Preprocessing::default()
            },
            epochs: 1,
            batch_size: 8,
            learning_rate: 1e-2,
            weight_decay: 0.0,
            validation_fraction: 0.25,
            mask_weight: 0.0,
            seed: 3,
        }
    }

    /// Class 1: a bright square somewhere; class 0: none.
    fn toy_samples(n: usize) -> Vec<Sample> {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        (0..n)
            .map(|i| {
                let label = (i % 2) as u32;
                let (cx, cy) = (rng.random_range(6..26), rng.random_range(6..26));
                let pixels = RgbImage::from_fn(32, 32, |x, y| {
                    let inside = label == 1 && x.abs_diff(cx) < 5 && y.abs_diff(cy) < 5;
                    image::Rgb([if inside { 230 } else { 40 }; 3])
                });
                let mask = GrayImage::from_fn(32, 32, |x, y| {
                    image::Luma([if pixels.get_pixel(x, y).0[0] > 100 {
                        255
                    } else {
                        0
                    }])
                });
                Sample {
                    pixels,
                    label,
                    mask: Some(mask),
                }
            })
            .collect()
    }

    /// The losses of 20 steps on 16 toy images.
    struct LossCurve {
        /// Mean of the first three.
        first: f32,
        /// Mean of the last three.
        after: f32,
        losses: Vec<f32>,
    }

    fn twenty_steps(trainer: &mut Trainer) -> LossCurve {
        let samples = toy_samples(16);
        let batch: Vec<&Sample> = samples.iter().collect();
        let losses: Vec<f32> = (0..20)
            .map(|_| trainer.step(&batch).unwrap().loss)
            .collect();
        LossCurve {
            first: losses[..3].iter().sum::<f32>() / 3.0,
            after: losses[17..].iter().sum::<f32>() / 3.0,
            losses,
        }
    }

    #[test]
    fn a_few_steps_lower_the_loss() {
        let mut trainer = Trainer::new(tiny_config()).unwrap();
        let LossCurve {
            first,
            after,
            losses,
        } = twenty_steps(&mut trainer);
        assert!(after < first * 0.7, "loss {first} -> {after}: {losses:?}");
    }

    #[test]
    fn the_seed_fixes_the_initial_weights_and_keys_are_torchvision_s() {
        let a = Trainer::new(tiny_config()).unwrap().state_dict().unwrap();
        let b = Trainer::new(tiny_config()).unwrap().state_dict().unwrap();
        for ((ka, ta), (kb, tb)) in a.iter().zip(&b) {
            assert_eq!(ka, kb);
            assert_eq!(max_abs_diff(ta, tb), 0.0, "{ka}");
        }
        let expected: Vec<String> = tiny_config()
            .model
            .expected_tensors()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut keys: Vec<String> = a.iter().map(|(k, _)| k.clone()).collect();
        let mut expected_sorted = expected.clone();
        keys.sort();
        expected_sorted.sort();
        assert_eq!(keys, expected_sorted);
    }

    #[test]
    fn a_few_steps_lower_the_loss_with_the_localisation_term() {
        let mut trainer = Trainer::new(TrainConfig {
            mask_weight: 1.0,
            ..tiny_config()
        })
        .unwrap();
        let LossCurve {
            first,
            after,
            losses,
        } = twenty_steps(&mut trainer);
        // The term alone starts near -ln(share of the image the squares cover) > 1.
        assert!(first > 1.5, "{losses:?}");
        assert!(after < first * 0.7, "loss {first} -> {after}: {losses:?}");
    }

    #[test]
    fn augmentation_moves_the_mask_with_the_image() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let threshold = |p: &RgbImage| {
            GrayImage::from_fn(32, 32, |x, y| {
                image::Luma([if p.get_pixel(x, y).0[0] > 100 { 255 } else { 0 }])
            })
        };
        for s in toy_samples(8).iter().filter(|s| s.label == 1) {
            for _ in 0..4 {
                let a = Augmentation::draw(32, &mut rng);
                let (pixels, mask) = (a.apply(&s.pixels), a.apply(s.mask.as_ref().unwrap()));
                assert_eq!(mask, threshold(&pixels));
            }
        }
    }

    #[test]
    fn cell_targets_are_the_mask_share_of_each_cell_centre() {
        // A 4 x 4 square at (4..8, 4..8) of a 16 x 16 mask; 2 x 2 cells of 8 pixels, whose
        // middle halves are 2..6 and 10..14: the square covers a quarter of cell (0, 0)'s.
        let mask = GrayImage::from_fn(16, 16, |x, y| {
            image::Luma([if (4..8).contains(&x) && (4..8).contains(&y) {
                255
            } else {
                0
            }])
        });
        assert_eq!(cell_targets(&mask, 2, 2), vec![0.25, 0.0, 0.0, 0.0]);
        let full = GrayImage::from_pixel(12, 12, image::Luma([255]));
        assert_eq!(cell_targets(&full, 3, 3), vec![1.0; 9]);
    }

    #[test]
    fn the_localisation_term_is_minus_ln_the_softmax_mass_on_the_lesion() {
        // One sample, 2 channels on 2 x 2 cells; channel 0 is 1 in cell 0 only. Class 1's
        // centred weights are (1, 0), so its map is (1, 0, 0, 0).
        let features = Tensor::new(
            &[[[[1f32, 0.], [0., 0.]], [[0., 0.], [0., 0.]]]],
            &Device::Cpu,
        )
        .unwrap();
        let classifier = Tensor::new(&[[0f32, 0.], [2., 0.]], &Device::Cpu).unwrap();
        let lesion_in = |cx: u32, cy: u32| {
            Some(GrayImage::from_fn(8, 8, |x, y| {
                image::Luma([if x / 4 == cx && y / 4 == cy { 255 } else { 0 }])
            }))
        };
        let term = |mask: Option<GrayImage>| {
            localisation_loss(&features, &classifier, &[1], &[mask])
                .unwrap()
                .map(|t| t.to_scalar::<f32>().unwrap())
        };
        let e = std::f32::consts::E;
        let on = term(lesion_in(0, 0)).unwrap();
        let off = term(lesion_in(1, 1)).unwrap();
        assert!((on - -(e / (e + 3.0) + 1e-4).ln()).abs() < 1e-5, "{on}");
        assert!((off - -(1.0 / (e + 3.0) + 1e-4).ln()).abs() < 1e-5, "{off}");
        // No lesion, no term.
        assert!(term(Some(GrayImage::new(8, 8))).is_none());
        assert!(term(None).is_none());
    }

    #[test]
    fn the_saved_classifier_is_centred_and_predicts_the_same() {
        let mut trainer = Trainer::new(tiny_config()).unwrap();
        let samples = toy_samples(8);
        let batch: Vec<&Sample> = samples.iter().collect();
        for _ in 0..3 {
            trainer.step(&batch).unwrap();
        }
        let tensors: std::collections::HashMap<String, Tensor> =
            trainer.state_dict().unwrap().into_iter().collect();
        let weight = &tensors["classifier.weight"];
        let row_sum: Vec<f32> = weight.sum(0).unwrap().to_vec1().unwrap();
        assert!(row_sum.iter().all(|v| v.abs() < 1e-5), "{row_sum:?}");
        let (original, _) = trainer.net.classifier();
        let column_sums = original.sum(0).unwrap();
        assert!(
            max_abs_diff(&column_sums, &column_sums.zeros_like().unwrap()) > 1e-3,
            "the test needs an uncentred classifier"
        );
        let saved = DifferentiableDenseNet::new(
            &trainer.config.model,
            VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let x = batch_tensor(
            &batch,
            &trainer.config.preprocessing,
            trainer.config.model.in_channels,
            None,
        )
        .unwrap()
        .x;
        let p = |net: &DifferentiableDenseNet| {
            candle_nn::ops::softmax(&net.forward(&x).unwrap().logits, 1).unwrap()
        };
        let diff = max_abs_diff(&p(&trainer.net), &p(&saved));
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn split_keeps_both_sets_non_empty() {
        let (train, val) = split(toy_samples(20), 0.25, 1).unwrap();
        assert_eq!((train.len(), val.len()), (15, 5));
        assert!(split(toy_samples(2), 0.5, 1).is_err());
    }
}
