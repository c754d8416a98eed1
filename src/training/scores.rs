//! How well maps localise and how well the classifier classifies: the scores `camview eval`
//! reports. All take a map already upsampled onto the image (row-major, NaN where the network
//! saw nothing) and a mask of the same size.

/// The map's values scaled to `[0, 1]` by its own min..max, NaN kept (no heat).
fn unit_scaled(map: &[f32]) -> Vec<f32> {
    let (lo, hi) = map
        .iter()
        .filter(|v| !v.is_nan())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = hi - lo;
    map.iter()
        .map(|&v| {
            if v.is_nan() {
                f32::NAN
            } else if span > 0.0 {
                (v - lo) / span
            } else {
                0.0
            }
        })
        .collect()
}

/// Pointing game (Zhang et al. 2016): is the map's maximum inside the mask?
/// Ties are resolved by the first maximum in row-major order.
pub fn pointing_game(map: &[f32], mask: &[bool]) -> bool {
    let best = map.iter().enumerate().filter(|(_, v)| !v.is_nan()).fold(
        None::<(usize, f32)>,
        |best, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        },
    );
    best.is_some_and(|(i, _)| mask.get(i).copied().unwrap_or(false))
}

/// IoU of the mask with the map thresholded at `fraction` of its range (the CAM paper's
/// bounding rule uses 20%): pixels whose min-max scaled value is at least `fraction`.
pub fn iou_at(map: &[f32], mask: &[bool], fraction: f32) -> f32 {
    let scaled = unit_scaled(map);
    let (mut inter, mut union) = (0usize, 0usize);
    for (&v, &m) in scaled.iter().zip(mask) {
        let hot = v >= fraction; // NaN compares false: no heat
        inter += usize::from(hot && m);
        union += usize::from(hot || m);
    }
    if union == 0 {
        0.0
    } else {
        inter as f32 / union as f32
    }
}

/// Energy-based pointing game (Score-CAM, Wang et al. 2020): the share of the min-max scaled
/// map's mass that falls inside the mask.
pub fn energy_inside(map: &[f32], mask: &[bool]) -> f32 {
    let scaled = unit_scaled(map);
    let (mut inside, mut total) = (0f64, 0f64);
    for (&v, &m) in scaled.iter().zip(mask) {
        if v.is_nan() {
            continue;
        }
        total += f64::from(v);
        if m {
            inside += f64::from(v);
        }
    }
    if total > 0.0 {
        (inside / total) as f32
    } else {
        0.0
    }
}

/// Area under the ROC curve of `scores` for the `positive` labels (Mann-Whitney U, ties
/// counted half). `None` when one class is absent.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let pos: Vec<f32> = scores
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f32> = scores
        .iter()
        .zip(positive)
        .filter(|(_, p)| !**p)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    // Rank-based: sort all scores, assign average ranks to ties.
    let mut all: Vec<(f32, bool)> = scores
        .iter()
        .copied()
        .zip(positive.iter().copied())
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += all[i..=j].iter().filter(|(_, p)| *p).count() as f64 * average_rank;
        i = j + 1;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    Some((rank_sum_pos - np * (np + 1.0) / 2.0) / (np * nn))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 4x4 image whose mask is the top-left 2x2 block.
    fn mask() -> Vec<bool> {
        (0..16).map(|i| i % 4 < 2 && i / 4 < 2).collect()
    }

    #[test]
    fn a_map_on_the_mask_scores_perfectly_and_its_inverse_fails() {
        let on: Vec<f32> = mask().iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
        let off: Vec<f32> = on.iter().map(|v| 1.0 - v).collect();
        assert!(pointing_game(&on, &mask()));
        assert!(!pointing_game(&off, &mask()));
        assert_eq!(iou_at(&on, &mask(), 0.2), 1.0);
        assert_eq!(iou_at(&off, &mask(), 0.2), 0.0);
        assert_eq!(energy_inside(&on, &mask()), 1.0);
        assert_eq!(energy_inside(&off, &mask()), 0.0);
    }

    #[test]
    fn known_partial_answers() {
        // Values 0..15: the maximum (15) is at the bottom-right, outside the mask.
        let ramp: Vec<f32> = (0..16).map(|i| i as f32).collect();
        assert!(!pointing_game(&ramp, &mask()));
        // Scaled values i/15 >= 0.2 for i >= 3: 13 hot pixels; the mask {0,1,4,5} shares {4,5}.
        // Union = 13 + 2 (pixels 0 and 1) = 15 -> IoU 2/15.
        assert!((iou_at(&ramp, &mask(), 0.2) - 2.0 / 15.0).abs() < 1e-6);
        // Energy: (0+1+4+5)/15 over (0+..+15)/15 = 10/120.
        assert!((energy_inside(&ramp, &mask()) - 10.0 / 120.0).abs() < 1e-6);
        // NaN pixels carry no heat and are never the maximum.
        let mut partial = vec![f32::NAN; 16];
        partial[5] = 2.0;
        partial[15] = 1.0;
        assert!(pointing_game(&partial, &mask()));
    }

    #[test]
    fn auc_known_values() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        // One inversion among 2x2 pairs -> 3/4.
        assert_eq!(
            roc_auc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.1], &[true]), None);
    }
}
