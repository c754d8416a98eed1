//! Seeded random tensors for the network's tests: a failure on random weights can be reproduced
//! from the seed in its message (candle's own `Tensor::rand` cannot be seeded on the CPU).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::DenseNetConfig;

/// Largest absolute difference of two tensors of the same shape.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Values drawn uniformly from `[low, high)`.
pub(crate) fn uniform(seed: u64, shape: &[usize], low: f32, high: f32) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(low..high)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Values drawn from a normal distribution of mean 0 (Box-Muller).
pub(crate) fn normal(seed: u64, shape: &[usize], std: f32) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            z as f32 * std
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// A state dict of `config` with random weights and batch-norm statistics (so that every fold
/// and fusion of the engine is exercised), as a checkpoint would hold it.
pub(crate) fn random_tensors(
    config: &DenseNetConfig,
    dtype: DType,
    seed: u64,
) -> HashMap<String, Tensor> {
    config
        .expected_tensors()
        .into_iter()
        .enumerate()
        .map(|(i, (key, shape))| {
            let seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let is_norm_weight = key.contains(".norm") && key.ends_with(".weight");
            let t = if key.ends_with("running_var") || is_norm_weight {
                uniform(seed, &shape, 0.5, 1.5)
            } else if key.ends_with(".bias") || key.ends_with("running_mean") {
                uniform(seed, &shape, -0.3, 0.3)
            } else {
                let fan_in: usize = shape[1..].iter().product();
                normal(seed, &shape, (2.0 / fan_in as f32).sqrt())
            };
            (key, t.to_dtype(dtype).unwrap())
        })
        .collect()
}

/// A small DenseNet of 3 input channels and 3 classes: growth rate, blocks, initial features,
/// bottleneck size.
pub(crate) fn custom(
    growth: usize,
    blocks: &[usize],
    init: usize,
    bn_size: usize,
) -> DenseNetConfig {
    DenseNetConfig {
        in_channels: 3,
        growth_rate: growth,
        block_config: blocks.to_vec(),
        num_init_features: init,
        bn_size,
        num_classes: 3,
    }
}
