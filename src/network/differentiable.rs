//! torchvision's DenseNet in candle, differentiable: what `train` optimises and what the
//! gradient methods back-propagate through. Inference goes through the engine
//! (`super::inference`), which `Classifier::forward` uses.
//!
//! The module tree mirrors `torchvision.models.densenet.DenseNet` so that a `VarBuilder` built
//! from a torchvision state dict (after key normalisation, see `crate::checkpoint`) loads it
//! unchanged: `features.conv0`, `features.norm0`, `features.denseblock{i}.denselayer{j}.{norm1,
//! conv1,norm2,conv2}`, `features.transition{i}.{norm,conv}`, `features.norm5`, `classifier`.

use candle_core::{D, Result, Tensor};
use candle_nn::{BatchNorm, ModuleT, VarBuilder};

use super::config::{BN_EPS, DenseNetConfig, ForwardOutput, Stage};
use super::head::{Head, HeadNet};

fn batch_norm(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    candle_nn::batch_norm(channels, BN_EPS, vb)
}

/// A bias-free convolution with torchvision's `weight` key.
///
/// 1x1 convolutions (half of DenseNet's) are a matrix product, and 3x3 ones are lowered to one
/// (im2col: the nine shifted views stacked), because candle's direct convolution is several
/// times slower than its matmul. conv0 (7x7, stride 2) keeps candle's direct convolution at
/// inference, where im2col would need 49 copies of a possibly large image, and is lowered too
/// when training: the backward pass of candle's direct convolution for the kernel's gradient
/// is a convolution with an image-sized kernel, which took most of a training step.
#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Conv {
    fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (c_out, c_in, kernel, kernel),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        Ok(Self {
            weight,
            kernel,
            stride,
            padding,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let out = self.weight.dim(0)?;
        if self.kernel == 1 && self.stride == 1 && self.padding == 0 {
            let weight = self.weight.reshape((out, c))?;
            return weight
                .broadcast_matmul(&x.reshape((n, c, h * w))?)?
                .reshape((n, out, h, w));
        }
        if self.kernel > 3 && !train {
            return x.conv2d(&self.weight, self.padding, self.stride, 1, 1);
        }
        let (columns, out_h, out_w) = im2col(x, self.kernel, self.stride, self.padding)?;
        let weight = self.weight.reshape((out, c * self.kernel * self.kernel))?;
        weight
            .broadcast_matmul(&columns)?
            .reshape((n, out, out_h, out_w))
    }
}

/// `[n, c, h, w]` to `[n, c * k * k, out_h * out_w]`, columns in the weight's `(c, ky, kx)`
/// order, built from strided shifted views (differentiable).
fn im2col(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<(Tensor, usize, usize)> {
    let (n, c, h, w) = x.dims4()?;
    let (out_h, out_w) = (
        (h + 2 * padding - k) / stride + 1,
        (w + 2 * padding - k) / stride + 1,
    );
    // Enough rows/columns after each shift to take `stride * out` of them.
    let extra_h = (k - 1 + stride * out_h).saturating_sub(h + 2 * padding);
    let extra_w = (k - 1 + stride * out_w).saturating_sub(w + 2 * padding);
    let padded = x
        .pad_with_zeros(D::Minus2, padding, padding + extra_h)?
        .pad_with_zeros(D::Minus1, padding, padding + extra_w)?;
    let width = padded.dim(3)?;
    let mut shifts = Vec::with_capacity(k * k);
    for ky in 0..k {
        let rows = padded.narrow(2, ky, stride * out_h)?;
        let rows = if stride == 1 {
            rows
        } else {
            rows.reshape((n, c, out_h, stride, width))?
                .narrow(3, 0, 1)?
                .squeeze(3)?
        };
        for kx in 0..k {
            let cols = rows.narrow(3, kx, stride * out_w)?;
            let cols = if stride == 1 {
                cols
            } else {
                cols.reshape((n, c, out_h, out_w, stride))?
                    .narrow(4, 0, 1)?
                    .squeeze(4)?
            };
            shifts.push(cols);
        }
    }
    let columns = Tensor::stack(&shifts, 2)?.reshape((n, c * k * k, out_h * out_w))?;
    Ok((columns, out_h, out_w))
}

/// `_DenseLayer`: BN-ReLU-1x1 conv (bottleneck), BN-ReLU-3x3 conv producing `growth_rate` maps.
#[derive(Debug, Clone)]
struct DenseLayer {
    norm1: BatchNorm,
    conv1: Conv,
    norm2: BatchNorm,
    conv2: Conv,
}

impl DenseLayer {
    fn new(c_in: usize, growth: usize, bn_size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: batch_norm(c_in, vb.pp("norm1"))?,
            conv1: Conv::new(c_in, bn_size * growth, 1, 1, 0, vb.pp("conv1"))?,
            norm2: batch_norm(bn_size * growth, vb.pp("norm2"))?,
            conv2: Conv::new(bn_size * growth, growth, 3, 1, 1, vb.pp("conv2"))?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.norm1.forward_t(x, train)?.relu()?;
        let x = self.conv1.forward_t(&x, train)?;
        let x = self.norm2.forward_t(&x, train)?.relu()?;
        self.conv2.forward_t(&x, train)
    }
}

/// `_Transition`: BN-ReLU-1x1 conv halving the channels, then 2x2 average pooling.
#[derive(Debug, Clone)]
struct Transition {
    norm: BatchNorm,
    conv: Conv,
}

impl Transition {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.norm.forward_t(x, train)?.relu()?;
        self.conv.forward_t(&x, train)?.avg_pool2d(2)
    }
}

#[derive(Debug, Clone)]
struct DenseBlock {
    layers: Vec<DenseLayer>,
    transition: Option<Transition>,
}

/// A torchvision DenseNet as candle tensors. `forward_t` gives the logits and the final feature
/// maps, differentiably.
#[derive(Debug, Clone)]
pub struct DifferentiableDenseNet {
    config: DenseNetConfig,
    conv0: Conv,
    norm0: BatchNorm,
    blocks: Vec<DenseBlock>,
    norm5: BatchNorm,
    head: HeadNet,
}

impl DifferentiableDenseNet {
    /// torchvision's DenseNet: its head is one linear layer, `classifier`.
    pub fn new(config: &DenseNetConfig, vb: VarBuilder) -> Result<Self> {
        let head = Head::linear("classifier", config.num_features(), config.num_classes);
        Self::with_head(config, &head, vb)
    }

    /// A DenseNet with `head` after its pooling (its tensors under the canonical names of
    /// `Head::canonical_key`).
    pub fn with_head(config: &DenseNetConfig, head: &Head, vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        let conv0 = Conv::new(
            config.in_channels,
            config.num_init_features,
            7,
            2,
            3,
            f.pp("conv0"),
        )?;
        let norm0 = batch_norm(config.num_init_features, f.pp("norm0"))?;
        let mut channels = config.num_init_features;
        let mut blocks = Vec::with_capacity(config.block_config.len());
        for (i, &n_layers) in config.block_config.iter().enumerate() {
            let bvb = f.pp(format!("denseblock{}", i + 1));
            let mut layers = Vec::with_capacity(n_layers);
            for j in 0..n_layers {
                layers.push(DenseLayer::new(
                    channels + j * config.growth_rate,
                    config.growth_rate,
                    config.bn_size,
                    bvb.pp(format!("denselayer{}", j + 1)),
                )?);
            }
            channels += n_layers * config.growth_rate;
            let transition = if i + 1 != config.block_config.len() {
                let tvb = f.pp(format!("transition{}", i + 1));
                let t = Transition {
                    norm: batch_norm(channels, tvb.pp("norm"))?,
                    conv: Conv::new(channels, channels / 2, 1, 1, 0, tvb.pp("conv"))?,
                };
                channels /= 2;
                Some(t)
            } else {
                None
            };
            blocks.push(DenseBlock { layers, transition });
        }
        let norm5 = batch_norm(channels, f.pp("norm5"))?;
        let head = HeadNet::new(head, &vb)?;
        Ok(Self {
            config: config.clone(),
            conv0,
            norm0,
            blocks,
            norm5,
            head,
        })
    }

    pub fn config(&self) -> &DenseNetConfig {
        &self.config
    }

    /// The last linear layer's weight `[num_classes, inputs]` and bias `[num_classes]`: the
    /// whole head of torchvision's layout (what training builds).
    pub fn classifier(&self) -> (&Tensor, Option<&Tensor>) {
        let last = self.head.last_linear();
        (last.weight(), last.bias())
    }

    /// Inference forward pass (batch norm uses its running statistics).
    pub fn forward(&self, x: &Tensor) -> Result<ForwardOutput> {
        self.forward_t(x, false)
    }

    /// Forward pass; `train` selects batch statistics in batch norm (used by training).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<ForwardOutput> {
        let mut x = self.stem_t(x, train)?;
        for step in 0..self.steps() {
            x = self.step_t(step, x, train)?;
        }
        let logits = self.pool_and_head(&x)?;
        Ok(ForwardOutput {
            logits,
            features: x,
        })
    }

    /// Inference up to and including `stage`: its output activation `[batch, channels, h, w]`
    /// (for `Norm5`, `relu(norm5(..))`, the maps CAM weighs). With `forward_from`, the
    /// reference the inference engine's backward pass is tested against.
    pub fn forward_to(&self, x: &Tensor, stage: Stage) -> Result<Tensor> {
        let last = self.step_of(stage)?;
        let mut x = self.stem_t(x, false)?;
        for step in 0..=last {
            x = self.step_t(step, x, false)?;
        }
        Ok(x)
    }

    /// Inference from `stage`'s output activation to the logits `[batch, num_classes]`.
    /// Differentiable in `activation`: the gradient methods pass a `Var` here.
    pub fn forward_from(&self, activation: &Tensor, stage: Stage) -> Result<Tensor> {
        let first = self.step_of(stage)? + 1;
        let mut x = activation.clone();
        for step in first..self.steps() {
            x = self.step_t(step, x, false)?;
        }
        self.pool_and_head(&x)
    }

    /// conv0, norm0, relu0, pool0.
    fn stem_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.conv0.forward_t(x, train)?;
        let x = self.norm0.forward_t(&x, train)?.relu()?;
        max_pool_3x3_s2_p1(&x, train)
    }

    /// Steps after the stem: `2 i` is dense block `i + 1`, `2 i + 1` its transition (none after
    /// the last block: an identity), `2 n` is `relu(norm5)`.
    fn steps(&self) -> usize {
        2 * self.blocks.len() + 1
    }

    fn step_of(&self, stage: Stage) -> Result<usize> {
        let n = self.blocks.len();
        match stage {
            Stage::DenseBlock(i) if (1..=n).contains(&i) => Ok(2 * (i - 1)),
            Stage::Transition(i) if (1..n).contains(&i) => Ok(2 * (i - 1) + 1),
            Stage::Norm5 => Ok(2 * n),
            _ => Err(candle_core::Error::Msg(format!(
                "this DenseNet has no layer {}",
                stage.name()
            ))),
        }
    }

    fn step_t(&self, step: usize, x: Tensor, train: bool) -> Result<Tensor> {
        if step == 2 * self.blocks.len() {
            return self.norm5.forward_t(&x, train)?.relu();
        }
        let Some(block) = self.blocks.get(step / 2) else {
            return Ok(x);
        };
        if step % 2 == 1 {
            return match &block.transition {
                Some(t) => t.forward_t(&x, train),
                None => Ok(x),
            };
        }
        let mut maps = vec![x];
        for layer in &block.layers {
            let input = if maps.len() == 1 {
                maps[0].clone()
            } else {
                Tensor::cat(&maps, 1)?
            };
            maps.push(layer.forward_t(&input, train)?);
        }
        Tensor::cat(&maps, 1)
    }

    /// Global average pooling and the head.
    fn pool_and_head(&self, features: &Tensor) -> Result<Tensor> {
        let pooled = features.mean(D::Minus1)?.mean(D::Minus1)?;
        self.head.forward(&pooled)
    }
}

/// torchvision's `pool0`: MaxPool2d(3, stride 2, padding 1).
///
/// The input is post-ReLU (>= 0), so zero padding gives exactly what PyTorch's -inf padding
/// gives. candle's `max_pool2d` has no backward pass when the kernel differs from the stride,
/// so training takes the maximum of the nine strided shifts instead (same values, differentiable).
fn max_pool_3x3_s2_p1(x: &Tensor, differentiable: bool) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (out_h, out_w) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    if !differentiable {
        let x = x
            .pad_with_zeros(D::Minus2, 1, 1)?
            .pad_with_zeros(D::Minus1, 1, 1)?;
        return x.max_pool2d_with_stride(3, 2);
    }
    // Pad so that every shift has 2 * out rows/columns to take the even ones from.
    let x = x
        .pad_with_zeros(D::Minus2, 1, 2 * out_h + 1 - h)?
        .pad_with_zeros(D::Minus1, 1, 2 * out_w + 1 - w)?;
    let mut result: Option<Tensor> = None;
    for dy in 0..3 {
        let rows = x
            .narrow(2, dy, 2 * out_h)?
            .reshape((n, c, out_h, 2, 2 * out_w + 2))?
            .narrow(3, 0, 1)?
            .squeeze(3)?;
        for dx in 0..3 {
            let shifted = rows
                .narrow(3, dx, 2 * out_w)?
                .reshape((n, c, out_h, out_w, 2))?
                .narrow(4, 0, 1)?
                .squeeze(4)?;
            result = Some(match result {
                None => shifted,
                Some(r) => r.maximum(&shifted)?,
            });
        }
    }
    result.ok_or_else(|| candle_core::Error::Msg("empty pooling window".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::test_support::{max_abs_diff, normal, uniform};

    #[test]
    fn lowered_convolutions_equal_candle_s() {
        for (c_in, k, stride, padding, h, w) in [
            (3, 7, 2, 3, 37, 30),
            (5, 3, 1, 1, 9, 8),
            (4, 1, 1, 0, 6, 7),
            (2, 3, 2, 1, 11, 10),
        ] {
            let x = normal(1, &[2, c_in, h, w], 1.0);
            let weight = normal(2, &[6, c_in, k, k], 1.0);
            let conv = Conv {
                weight: weight.clone(),
                kernel: k,
                stride,
                padding,
            };
            let direct = x.conv2d(&weight, padding, stride, 1, 1).unwrap();
            let lowered = conv.forward_t(&x, true).unwrap();
            assert_eq!(direct.dims(), lowered.dims());
            let diff = max_abs_diff(&direct, &lowered);
            assert!(diff < 1e-4, "k{k} s{stride}: {diff}");
        }
    }

    #[test]
    fn differentiable_pooling_equals_candle_s() {
        for (h, w) in [(8, 8), (7, 9), (5, 6), (112, 111)] {
            let x = uniform(3, &[2, 3, h, w], 0.0, 1.0);
            let a = max_pool_3x3_s2_p1(&x, false).unwrap();
            let b = max_pool_3x3_s2_p1(&x, true).unwrap();
            assert_eq!(a.dims(), b.dims());
            let diff = max_abs_diff(&a, &b);
            assert_eq!(diff, 0.0, "{h}x{w}");
        }
    }
}
