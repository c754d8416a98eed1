//! Model randomisation for the sanity checks of Adebayo et al., "Sanity Checks for Saliency
//! Maps" (NeurIPS 2018): a copy of the classifier whose chosen modules are re-drawn as
//! torchvision's DenseNet initialises them (`torchvision/models/densenet.py`, `DenseNet.__init__`):
//! - convolutions: `nn.init.kaiming_normal_` (fan in, gain √2): normal, std `√(2 / fan_in)`;
//! - batch norms: weight 1, bias 0, and fresh statistics (running mean 0, variance 1);
//! - linear layers: PyTorch's default weight (`kaiming_uniform_(a = √5)`: uniform in
//!   `±1 / √fan_in`) and torchvision's bias 0.
//!
//! The modules are the model's own, top-down: the head, norm5, then each dense block and
//! transition of its configuration from the last, then the stem (conv0 and norm0). Each module's
//! weights come from their own stream of one seed (ChaCha8, the stream being the module's index
//! in `modules`), so a module gets the same weights whether it is randomised alone or in a
//! cascade, and a run is reproduced from its seed.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::{Classifier, InferenceEngine, cam_weights};

/// One module that can be re-drawn.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Module {
    /// Every layer after global average pooling.
    Head,
    Norm5,
    /// `features.denseblock{n}`, 1-based as torchvision names it.
    DenseBlock(usize),
    /// `features.transition{n}`.
    Transition(usize),
    /// conv0 and norm0.
    Stem,
}

impl Module {
    /// Its name as the checkpoint spells it (the head as torchvision's `classifier`).
    pub fn name(&self) -> String {
        match self {
            Self::Head => "classifier".to_string(),
            Self::Norm5 => "features.norm5".to_string(),
            Self::DenseBlock(n) => format!("features.denseblock{n}"),
            Self::Transition(n) => format!("features.transition{n}"),
            Self::Stem => "features.conv0".to_string(),
        }
    }

    /// Whether the tensor `key` (a canonical name) belongs to it.
    fn owns(&self, key: &str) -> bool {
        let under = |prefix: &str| key.starts_with(&format!("{prefix}."));
        match self {
            Self::Head => under("classifier"),
            Self::Stem => under("features.conv0") || under("features.norm0"),
            other => under(&other.name()),
        }
    }
}

impl Classifier {
    /// The modules in cascading order, top-down (the head first, the stem last).
    pub fn modules(&self) -> Vec<Module> {
        let blocks = self.info.config.block_config.len();
        let mut modules = vec![Module::Head, Module::Norm5];
        for n in (1..=blocks).rev() {
            modules.push(Module::DenseBlock(n));
            if n > 1 {
                modules.push(Module::Transition(n - 1));
            }
        }
        modules.push(Module::Stem);
        modules
    }

    /// A copy with `which` re-drawn from `seed` (see the module's documentation); everything
    /// else (the other weights, labels, preprocessing, output rule) is this classifier's.
    pub fn randomised(&self, which: &[Module], seed: u64) -> candle_core::Result<Self> {
        let order = self.modules();
        let mut weights: HashMap<String, Tensor> = (*self.weights).clone();
        for module in which {
            let Some(stream) = order.iter().position(|m| m == module) else {
                candle_core::bail!("the model has no module {}", module.name());
            };
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(stream as u64);
            let mut keys: Vec<String> =
                weights.keys().filter(|k| module.owns(k)).cloned().collect();
            keys.sort();
            for key in keys {
                let tensor = &weights[&key];
                let drawn = initial_value(&key, tensor.dims(), &mut rng)?;
                let drawn = drawn.to_dtype(tensor.dtype())?;
                weights.insert(key, drawn);
            }
        }
        let head = &self.info.head;
        let engine = InferenceEngine::with_head(&self.info.config, head, &weights)?;
        let cam = cam_weights(head, &weights)?;
        Ok(Self {
            engine: Arc::new(engine),
            weights: Arc::new(weights),
            cam,
            info: self.info.clone(),
            labels: self.labels.clone(),
            preprocessing: self.preprocessing.clone(),
        })
    }
}

/// torchvision's initial value of the tensor `key` of shape `dims` (f32).
fn initial_value(key: &str, dims: &[usize], rng: &mut ChaCha8Rng) -> candle_core::Result<Tensor> {
    let count: usize = dims.iter().product();
    let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
    let values: Vec<f32> = if key.ends_with(".running_var") {
        vec![1.0; count]
    } else if key.ends_with(".bias") || key.ends_with(".running_mean") {
        vec![0.0; count]
    } else if dims.len() == 1 {
        vec![1.0; count] // a batch norm's weight
    } else if dims.len() == 4 {
        let normal = Normal::new(0.0, (2.0 / fan_in as f64).sqrt())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        (0..count).map(|_| normal.sample(rng) as f32).collect()
    } else {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let uniform =
            Uniform::new(-bound, bound).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        (0..count).map(|_| rng.sample(uniform) as f32).collect()
    };
    Tensor::from_vec(values, dims, &Device::Cpu)?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn modules_are_the_configurations_own_top_down() {
        let model = demo::demo_classifier().unwrap();
        let names: Vec<String> = model.modules().iter().map(Module::name).collect();
        let blocks = model.config().block_config.len();
        assert_eq!(names.len(), 2 * blocks + 2);
        assert_eq!(names[0], "classifier");
        assert_eq!(names[1], "features.norm5");
        assert_eq!(names[2], format!("features.denseblock{blocks}"));
        assert_eq!(names[3], format!("features.transition{}", blocks - 1));
        assert_eq!(names.last().unwrap(), "features.conv0");
        // every tensor belongs to exactly one module
        for key in model.weights.keys() {
            let owners = model.modules().iter().filter(|m| m.owns(key)).count();
            assert_eq!(owners, 1, "{key}");
        }
    }

    #[test]
    fn randomising_redraws_only_the_module_reproducibly_and_as_torchvision_initialises() {
        let model = demo::demo_classifier().unwrap();
        let block = Module::DenseBlock(1);
        let a = model.randomised(std::slice::from_ref(&block), 7).unwrap();
        let again = model.randomised(std::slice::from_ref(&block), 7).unwrap();
        let other_seed = model.randomised(std::slice::from_ref(&block), 8).unwrap();
        // alone or in a cascade, the block gets the same weights
        let modules = model.modules();
        let upto = modules.iter().position(|m| *m == block).unwrap();
        let cascade = model.randomised(&modules[..=upto], 7).unwrap();
        for (key, original) in model.weights.iter() {
            let drawn = &a.weights[key];
            if block.owns(key) {
                assert_eq!(max_abs(drawn, &again.weights[key]), 0.0, "{key}");
                if key.ends_with("conv1.weight") {
                    assert!(max_abs(drawn, &other_seed.weights[key]) > 0.0, "{key}");
                    assert!(max_abs(drawn, original) > 0.0, "{key}");
                    // Kaiming normal: std √(2 / fan_in)
                    let dims = drawn.dims();
                    let fan_in = (dims[1] * dims[2] * dims[3]) as f64;
                    let v: Vec<f32> = drawn.flatten_all().unwrap().to_vec1().unwrap();
                    let n = v.len() as f64;
                    let var = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n;
                    let expected = 2.0 / fan_in;
                    assert!(
                        (var / expected - 1.0).abs() < 4.0 * (2.0 / n).sqrt() + 0.05,
                        "{key}: {var} vs {expected}"
                    );
                }
                if key.ends_with("norm1.running_var") || key.ends_with("norm1.weight") {
                    let v: Vec<f32> = drawn.to_vec1().unwrap();
                    assert!(v.iter().all(|&x| x == 1.0), "{key}");
                }
                if key.ends_with("norm1.running_mean") || key.ends_with("norm1.bias") {
                    let v: Vec<f32> = drawn.to_vec1().unwrap();
                    assert!(v.iter().all(|&x| x == 0.0), "{key}");
                }
                assert_eq!(max_abs(drawn, &cascade.weights[key]), 0.0, "{key}");
            } else {
                assert_eq!(max_abs(drawn, original), 0.0, "{key}");
            }
        }
    }

    #[test]
    fn a_randomised_head_is_uniform_within_its_bound() {
        let model = demo::demo_classifier().unwrap();
        let r = model.randomised(&[Module::Head], 1).unwrap();
        let w = &r.weights["classifier.weight"];
        let bound = 1.0 / (w.dims()[1] as f32).sqrt();
        let v: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.abs() <= bound));
        assert!(v.iter().any(|x| x.abs() > 0.5 * bound));
        let b: Vec<f32> = r.weights["classifier.bias"].to_vec1().unwrap();
        assert!(b.iter().all(|&x| x == 0.0));
        // and the network runs with it: other logits than the original's
        let x = Tensor::ones(
            (1, model.config().in_channels, 64, 64),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let before = model.forward(&x).unwrap().logits;
        let after = r.forward(&x).unwrap().logits;
        assert!(max_abs(&before, &after) > 0.0);
    }

    #[test]
    fn an_unknown_module_is_an_error() {
        let model = demo::demo_classifier().unwrap();
        assert!(model.randomised(&[Module::DenseBlock(99)], 1).is_err());
    }
}
