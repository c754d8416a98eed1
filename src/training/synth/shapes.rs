//! The shapes scans are drawn from: ellipses (body, organs), wobbling outlines, lesion blobs.

use super::random::{Rand, smoothstep};

/// A rotated ellipse: where a point sits relative to it, 1.0 on the outline.
#[derive(Clone, Copy)]
pub(super) struct Ellipse {
    pub(super) cx: f32,
    pub(super) cy: f32,
    pub(super) a: f32,
    pub(super) b: f32,
    pub(super) cos: f32,
    pub(super) sin: f32,
}

impl Ellipse {
    pub(super) fn local(&self, x: f32, y: f32) -> (f32, f32) {
        let dx = x - self.cx;
        let dy = y - self.cy;
        (
            (dx * self.cos + dy * self.sin) / self.a,
            (-dx * self.sin + dy * self.cos) / self.b,
        )
    }

    pub(super) fn radius(&self, x: f32, y: f32) -> f32 {
        let (u, v) = self.local(x, y);
        (u * u + v * v).sqrt()
    }

    /// The image point at local coordinates (u, v).
    pub(super) fn point(&self, u: f32, v: f32) -> (f32, f32) {
        let (du, dv) = (u * self.a, v * self.b);
        (
            self.cx + du * self.cos - dv * self.sin,
            self.cy + du * self.sin + dv * self.cos,
        )
    }
}

/// A closed outline whose radius varies with angle: `r0 * (1 + sum a_k cos k t + b_k sin k t)`.
#[derive(Clone)]
pub(super) struct Wobble {
    pub(super) coeffs: Vec<(f32, f32)>,
}

impl Wobble {
    /// Harmonics 2..=5 with amplitudes falling as 1/k, scaled by `irregularity`.
    pub(super) fn new(rng: &mut Rand, irregularity: f32) -> Self {
        let coeffs = (2..=5)
            .map(|k| {
                let s = irregularity / k as f32;
                (rng.range(-s, s), rng.range(-s, s))
            })
            .collect();
        Self { coeffs }
    }

    /// The largest factor the outline reaches.
    pub(super) fn max_factor(&self) -> f32 {
        1.0 + self
            .coeffs
            .iter()
            .map(|(a, b)| (a * a + b * b).sqrt())
            .sum::<f32>()
    }

    /// The radius factor in the direction (c, s) (a unit vector).
    pub(super) fn factor(&self, c: f32, s: f32) -> f32 {
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
pub(super) struct Blob {
    pub(super) shape: Ellipse,
    pub(super) wobble: Wobble,
    pub(super) edge: f32,
}

impl Blob {
    /// How far the blob (with its soft edge) can reach from its centre.
    pub(super) fn reach(&self) -> f32 {
        self.shape.a.max(self.shape.b) * self.wobble.max_factor() + self.edge + 1.0
    }

    /// Opacity at a point: 1 inside, 0 outside, 0.5 on the outline.
    pub(super) fn opacity(&self, x: f32, y: f32) -> f32 {
        let (u, v) = self.shape.local(x, y);
        let d = (u * u + v * v).sqrt();
        let (c, s) = if d > 1e-6 { (u / d, v / d) } else { (1.0, 0.0) };
        let r = self.wobble.factor(c, s);
        // Work in pixels so the edge width is in pixels.
        let scale = self.shape.a.min(self.shape.b);
        1.0 - smoothstep((r * scale) - self.edge, (r * scale) + self.edge, d * scale)
    }
}
