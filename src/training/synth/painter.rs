//! The painter: one scan, drawn layer by layer on a float canvas (0..1, roughly).

use image::GrayImage;

use super::random::{Noise, Rand, mix64, small_rotation, smoothstep};
use super::shapes::{Blob, Ellipse, Wobble};
use super::{Lesion, MAX_SIDE, MIN_SIDE, Scan};

pub(super) struct Painter {
    pub(super) rng: Rand,
    pub(super) w: u32,
    pub(super) h: u32,
    /// Geometric mean of the sides: the scale of every structure.
    pub(super) side: f32,
    pub(super) value: Vec<f32>,
    /// Scratch opacity for strokes, kept zero outside a painting.
    pub(super) alpha: Vec<f32>,
    /// Texture octaves (coarse, medium, fine) and two low-frequency deformation fields.
    pub(super) octaves: [Vec<f32>; 3],
    pub(super) low: [Vec<f32>; 2],
    /// The body outline (None when the view is cropped inside the body).
    pub(super) body: Option<Ellipse>,
    pub(super) organs: Vec<Ellipse>,
    pub(super) tissue: f32,
    /// Discs (x, y, radius) around the lesion sites that other structures stay out of.
    pub(super) keep_out: Vec<(f32, f32, f32)>,
}

/// A lesion chosen but not yet drawn.
pub(super) struct PlannedLesion {
    pub(super) blob: Blob,
    pub(super) reach: f32,
    pub(super) lesion: Lesion,
    /// How much the fine texture modulates its contrast.
    pub(super) texture: f32,
}

impl Painter {
    pub(super) fn new(mut rng: Rand) -> Self {
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

    pub(super) fn paint(mut self) -> Scan {
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

    pub(super) fn idx(&self, x: u32, y: u32) -> usize {
        (y * self.w + x) as usize
    }

    /// The pixel rectangle (x0, y0, x1, y1) within `reach` of a point, clipped to the image.
    pub(super) fn bbox(&self, cx: f32, cy: f32, reach: f32) -> (u32, u32, u32, u32) {
        let clip = |v: f32, max: u32| v.clamp(0.0, max as f32 - 1.0) as u32;
        (
            clip((cx - reach).floor(), self.w),
            clip((cy - reach).floor(), self.h),
            clip((cx + reach).ceil(), self.w),
            clip((cy + reach).ceil(), self.h),
        )
    }

    pub(super) fn random_ellipse(&mut self, cx: f32, cy: f32, a: f32, b: f32) -> Ellipse {
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
    pub(super) fn texture_weights(&mut self, amount: f32) -> [f32; 3] {
        let fine = self.rng.range(0.2, 1.0);
        [
            amount * self.rng.range(0.4, 1.0),
            amount * self.rng.range(0.3, 0.8),
            amount * 0.6 * fine,
        ]
    }

    pub(super) fn texture_at(&self, i: usize, weights: &[f32; 3]) -> f32 {
        weights[0] * self.octaves[0][i]
            + weights[1] * self.octaves[1][i]
            + weights[2] * self.octaves[2][i]
    }

    /// A point well inside the body (or anywhere when the body fills the view).
    pub(super) fn point_in_body(&mut self, depth: f32) -> (f32, f32) {
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

    pub(super) fn body_and_tissue(&mut self) {
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

    pub(super) fn organs(&mut self) {
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
    pub(super) fn walk(
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
    pub(super) fn too_close(&self, x: f32, y: f32, margin: f32) -> bool {
        self.keep_out.iter().any(|&(kx, ky, kr)| {
            let (dx, dy) = (x - kx, y - ky);
            dx * dx + dy * dy < (kr + margin) * (kr + margin)
        })
    }

    /// Paints a stroke through `points` with soft edges, changing the canvas by `amount` where
    /// it is opaque.
    pub(super) fn stroke(&mut self, points: &[(f32, f32, f32)], soft: f32, amount: f32) {
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
    pub(super) fn lesion_contrast(&mut self) -> f32 {
        let magnitude = if self.rng.chance(0.1) {
            self.rng.range(0.11, 0.15)
        } else {
            self.rng.range(0.16, 0.32)
        };
        self.rng.sign(0.75) * magnitude
    }

    /// A radius like a lesion's, in pixels.
    pub(super) fn lesion_radius(&mut self) -> f32 {
        let fraction = if self.rng.chance(0.75) {
            self.rng.range(0.06, 0.11)
        } else {
            self.rng.range(0.045, 0.06)
        };
        fraction * self.side
    }

    pub(super) fn bones(&mut self) {
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

    pub(super) fn vessels(&mut self) {
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

    pub(super) fn streaks(&mut self) {
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

    pub(super) fn rings(&mut self) {
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
    pub(super) fn plan_lesions(&mut self) -> Vec<PlannedLesion> {
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
    pub(super) fn draw_lesions(
        &mut self,
        planned: &[PlannedLesion],
        mask: &mut [u8],
    ) -> Vec<Lesion> {
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

    pub(super) fn bias_field(&mut self) {
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

    pub(super) fn sensor_noise(&mut self) {
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
    pub(super) fn quantise(&mut self) -> Vec<u8> {
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
