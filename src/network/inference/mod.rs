//! The inference engine: torchvision's DenseNet forward pass on plain `f32` buffers, for when no
//! gradient is wanted (every forward of `predict`, `render`, `batch` and the viewer).
//!
//! Same maths as `differentiable::DifferentiableDenseNet::forward` (which stays the
//! differentiable path for training and gradient methods), arranged to do less work:
//! - weights are converted once, at load time, into the matrices the products need;
//! - batch norms that directly follow a convolution (norm0 after conv0, norm2 after conv1) are
//!   folded into its weights and a bias; the others (norm1, the transitions' norm, norm5) are
//!   applied with their ReLU while the next convolution's input is prepared;
//! - each dense block has one feature buffer `[channels, h * w]` that layers append their 32
//!   (growth rate) maps to, so nothing is ever concatenated;
//! - 1x1 convolutions are one matrix product; a 3x3 convolution is one product of all nine
//!   kernel taps with the input (`[9 * out, in] x [in, h * w]`) followed by a shifted sum of
//!   the nine planes (no im2col copy nine times the input's size);
//! - a transition averages 2x2 blocks *before* its 1x1 convolution (both are linear, so the
//!   order does not change the result) and so multiplies 4x fewer columns;
//! - a batch runs as one: a buffer is `[channels, images, h * w]`, so every product has the
//!   batch's columns side by side (`images * h * w`: at 7 x 7, 16 images make the 49 columns
//!   of one image a product worth parallelising), while the per-map passes see `channels *
//!   images` planes. Batches are cut at `BATCH_PIXELS` input pixels to bound memory.
//!
//! The products are candle's CPU matmul (the `gemm` crate, both cores through rayon), called on
//! our buffers without going through `Tensor`s.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Result, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;

use super::config::{BN_EPS, DenseNetConfig, ForwardOutput};
use super::head::{Head, HeadRows};

mod backward;
pub use backward::{ActivationView, Trace};

/// Parallel element-wise passes split work into pieces of at least this many values.
const MIN_PIECE: usize = 16 * 1024;

/// The input pixels one engine batch holds at most (8 images of 224 x 224): block 1's buffer is
/// then about 100 MB for DenseNet-121; larger batches run in pieces this size.
const BATCH_PIXELS: usize = 8 * 224 * 224;

/// How many maps of `size` values make a piece of parallel work (at least one).
fn maps_per_piece(size: usize) -> usize {
    (MIN_PIECE / size.max(1)).max(1)
}

/// A row-major `[rows, cols]` f32 matrix kept in candle's CPU storage so that it can be the
/// left operand of candle's matmul without a copy.
struct Matrix {
    storage: CpuStorage,
    rows: usize,
    cols: usize,
}

impl Matrix {
    fn new(values: Vec<f32>, rows: usize, cols: usize) -> Result<Self> {
        if values.len() != rows * cols {
            candle_core::bail!("matrix of {rows}x{cols} built from {} values", values.len());
        }
        Ok(Self {
            storage: CpuStorage::F32(values),
            rows,
            cols,
        })
    }

    /// `self x rhs`, `rhs` being `[cols, n]` row-major. `rhs` is lent to candle's storage and
    /// given back, so its allocation can be reused.
    fn times(&self, rhs: Vec<f32>, n: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        self.product(false, rhs, n)
    }

    /// `self^T x rhs`, `rhs` being `[rows, n]` row-major (the backward pass's products): the
    /// transpose is a layout, not a copy.
    fn transposed_times(&self, rhs: Vec<f32>, n: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        self.product(true, rhs, n)
    }

    fn product(&self, transposed: bool, rhs: Vec<f32>, n: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (m, k, lhs) = if transposed {
            let layout = Layout::contiguous((self.rows, self.cols)).transpose(0, 1)?;
            (self.cols, self.rows, layout)
        } else {
            (
                self.rows,
                self.cols,
                Layout::contiguous((self.rows, self.cols)),
            )
        };
        if rhs.len() < k * n {
            candle_core::bail!("matmul: {} values for a {k}x{n} operand", rhs.len());
        }
        let rhs = CpuStorage::F32(rhs);
        let product = self
            .storage
            .matmul(&rhs, (1, m, n, k), &lhs, &Layout::contiguous((k, n)))?;
        match (product, rhs) {
            (CpuStorage::F32(out), CpuStorage::F32(rhs)) => Ok((out, rhs)),
            _ => candle_core::bail!("matmul: unexpected storage type"),
        }
    }
}

/// An inference batch norm as `y = x * scale + shift` per channel.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// One dense layer: norm1 (applied while preparing conv1's input), conv1 with norm2 folded in
/// (`bias` is norm2's shift), conv2's nine taps stacked `[(ky * 3 + kx) * growth + o, c]`.
struct Layer {
    norm1: Affine,
    conv1: Matrix,
    bias1: Vec<f32>,
    conv2: Matrix,
}

struct Transition {
    norm: Affine,
    conv: Matrix,
}

struct Block {
    layers: Vec<Layer>,
    transition: Option<Transition>,
}

/// A DenseNet's weights arranged for the inference engine (see the module's documentation).
pub struct InferenceEngine {
    config: DenseNetConfig,
    /// `[init, in_channels * 7 * 7]` with norm0's scale folded in.
    conv0: Matrix,
    bias0: Vec<f32>,
    blocks: Vec<Block>,
    norm5: Affine,
    head: HeadRows,
}

/// A dense block's feature buffer between the engine's stages:
/// `[capacity, images, height * width]`, of which the first `channels` rows are computed so far.
#[derive(Clone, Default)]
pub struct FeatureMaps {
    pub values: Vec<f32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Images side by side in each channel's row.
    pub images: usize,
    /// Reused between layers (the normalised input of conv1).
    scratch: Vec<f32>,
}

impl std::fmt::Debug for InferenceEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The tensors of a state dict, read as f32 whatever their stored type.
struct Weights<'a> {
    map: &'a HashMap<String, Tensor>,
}

impl Weights<'_> {
    fn get(&self, key: &str) -> Result<Vec<f32>> {
        let tensor = self
            .map
            .get(key)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {key}")))?;
        tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
    }

    fn norm(&self, prefix: &str) -> Result<Affine> {
        let weight = self.get(&format!("{prefix}.weight"))?;
        let bias = self.get(&format!("{prefix}.bias"))?;
        let mean = self.get(&format!("{prefix}.running_mean"))?;
        let var = self.get(&format!("{prefix}.running_var"))?;
        let scale: Vec<f64> = weight
            .iter()
            .zip(&var)
            .map(|(&w, &v)| f64::from(w) / (f64::from(v) + BN_EPS).sqrt())
            .collect();
        let shift = bias
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| (f64::from(b) - f64::from(m) * s) as f32)
            .collect();
        Ok(Affine {
            scale: scale.into_iter().map(|s| s as f32).collect(),
            shift,
        })
    }

    /// A convolution's `[out, rest]` weight with each output row multiplied by `scale`.
    fn scaled_rows(&self, key: &str, scale: &[f32], rest: usize) -> Result<Matrix> {
        let mut weight = self.get(key)?;
        for (row, &s) in weight.chunks_exact_mut(rest.max(1)).zip(scale) {
            row.iter_mut().for_each(|w| *w *= s);
        }
        Matrix::new(weight, scale.len(), rest)
    }
}

impl InferenceEngine {
    /// Arranges the weights of a validated torchvision state dict (see `network::validate`),
    /// whose head is one linear layer, `classifier`.
    pub fn from_tensors(config: &DenseNetConfig, map: &HashMap<String, Tensor>) -> Result<Self> {
        let head = Head::linear("classifier", config.num_features(), config.num_classes);
        Self::with_head(config, &head, map)
    }

    /// Arranges the weights of a validated DenseNet whose head is `head` (its tensors under the
    /// canonical names of `Head::canonical_key`).
    pub fn with_head(
        config: &DenseNetConfig,
        head: &Head,
        map: &HashMap<String, Tensor>,
    ) -> Result<Self> {
        let w = Weights { map };
        let init = config.num_init_features;
        let norm0 = w.norm("features.norm0")?;
        let conv0 = w.scaled_rows(
            "features.conv0.weight",
            &norm0.scale,
            config.in_channels * 49,
        )?;
        let growth = config.growth_rate;
        let inner = config.bn_size * growth;
        let mut channels = init;
        let mut blocks = Vec::with_capacity(config.block_config.len());
        for (i, &n_layers) in config.block_config.iter().enumerate() {
            let mut layers = Vec::with_capacity(n_layers);
            for j in 0..n_layers {
                let p = format!("features.denseblock{}.denselayer{}", i + 1, j + 1);
                let c_in = channels + j * growth;
                let norm2 = w.norm(&format!("{p}.norm2"))?;
                let conv1 = w.scaled_rows(&format!("{p}.conv1.weight"), &norm2.scale, c_in)?;
                // [growth, inner, 3, 3] -> [(ky * 3 + kx) * growth + o, inner]
                let k2 = w.get(&format!("{p}.conv2.weight"))?;
                let mut taps = vec![0f32; 9 * growth * inner];
                for o in 0..growth {
                    for c in 0..inner {
                        for tap in 0..9 {
                            taps[(tap * growth + o) * inner + c] = k2[(o * inner + c) * 9 + tap];
                        }
                    }
                }
                layers.push(Layer {
                    norm1: w.norm(&format!("{p}.norm1"))?,
                    conv1,
                    bias1: norm2.shift,
                    conv2: Matrix::new(taps, 9 * growth, inner)?,
                });
            }
            channels += n_layers * growth;
            let transition = if i + 1 != config.block_config.len() {
                let p = format!("features.transition{}", i + 1);
                let t = Transition {
                    norm: w.norm(&format!("{p}.norm"))?,
                    conv: Matrix::new(w.get(&format!("{p}.conv.weight"))?, channels / 2, channels)?,
                };
                channels /= 2;
                Some(t)
            } else {
                None
            };
            blocks.push(Block { layers, transition });
        }
        Ok(Self {
            config: config.clone(),
            conv0,
            bias0: norm0.shift,
            blocks,
            norm5: w.norm("features.norm5")?,
            head: HeadRows::new(head, |key| w.get(key))?,
        })
    }

    pub fn config(&self) -> &DenseNetConfig {
        &self.config
    }

    /// Inference forward pass of `[batch, in_channels, h, w]`: the same logits and feature
    /// maps as the differentiable network's `forward`, as tensors on the CPU.
    pub fn forward(&self, x: &Tensor) -> Result<ForwardOutput> {
        let (n, c, h, w) = x.dims4()?;
        let expected = self.config.in_channels;
        if c != expected {
            let plural = if expected == 1 { "" } else { "s" };
            candle_core::bail!(
                "the network takes {expected} input channel{plural}, the input has {c}"
            );
        }
        let input: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut logits = Vec::with_capacity(n * self.config.num_classes);
        let mut features = Vec::new();
        let mut grid = (0, 0);
        let per_batch = (BATCH_PIXELS / (h * w).max(1)).max(1);
        for images in input.chunks(per_batch * c * h * w) {
            let (l, f) = self.forward_images(images, images.len() / (c * h * w), h, w)?;
            logits.extend(l);
            grid = (f.height, f.width);
            features.extend(image_major(&f));
        }
        let channels = self.config.num_features();
        Ok(ForwardOutput {
            logits: Tensor::from_vec(logits, (n, self.config.num_classes), &Device::Cpu)?,
            features: Tensor::from_vec(features, (n, channels, grid.0, grid.1), &Device::Cpu)?,
        })
    }

    /// `n` images `[n, in_channels, h, w]`: their logits (image by image) and
    /// `relu(norm5(..))` (`[features, n, h5 * w5]`).
    fn forward_images(
        &self,
        images: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<(Vec<f32>, FeatureMaps)> {
        let mut maps = self.stem(images, n, h, w)?;
        for (i, block) in self.blocks.iter().enumerate() {
            for j in 0..block.layers.len() {
                self.dense_layer(i, j, &mut maps)?;
            }
            if block.transition.is_some() {
                maps = self.transition(i, &maps)?;
            }
        }
        self.head(maps)
    }

    /// The stem: conv0 (norm0 folded in), relu0 and pool0 of `n` images
    /// `[n, in_channels, h, w]`, written into the first dense block's feature buffer.
    pub fn stem(&self, images: &[f32], n: usize, h: usize, w: usize) -> Result<FeatureMaps> {
        let channels = self.config.in_channels;
        if images.len() != n * channels * h * w {
            candle_core::bail!(
                "{} values for {n} images of {channels}x{h}x{w}",
                images.len()
            );
        }
        let (oh, ow) = (conv_out(h, 7, 2, 3)?, conv_out(w, 7, 2, 3)?);
        let columns = im2col_7x7_s2(images, n, channels, h, w, oh, ow);
        let (mut x, _) = self.conv0.times(columns, n * oh * ow)?;
        bias_relu(&mut x, &self.bias0, n * oh * ow);
        let (ph, pw) = (conv_out(oh, 3, 2, 1)?, conv_out(ow, 3, 2, 1)?);
        let channels = self.config.num_init_features;
        Ok(FeatureMaps {
            values: max_pool_3x3_s2(&x, channels * n, oh, ow, ph, pw, self.block_width(0) * n),
            channels,
            height: ph,
            width: pw,
            images: n,
            scratch: Vec::new(),
        })
    }

    /// Dense layer `layer` of block `block`: appends its maps to `maps`. Returns the layer's
    /// bottleneck, `relu(norm2(conv1(..)))` `[bn_size * growth, h * w]`, which the backward
    /// pass needs (its ReLU mask) and an ordinary forward drops.
    pub fn dense_layer(
        &self,
        block: usize,
        layer: usize,
        maps: &mut FeatureMaps,
    ) -> Result<Vec<f32>> {
        let l = self
            .blocks
            .get(block)
            .and_then(|b| b.layers.get(layer))
            .ok_or_else(|| candle_core::Error::Msg(format!("no dense layer {block}.{layer}")))?;
        let growth = self.config.growth_rate;
        if l.conv1.cols != maps.channels
            || maps.values.len() < (maps.channels + growth) * maps.images * maps.height * maps.width
        {
            candle_core::bail!(
                "dense layer {block}.{layer} takes {} channels, the buffer holds {}",
                l.conv1.cols,
                maps.channels
            );
        }
        let scratch = std::mem::take(&mut maps.scratch);
        let grid = (maps.images, maps.height, maps.width);
        let (scratch, bottleneck) =
            l.forward(&mut maps.values, maps.channels, growth, grid, scratch)?;
        maps.scratch = scratch;
        maps.channels += growth;
        Ok(bottleneck)
    }

    /// The transition after block `block` (norm, relu, 2x2 average pool, then the 1x1
    /// convolution): the next block's feature buffer.
    pub fn transition(&self, block: usize, maps: &FeatureMaps) -> Result<FeatureMaps> {
        let t = self
            .blocks
            .get(block)
            .and_then(|b| b.transition.as_ref())
            .ok_or_else(|| candle_core::Error::Msg(format!("no transition after block {block}")))?;
        let (h, w) = (maps.height, maps.width);
        let (ph, pw) = (h / 2, w / 2);
        if ph == 0 || pw == 0 {
            candle_core::bail!("the input is too small for this network ({h}x{w} maps)");
        }
        if t.conv.cols != maps.channels {
            candle_core::bail!(
                "transition {block} takes {} channels, the buffer holds {}",
                t.conv.cols,
                maps.channels
            );
        }
        let n = maps.images;
        let rows = &maps.values[..maps.channels * n * h * w];
        let pooled = norm_relu_avg_pool(rows, &t.norm, n, h, w);
        let (mut next, _) = t.conv.times(pooled, n * ph * pw)?;
        next.resize(self.block_width(block + 1) * n * ph * pw, 0.0);
        Ok(FeatureMaps {
            values: next,
            channels: t.conv.rows,
            height: ph,
            width: pw,
            images: n,
            scratch: Vec::new(),
        })
    }

    /// norm5 + relu (the maps CAM weighs), global average pool and the head: the logits
    /// (image by image) and the final feature maps.
    pub fn head(&self, mut maps: FeatureMaps) -> Result<(Vec<f32>, FeatureMaps)> {
        let channels = self.config.num_features();
        let (n, hw) = (maps.images, maps.height * maps.width);
        if maps.channels != channels || maps.values.len() < channels * n * hw {
            candle_core::bail!(
                "the head takes {channels} channels, the buffer holds {}",
                maps.channels
            );
        }
        maps.values.truncate(channels * n * hw);
        maps.scratch = Vec::new();
        norm_relu(&mut maps.values, &self.norm5, n * hw);
        // [channels, n] means
        let pooled: Vec<f32> = maps.values.chunks_exact(hw).map(mean).collect();
        let mut logits = Vec::with_capacity(n * self.config.num_classes);
        for image in 0..n {
            let column = (0..channels).map(|c| pooled[c * n + image]).collect();
            logits.extend(self.head.forward(column)?);
        }
        Ok((logits, maps))
    }

    /// Channels of block `i`'s feature buffer once all its layers have appended theirs.
    fn block_width(&self, i: usize) -> usize {
        let mut channels = self.config.num_init_features;
        for (j, &layers) in self.config.block_config.iter().enumerate() {
            channels += layers * self.config.growth_rate;
            if j == i {
                return channels;
            }
            channels /= 2;
        }
        channels
    }
}

impl Layer {
    /// Appends this layer's `growth` maps to `buffer` (`[channels + growth.., n, h * w]` for
    /// `grid = (n, h, w)`). `scratch` is a reusable allocation, handed back with the
    /// bottleneck (conv2's input).
    fn forward(
        &self,
        buffer: &mut [f32],
        channels: usize,
        growth: usize,
        grid: (usize, usize, usize),
        mut scratch: Vec<f32>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (n, h, w) = grid;
        let hw = h * w;
        let row = n * hw;
        scratch.clear();
        scratch.resize(channels * row, 0.0);
        // norm1 + relu1, written as conv1's input
        scratch
            .par_chunks_mut(row)
            .zip(buffer[..channels * row].par_chunks(row))
            .zip(self.norm1.scale.par_iter().zip(&self.norm1.shift))
            .with_min_len(maps_per_piece(row))
            .for_each(|((out, x), (&s, &t))| {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = (v * s + t).max(0.0);
                }
            });
        // conv1 (+ norm2 folded) + relu2
        let (mut bottleneck, scratch) = self.conv1.times(scratch, row)?;
        bias_relu(&mut bottleneck, &self.bias1, row);
        // conv2: all nine taps at once, then the shifted sum into the feature buffer; the
        // planes of tap t are `[growth, n]` maps, so map `o * n + i` of output `o`, image `i`
        let (taps, bottleneck) = self.conv2.times(bottleneck, row)?;
        let out = &mut buffer[channels * row..(channels + growth) * row];
        out.par_chunks_mut(hw)
            .enumerate()
            .with_min_len(maps_per_piece(9 * hw))
            .for_each(|(p, map)| sum_of_shifted_taps(&taps, growth * n, p, h, w, map));
        Ok((scratch, bottleneck))
    }
}

/// Output size of a convolution or pooling, or an error when the input is too small.
fn conv_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Result<usize> {
    if size + 2 * padding < kernel {
        candle_core::bail!("the input is too small for this network ({size} pixels)");
    }
    Ok((size + 2 * padding - kernel) / stride + 1)
}

/// conv0's input columns for `n` images `[n, channels, h, w]`:
/// `[(c * 7 + ky) * 7 + kx, image, oy * ow + ox]`, zero outside the image.
fn im2col_7x7_s2(
    images: &[f32],
    n: usize,
    channels: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    let mut columns = vec![0f32; channels * 49 * n * oh * ow];
    columns
        .par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(index, out)| {
            let (row, image) = (index / n, index % n);
            let (c, ky, kx) = (row / 49, (row / 7) % 7, row % 7);
            let plane = &images[(image * channels + c) * h * w..][..h * w];
            // ix = 2 * ox + kx - 3 must lie in 0..w
            let ox0 = (3usize.saturating_sub(kx)).div_ceil(2);
            let ox1 = (w + 3).saturating_sub(kx).div_ceil(2).min(ow);
            for oy in 0..oh {
                let iy = 2 * oy + ky;
                if iy < 3 || iy - 3 >= h || ox0 >= ox1 {
                    continue;
                }
                let src = &plane[(iy - 3) * w..(iy - 2) * w];
                let dst = &mut out[oy * ow..(oy + 1) * ow];
                for ox in ox0..ox1 {
                    dst[ox] = src[2 * ox + kx - 3];
                }
            }
        });
    columns
}

/// `x = max(x + bias[c], 0)` for each `[hw]` map `c`.
fn bias_relu(x: &mut [f32], bias: &[f32], hw: usize) {
    x.par_chunks_mut(hw)
        .zip(bias.par_iter())
        .with_min_len(maps_per_piece(hw))
        .for_each(|(map, &b)| map.iter_mut().for_each(|v| *v = (*v + b).max(0.0)));
}

/// `x = max(x * scale[c] + shift[c], 0)` for each `[hw]` map `c`.
fn norm_relu(x: &mut [f32], norm: &Affine, hw: usize) {
    x.par_chunks_mut(hw)
        .zip(norm.scale.par_iter().zip(&norm.shift))
        .with_min_len(maps_per_piece(hw))
        .for_each(|(map, (&s, &t))| map.iter_mut().for_each(|v| *v = (*v * s + t).max(0.0)));
}

/// torchvision's pool0 (3x3, stride 2, padding 1) of post-ReLU maps (so zero padding is
/// exact), written into the first `channels` maps of a `[width, ph * pw]` buffer (maps here
/// are planes: channels times images).
fn max_pool_3x3_s2(
    x: &[f32],
    channels: usize,
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    width: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; width * ph * pw];
    out[..channels * ph * pw]
        .par_chunks_mut(ph * pw)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for py in 0..ph {
                let rows = (2 * py).saturating_sub(1)..(2 * py + 2).min(h);
                for px in 0..pw {
                    let cols = (2 * px).saturating_sub(1)..(2 * px + 2).min(w);
                    let mut m = 0f32;
                    for y in rows.clone() {
                        for &v in &src[y * w + cols.start..y * w + cols.end] {
                            m = m.max(v);
                        }
                    }
                    dst[py * pw + px] = m;
                }
            }
        });
    out
}

/// A transition's `relu(norm(x))` averaged over 2x2 blocks (AvgPool2d(2): a last odd row or
/// column is dropped), `[channels, n, (h / 2) * (w / 2)]` from `[channels, n, h * w]`.
fn norm_relu_avg_pool(x: &[f32], norm: &Affine, n: usize, h: usize, w: usize) -> Vec<f32> {
    let (ph, pw) = (h / 2, w / 2);
    let mut out = vec![0f32; norm.scale.len() * n * ph * pw];
    out.par_chunks_mut(ph * pw)
        .zip(x.par_chunks(h * w))
        .enumerate()
        .with_min_len(maps_per_piece(h * w))
        .for_each(|(plane, (dst, src))| {
            let (s, t) = (norm.scale[plane / n], norm.shift[plane / n]);
            let f = |v: f32| (v * s + t).max(0.0);
            for py in 0..ph {
                let top = &src[2 * py * w..];
                let bottom = &src[(2 * py + 1) * w..];
                for px in 0..pw {
                    let sum = f(top[2 * px])
                        + f(top[2 * px + 1])
                        + f(bottom[2 * px])
                        + f(bottom[2 * px + 1]);
                    dst[py * pw + px] = sum * 0.25;
                }
            }
        });
    out
}

/// The mean of a map, summed in f64.
fn mean(map: &[f32]) -> f32 {
    (map.iter().map(|&v| f64::from(v)).sum::<f64>() / map.len().max(1) as f64) as f32
}

/// `[channels, n, hw]` maps as `[n, channels, hw]` (a tensor's batch order).
fn image_major(maps: &FeatureMaps) -> Vec<f32> {
    let (n, hw) = (maps.images, maps.height * maps.width);
    let mut out = Vec::with_capacity(maps.channels * n * hw);
    for image in 0..n {
        for c in 0..maps.channels {
            out.extend_from_slice(&maps.values[(c * n + image) * hw..][..hw]);
        }
    }
    out
}

/// Output map `o` of a 3x3 convolution (padding 1) from the nine taps' products
/// `taps[(ky * 3 + kx) * growth + o]`: `out[y, x] = sum taps[..][y + ky - 1, x + kx - 1]`.
fn sum_of_shifted_taps(taps: &[f32], growth: usize, o: usize, h: usize, w: usize, out: &mut [f32]) {
    let hw = h * w;
    // The centre tap covers every pixel: start from it instead of zeros.
    let centre = &taps[(4 * growth + o) * hw..(4 * growth + o + 1) * hw];
    out.copy_from_slice(centre);
    for ky in 0..3 {
        for kx in 0..3 {
            if ky == 1 && kx == 1 {
                continue;
            }
            let tap = ky * 3 + kx;
            let plane = &taps[(tap * growth + o) * hw..(tap * growth + o + 1) * hw];
            // y + ky - 1 in 0..h and x + kx - 1 in 0..w
            let (y0, y1) = (1usize.saturating_sub(ky), (h + 1).saturating_sub(ky).min(h));
            let (x0, x1) = (1usize.saturating_sub(kx), (w + 1).saturating_sub(kx).min(w));
            if x0 >= x1 {
                continue;
            }
            for y in y0..y1 {
                let src_row = (y + ky - 1) * w;
                let src = &plane[src_row + x0 + kx - 1..src_row + x1 + kx - 1];
                let dst = &mut out[y * w + x0..y * w + x1];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::DifferentiableDenseNet;
    use crate::network::test_support::{custom, max_abs_diff, normal, random_tensors};
    use candle_nn::VarBuilder;

    fn max_abs(a: &Tensor) -> f32 {
        a.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

    fn assert_engine_matches_candle(config: &DenseNetConfig, dtype: DType, x: &Tensor) {
        let map = random_tensors(config, dtype, 7);
        let engine = InferenceEngine::from_tensors(config, &map).unwrap();
        let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
        let net = DifferentiableDenseNet::new(config, vb).unwrap();
        let reference = net.forward(x).unwrap();
        let fast = engine.forward(x).unwrap();
        for (what, a, b) in [
            ("logits", &fast.logits, &reference.logits),
            ("features", &fast.features, &reference.features),
        ] {
            let diff = max_abs_diff(a, b);
            let scale = max_abs(b).max(1.0);
            assert!(
                diff <= 1e-5 * scale,
                "{config:?} {dtype:?} {:?}: {what} differ by {diff} (largest value {scale})",
                x.dims()
            );
        }
    }

    #[test]
    fn engine_equals_the_candle_network_on_random_weights() {
        for (config, (n, h, w)) in [
            (custom(4, &[1, 2, 1], 8, 3), (1, 64, 64)),
            (custom(4, &[1, 2, 1], 8, 3), (2, 37, 30)),
            (custom(6, &[2, 3], 10, 2), (1, 33, 45)),
            (custom(8, &[3], 16, 4), (1, 17, 9)),
            (custom(5, &[2, 1, 2, 1], 7, 4), (1, 70, 67)),
            // conv0's maps larger than one piece of parallel work
            (custom(4, &[1, 1], 8, 2), (1, 300, 261)),
            // three images in one engine batch; two too large to share one (BATCH_PIXELS)
            (custom(4, &[2, 1, 2], 8, 2), (3, 64, 48)),
            (custom(4, &[1, 1], 8, 2), (2, 700, 600)),
        ] {
            let x = normal(11, &[n, 3, h, w], 1.0);
            assert_engine_matches_candle(&config, DType::F32, &x);
        }
    }

    /// `config` with a first convolution taking one channel.
    fn grayscale(config: DenseNetConfig) -> DenseNetConfig {
        DenseNetConfig {
            in_channels: 1,
            ..config
        }
    }

    #[test]
    fn engine_equals_the_candle_network_with_one_input_channel() {
        let gray = grayscale(custom(4, &[1, 2, 1], 8, 3));
        for (n, h, w) in [(1, 64, 64), (2, 37, 30)] {
            let x = normal(14, &[n, 1, h, w], 1.0);
            assert_engine_matches_candle(&gray, DType::F32, &x);
        }
    }

    #[test]
    fn an_input_with_the_wrong_channel_count_is_an_error() {
        let gray = grayscale(custom(4, &[1, 1], 8, 2));
        let engine =
            InferenceEngine::from_tensors(&gray, &random_tensors(&gray, DType::F32, 9)).unwrap();
        let x = Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
        // candle appends a backtrace when RUST_BACKTRACE is set
        let err = engine.forward(&x).unwrap_err().to_string();
        assert!(
            err.starts_with("the network takes 1 input channel, the input has 3"),
            "{err}"
        );
    }

    #[test]
    fn engine_equals_the_candle_network_with_half_precision_weights() {
        let x = normal(12, &[1, 3, 49, 51], 1.0);
        for dtype in [DType::F16, DType::BF16] {
            assert_engine_matches_candle(&custom(4, &[2, 2, 1], 8, 2), dtype, &x);
        }
    }

    #[test]
    fn densenet121_shapes_and_values_at_224() {
        let x = normal(13, &[1, 3, 224, 224], 1.0);
        assert_engine_matches_candle(&DenseNetConfig::densenet121(4), DType::F32, &x);
    }

    #[test]
    fn an_input_too_small_is_an_error_not_a_panic() {
        let config = custom(4, &[1, 1, 1], 8, 2);
        let map = random_tensors(&config, DType::F32, 8);
        let engine = InferenceEngine::from_tensors(&config, &map).unwrap();
        for size in [1, 3, 8] {
            let x = Tensor::zeros((1, 3, size, size), DType::F32, &Device::Cpu).unwrap();
            assert!(engine.forward(&x).is_err(), "{size}x{size}");
        }
        let x = Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
        assert!(engine.forward(&x).is_ok());
    }

    #[test]
    fn shifted_tap_sum_is_a_3x3_convolution() {
        // one output map, every tap plane a distinct ramp: compare with the direct sum
        let (h, w, growth) = (4, 5, 2);
        let taps: Vec<f32> = (0..9 * growth * h * w).map(|i| (i % 97) as f32).collect();
        for o in 0..growth {
            let mut out = vec![0f32; h * w];
            sum_of_shifted_taps(&taps, growth, o, h, w, &mut out);
            for y in 0..h {
                for x in 0..w {
                    let mut expected = 0f32;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) = (y as isize + ky - 1, x as isize + kx - 1);
                            if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                                let tap = (ky * 3 + kx) as usize;
                                expected += taps
                                    [(tap * growth + o) * h * w + sy as usize * w + sx as usize];
                            }
                        }
                    }
                    assert_eq!(out[y * w + x], expected, "map {o} at ({y}, {x})");
                }
            }
        }
    }
}
