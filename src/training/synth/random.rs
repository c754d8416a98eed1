//! Random numbers (ChaCha8 words turned into numbers by our own, stable, arithmetic) and
//! gradient noise on a lattice of random gradients.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

pub(super) struct Rand(ChaCha8Rng);

impl Rand {
    pub(super) fn new(seed: u64, index: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..24].copy_from_slice(b"camview synth v1");
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(index);
        Self(rng)
    }

    pub(super) fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in [lo, hi).
    pub(super) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in lo..=hi.
    pub(super) fn int(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi - lo) + 1;
        lo + ((u64::from(self.0.next_u32()) * span) >> 32) as u32
    }

    pub(super) fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// Index drawn with the given weights.
    pub(super) fn pick(&mut self, weights: &[f32]) -> usize {
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

    pub(super) fn sign(&mut self, p_positive: f32) -> f32 {
        if self.chance(p_positive) { 1.0 } else { -1.0 }
    }

    /// Roughly standard normal (Irwin-Hall of six uniforms): portable and bounded.
    pub(super) fn normal(&mut self) -> f32 {
        let s: f32 = (0..6).map(|_| self.unit()).sum();
        (s - 3.0) * std::f32::consts::SQRT_2
    }

    /// A uniformly random unit vector.
    pub(super) fn direction(&mut self) -> (f32, f32) {
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
pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// `cos` and `sin` of a small angle (|a| <= 0.3) by Taylor series: portable.
pub(super) fn small_rotation(a: f32) -> (f32, f32) {
    let a2 = a * a;
    (
        1.0 - a2 / 2.0 + a2 * a2 / 24.0,
        a * (1.0 - a2 / 6.0 + a2 * a2 / 120.0),
    )
}

pub(super) struct Noise {
    pub(super) inv_cell: f32,
    pub(super) ox: f32,
    pub(super) oy: f32,
    pub(super) gw: usize,
    pub(super) gh: usize,
    pub(super) grads: Vec<(f32, f32)>,
}

impl Noise {
    pub(super) fn new(rng: &mut Rand, w: u32, h: u32, cell: f32) -> Self {
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
    pub(super) fn at(&self, x: f32, y: f32) -> f32 {
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
    pub(super) fn field(&self, w: u32, h: u32) -> Vec<f32> {
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
