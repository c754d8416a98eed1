//! Training a torchvision-style DenseNet with candle-nn on the CPU: the demo model is made this
//! way, through the same `DenseNet` (and so the same key names) as users' checkpoints.

use std::ops::ControlFlow;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::imaging::{PreprocessError, Preprocessing};
use crate::network::{DenseNet, DenseNetConfig};

/// The demo model's architecture: two dense blocks, so the final maps are 1/8 of the input
/// (16 x 16 at 128 pixels: fine enough to point at small lesions, where torchvision's four
/// blocks would give 4 x 4), compact enough to train in minutes on two cores.
pub fn demo_config() -> DenseNetConfig {
    DenseNetConfig {
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

/// A labelled training image, already at the network's input size (8-bit, what PIL would give).
pub struct Sample {
    pub pixels: RgbImage,
    pub label: u32,
}

/// Resizes images to the network's input size once, so epochs only augment and normalise.
pub fn prepare_samples(
    images: impl Iterator<Item = (RgbImage, u32)>,
    preprocessing: &Preprocessing,
) -> Result<Vec<Sample>, TrainError> {
    images
        .enumerate()
        .map(|(index, (image, label))| {
            let input = preprocessing
                .prepare(&image)
                .map_err(|source| TrainError::Preprocess { index, source })?;
            Ok(Sample {
                pixels: input.pixels,
                label,
            })
        })
        .collect()
}

/// Random flips and a shift of up to 1/8 of the side (edges repeated): the lesion's position
/// and orientation must not matter.
fn augment(pixels: &RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
    let (w, h) = pixels.dimensions();
    let flip_x = rng.random_bool(0.5);
    let flip_y = rng.random_bool(0.5);
    let max_shift = (w.min(h) / 8) as i64;
    let dx = rng.random_range(-max_shift..=max_shift);
    let dy = rng.random_range(-max_shift..=max_shift);
    RgbImage::from_fn(w, h, |x, y| {
        let sx = (i64::from(x) + dx).clamp(0, i64::from(w) - 1) as u32;
        let sy = (i64::from(y) + dy).clamp(0, i64::from(h) - 1) as u32;
        let sx = if flip_x { w - 1 - sx } else { sx };
        let sy = if flip_y { h - 1 - sy } else { sy };
        *pixels.get_pixel(sx, sy)
    })
}

fn batch_tensor(
    samples: &[&Sample],
    preprocessing: &Preprocessing,
    rng: Option<&mut ChaCha8Rng>,
) -> Result<(Tensor, Tensor), TrainError> {
    let mut inputs = Vec::with_capacity(samples.len());
    let mut rng = rng;
    for s in samples {
        let pixels = match rng.as_deref_mut() {
            Some(r) => augment(&s.pixels, r),
            None => s.pixels.clone(),
        };
        inputs.push(preprocessing.to_tensor(&pixels)?);
    }
    let x = Tensor::cat(&inputs, 0)?;
    let labels: Vec<u32> = samples.iter().map(|s| s.label).collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu)?;
    Ok((x, y))
}

/// A model being trained: its variables and the network reading them.
pub struct Trainer {
    pub varmap: VarMap,
    pub net: DenseNet,
    optimizer: AdamW,
    config: TrainConfig,
    rng: ChaCha8Rng,
}

impl Trainer {
    pub fn new(config: TrainConfig) -> Result<Self, TrainError> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = DenseNet::new(&config.model, vb)?;
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

    /// One optimisation step on a batch; returns the loss and the number of correct answers.
    pub fn step(&mut self, batch: &[&Sample]) -> Result<(f32, usize), TrainError> {
        let (x, y) = batch_tensor(batch, &self.config.preprocessing, Some(&mut self.rng))?;
        let logits = self.net.forward_t(&x, true)?.logits;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        self.optimizer.backward_step(&loss)?;
        Ok((loss.to_scalar::<f32>()?, correct(&logits, &y)?))
    }

    /// Loss and accuracy in inference mode (running batch-norm statistics, no augmentation).
    pub fn evaluate(&self, samples: &[Sample]) -> Result<(f32, f32), TrainError> {
        let mut loss_sum = 0.0;
        let mut right = 0;
        for chunk in samples.chunks(self.config.batch_size.max(1)) {
            let refs: Vec<&Sample> = chunk.iter().collect();
            let (x, y) = batch_tensor(&refs, &self.config.preprocessing, None)?;
            let logits = self.net.forward(&x)?.logits;
            loss_sum += candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()?
                * chunk.len() as f32;
            right += correct(&logits, &y)?;
        }
        let n = samples.len().max(1) as f32;
        Ok((loss_sum / n, right as f32 / n))
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
                let (loss, ok) = self.step(&batch)?;
                loss_sum += loss * batch.len() as f32;
                right += ok;
                on_step(i, loss);
            }
            let n = train.len().max(1) as f32;
            let (validation_loss, validation_accuracy) = self.evaluate(validation)?;
            let report = EpochReport {
                epoch,
                train_loss: loss_sum / n,
                train_accuracy: right as f32 / n,
                validation_loss,
                validation_accuracy,
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

    /// The weights as a torchvision state dict, ready for `.safetensors`.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        let data = self.varmap.data().lock().map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect::<Vec<_>>()
        });
        let mut tensors = data.unwrap_or_default();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        tensors
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

    fn tiny_config() -> TrainConfig {
        TrainConfig {
            model: DenseNetConfig {
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
                Sample { pixels, label }
            })
            .collect()
    }

    #[test]
    fn a_few_steps_lower_the_loss() {
        let mut trainer = Trainer::new(tiny_config()).unwrap();
        let samples = toy_samples(16);
        let batch: Vec<&Sample> = samples.iter().collect();
        let losses: Vec<f32> = (0..20).map(|_| trainer.step(&batch).unwrap().0).collect();
        let first = losses[..3].iter().sum::<f32>() / 3.0;
        let after = losses[17..].iter().sum::<f32>() / 3.0;
        assert!(after < first * 0.7, "loss {first} -> {after}: {losses:?}");
    }

    #[test]
    fn the_seed_fixes_the_initial_weights_and_keys_are_torchvision_s() {
        let a = Trainer::new(tiny_config()).unwrap().state_dict();
        let b = Trainer::new(tiny_config()).unwrap().state_dict();
        for ((ka, ta), (kb, tb)) in a.iter().zip(&b) {
            assert_eq!(ka, kb);
            let diff: f32 = (ta - tb)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(diff, 0.0, "{ka}");
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
    fn split_keeps_both_sets_non_empty() {
        let (train, val) = split(toy_samples(20), 0.25, 1).unwrap();
        assert_eq!((train.len(), val.len()), (15, 5));
        assert!(split(toy_samples(2), 0.5, 1).is_err());
    }
}
