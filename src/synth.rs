//! Deterministic synthetic scans for training and showing the demo model.
//!
//! Each scan is an 8-bit grayscale image of anatomy-like texture: a body outline (sometimes
//! cropped away), one to three organ-like shapes with their own intensity, texture and edge
//! sharpness, bones, vessels, short streaks and rings, a smooth bias field, sensor noise and a
//! per-image brightness/contrast/gamma. Half of the scans (decided per index) also hold one to
//! three *lesions*: compact, irregular, round-ish blobs with soft edges, mostly inside an
//! organ, mostly brighter than their surroundings. Only the lesions are marked in the mask.
//!
//! Vessels, streaks, rings, bones and sharp organ edges appear with the same probabilities and
//! the same contrast in both classes, so brightness or local contrast alone cannot tell a
//! positive scan from a negative one: the cue is the blob's shape. Organs are always larger than
//! the largest lesion (semi-axes at least 0.14 of the side against a lesion radius of at most
//! 0.11), as real anatomy has its scale. When organs could be as small as lesions, large
//! lesions were missed twice as often as small ones and every model tried stopped at 96%
//! accuracy, on its own training scans as on new ones (the demo model card has the figures).
//!
//! Scan `index` of a seed is drawn from its own ChaCha8 stream (key from the seed, stream number
//! the index), and the generator uses only IEEE arithmetic and square roots (no `sin`, `exp`,
//! `ln` from the platform's maths library), so a seed gives the same bytes on every machine, in
//! any order, on any number of threads.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::GrayImage;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::export::{ExportError, write_atomic};

/// The smallest width or height of a scan.
pub const MIN_SIDE: u32 = 128;
/// The largest width or height of a scan.
pub const MAX_SIDE: u32 = 256;

/// One lesion of a positive scan, as drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lesion {
    /// Centre column, in pixels.
    pub x: f32,
    /// Centre row, in pixels.
    pub y: f32,
    /// Mean radius, in pixels.
    pub radius: f32,
    /// Peak intensity change on the generator's 0..1 scale before the per-image contrast
    /// (positive: brighter than its surroundings).
    pub contrast: f32,
}

/// One synthetic scan.
#[derive(Debug, Clone)]
pub struct Scan {
    /// 8-bit grayscale, each side between [`MIN_SIDE`] and [`MAX_SIDE`] (may be non-square).
    pub image: GrayImage,
    /// Same size: 255 inside any lesion (where its opacity exceeds 0.5), 0 elsewhere.
    pub mask: GrayImage,
    /// True when the scan holds at least one lesion.
    pub positive: bool,
    /// The lesions drawn (empty for a negative scan).
    pub lesions: Vec<Lesion>,
}

/// Makes the scans of one seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanGenerator {
    seed: u64,
}

impl ScanGenerator {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The `index`-th scan of this seed: deterministic and independent of every other index.
    pub fn scan(&self, index: u64) -> Scan {
        Painter::new(Rand::new(self.seed, index)).paint()
    }
}

// ---------------------------------------------------------------------------------------------
// Random numbers: ChaCha8 words turned into numbers by our own (stable) arithmetic.

struct Rand(ChaCha8Rng);

impl Rand {
    fn new(seed: u64, index: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..24].copy_from_slice(b"camview synth v1");
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(index);
        Self(rng)
    }

    fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in lo..=hi.
    fn int(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi - lo) + 1;
        lo + ((u64::from(self.0.next_u32()) * span) >> 32) as u32
    }

    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// Index drawn with the given weights.
    fn pick(&mut self, weights: &[f32]) -> usize {
        let total: f32 = weights.iter().sum();
        let mut t = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if t < *w {
                return i;
            }
            t -= w;
        }
        weights.len().saturating_sub(1)
    }

    fn sign(&mut self, p_positive: f32) -> f32 {
        if self.chance(p_positive) { 1.0 } else { -1.0 }
    }

    /// Roughly standard normal (Irwin-Hall of six uniforms): portable and bounded.
    fn normal(&mut self) -> f32 {
        let s: f32 = (0..6).map(|_| self.unit()).sum();
        (s - 3.0) * std::f32::consts::SQRT_2
    }

    /// A uniformly random unit vector.
    fn direction(&mut self) -> (f32, f32) {
        loop {
            let x = self.range(-1.0, 1.0);
            let y = self.range(-1.0, 1.0);
            let d2 = x * x + y * y;
            if d2 > 0.01 && d2 <= 1.0 {
                let d = d2.sqrt();
                return (x / d, y / d);
            }
        }
    }
}

/// A fast hash turning a pixel index into noise bits (splitmix64's finaliser).
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// `cos` and `sin` of a small angle (|a| <= 0.3) by Taylor series: portable.
fn small_rotation(a: f32) -> (f32, f32) {
    let a2 = a * a;
    (
        1.0 - a2 / 2.0 + a2 * a2 / 24.0,
        a * (1.0 - a2 / 6.0 + a2 * a2 / 120.0),
    )
}

// ---------------------------------------------------------------------------------------------
// Gradient noise on a lattice of random gradients.

struct Noise {
    inv_cell: f32,
    ox: f32,
    oy: f32,
    gw: usize,
    gh: usize,
    grads: Vec<(f32, f32)>,
}

impl Noise {
    fn new(rng: &mut Rand, w: u32, h: u32, cell: f32) -> Self {
        let cell = cell.max(2.0);
        let gw = (w as f32 / cell) as usize + 3;
        let gh = (h as f32 / cell) as usize + 3;
        let grads = (0..gw * gh)
            .map(|_| (rng.range(-1.0, 1.0), rng.range(-1.0, 1.0)))
            .collect();
        Self {
            inv_cell: 1.0 / cell,
            ox: rng.unit(),
            oy: rng.unit(),
            gw,
            gh,
            grads,
        }
    }

    /// The noise at one point, roughly in -1..1 (the reference for [`Noise::field`]).
    #[cfg(test)]
    fn at(&self, x: f32, y: f32) -> f32 {
        let fx = (x * self.inv_cell + self.ox).max(0.0);
        let fy = (y * self.inv_cell + self.oy).max(0.0);
        let ix = (fx as usize).min(self.gw - 2);
        let iy = (fy as usize).min(self.gh - 2);
        let tx = fx - ix as f32;
        let ty = fy - iy as f32;
        let i = iy * self.gw + ix;
        let g00 = self.grads[i];
        let g10 = self.grads[i + 1];
        let g01 = self.grads[i + self.gw];
        let g11 = self.grads[i + self.gw + 1];
        let n00 = g00.0 * tx + g00.1 * ty;
        let n10 = g10.0 * (tx - 1.0) + g10.1 * ty;
        let n01 = g01.0 * tx + g01.1 * (ty - 1.0);
        let n11 = g11.0 * (tx - 1.0) + g11.1 * (ty - 1.0);
        let u = tx * tx * tx * (tx * (tx * 6.0 - 15.0) + 10.0);
        let v = ty * ty * ty * (ty * (ty * 6.0 - 15.0) + 10.0);
        let a = n00 + u * (n10 - n00);
        let b = n01 + u * (n11 - n01);
        1.6 * (a + v * (b - a))
    }

    /// The noise at every pixel of a `w` x `h` image: the same values as [`Noise::at`], with
    /// the per-column and per-row work done once.
    fn field(&self, w: u32, h: u32) -> Vec<f32> {
        struct Axis {
            cell: usize,
            t: f32,
            fade: f32,
        }
        let axis = |p: u32, offset: f32, cells: usize| {
            let f = (p as f32 * self.inv_cell + offset).max(0.0);
            let cell = (f as usize).min(cells - 2);
            let t = f - cell as f32;
            Axis {
                cell,
                t,
                fade: t * t * t * (t * (t * 6.0 - 15.0) + 10.0),
            }
        };
        let columns: Vec<Axis> = (0..w).map(|x| axis(x, self.ox, self.gw)).collect();
        let mut out = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            let row = axis(y, self.oy, self.gh);
            let (ty, v) = (row.t, row.fade);
            let top = &self.grads[row.cell * self.gw..(row.cell + 1) * self.gw];
            let bottom = &self.grads[(row.cell + 1) * self.gw..(row.cell + 2) * self.gw];
            for c in &columns {
                let (tx, u) = (c.t, c.fade);
                let (g00, g10) = (top[c.cell], top[c.cell + 1]);
                let (g01, g11) = (bottom[c.cell], bottom[c.cell + 1]);
                let n00 = g00.0 * tx + g00.1 * ty;
                let n10 = g10.0 * (tx - 1.0) + g10.1 * ty;
                let n01 = g01.0 * tx + g01.1 * (ty - 1.0);
                let n11 = g11.0 * (tx - 1.0) + g11.1 * (ty - 1.0);
                let a = n00 + u * (n10 - n00);
                let b = n01 + u * (n11 - n01);
                out.push(1.6 * (a + v * (b - a)));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes.

/// A rotated ellipse: where a point sits relative to it, 1.0 on the outline.
#[derive(Clone, Copy)]
struct Ellipse {
    cx: f32,
    cy: f32,
    a: f32,
    b: f32,
    cos: f32,
    sin: f32,
}

impl Ellipse {
    fn local(&self, x: f32, y: f32) -> (f32, f32) {
        let dx = x - self.cx;
        let dy = y - self.cy;
        (
            (dx * self.cos + dy * self.sin) / self.a,
            (-dx * self.sin + dy * self.cos) / self.b,
        )
    }

    fn radius(&self, x: f32, y: f32) -> f32 {
        let (u, v) = self.local(x, y);
        (u * u + v * v).sqrt()
    }

    /// The image point at local coordinates (u, v).
    fn point(&self, u: f32, v: f32) -> (f32, f32) {
        let (du, dv) = (u * self.a, v * self.b);
        (
            self.cx + du * self.cos - dv * self.sin,
            self.cy + du * self.sin + dv * self.cos,
        )
    }
}

/// A closed outline whose radius varies with angle: `r0 * (1 + sum a_k cos k t + b_k sin k t)`.
#[derive(Clone)]
struct Wobble {
    coeffs: Vec<(f32, f32)>,
}

impl Wobble {
    /// Harmonics 2..=5 with amplitudes falling as 1/k, scaled by `irregularity`.
    fn new(rng: &mut Rand, irregularity: f32) -> Self {
        let coeffs = (2..=5)
            .map(|k| {
                let s = irregularity / k as f32;
                (rng.range(-s, s), rng.range(-s, s))
            })
            .collect();
        Self { coeffs }
    }

    /// The largest factor the outline reaches.
    fn max_factor(&self) -> f32 {
        1.0 + self
            .coeffs
            .iter()
            .map(|(a, b)| (a * a + b * b).sqrt())
            .sum::<f32>()
    }

    /// The radius factor in the direction (c, s) (a unit vector).
    fn factor(&self, c: f32, s: f32) -> f32 {
        // (c + i s)^k by repeated multiplication: cos k t and sin k t without trigonometry.
        let (mut zc, mut zs) = (c, s);
        let mut f = 1.0;
        for (a, b) in &self.coeffs {
            (zc, zs) = (zc * c - zs * s, zc * s + zs * c);
            f += a * zc + b * zs;
        }
        f
    }
}

/// A blob-like structure: a lesion's geometry.
struct Blob {
    shape: Ellipse,
    wobble: Wobble,
    edge: f32,
}

impl Blob {
    /// How far the blob (with its soft edge) can reach from its centre.
    fn reach(&self) -> f32 {
        self.shape.a.max(self.shape.b) * self.wobble.max_factor() + self.edge + 1.0
    }

    /// Opacity at a point: 1 inside, 0 outside, 0.5 on the outline.
    fn opacity(&self, x: f32, y: f32) -> f32 {
        let (u, v) = self.shape.local(x, y);
        let d = (u * u + v * v).sqrt();
        let (c, s) = if d > 1e-6 { (u / d, v / d) } else { (1.0, 0.0) };
        let r = self.wobble.factor(c, s);
        // Work in pixels so the edge width is in pixels.
        let scale = self.shape.a.min(self.shape.b);
        1.0 - smoothstep((r * scale) - self.edge, (r * scale) + self.edge, d * scale)
    }
}

// ---------------------------------------------------------------------------------------------
// The painter: one scan, drawn layer by layer on a float canvas (0..1, roughly).

struct Painter {
    rng: Rand,
    w: u32,
    h: u32,
    /// Geometric mean of the sides: the scale of every structure.
    side: f32,
    value: Vec<f32>,
    /// Scratch opacity for strokes, kept zero outside a painting.
    alpha: Vec<f32>,
    /// Texture octaves (coarse, medium, fine) and two low-frequency deformation fields.
    octaves: [Vec<f32>; 3],
    low: [Vec<f32>; 2],
    /// The body outline (None when the view is cropped inside the body).
    body: Option<Ellipse>,
    organs: Vec<Ellipse>,
    tissue: f32,
    /// Discs (x, y, radius) around the lesion sites that other structures stay out of.
    keep_out: Vec<(f32, f32, f32)>,
}

/// A lesion chosen but not yet drawn.
struct PlannedLesion {
    blob: Blob,
    reach: f32,
    lesion: Lesion,
    /// How much the fine texture modulates its contrast.
    texture: f32,
}

impl Painter {
    fn new(mut rng: Rand) -> Self {
        let (w, h) = if rng.chance(0.4) {
            let s = rng.int(MIN_SIDE, MAX_SIDE);
            (s, s)
        } else {
            (rng.int(MIN_SIDE, MAX_SIDE), rng.int(MIN_SIDE, MAX_SIDE))
        };
        let side = ((w * h) as f32).sqrt();
        let n = (w * h) as usize;
        let scale = rng.range(0.8, 1.25);
        let octaves = [
            Noise::new(&mut rng, w, h, side * 0.22 * scale).field(w, h),
            Noise::new(&mut rng, w, h, side * 0.09 * scale).field(w, h),
            Noise::new(&mut rng, w, h, side * 0.035 * scale).field(w, h),
        ];
        let low = [
            Noise::new(&mut rng, w, h, side * 0.4).field(w, h),
            Noise::new(&mut rng, w, h, side * 0.4).field(w, h),
        ];
        Self {
            rng,
            w,
            h,
            side,
            value: vec![0.0; n],
            alpha: vec![0.0; n],
            octaves,
            low,
            body: None,
            organs: Vec::new(),
            tissue: 0.45,
            keep_out: Vec::new(),
        }
    }

    fn paint(mut self) -> Scan {
        let positive = self.rng.chance(0.5);
        self.body_and_tissue();
        self.organs();
        // Lesion sites are chosen in every scan, drawn only in positive ones; the other
        // structures keep clear of them in both classes alike, so that where they are (or are
        // not) says nothing about the label.
        let planned = self.plan_lesions();
        self.keep_out = planned
            .iter()
            .map(|p| (p.blob.shape.cx, p.blob.shape.cy, p.reach))
            .collect();
        self.bones();
        self.vessels();
        self.streaks();
        self.rings();
        let mut mask = vec![0u8; self.value.len()];
        let lesions = if positive {
            self.draw_lesions(&planned, &mut mask)
        } else {
            Vec::new()
        };
        self.bias_field();
        self.sensor_noise();
        let image = self.quantise();
        let (w, h) = (self.w, self.h);
        Scan {
            image: GrayImage::from_raw(w, h, image).unwrap_or_else(|| GrayImage::new(w, h)),
            mask: GrayImage::from_raw(w, h, mask).unwrap_or_else(|| GrayImage::new(w, h)),
            positive,
            lesions,
        }
    }

    fn idx(&self, x: u32, y: u32) -> usize {
        (y * self.w + x) as usize
    }

    /// The pixel rectangle (x0, y0, x1, y1) within `reach` of a point, clipped to the image.
    fn bbox(&self, cx: f32, cy: f32, reach: f32) -> (u32, u32, u32, u32) {
        let clip = |v: f32, max: u32| v.clamp(0.0, max as f32 - 1.0) as u32;
        (
            clip((cx - reach).floor(), self.w),
            clip((cy - reach).floor(), self.h),
            clip((cx + reach).ceil(), self.w),
            clip((cy + reach).ceil(), self.h),
        )
    }

    fn random_ellipse(&mut self, cx: f32, cy: f32, a: f32, b: f32) -> Ellipse {
        let (cos, sin) = self.rng.direction();
        Ellipse {
            cx,
            cy,
            a,
            b,
            cos,
            sin,
        }
    }

    /// A texture: a random mix of the three octaves.
    fn texture_weights(&mut self, amount: f32) -> [f32; 3] {
        let fine = self.rng.range(0.2, 1.0);
        [
            amount * self.rng.range(0.4, 1.0),
            amount * self.rng.range(0.3, 0.8),
            amount * 0.6 * fine,
        ]
    }

    fn texture_at(&self, i: usize, weights: &[f32; 3]) -> f32 {
        weights[0] * self.octaves[0][i]
            + weights[1] * self.octaves[1][i]
            + weights[2] * self.octaves[2][i]
    }

    /// A point well inside the body (or anywhere when the body fills the view).
    fn point_in_body(&mut self, depth: f32) -> (f32, f32) {
        match self.body {
            Some(body) => {
                let (dx, dy) = self.rng.direction();
                let r = depth * self.rng.unit().sqrt();
                body.point(dx * r, dy * r)
            }
            None => (
                self.rng.range(0.1, 0.9) * self.w as f32,
                self.rng.range(0.1, 0.9) * self.h as f32,
            ),
        }
    }

    fn body_and_tissue(&mut self) {
        let (w, h) = (self.w as f32, self.h as f32);
        if self.rng.chance(0.6) {
            let cx = w * (0.5 + self.rng.range(-0.05, 0.05));
            let cy = h * (0.5 + self.rng.range(-0.05, 0.05));
            let (cos, sin) = small_rotation(self.rng.range(-0.25, 0.25));
            self.body = Some(Ellipse {
                cx,
                cy,
                a: w * self.rng.range(0.4, 0.53),
                b: h * self.rng.range(0.38, 0.52),
                cos,
                sin,
            });
        }
        self.tissue = self.rng.range(0.35, 0.55);
        let amount = self.rng.range(0.04, 0.09);
        let weights = self.texture_weights(amount);
        let air = self.rng.range(0.0, 0.08);
        let edge = self.rng.range(0.8, 3.0);
        let deform = self.rng.range(0.02, 0.08);
        // An optional layer under the skin (fat: darker or brighter), of relative thickness.
        let layer = if self.rng.chance(0.6) {
            Some((
                self.rng.range(0.04, 0.1),
                self.rng.sign(0.5) * self.rng.range(0.06, 0.18),
            ))
        } else {
            None
        };
        for y in 0..self.h {
            for x in 0..self.w {
                let i = self.idx(x, y);
                let tissue = self.tissue + self.texture_at(i, &weights);
                self.value[i] = match &self.body {
                    None => tissue,
                    Some(body) => {
                        let scale = body.a.min(body.b);
                        let q = (body.radius(x as f32, y as f32) + deform * self.low[0][i]) * scale;
                        let inside = 1.0 - smoothstep(scale - edge, scale + edge, q);
                        let mut v = tissue;
                        if let Some((thick, delta)) = layer {
                            let t = thick * scale;
                            let band = smoothstep(scale - t - 2.0, scale - t + 2.0, q);
                            v += delta * band;
                        }
                        air + 0.01 * self.octaves[2][i] + (v - air) * inside
                    }
                };
            }
        }
    }

    fn organs(&mut self) {
        let count = 1 + self.rng.pick(&[0.35, 0.4, 0.25]);
        for _ in 0..count {
            let (cx, cy) = self.point_in_body(0.55);
            // Larger than any lesion (semi-axes >= 0.14 of the side; a lesion's radius is at
            // most 0.11): an organ the size of a lesion would make the label a coin toss.
            let a = self.side * self.rng.range(0.2, 0.32);
            let b = a * self.rng.range(0.7, 1.0);
            let shape = self.random_ellipse(cx, cy, a, b);
            // Low-frequency warping (lobes) and a little mid-frequency (bumps).
            let deform = self.rng.range(0.1, 0.3);
            let bumps = self.rng.range(0.0, 0.1);
            let (dc, ds) = self.rng.direction();
            let edge = if self.rng.chance(0.3) {
                self.rng.range(0.4, 0.9)
            } else {
                self.rng.range(1.5, 5.0)
            };
            let level = self.tissue + self.rng.sign(0.6) * self.rng.range(0.06, 0.28);
            // A gentle shading across the organ.
            let (sx, sy) = self.rng.direction();
            let shade = self.rng.range(0.0, 0.08);
            let amount = self.rng.range(0.04, 0.12);
            let weights = self.texture_weights(amount);
            let scale = a.min(b);
            let reach = a * (1.0 + 2.0 * (deform + bumps)) + edge + 2.0;
            let (x0, y0, x1, y1) = self.bbox(cx, cy, reach);
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let i = self.idx(x, y);
                    let warp = deform * (dc * self.low[0][i] + ds * self.low[1][i])
                        + bumps * self.octaves[0][i];
                    let (u, v) = shape.local(x as f32, y as f32);
                    let q = ((u * u + v * v).sqrt() + warp) * scale;
                    let inside = 1.0 - smoothstep(scale - edge, scale + edge, q);
                    if inside > 0.0 {
                        let organ =
                            level + shade * (sx * u + sy * v) + self.texture_at(i, &weights);
                        self.value[i] += (organ - self.value[i]) * inside;
                    }
                }
            }
            self.organs.push(shape);
        }
    }

    /// A curve by a random walk with slowly changing curvature: points (x, y, half width).
    fn walk(
        &mut self,
        start: (f32, f32),
        length: f32,
        width: (f32, f32),
        bend: f32,
    ) -> Vec<(f32, f32, f32)> {
        const STEP: f32 = 0.5;
        let (mut x, mut y) = start;
        let (mut hx, mut hy) = self.rng.direction();
        let mut curvature = self.rng.range(-bend, bend);
        let steps = (length / STEP) as usize;
        let mut points = Vec::with_capacity(steps);
        if self.too_close(x, y, width.0.max(width.1) + 2.0) {
            return points;
        }
        for k in 0..steps {
            let t = k as f32 / steps.max(1) as f32;
            points.push((x, y, width.0 + (width.1 - width.0) * t));
            curvature = (curvature + self.rng.normal() * bend * 0.15).clamp(-bend, bend);
            let (c, s) = small_rotation(curvature * STEP);
            (hx, hy) = (hx * c - hy * s, hx * s + hy * c);
            x += hx * STEP;
            y += hy * STEP;
            if x < -8.0 || y < -8.0 || x > self.w as f32 + 8.0 || y > self.h as f32 + 8.0 {
                break;
            }
            if self.too_close(x, y, width.0.max(width.1) + 2.0) {
                break;
            }
        }
        points
    }

    /// Whether a point within `margin` of (x, y) falls in a lesion site's keep-out disc.
    fn too_close(&self, x: f32, y: f32, margin: f32) -> bool {
        self.keep_out.iter().any(|&(kx, ky, kr)| {
            let (dx, dy) = (x - kx, y - ky);
            dx * dx + dy * dy < (kr + margin) * (kr + margin)
        })
    }

    /// Paints a stroke through `points` with soft edges, changing the canvas by `amount` where
    /// it is opaque.
    fn stroke(&mut self, points: &[(f32, f32, f32)], soft: f32, amount: f32) {
        let Some(&(fx, fy, _)) = points.first() else {
            return;
        };
        let (mut bx0, mut by0, mut bx1, mut by1) = self.bbox(fx, fy, 0.0);
        for &(px, py, hw) in points {
            let (x0, y0, x1, y1) = self.bbox(px, py, hw + soft + 1.0);
            (bx0, by0, bx1, by1) = (bx0.min(x0), by0.min(y0), bx1.max(x1), by1.max(y1));
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let (dx, dy) = (x as f32 - px, y as f32 - py);
                    let d = (dx * dx + dy * dy).sqrt();
                    let a = 1.0 - smoothstep(hw - soft, hw + soft, d);
                    let i = self.idx(x, y);
                    if a > self.alpha[i] {
                        self.alpha[i] = a;
                    }
                }
            }
        }
        for y in by0..=by1 {
            for x in bx0..=bx1 {
                let i = self.idx(x, y);
                self.value[i] += amount * self.alpha[i];
                self.alpha[i] = 0.0;
            }
        }
    }

    /// A contrast like a lesion's: mostly brighter, sometimes faint.
    fn lesion_contrast(&mut self) -> f32 {
        let magnitude = if self.rng.chance(0.1) {
            self.rng.range(0.11, 0.15)
        } else {
            self.rng.range(0.16, 0.32)
        };
        self.rng.sign(0.75) * magnitude
    }

    /// A radius like a lesion's, in pixels.
    fn lesion_radius(&mut self) -> f32 {
        let fraction = if self.rng.chance(0.75) {
            self.rng.range(0.06, 0.11)
        } else {
            self.rng.range(0.045, 0.06)
        };
        fraction * self.side
    }

    fn bones(&mut self) {
        let count = self.rng.pick(&[0.5, 0.3, 0.2]);
        for _ in 0..count {
            let start = self.point_in_body(0.95);
            let length = self.side * self.rng.range(0.2, 0.6);
            let hw = self.side * self.rng.range(0.01, 0.022);
            let end = hw * self.rng.range(0.7, 1.2);
            let points = self.walk(start, length, (hw, end), 0.02);
            let amount = self.rng.range(0.15, 0.35);
            self.stroke(&points, 1.2, amount);
        }
    }

    fn vessels(&mut self) {
        let count = self.rng.int(0, 5);
        for _ in 0..count {
            let start = self.point_in_body(0.85);
            let length = self.side * self.rng.range(0.2, 0.8);
            let hw = self.rng.range(0.6, 2.2);
            let amount = self.rng.sign(0.6) * self.rng.range(0.08, 0.3);
            let points = self.walk(start, length, (hw, hw * 0.4), 0.06);
            self.stroke(&points, 0.8, amount);
            if self.rng.chance(0.4) && points.len() > 8 {
                let k = self.rng.int(2, points.len() as u32 - 2) as usize;
                let (bx, by, bw) = points[k];
                let branch = self.walk((bx, by), length * 0.5, (bw * 0.8, bw * 0.3), 0.06);
                self.stroke(&branch, 0.8, amount);
            }
        }
    }

    fn streaks(&mut self) {
        let count = self.rng.pick(&[0.4, 0.35, 0.25]);
        for _ in 0..count {
            let start = self.point_in_body(0.85);
            let hw = self.rng.range(1.5, 3.5) * self.side / 192.0;
            let length = hw * self.rng.range(5.0, 12.0);
            let amount = self.lesion_contrast() * self.rng.range(1.0, 1.5);
            let end = hw * self.rng.range(0.5, 1.0);
            let points = self.walk(start, length, (hw, end), 0.05);
            let soft = self.rng.range(0.6, 2.0);
            self.stroke(&points, soft, amount);
        }
    }

    fn rings(&mut self) {
        let count = self.rng.pick(&[0.45, 0.35, 0.2]);
        for _ in 0..count {
            let radius = self.lesion_radius() * self.rng.range(0.8, 1.3);
            let irregularity = self.rng.range(0.05, 0.3);
            let wobble = Wobble::new(&mut self.rng, irregularity);
            let hw = self.rng.range(0.8, 2.2);
            let outer = radius * wobble.max_factor() + hw + 2.0;
            let mut site = None;
            for _ in 0..10 {
                let (x, y) = self.point_in_body(0.8);
                if !self.too_close(x, y, outer) {
                    site = Some((x, y));
                    break;
                }
            }
            let Some((cx, cy)) = site else {
                continue;
            };
            let amount = self.lesion_contrast() * self.rng.range(1.1, 1.6);
            let arc = if self.rng.chance(0.5) {
                1.0
            } else {
                self.rng.range(0.5, 0.9)
            };
            let n = ((std::f32::consts::TAU * radius / 0.5).ceil() as usize).max(16);
            let (sc, ss) = small_rotation(std::f32::consts::TAU / n as f32);
            let (mut c, mut s) = self.rng.direction();
            let mut points = Vec::with_capacity(n);
            for _ in 0..((n as f32 * arc) as usize) {
                let r = radius * wobble.factor(c, s);
                points.push((cx + r * c, cy + r * s, hw));
                (c, s) = (c * sc - s * ss, c * ss + s * sc);
                let norm = (c * c + s * s).sqrt();
                (c, s) = (c / norm, s / norm);
            }
            let soft = self.rng.range(0.7, 1.6);
            self.stroke(&points, soft, amount);
        }
    }

    /// Chooses one to three lesions: shape, contrast and a site (mostly inside an organ, clear
    /// of the image border and of each other).
    fn plan_lesions(&mut self) -> Vec<PlannedLesion> {
        let count = 1 + self.rng.pick(&[0.5, 0.3, 0.2]);
        let mut planned: Vec<PlannedLesion> = Vec::new();
        for _ in 0..count {
            let radius = self.lesion_radius();
            let aspect = self.rng.range(1.0, 1.35);
            let irregularity = self.rng.range(0.12, 0.35);
            let wobble = Wobble::new(&mut self.rng, irregularity);
            let edge = self.rng.range(0.8, (0.3 * radius).max(1.0));
            let contrast = self.lesion_contrast();
            let texture = self.rng.range(0.1, 0.4);
            let shape =
                self.random_ellipse(0.0, 0.0, radius * aspect.sqrt(), radius / aspect.sqrt());
            let mut blob = Blob {
                shape,
                wobble,
                edge,
            };
            let reach = blob.reach();
            let mut spot = None;
            for attempt in 0..40 {
                let (x, y) = if attempt < 30 && !self.organs.is_empty() && self.rng.chance(0.75) {
                    let k = self.rng.int(0, self.organs.len() as u32 - 1) as usize;
                    let organ = self.organs[k];
                    let (dx, dy) = self.rng.direction();
                    let r = 0.7 * self.rng.unit().sqrt();
                    organ.point(dx * r, dy * r)
                } else if attempt < 35 {
                    self.point_in_body(0.75)
                } else if planned.is_empty() && attempt == 39 {
                    // The centre always fits one lesion: a positive scan never goes without.
                    (self.w as f32 / 2.0, self.h as f32 / 2.0)
                } else {
                    (
                        self.rng.range(0.0, self.w as f32),
                        self.rng.range(0.0, self.h as f32),
                    )
                };
                let margin = reach + 3.0;
                let inside = x >= margin
                    && y >= margin
                    && x <= self.w as f32 - 1.0 - margin
                    && y <= self.h as f32 - 1.0 - margin;
                let apart = planned.iter().all(|other| {
                    let (dx, dy) = (x - other.lesion.x, y - other.lesion.y);
                    (dx * dx + dy * dy).sqrt() > reach + other.reach + 4.0
                });
                if inside && apart {
                    spot = Some((x, y));
                    break;
                }
            }
            let Some((x, y)) = spot else {
                continue;
            };
            blob.shape.cx = x;
            blob.shape.cy = y;
            planned.push(PlannedLesion {
                blob,
                reach,
                lesion: Lesion {
                    x,
                    y,
                    radius,
                    contrast,
                },
                texture,
            });
        }
        planned
    }

    /// Draws the lesions and marks where their opacity exceeds 0.5 in `mask`.
    fn draw_lesions(&mut self, planned: &[PlannedLesion], mask: &mut [u8]) -> Vec<Lesion> {
        for p in planned {
            let (x0, y0, x1, y1) = self.bbox(p.lesion.x, p.lesion.y, p.reach);
            for py in y0..=y1 {
                for px in x0..=x1 {
                    let a = p.blob.opacity(px as f32, py as f32);
                    if a > 0.0 {
                        let i = self.idx(px, py);
                        let t = 1.0 + p.texture * self.octaves[2][i];
                        self.value[i] += p.lesion.contrast * a * t;
                        if a > 0.5 {
                            mask[i] = 255;
                        }
                    }
                }
            }
        }
        planned.iter().map(|p| p.lesion).collect()
    }

    fn bias_field(&mut self) {
        let (gx, gy) = self.rng.direction();
        let slope = self.rng.range(0.0, 0.35);
        let wobble = self.rng.range(0.0, 0.15);
        let noise =
            Noise::new(&mut self.rng, self.w, self.h, self.side * 0.6).field(self.w, self.h);
        let (w, h) = (self.w as f32, self.h as f32);
        for y in 0..self.h {
            for x in 0..self.w {
                let (fx, fy) = (x as f32 / w - 0.5, y as f32 / h - 0.5);
                let i = self.idx(x, y);
                let gain = 1.0 + slope * (gx * fx + gy * fy) + wobble * noise[i];
                self.value[i] *= gain;
            }
        }
    }

    fn sensor_noise(&mut self) {
        let sigma = self.rng.range(0.006, 0.03);
        let key = self.rng.u64();
        // Sum of four 16-bit uniforms: mean 2, variance 1/3.
        let scale = sigma * 3.0f32.sqrt() / 65_536.0;
        for (i, v) in self.value.iter_mut().enumerate() {
            let bits = mix64(key ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let sum =
                (bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) + (bits >> 48);
            *v += (sum as f32 - 131_070.0) * scale;
        }
    }

    /// Maps the canvas to 0..255: the 0.5th..99.7th percentiles onto a random window, with a
    /// random gamma-like curve.
    fn quantise(&mut self) -> Vec<u8> {
        const BINS: usize = 2048;
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in &self.value {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let span = (hi - lo).max(1e-6);
        let mut hist = vec![0u32; BINS];
        for &v in &self.value {
            let b = (((v - lo) / span) * (BINS - 1) as f32) as usize;
            hist[b.min(BINS - 1)] += 1;
        }
        let n = self.value.len() as f32;
        let percentile = |p: f32| {
            let target = (p * n) as u32;
            let mut seen = 0u32;
            for (b, &c) in hist.iter().enumerate() {
                seen += c;
                if seen > target {
                    return lo + span * b as f32 / (BINS - 1) as f32;
                }
            }
            hi
        };
        let (p_lo, p_hi) = (percentile(0.005), percentile(0.997));
        let p_span = (p_hi - p_lo).max(1e-6);
        let out_lo = self.rng.range(4.0, 30.0);
        let out_hi = self.rng.range(205.0, 252.0);
        let gamma = self.rng.range(-0.5, 0.5);
        self.value
            .iter()
            .map(|&v| {
                let t = (v - p_lo) / p_span;
                let t = if (0.0..=1.0).contains(&t) {
                    t + gamma * t * (1.0 - t)
                } else {
                    t
                };
                ((out_lo + (out_hi - out_lo) * t).clamp(0.0, 255.0) + 0.5) as u8
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Writing a data set.

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{file}: already exists (pass replace to write over it)")]
    Exists { file: String },
    #[error("{file}: cannot create the folder: {reason}")]
    Folder { file: String, reason: String },
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    pub dir: PathBuf,
    pub count: u64,
    pub positives: u64,
    pub negatives: u64,
    /// Lesions over all scans.
    pub lesions: u64,
    pub labels_csv: PathBuf,
}

/// The file name of scan `index` in a data set.
pub fn scan_file_name(index: u64) -> String {
    format!("scan_{index:05}.bmp")
}

/// The path of scan `index`'s mask, relative to the data set's folder.
pub fn mask_file_name(index: u64) -> String {
    format!("masks/scan_{index:05}.png")
}

/// Writes `count` scans of `seed` as `dir/scan_00000.bmp` (8-bit grayscale BMP), their masks as
/// `dir/masks/scan_00000.png` and `dir/labels.csv` (`image,label,lesions,mask`; label 0 =
/// normal, 1 = lesion). Every file is written atomically. Unless `replace`, nothing is written
/// when any of the files already exists.
pub fn write_dataset(
    dir: &Path,
    count: u64,
    seed: u64,
    replace: bool,
) -> Result<DatasetSummary, SynthError> {
    let labels_csv = dir.join("labels.csv");
    if !replace {
        let taken = std::iter::once(labels_csv.clone())
            .chain(
                (0..count).flat_map(|i| [dir.join(scan_file_name(i)), dir.join(mask_file_name(i))]),
            )
            .find(|p| p.symlink_metadata().is_ok());
        if let Some(p) = taken {
            return Err(SynthError::Exists {
                file: p.display().to_string(),
            });
        }
    }
    let masks = dir.join("masks");
    std::fs::create_dir_all(&masks).map_err(|e| SynthError::Folder {
        file: masks.display().to_string(),
        reason: crate::describe_io_error(&e),
    })?;

    let generator = ScanGenerator::new(seed);
    let mut csv = String::from("image,label,lesions,mask\n");
    let (mut positives, mut lesions) = (0u64, 0u64);
    for index in 0..count {
        let scan = generator.scan(index);
        let image_name = scan_file_name(index);
        let mask_name = mask_file_name(index);
        write_atomic(&dir.join(&image_name), replace, |w| {
            image::codecs::bmp::BmpEncoder::new(w)
                .encode(
                    scan.image.as_raw(),
                    scan.image.width(),
                    scan.image.height(),
                    image::ExtendedColorType::L8,
                )
                .map_err(std::io::Error::other)
        })?;
        write_atomic(&dir.join(&mask_name), replace, |w| {
            use image::ImageEncoder;
            image::codecs::png::PngEncoder::new(w)
                .write_image(
                    scan.mask.as_raw(),
                    scan.mask.width(),
                    scan.mask.height(),
                    image::ExtendedColorType::L8,
                )
                .map_err(std::io::Error::other)
        })?;
        positives += u64::from(scan.positive);
        lesions += scan.lesions.len() as u64;
        csv.push_str(&format!(
            "{image_name},{},{},{mask_name}\n",
            u8::from(scan.positive),
            scan.lesions.len()
        ));
    }
    write_atomic(&labels_csv, replace, |w| w.write_all(csv.as_bytes()))?;
    Ok(DatasetSummary {
        dir: dir.to_path_buf(),
        count,
        positives,
        negatives: count - positives,
        lesions,
        labels_csv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_field_matches_pointwise_noise() {
        let mut rng = Rand::new(5, 9);
        for cell in [3.0, 17.5, 90.0] {
            let noise = Noise::new(&mut rng, 150, 131, cell);
            let field = noise.field(150, 131);
            let mut sum2 = 0.0;
            for y in 0..131 {
                for x in 0..150 {
                    let v = noise.at(x as f32, y as f32);
                    assert_eq!(field[y * 150 + x], v, "cell {cell} at ({x}, {y})");
                    sum2 += v * v;
                }
            }
            let std = (sum2 / (150.0 * 131.0)).sqrt();
            assert!((0.15..0.6).contains(&std), "cell {cell}: std {std}");
        }
    }

    #[test]
    fn wobble_factor_is_the_harmonic_sum() {
        let mut rng = Rand::new(1, 2);
        let wobble = Wobble::new(&mut rng, 0.3);
        for k in 0..64 {
            let t = k as f64 * std::f64::consts::TAU / 64.0;
            let expected: f64 = 1.0
                + wobble
                    .coeffs
                    .iter()
                    .zip(2..)
                    .map(|((a, b), n)| {
                        f64::from(*a) * (n as f64 * t).cos() + f64::from(*b) * (n as f64 * t).sin()
                    })
                    .sum::<f64>();
            let got = wobble.factor(t.cos() as f32, t.sin() as f32);
            assert!(
                (f64::from(got) - expected).abs() < 1e-4,
                "{got} vs {expected}"
            );
            assert!(got <= wobble.max_factor() && got > 0.0);
        }
    }

    #[test]
    fn random_numbers_stay_in_range() {
        let mut rng = Rand::new(0, 0);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            assert!((3..=7).contains(&rng.int(3, 7)));
            let (x, y) = rng.direction();
            assert!((x * x + y * y - 1.0).abs() < 1e-5);
        }
    }
}
