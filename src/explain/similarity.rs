//! How alike two maps are, as the sanity checks of Adebayo et al. (NeurIPS 2018) measure it:
//! Spearman's rank correlation (of the values, and of their absolute values), the structural
//! similarity index (SSIM) of the maps scaled to [0, 1], and the Pearson correlation of their
//! histograms of oriented gradients (HOG). Each equals its reference implementation, in f64:
//! - `spearman`: `scipy.stats.spearmanr(a, b).statistic` (ties get their average rank);
//! - `ssim`: `skimage.metrics.structural_similarity(a, b, data_range=1.0)` with its defaults
//!   (a 7 x 7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, the mean over the
//!   windows that lie wholly inside the image: skimage crops the 3-pixel border its filter
//!   padded, so the padding mode never enters);
//! - `hog`: `skimage.feature.hog(image)` with its defaults (9 orientations over 0-180 degrees,
//!   8 x 8-pixel cells, 3 x 3-cell blocks, L2-Hys), and `hog_similarity` the Pearson
//!   correlation of two images' HOG vectors (`numpy.corrcoef`).
//!
//! Written here rather than taken from a crate: no maintained Rust crate gives these three with
//! skimage's exact definitions (window, covariance, cropping, binning, block normalisation), and
//! the parity tests (`tests/fixtures/make_similarity_fixtures.py`) need exactly those.

/// Spearman's rank correlation of `a` and `b` (same length); NaN when either is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Spearman's rank correlation of every pair of `maps` (the methods' maps of one image, side
/// by side): `[i][j]` is `spearman(&maps[i], &maps[j])`, symmetric, 1 on the diagonal; NaN
/// where either map is constant, or the two differ in length (maps of different layers).
/// Each map is ranked once.
pub fn rank_correlations(maps: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let ranked: Vec<Vec<f64>> = maps.iter().map(|m| ranks(m)).collect();
    (ranked.iter())
        .map(|a| {
            (ranked.iter())
                .map(|b| {
                    if a.len() == b.len() {
                        pearson(a, b)
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        })
        .collect()
}

/// Ranks from 1, ties given the mean of the ranks they span (scipy's `rankdata`, "average").
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // positions start..end hold ranks start + 1 ..= end
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson's correlation; NaN when either input is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    ab / (aa * bb).sqrt()
}

/// SSIM of two `width x height` images with values in [0, 1] (see the module's documentation).
/// NaN when the image is smaller than the 7 x 7 window.
pub fn ssim(a: &[f32], b: &[f32], width: usize, height: usize) -> f64 {
    const WIN: usize = 7;
    if width < WIN || height < WIN || a.len() < width * height || b.len() < width * height {
        return f64::NAN;
    }
    let np = (WIN * WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let at = |v: &[f32], x: usize, y: usize| f64::from(v[y * width + x]);
    let mut total = 0.0;
    let mut count = 0usize;
    // the window centred on (x, y) for every centre 3 pixels or more inside the border
    for y in 0..=height - WIN {
        for x in 0..=width - WIN {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..WIN {
                for dx in 0..WIN {
                    let (p, q) = (at(a, x + dx, y + dy), at(b, x + dx, y + dy));
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let (ux, uy) = (sa / np, sb / np);
            let vx = cov_norm * (saa / np - ux * ux);
            let vy = cov_norm * (sbb / np - uy * uy);
            let vxy = cov_norm * (sab / np - ux * uy);
            let numerator = (2.0 * ux * uy + c1) * (2.0 * vxy + c2);
            let denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2);
            total += numerator / denominator;
            count += 1;
        }
    }
    total / count as f64
}

/// skimage's `hog` of a `width x height` grayscale image with its default parameters; empty
/// when the image holds fewer than 3 x 3 cells of 8 x 8 pixels.
pub fn hog(image: &[f32], width: usize, height: usize) -> Vec<f64> {
    const CELL: usize = 8;
    const BLOCK: usize = 3;
    const ORIENTATIONS: usize = 9;
    let (cells_x, cells_y) = (width / CELL, height / CELL);
    if cells_x < BLOCK || cells_y < BLOCK || image.len() < width * height {
        return Vec::new();
    }
    let px = |x: usize, y: usize| f64::from(image[y * width + x]);
    // central differences inside, 0 on the border rows/columns (skimage's channel gradient)
    let mut magnitude = vec![0.0; width * height];
    let mut orientation = vec![0.0; width * height];
    for y in 0..height {
        for x in 0..width {
            let g_row = if y == 0 || y + 1 == height {
                0.0
            } else {
                px(x, y + 1) - px(x, y - 1)
            };
            let g_col = if x == 0 || x + 1 == width {
                0.0
            } else {
                px(x + 1, y) - px(x - 1, y)
            };
            magnitude[y * width + x] = g_col.hypot(g_row);
            orientation[y * width + x] = g_row.atan2(g_col).to_degrees().rem_euclid(180.0);
        }
    }
    let per_bin = 180.0 / ORIENTATIONS as f64;
    let mut histogram = vec![0.0; cells_y * cells_x * ORIENTATIONS];
    for cy in 0..cells_y {
        for cx in 0..cells_x {
            for y in cy * CELL..(cy + 1) * CELL {
                for x in cx * CELL..(cx + 1) * CELL {
                    let o = orientation[y * width + x];
                    // bin i holds [i * per_bin, (i + 1) * per_bin)
                    for bin in 0..ORIENTATIONS {
                        if o < per_bin * (bin + 1) as f64 && o >= per_bin * bin as f64 {
                            histogram[(cy * cells_x + cx) * ORIENTATIONS + bin] +=
                                magnitude[y * width + x];
                        }
                    }
                }
            }
        }
    }
    let area = (CELL * CELL) as f64;
    histogram.iter_mut().for_each(|h| *h /= area);
    let eps2 = 1e-5f64 * 1e-5;
    let mut features = Vec::new();
    for by in 0..=cells_y - BLOCK {
        for bx in 0..=cells_x - BLOCK {
            let mut block = Vec::with_capacity(BLOCK * BLOCK * ORIENTATIONS);
            for cy in by..by + BLOCK {
                for cx in bx..bx + BLOCK {
                    let cell = (cy * cells_x + cx) * ORIENTATIONS;
                    block.extend_from_slice(&histogram[cell..cell + ORIENTATIONS]);
                }
            }
            // L2-Hys: L2 normalise, clip at 0.2, normalise again
            let norm = (block.iter().map(|v| v * v).sum::<f64>() + eps2).sqrt();
            block.iter_mut().for_each(|v| *v = (*v / norm).min(0.2));
            let norm = (block.iter().map(|v| v * v).sum::<f64>() + eps2).sqrt();
            features.extend(block.iter().map(|v| v / norm));
        }
    }
    features
}

/// Pearson correlation of two images' HOG vectors; NaN when the images are too small.
pub fn hog_similarity(a: &[f32], b: &[f32], width: usize, height: usize) -> f64 {
    let (ha, hb) = (hog(a, width, height), hog(b, width, height));
    if ha.is_empty() {
        return f64::NAN;
    }
    pearson(&ha, &hb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties_like_scipy() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        assert_eq!(ranks(&[5.0, 5.0, 5.0]), [2.0, 2.0, 2.0]);
    }

    #[test]
    fn identical_maps_are_fully_similar_and_reversed_ones_anti() {
        let a: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let reversed: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
        assert!((spearman(&a, &a) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &reversed) + 1.0).abs() < 1e-12);
        assert!((ssim(&a, &a, 20, 20) - 1.0).abs() < 1e-12);
        let square: Vec<f32> = (0..576).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        assert!((hog_similarity(&square, &square, 24, 24) - 1.0).abs() < 1e-12);
        assert!(ssim(&a, &a, 5, 80).is_nan());
        assert!(hog_similarity(&a, &a, 20, 20).is_nan()); // 2 x 2 cells
        assert!(spearman(&[1.0; 4], &[1.0, 2.0, 3.0, 4.0]).is_nan());
    }

    /// scipy's and skimage's values on `tests/fixtures/expected/similarity/cases.json`
    /// (`make_similarity_fixtures.py`), within 1e-5.
    #[test]
    fn metrics_equal_scipy_and_skimage() {
        #[derive(serde::Deserialize)]
        struct Case {
            name: String,
            width: usize,
            height: usize,
            a: Vec<f32>,
            b: Vec<f32>,
            spearman: f64,
            spearman_abs_centred: f64,
            ssim: f64,
            hog_similarity: f64,
            hog_a_len: usize,
            hog_a_head: Vec<f64>,
        }
        #[derive(serde::Deserialize)]
        struct Cases {
            cases: Vec<Case>,
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/expected/similarity/cases.json");
        let cases: Cases = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(cases.cases.len(), 4);
        for c in &cases.cases {
            let (w, h) = (c.width, c.height);
            let close = |ours: f64, theirs: f64, what: &str| {
                assert!(
                    (ours - theirs).abs() <= 1e-5,
                    "{}: {what} {ours} against {theirs}",
                    c.name
                );
            };
            close(spearman(&c.a, &c.b), c.spearman, "Spearman");
            let matrix = rank_correlations(&[c.a.clone(), c.b.clone()]);
            close(matrix[0][1], c.spearman, "rank_correlations");
            let centred = |v: &[f32]| v.iter().map(|x| (x - 0.5).abs()).collect::<Vec<f32>>();
            close(
                spearman(&centred(&c.a), &centred(&c.b)),
                c.spearman_abs_centred,
                "Spearman of absolute values",
            );
            close(ssim(&c.a, &c.b, w, h), c.ssim, "SSIM");
            let ours = hog(&c.a, w, h);
            assert_eq!(ours.len(), c.hog_a_len, "{}", c.name);
            for (i, (&x, &y)) in ours.iter().zip(&c.hog_a_head).enumerate() {
                close(x, y, &format!("HOG feature {i}"));
            }
            close(
                hog_similarity(&c.a, &c.b, w, h),
                c.hog_similarity,
                "HOG similarity",
            );
        }
    }

    #[test]
    fn rank_correlations_are_every_pairs_spearman() {
        let a: Vec<f32> = (0..30).map(|i| ((i * 37) % 31) as f32).collect();
        let b: Vec<f32> = (0..30).map(|i| ((i * 11) % 7) as f32).collect(); // ties
        let reversed: Vec<f32> = a.iter().map(|v| -v).collect();
        let maps = vec![a.clone(), b.clone(), reversed, vec![0.5; 30], vec![1.0; 4]];
        let m = rank_correlations(&maps);
        assert_eq!(m.len(), 5);
        for (i, row) in m.iter().enumerate() {
            assert_eq!(row.len(), 5);
            for (j, &v) in row.iter().enumerate() {
                if i == 3 || j == 3 || i == 4 || j == 4 {
                    assert!(
                        v.is_nan(),
                        "[{i}][{j}] = {v}: a constant map or another length"
                    );
                } else {
                    assert_eq!(v, spearman(&maps[i], &maps[j]), "[{i}][{j}]");
                    assert_eq!(v, m[j][i], "symmetric");
                }
            }
        }
        assert!((m[0][0] - 1.0).abs() < 1e-12 && (m[0][2] + 1.0).abs() < 1e-12);
        assert!(rank_correlations(&[]).is_empty());
    }
}
