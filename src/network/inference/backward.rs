//! The backward pass on the inference engine: `d logit[c] / d A`, the gradient of one class's
//! logit with respect to the activation `A` of one stage, for the gradient methods.
//!
//! A forward pass (`InferenceEngine::trace`) keeps what the way back needs: the feature buffer
//! of every block from the stage on (the ReLU masks of norm1 and of the transitions' norms are
//! recomputed from it), each crossed dense layer's bottleneck (the ReLU mask of
//! `relu(norm2(conv1))`) and `relu(norm5)`. The backward pass (`InferenceEngine::gradient`) then
//! goes from the logit to the stage on plain buffers, with no weight gradients and no autograd:
//! - the head: its linear layers transposed and ReLU masks (`HeadRows::gradient`), then the
//!   global average pool (each pixel gets `1 / (h w)`) and `relu(norm5)` (mask and scale);
//! - a dense layer, last to first (the block's buffer gradient `[channels, h * w]` plays the
//!   concatenation's part: a layer's output gradient is a slice of it, its input gradient is
//!   added to the slice before): conv2 transposed as one product of the kernels transposed
//!   (`[bn_size * growth, 9 * growth]`) with the nine planes of the output gradient shifted
//!   the opposite way; the bottleneck's ReLU mask (norm2 is folded into conv1); conv1
//!   transposed (`[c_in, bn_size * growth]`); norm1's ReLU mask and scale;
//! - a transition: its 1x1 convolution transposed, each 2x2 block gets a quarter of its pooled
//!   gradient (a last odd row or column none), the norm's ReLU mask and scale.
//!
//! The products are the forward's weight matrices read transposed (a layout, not a copy).
//! Checked against candle's autograd on random configurations (this module's tests) and
//! against pytorch-grad-cam's gradients through the methods (`tests/parity.rs`).

use candle_core::Result;
use rayon::prelude::*;

use super::{Affine, FeatureMaps, InferenceEngine, Layer, maps_per_piece, mean};
use crate::network::config::Stage;

/// A forward pass that kept what the backward pass from the logits to `stage` needs.
pub struct Trace {
    stage: Stage,
    /// The blocks from the stage's on (`InferenceEngine::first_traced_block`), in order.
    blocks: Vec<TracedBlock>,
    /// `relu(norm5(..))`, `[features, h * w]`.
    features: FeatureMaps,
    /// Its global average, the head's input.
    pooled: Vec<f32>,
    /// The forward pass's logits (empty for a trace made from features alone).
    logits: Vec<f32>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// One dense block of a trace.
struct TracedBlock {
    index: usize,
    /// Channels of the buffer before the block's first layer (the transition's output).
    initial: usize,
    /// The buffer after the block's last layer (before norm5 for the last block).
    maps: FeatureMaps,
    /// Each layer's bottleneck, when the gradient crosses the block's layers (else empty).
    bottlenecks: Vec<Vec<f32>>,
}

/// A stage's activation in a trace, `[channels, height * width]` row-major.
pub struct ActivationView<'a> {
    pub values: &'a [f32],
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Trace {
    /// A trace at `features.norm5` from the final feature maps a forward pass already gave
    /// (`[channels, height * width]`): the way back crosses only the head.
    pub fn at_norm5(values: Vec<f32>, channels: usize, height: usize, width: usize) -> Self {
        let hw = height * width;
        let pooled = values.chunks_exact(hw.max(1)).map(mean).collect();
        Self {
            stage: Stage::Norm5,
            blocks: Vec::new(),
            features: FeatureMaps {
                values,
                channels,
                height,
                width,
                images: 1,
                scratch: Vec::new(),
            },
            pooled,
            logits: Vec::new(),
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The logits of the traced forward pass (empty for `at_norm5`).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// `relu(norm5(..))`, the final feature maps.
    pub fn features(&self) -> ActivationView<'_> {
        let f = &self.features;
        ActivationView {
            values: &f.values,
            channels: f.channels,
            height: f.height,
            width: f.width,
        }
    }

    /// The activation `A` at the trace's stage.
    pub fn activation(&self) -> ActivationView<'_> {
        let (maps, channels) = match (self.stage, self.blocks.first()) {
            (Stage::DenseBlock(_), Some(b)) => (&b.maps, b.maps.channels),
            (Stage::Transition(_), Some(b)) => (&b.maps, b.initial),
            _ => (&self.features, self.features.channels),
        };
        ActivationView {
            values: &maps.values[..channels * maps.height * maps.width],
            channels,
            height: maps.height,
            width: maps.width,
        }
    }
}

impl InferenceEngine {
    /// The first block a trace to `stage` keeps, and whether the gradient crosses its layers:
    /// denseblock `i` keeps block `i` (its buffer is the activation), transition `i` keeps
    /// block `i + 1` (whose first maps are the activation) and crosses its layers, norm5 none.
    fn first_traced_block(&self, stage: Stage) -> Result<Option<(usize, bool)>> {
        if !self.config.stages().contains(&stage) {
            candle_core::bail!("this DenseNet has no layer {stage}");
        }
        Ok(match stage {
            Stage::DenseBlock(i) => Some((i - 1, false)),
            Stage::Transition(i) => Some((i, true)),
            Stage::Norm5 => None,
        })
    }

    /// The forward pass of one `[in_channels, h, w]` image, keeping what `gradient` needs to go
    /// back to `stage`. Its `activation()` is the stage's output.
    pub fn trace(&self, image: &[f32], h: usize, w: usize, stage: Stage) -> Result<Trace> {
        let first = self.first_traced_block(stage)?;
        let mut maps = self.stem(image, 1, h, w)?;
        let mut blocks = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let initial = maps.channels;
            let keep = first.is_some_and(|(f, _)| i >= f);
            let crossed = first.is_some_and(|(f, cross)| i > f || (i == f && cross));
            let mut bottlenecks = Vec::new();
            for j in 0..block.layers.len() {
                let bottleneck = self.dense_layer(i, j, &mut maps)?;
                if crossed {
                    bottlenecks.push(bottleneck);
                }
            }
            maps.scratch = Vec::new();
            let next = if block.transition.is_some() {
                Some(self.transition(i, &maps)?)
            } else {
                None
            };
            if keep {
                let kept = match &next {
                    Some(_) => std::mem::take(&mut maps),
                    None => maps.clone(),
                };
                blocks.push(TracedBlock {
                    index: i,
                    initial,
                    maps: kept,
                    bottlenecks,
                });
            }
            if let Some(next) = next {
                maps = next;
            }
        }
        let (logits, features) = self.head(maps)?;
        let mut trace = Trace::at_norm5(
            features.values,
            features.channels,
            features.height,
            features.width,
        );
        trace.stage = stage;
        trace.blocks = blocks;
        trace.logits = logits;
        Ok(trace)
    }

    /// `d logit[class] / d A` at the trace's stage, `[channels * h * w]` like `activation()`.
    pub fn gradient(&self, trace: &Trace, class: usize) -> Result<Vec<f32>> {
        let features = &trace.features;
        let hw = features.height * features.width;
        let dp = self.head.gradient(&trace.pooled, class)?;
        let per_pixel: Vec<f32> = dp.iter().map(|&d| d / hw as f32).collect();
        if trace.stage == Stage::Norm5 {
            return Ok(per_pixel
                .iter()
                .flat_map(|&d| std::iter::repeat_n(d, hw))
                .collect());
        }
        // back through relu(norm5): the features are its output, positive where it passed
        let mut g = vec![0f32; features.channels * hw];
        g.par_chunks_mut(hw)
            .zip(features.values.par_chunks(hw))
            .zip(per_pixel.par_iter().zip(&self.norm5.scale))
            .with_min_len(maps_per_piece(hw))
            .for_each(|((gm, f), (&d, &s))| {
                for (gv, &fv) in gm.iter_mut().zip(f) {
                    if fv > 0.0 {
                        *gv = d * s;
                    }
                }
            });
        for (position, block) in trace.blocks.iter().enumerate().rev() {
            let at_stage = position == 0;
            if at_stage && matches!(trace.stage, Stage::DenseBlock(_)) {
                return Ok(g);
            }
            self.dense_layers_backward(block, &mut g)?;
            let hw = block.maps.height * block.maps.width;
            g.truncate(block.initial * hw);
            if at_stage {
                return Ok(g);
            }
            let previous = &trace.blocks[position - 1];
            g = self.transition_backward(previous, g)?;
        }
        candle_core::bail!("the trace does not reach {}", trace.stage)
    }

    /// Back through every layer of a traced block, last to first: `g` is the gradient of the
    /// block's buffer `[channels, h * w]`, each layer adding its input's share.
    fn dense_layers_backward(&self, block: &TracedBlock, g: &mut [f32]) -> Result<()> {
        let layers = &self.blocks[block.index].layers;
        if block.bottlenecks.len() != layers.len() {
            candle_core::bail!("the trace kept no bottlenecks of block {}", block.index + 1);
        }
        let maps = &block.maps;
        let (h, w) = (maps.height, maps.width);
        let hw = h * w;
        let growth = self.config.growth_rate;
        for (layer, bottleneck) in layers.iter().zip(&block.bottlenecks).rev() {
            let c_in = layer.conv1.cols;
            let (g_input, g_rest) = g.split_at_mut(c_in * hw);
            let g_out = &g_rest[..growth * hw];
            layer.backward(g_out, bottleneck, &maps.values[..c_in * hw], h, w, g_input)?;
        }
        Ok(())
    }

    /// Back through the transition after `block`: from the gradient of its output (the next
    /// block's first maps, `[out, (h / 2) * (w / 2)]`) to the gradient of `block`'s buffer.
    fn transition_backward(&self, block: &TracedBlock, g_next: Vec<f32>) -> Result<Vec<f32>> {
        let t = self.blocks[block.index]
            .transition
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("no transition to go back through".into()))?;
        let maps = &block.maps;
        let (h, w) = (maps.height, maps.width);
        let (ph, pw) = (h / 2, w / 2);
        let (g_pooled, _) = t.conv.transposed_times(g_next, ph * pw)?;
        let mut g = vec![0f32; t.conv.cols * h * w];
        g.par_chunks_mut(h * w)
            .zip(g_pooled.par_chunks(ph * pw))
            .zip(maps.values.par_chunks(h * w))
            .zip(t.norm.scale.par_iter().zip(&t.norm.shift))
            .with_min_len(maps_per_piece(h * w))
            .for_each(|(((gm, gp), x), (&s, &shift))| {
                for py in 0..ph {
                    for px in 0..pw {
                        let v = gp[py * pw + px] * 0.25 * s;
                        for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            let i = (2 * py + dy) * w + 2 * px + dx;
                            if x[i] * s + shift > 0.0 {
                                gm[i] = v;
                            }
                        }
                    }
                }
            });
        Ok(g)
    }
}

impl Layer {
    /// Back through this layer: from its output's gradient `g_out` (`[growth, h * w]`) to its
    /// input's, added into `g_input` (`[c_in, h * w]`). `bottleneck` and `input` (the layer's
    /// input maps) are the forward's.
    fn backward(
        &self,
        g_out: &[f32],
        bottleneck: &[f32],
        input: &[f32],
        h: usize,
        w: usize,
        g_input: &mut [f32],
    ) -> Result<()> {
        let hw = h * w;
        let growth = g_out.len() / hw.max(1);
        // conv2 transposed: the nine shifted planes, then [inner, 9 * growth] x [9 * growth, hw]
        let shifted = shifted_planes_transposed(g_out, growth, h, w);
        let (mut g_bottleneck, _) = self.conv2.transposed_times(shifted, hw)?;
        // relu2 (norm2 is in conv1's weights)
        g_bottleneck
            .par_chunks_mut(hw)
            .zip(bottleneck.par_chunks(hw))
            .with_min_len(maps_per_piece(hw))
            .for_each(|(gm, y)| {
                for (gv, &yv) in gm.iter_mut().zip(y) {
                    if yv <= 0.0 {
                        *gv = 0.0;
                    }
                }
            });
        // conv1 transposed, then relu1 and norm1, added to the input's gradient
        let (g_new, _) = self.conv1.transposed_times(g_bottleneck, hw)?;
        add_through_norm_relu(g_input, &g_new, input, &self.norm1, hw);
        Ok(())
    }
}

/// `g += g_new * s` where `x * s + t > 0` (the forward's `relu(norm(x))`), per `[hw]` map.
fn add_through_norm_relu(g: &mut [f32], g_new: &[f32], x: &[f32], norm: &Affine, hw: usize) {
    g.par_chunks_mut(hw)
        .zip(g_new.par_chunks(hw))
        .zip(x.par_chunks(hw))
        .zip(norm.scale.par_iter().zip(&norm.shift))
        .with_min_len(maps_per_piece(hw))
        .for_each(|(((gm, gn), xm), (&s, &t))| {
            for ((gv, &nv), &xv) in gm.iter_mut().zip(gn).zip(xm) {
                if xv * s + t > 0.0 {
                    *gv += nv * s;
                }
            }
        });
}

/// The adjoint of `sum_of_shifted_taps`: for each tap `(ky, kx)` and output map `o`, the
/// plane `[(ky * 3 + kx) * growth + o]` holds `g_out[o]` moved so that
/// `plane[y, x] = g_out[o][y + 1 - ky, x + 1 - kx]` (zero outside).
fn shifted_planes_transposed(g_out: &[f32], growth: usize, h: usize, w: usize) -> Vec<f32> {
    let hw = h * w;
    let mut planes = vec![0f32; 9 * growth * hw];
    planes
        .par_chunks_mut(hw)
        .enumerate()
        .with_min_len(maps_per_piece(hw))
        .for_each(|(index, plane)| {
            let (tap, o) = (index / growth, index % growth);
            let (ky, kx) = (tap / 3, tap % 3);
            let source = &g_out[o * hw..(o + 1) * hw];
            // y + 1 - ky in 0..h and x + 1 - kx in 0..w
            let (y0, y1) = (ky.saturating_sub(1), (h + ky).saturating_sub(1).min(h));
            let (x0, x1) = (kx.saturating_sub(1), (w + kx).saturating_sub(1).min(w));
            if x0 >= x1 {
                return;
            }
            for y in y0..y1 {
                let src = (y + 1 - ky) * w;
                plane[y * w + x0..y * w + x1]
                    .copy_from_slice(&source[src + x0 + 1 - kx..src + x1 + 1 - kx]);
            }
        });
    planes
}

#[cfg(test)]
mod tests {
    use super::super::sum_of_shifted_taps;
    use super::*;
    use crate::network::DifferentiableDenseNet;
    use crate::network::config::DenseNetConfig;
    use crate::network::test_support::{custom, normal, random_tensors};
    use candle_core::{DType, Device, Tensor, Var};
    use candle_nn::VarBuilder;

    /// candle's autograd: `d logit[class] / d A` at `stage`, `[channels * h * w]`.
    fn candle_gradient(
        net: &DifferentiableDenseNet,
        x: &Tensor,
        stage: Stage,
        class: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let activation = net.forward_to(x, stage).unwrap();
        let var = Var::from_tensor(&activation).unwrap();
        let logits = net.forward_from(var.as_tensor(), stage).unwrap();
        let score = logits.narrow(1, class, 1).unwrap().sum_all().unwrap();
        let grads = score.backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap();
        (
            activation.flatten_all().unwrap().to_vec1().unwrap(),
            g.flatten_all().unwrap().to_vec1().unwrap(),
        )
    }

    fn assert_close(what: &str, got: &[f32], expected: &[f32], tolerance: f32) {
        assert_eq!(got.len(), expected.len(), "{what}: lengths");
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let diff = got
            .iter()
            .zip(expected)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= tolerance * scale,
            "{what}: differ by {diff} (largest value {scale})"
        );
    }

    fn check(config: &DenseNetConfig, dtype: DType, size: (usize, usize), seed: u64) {
        let map = random_tensors(config, dtype, seed);
        let engine = InferenceEngine::from_tensors(config, &map).unwrap();
        let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
        let net = DifferentiableDenseNet::new(config, vb).unwrap();
        let (h, w) = size;
        let x = normal(seed + 1, &[1, config.in_channels, h, w], 1.0);
        let image: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        for stage in config.stages() {
            let trace = engine.trace(&image, h, w, stage).unwrap();
            for class in 0..config.num_classes {
                let (activation, expected) = candle_gradient(&net, &x, stage, class);
                let what = format!("{config:?} {dtype:?} {size:?} {stage} class {class}");
                assert_close(&what, trace.activation().values, &activation, 1e-5);
                let got = engine.gradient(&trace, class).unwrap();
                assert_close(&what, &got, &expected, 1e-5);
            }
        }
    }

    /// Sizes whose maps are even wherever a transition pools: candle's average-pool backward
    /// upsamples the gradient to the input's size (nearest), which is PyTorch's gradient only
    /// when no row or column is dropped; odd sizes are checked against PyTorch itself
    /// (`gradients_equal_pytorchs_at_odd_sizes`, below).
    #[test]
    fn gradients_equal_candles_autograd_at_every_stage() {
        check(&custom(4, &[1, 2, 1], 8, 3), DType::F32, (64, 64), 21);
        check(&custom(6, &[2, 3], 10, 2), DType::F32, (45, 37), 22);
        check(&custom(5, &[2, 1, 2, 1], 7, 4), DType::F32, (128, 96), 23);
        check(&custom(4, &[2, 2, 1], 8, 2), DType::F16, (64, 48), 24);
        let gray = DenseNetConfig {
            in_channels: 1,
            ..custom(4, &[1, 2], 8, 3)
        };
        check(&gray, DType::F32, (40, 48), 25);
    }

    /// `tests/fixtures/expected/gradients` (make_gradient_fixtures.py): PyTorch's activations
    /// and gradients of the tiny model at 75 x 69, where transitions drop rows and columns.
    #[test]
    fn gradients_equal_pytorchs_at_odd_sizes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let classifier =
            crate::network::Classifier::load(&root.join("models/tiny.pth"), None).unwrap();
        let engine = classifier.engine();
        let dir = root.join("expected/gradients");
        let npy = |name: &str| -> Vec<f32> {
            Tensor::read_npy(dir.join(name))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let input = Tensor::read_npy(dir.join("input.npy")).unwrap();
        let (_, _, h, w) = input.dims4().unwrap();
        assert_eq!((h, w), (75, 69));
        let image: Vec<f32> = input.flatten_all().unwrap().to_vec1().unwrap();
        let stages = classifier.stages();
        assert_eq!(stages.len(), 8);
        for stage in stages {
            let short = stage.name().replace("features.", "");
            let trace = engine.trace(&image, h, w, stage).unwrap();
            let activation = npy(&format!("{short}.activation.npy"));
            assert_close(&short, trace.activation().values, &activation, 1e-5);
            let gradients = npy(&format!("{short}.gradient.npy"));
            let per_class = gradients.len() / 3;
            for (class, expected) in gradients.chunks_exact(per_class).enumerate() {
                let got = engine.gradient(&trace, class).unwrap();
                assert_close(&format!("{short} class {class}"), &got, expected, 1e-5);
            }
        }
    }

    #[test]
    fn the_transposed_shift_is_the_adjoint_of_the_shifted_sum() {
        // <S(taps), g> = <taps, S^T(g)> for the forward's shifted sum S
        let (h, w, growth) = (5, 4, 2);
        let taps: Vec<f32> = (0..9 * growth * h * w)
            .map(|i| ((i * 37) % 23) as f32 - 11.0)
            .collect();
        let g: Vec<f32> = (0..growth * h * w)
            .map(|i| ((i * 11) % 7) as f32 - 3.0)
            .collect();
        let mut forward = vec![0f32; growth * h * w];
        for (o, out) in forward.chunks_mut(h * w).enumerate() {
            sum_of_shifted_taps(&taps, growth, o, h, w, out);
        }
        let lhs: f32 = forward.iter().zip(&g).map(|(a, b)| a * b).sum();
        let back = shifted_planes_transposed(&g, growth, h, w);
        let rhs: f32 = taps.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
    }

    #[test]
    fn a_stage_the_network_lacks_is_an_error() {
        let config = custom(4, &[1, 1], 8, 2);
        let engine =
            InferenceEngine::from_tensors(&config, &random_tensors(&config, DType::F32, 3))
                .unwrap();
        let image = vec![0f32; 3 * 32 * 32];
        for stage in [
            Stage::DenseBlock(3),
            Stage::Transition(2),
            Stage::DenseBlock(0),
        ] {
            assert!(engine.trace(&image, 32, 32, stage).is_err(), "{stage}");
        }
    }
}
