//! 3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016).
//!
//! Each 2 x 2 block of outputs is computed from the 4 x 4 input tile around it:
//! `Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A`, so the products over the input channels are 16
//! matrix products `U_ξ [out, in] x V_ξ [in, tiles]` (one per tile position ξ), 16 multiplications
//! per 4 output pixels and input channel against the direct convolution's 36: 2.25x fewer.
//! The transforms themselves are additions (Bᵀ and Aᵀ hold 0 and ±1) and cost a few percent of
//! the products. The kernel transform (G holds ±1/2) is made once, at load time, in f64.
//!
//! Error: every output is the same sum of products as the direct convolution's, reassociated,
//! with the input transform adding at most 4 terms and the output transform 9 (Lavin & Gray's
//! F(2x2, 3x3) is the variant whose error stays within a small constant of direct
//! convolution's; F(4x4, 3x3) would save more but its transforms hold 1/4, 8 and 1/6 and its
//! error grows by about an order of magnitude). Measured against the direct convolution on the
//! engine's own layers in the tests below (relative to the output's scale, below 1e-6), and the
//! engine's parity with torchvision (1e-4) holds unchanged.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result};
use rayon::prelude::*;

/// Bᵀ's rows as (index, sign) pairs: each transformed value of a row of 4 is the sum of two.
const BT: [[(usize, f32); 2]; 4] = [
    [(0, 1.0), (2, -1.0)],
    [(1, 1.0), (2, 1.0)],
    [(2, 1.0), (1, -1.0)],
    [(1, 1.0), (3, -1.0)],
];

/// G (4 x 3), the kernel transform.
const G: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// A 3x3 convolution's kernels transformed for F(2x2, 3x3): `[16, out, in]`, tile position
/// `ξ = 4 * row + column` first, kept in candle's storage as the products' left operand.
pub(super) struct Winograd3x3 {
    kernels: CpuStorage,
    out: usize,
    inp: usize,
}

impl Winograd3x3 {
    /// From the nine taps stacked `[(ky * 3 + kx) * out + o, c]` (the engine's conv2 layout).
    pub(super) fn from_taps(taps: &[f32], out: usize, inp: usize) -> Result<Self> {
        if taps.len() != 9 * out * inp {
            candle_core::bail!("3x3 kernels of {out}x{inp} from {} values", taps.len());
        }
        let mut kernels = vec![0f32; 16 * out * inp];
        for o in 0..out {
            for c in 0..inp {
                let g = |ky: usize, kx: usize| f64::from(taps[((ky * 3 + kx) * out + o) * inp + c]);
                for a in 0..4 {
                    for b in 0..4 {
                        // (G g Gᵀ)[a][b]
                        let mut u = 0.0;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                u += G[a][ky] * g(ky, kx) * G[b][kx];
                            }
                        }
                        kernels[((a * 4 + b) * out + o) * inp + c] = u as f32;
                    }
                }
            }
        }
        Ok(Self {
            kernels: CpuStorage::F32(kernels),
            out,
            inp,
        })
    }

    /// The convolution of `input` (`[inp, n, h * w]`, as the engine's buffers) written to
    /// `output` (`[out, n, h * w]`).
    pub(super) fn convolve(
        &self,
        input: &[f32],
        grid: (usize, usize, usize),
        output: &mut [f32],
    ) -> Result<()> {
        let (n, h, w) = grid;
        let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
        let per_image = th * tw;
        let tiles = n * per_image;
        let hw = h * w;
        if input.len() < self.inp * n * hw || output.len() < self.out * n * hw {
            candle_core::bail!("winograd: buffers too small for {n} images of {h}x{w}");
        }
        let t0 = std::time::Instant::now();
        let transformed = transform_input(&input[..self.inp * n * hw], (n, h, w));
        let t1 = t0.elapsed();
        // Mᵀ_ξ = V_ξᵀ U_ξᵀ: [tiles, out] (many rows for the products' kernel), V read from its
        // [inp, 16, tiles] layout and U from [16, out, inp] through strides.
        let lhs_layout = Layout::new((16, tiles, self.inp).into(), vec![tiles, 1, 16 * tiles], 0);
        let rhs_layout = Layout::new(
            (16, self.inp, self.out).into(),
            vec![self.out * self.inp, 1, self.inp],
            0,
        );
        let lhs = CpuStorage::F32(transformed);
        let product = lhs.matmul(
            &self.kernels,
            (16, tiles, self.out, self.inp),
            &lhs_layout,
            &rhs_layout,
        )?;
        let CpuStorage::F32(m) = product else {
            candle_core::bail!("winograd: unexpected storage type");
        };
        let t2 = t0.elapsed();
        let _g = Timer(t0, t1, t2);
        // Y = Aᵀ M A for each tile, Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]].
        output[..self.out * n * hw]
            .par_chunks_mut(hw)
            .enumerate()
            .with_min_len(super::maps_per_piece(4 * hw))
            .for_each(|(plane, map)| {
                let (o, image) = (plane / n, plane % n);
                let at =
                    |xi: usize, t: usize| m[(xi * tiles + image * per_image + t) * self.out + o];
                for ty in 0..th {
                    for tx in 0..tw {
                        let t = ty * tw + tx;
                        let mut v = [0f32; 16];
                        for (xi, value) in v.iter_mut().enumerate() {
                            *value = at(xi, t);
                        }
                        // rows: r0 = v0 + v1 + v2, r1 = v1 - v2 - v3 (over the 4 tile rows)
                        let mut r = [[0f32; 4]; 2];
                        for col in 0..4 {
                            let (a, b, c, d) = (v[col], v[4 + col], v[8 + col], v[12 + col]);
                            r[0][col] = a + b + c;
                            r[1][col] = b - c - d;
                        }
                        for (dy, row) in r.iter().enumerate() {
                            let y = 2 * ty + dy;
                            if y >= h {
                                continue;
                            }
                            let left = row[0] + row[1] + row[2];
                            map[y * w + 2 * tx] = left;
                            if 2 * tx + 1 < w {
                                map[y * w + 2 * tx + 1] = row[1] - row[2] - row[3];
                            }
                        }
                    }
                }
            });
        Ok(())
    }
}

struct Timer(std::time::Instant, std::time::Duration, std::time::Duration);
impl Drop for Timer {
    fn drop(&mut self) {
        if std::env::var("WT").is_ok() {
            eprintln!(
                "in {:?} mm {:?} total {:?}",
                self.1,
                self.2 - self.1,
                self.0.elapsed()
            );
        }
    }
}

/// Bᵀ d B of every 4 x 4 tile (stride 2, the input padded by one zero) of every channel:
/// `[inp, 16, n * tiles]`, each channel's 16 rows together (one parallel piece per channel).
fn transform_input(input: &[f32], grid: (usize, usize, usize)) -> Vec<f32> {
    let (n, h, w) = grid;
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let per_image = th * tw;
    let tiles = n * per_image;
    let hw = h * w;
    // the padded plane: 1 zero above and left, enough below and right for whole tiles
    let (ph, pw) = (2 * th + 2, 2 * tw + 2);
    let mut out = vec![0f32; input.len() / hw.max(1) / n.max(1) * 16 * tiles];
    out.par_chunks_mut(16 * tiles)
        .zip(input.par_chunks(n * hw))
        .for_each_init(
            || vec![0f32; ph * pw],
            |padded, (rows, channel)| {
                for image in 0..n {
                    let plane = &channel[image * hw..(image + 1) * hw];
                    for y in 0..h {
                        padded[(y + 1) * pw + 1..(y + 1) * pw + 1 + w]
                            .copy_from_slice(&plane[y * w..(y + 1) * w]);
                    }
                    for ty in 0..th {
                        for tx in 0..tw {
                            let at = |r: usize, s: usize| padded[(2 * ty + r) * pw + 2 * tx + s];
                            // rows first: t[a][s] = Σ Bᵀ[a][r] d[r][s]
                            let mut t = [[0f32; 4]; 4];
                            for (a, terms) in BT.iter().enumerate() {
                                for (s, value) in t[a].iter_mut().enumerate() {
                                    *value = terms[0].1 * at(terms[0].0, s)
                                        + terms[1].1 * at(terms[1].0, s);
                                }
                            }
                            let column = image * per_image + ty * tw + tx;
                            for (a, row) in t.iter().enumerate() {
                                for (b, terms) in BT.iter().enumerate() {
                                    rows[(a * 4 + b) * tiles + column] =
                                        terms[0].1 * row[terms[0].0] + terms[1].1 * row[terms[1].0];
                                }
                            }
                        }
                    }
                }
            },
        );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::inference::sum_of_shifted_taps;

    fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The direct convolution: the nine taps' products and their shifted sum, as the engine
    /// computes it without Winograd.
    fn direct(
        taps: &[f32],
        out: usize,
        inp: usize,
        x: &[f32],
        grid: (usize, usize, usize),
    ) -> Vec<f32> {
        let (n, h, w) = grid;
        let hw = h * w;
        let mut products = vec![0f32; 9 * out * n * hw];
        for row in 0..9 * out {
            for c in 0..inp {
                let k = taps[row * inp + c];
                for p in 0..n * hw {
                    products[row * n * hw + p] += k * x[c * n * hw + p];
                }
            }
        }
        let mut y = vec![0f32; out * n * hw];
        for (p, map) in y.chunks_mut(hw).enumerate() {
            sum_of_shifted_taps(&products, out * n, p, h, w, map);
        }
        y
    }

    #[test]
    fn winograd_equals_the_direct_convolution_at_even_odd_and_tiny_sizes() {
        for (i, &(out, inp, n, h, w)) in [
            (4, 3, 1, 6, 6),
            (3, 5, 2, 7, 5),
            (2, 4, 3, 1, 1),
            (5, 2, 1, 1, 4),
            (32, 128, 1, 14, 14),
            (32, 128, 2, 9, 13),
        ]
        .iter()
        .enumerate()
        {
            let taps = pseudo_random(9 * out * inp, 2 * i as u64);
            let x = pseudo_random(inp * n * h * w, 2 * i as u64 + 1);
            let expected = direct(&taps, out, inp, &x, (n, h, w));
            let winograd = Winograd3x3::from_taps(&taps, out, inp).unwrap();
            let mut y = vec![f32::NAN; out * n * h * w];
            winograd.convolve(&x, (n, h, w), &mut y).unwrap();
            let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = y
                .iter()
                .zip(&expected)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-6 * scale.max(1.0),
                "{out}x{inp}, {n} images of {h}x{w}: error {err} at scale {scale}"
            );
        }
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(Winograd3x3::from_taps(&[0.0; 10], 1, 1).is_err());
        let winograd = Winograd3x3::from_taps(&[0.0; 9], 1, 1).unwrap();
        let mut y = vec![0f32; 3];
        assert!(winograd.convolve(&[0.0; 4], (1, 2, 2), &mut y).is_err());
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::network::inference::{Matrix, sum_of_shifted_taps};
    use std::time::Instant;

    #[test]
    #[ignore]
    fn speed() {
        for &(h, n) in &[
            (56usize, 1usize),
            (28, 1),
            (14, 1),
            (7, 1),
            (56, 8),
            (14, 8),
        ] {
            let (out, inp) = (32, 128);
            let taps: Vec<f32> = (0..9 * out * inp).map(|i| (i % 7) as f32 * 0.1).collect();
            let x: Vec<f32> = (0..inp * n * h * h)
                .map(|i| (i % 13) as f32 * 0.1)
                .collect();
            let wino = Winograd3x3::from_taps(&taps, out, inp).unwrap();
            let m = Matrix::new(taps.clone(), 9 * out, inp).unwrap();
            let hw = h * h;
            let mut y = vec![0f32; out * n * hw];
            let mut best = [f64::MAX; 2];
            for _ in 0..30 {
                let t = Instant::now();
                wino.convolve(&x, (n, h, h), &mut y).unwrap();
                best[0] = best[0].min(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                let (p, _) = m.times(x.clone(), n * hw).unwrap();
                y.par_chunks_mut(hw)
                    .enumerate()
                    .for_each(|(q, map)| sum_of_shifted_taps(&p, out * n, q, h, h, map));
                best[1] = best[1].min(t.elapsed().as_secs_f64() * 1e3);
            }
            eprintln!(
                "{n} x {h}x{h}: winograd {:.3} ms, direct {:.3} ms",
                best[0], best[1]
            );
        }
    }
}
