//! How well the classifier classifies, and how sure `camview eval` can be of its scores: ROC
//! AUC and bootstrap confidence intervals. How well a map localises is
//! `explain::agreement`, which the viewer shares.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

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

/// A score with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The score on the data as it is.
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// `resamples` bootstrap resamples of items in `groups` (indices into the caller's items),
/// each group drawn with replacement to its own size (a stratified bootstrap, as pROC's
/// `ci.auc` does by default: every resample keeps the numbers of positive and negative images,
/// so a ROC AUC is always defined). One ChaCha8 stream from `seed`: the same seed gives the
/// same resamples.
pub fn stratified_resamples(groups: &[Vec<usize>], resamples: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..resamples)
        .map(|_| {
            groups
                .iter()
                .filter(|g| !g.is_empty())
                .flat_map(|g| {
                    (0..g.len())
                        .map(|_| g[rng.random_range(0..g.len())])
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect()
}

/// The percentile interval holding `confidence` (e.g. 0.95) of the resampled `samples` of a
/// score whose value is `value` (NaN samples, from resamples where the score is undefined,
/// are left out). The percentiles interpolate linearly between order statistics, as
/// `numpy.percentile` does by default. `None` without a sample.
pub fn percentile_interval(value: f64, samples: &[f64], confidence: f64) -> Option<Interval> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| !s.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let percentile = |q: f64| {
        let at = q * (sorted.len() - 1) as f64;
        let (below, above) = (at.floor() as usize, at.ceil() as usize);
        sorted[below] + (sorted[above] - sorted[below]) * (at - below as f64)
    };
    let tail = (1.0 - confidence) / 2.0;
    Some(Interval {
        value,
        low: percentile(tail),
        high: percentile(1.0 - tail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn resamples_keep_each_groups_size_and_follow_the_seed() {
        let groups = vec![vec![0, 1, 2], vec![3, 4], Vec::new()];
        let a = stratified_resamples(&groups, 50, 7);
        assert_eq!(a.len(), 50);
        for sample in &a {
            assert_eq!(sample.len(), 5);
            assert!(sample[..3].iter().all(|i| *i < 3), "{sample:?}");
            assert!(sample[3..].iter().all(|i| (3..5).contains(i)), "{sample:?}");
        }
        assert_eq!(a, stratified_resamples(&groups, 50, 7));
        assert_ne!(a, stratified_resamples(&groups, 50, 8));
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile(range(11), [2.5, 97.5]) = [0.25, 9.75]
        let samples: Vec<f64> = (0..11).map(f64::from).collect();
        let i = percentile_interval(5.0, &samples, 0.95).unwrap();
        assert_eq!(i.value, 5.0);
        assert!(
            (i.low - 0.25).abs() < 1e-12 && (i.high - 9.75).abs() < 1e-12,
            "{i:?}"
        );
        // NaN samples are left out; none left: no interval.
        let i = percentile_interval(1.0, &[f64::NAN, 1.0, 3.0], 0.5).unwrap();
        assert_eq!((i.low, i.high), (1.5, 2.5));
        assert_eq!(percentile_interval(1.0, &[f64::NAN], 0.95), None);
    }
}
