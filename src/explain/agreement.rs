//! Does the map point where the clinician did? The agreement of a map with a finding's mask
//! (`render::annotation::region_mask`, or a mask file), as `camview eval` reports it over a
//! data set and the viewer shows it for one image.
//!
//! Every score takes a map already upsampled onto the image (row-major, NaN where the network
//! saw nothing: such pixels carry no heat) and a mask of the same size:
//! - the pointing game (Zhang et al. 2016): is the map's maximum inside the mask?
//! - the IoU and Dice of the mask with the map's hot pixels. The map is first min-max scaled to
//!   [0, 1] (its unit scale); hot is then
//!   - `Threshold::Fraction(f)`: a scaled value `>= f` (the CAM paper's bounding rule keeps
//!     the values above 20% of the range: `Fraction(0.2)`);
//!   - `Threshold::Otsu`: a scaled value `> otsu(scaled)` (CheXlocalize's rule).
//! - the energy inside the mask (Score-CAM's energy-based pointing game, Wang et al. 2020):
//!   the share of the scaled map's mass that falls on the mask.
//!
//! CheXlocalize (Saporta et al. 2022, `heatmap_to_segmentation.py`) min-max scales the map,
//! quantises it to 8 bits (`np.uint8(255 * map)`, truncating), takes OpenCV's Otsu threshold of
//! those 256 levels and keeps the pixels strictly above it (`cv2.threshold`'s `THRESH_BINARY`),
//! then fills the outer contours of what it kept (closing holes). We keep its order (scale,
//! then Otsu on the scaled values, strictly above) but compute Otsu as
//! `skimage.filters.threshold_otsu(values, nbins=256)` does on the unscaled floats' own
//! range, exactly (`otsu`, checked against skimage by `make_agreement_fixtures.py`): no 8-bit
//! truncation, and no hole filling, so a map's hot region is exactly its pixels above the cut.
//! The two cuts are not the same computation: on the fixtures' maps they differ by at most
//! 0.0042 of the range (a bin of either histogram is 1/256 or 1/255 of it; the test allows
//! 0.005), and on 200 random 7 x 7 maps upsampled 32 times (a one-off check with OpenCV) by at most 0.0042.

use serde::Serialize;

/// Where a map is cut into hot and cold pixels, on its unit (min-max) scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Threshold {
    /// A fixed share of the map's range, 0 to 1: hot is `>=` it.
    Fraction(f32),
    /// Otsu's threshold of the scaled map (`otsu`): hot is `>` it, as in skimage and CheXlocalize.
    Otsu,
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fraction(v) => write!(f, "{}% of the range", 100.0 * v),
            Self::Otsu => f.write_str("Otsu's threshold"),
        }
    }
}

/// How well one map agrees with one finding's mask.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agreement {
    /// The map's maximum (the first, in row-major order) lies inside the mask.
    pub pointing: bool,
    /// Intersection over union of the hot pixels and the mask (0 when both are empty).
    pub iou: f32,
    /// `2 |hot ∩ mask| / (|hot| + |mask|)` (0 when both are empty).
    pub dice: f32,
    /// The cut on the unit-scaled map (infinite for `Agreement::empty`: nothing reaches it).
    pub threshold: f32,
    /// The share of the unit-scaled map's mass inside the mask.
    pub energy_inside: f32,
    /// The share of the pixels with heat that the mask covers: the energy a flat map would
    /// score, the baseline `energy_inside` is read against.
    pub area_share: f32,
}

impl Agreement {
    /// The agreement of `map` with `mask` (see the module's documentation).
    pub fn of(map: &[f32], mask: &[bool], threshold: Threshold) -> Agreement {
        let scaled = unit_scaled(map);
        let (cut, hot): (f32, fn(f32, f32) -> bool) = match threshold {
            Threshold::Fraction(f) => (f, |v, cut| v >= cut),
            Threshold::Otsu => (otsu(&scaled), |v, cut| v > cut),
        };
        let (mut both, mut hot_count, mut mask_count) = (0usize, 0usize, 0usize);
        let (mut inside, mut total) = (0f64, 0f64);
        for (&v, &m) in scaled.iter().zip(mask) {
            let h = hot(v, cut); // NaN compares false: no heat
            both += usize::from(h && m);
            hot_count += usize::from(h);
            mask_count += usize::from(m);
            if !v.is_nan() {
                total += f64::from(v);
                if m {
                    inside += f64::from(v);
                }
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f32 / b as f32 };
        Agreement {
            pointing: pointing_game(map, mask),
            iou: ratio(both, hot_count + mask_count - both),
            dice: ratio(2 * both, hot_count + mask_count),
            threshold: cut,
            energy_inside: if total > 0.0 {
                (inside / total) as f32
            } else {
                0.0
            },
            area_share: area_share(map, mask),
        }
    }

    /// What a map with no hot pixel scores: nothing pointed at, no overlap, no energy; the
    /// mask's share of the image stays. CheXlocalize gives an image whose probability is
    /// below a cut-off this empty segmentation (`eval --min-probability`).
    pub fn empty(map: &[f32], mask: &[bool]) -> Agreement {
        Agreement {
            pointing: false,
            iou: 0.0,
            dice: 0.0,
            threshold: f32::INFINITY,
            energy_inside: 0.0,
            area_share: area_share(map, mask),
        }
    }
}

/// The map's values scaled to `[0, 1]` by its own min..max, NaN kept (no heat); a flat map is
/// all 0.
pub fn unit_scaled(map: &[f32]) -> Vec<f32> {
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

/// Is the map's maximum inside the mask? Ties go to the first maximum in row-major order;
/// NaN is never the maximum.
fn pointing_game(map: &[f32], mask: &[bool]) -> bool {
    let best = map.iter().enumerate().filter(|(_, v)| !v.is_nan()).fold(
        None::<(usize, f32)>,
        |best, (i, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((i, v)),
        },
    );
    best.is_some_and(|(i, _)| mask.get(i).copied().unwrap_or(false))
}

/// The share of the pixels with heat (not NaN) inside the mask.
fn area_share(map: &[f32], mask: &[bool]) -> f32 {
    let (mut inside, mut heat) = (0usize, 0usize);
    for (v, &m) in map.iter().zip(mask) {
        if !v.is_nan() {
            heat += 1;
            inside += usize::from(m);
        }
    }
    if heat == 0 {
        0.0
    } else {
        inside as f32 / heat as f32
    }
}

/// Otsu's threshold of `values` (NaN and infinities ignored; NaN when nothing is left):
/// exactly `skimage.filters.threshold_otsu(values, nbins=256)` of the remaining values as
/// float64 (skimage 0.26, NumPy 2.4): a histogram of 256 equal bins over the values' own
/// range, binned as `numpy.histogram` does; the bin centre that maximises the between-class
/// variance, first of equals, with skimage's float32 counts; a constant input is its own
/// threshold. Pixels strictly above it are foreground.
pub fn otsu(values: &[f32]) -> f32 {
    const BINS: usize = 256;
    let values: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v))
        .collect();
    let Some(&first) = values.first() else {
        return f32::NAN;
    };
    if values.iter().all(|&v| v == first) {
        return first as f32;
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    // numpy.linspace(lo, hi, 257): i * step + lo, the last edge exactly hi
    let step = (hi - lo) / BINS as f64;
    let mut edges: Vec<f64> = (0..=BINS).map(|i| i as f64 * step + lo).collect();
    edges[BINS] = hi;
    // numpy.histogram's equal-bin path: the bin from the scaled value, corrected by the edges
    let mut counts = [0f32; BINS];
    for &v in &values {
        let mut bin = (((v - lo) / (hi - lo)) * BINS as f64) as usize;
        if bin == BINS {
            bin -= 1;
        }
        if v < edges[bin] {
            bin -= 1;
        }
        if bin != BINS - 1 && v >= edges[bin + 1] {
            bin += 1;
        }
        counts[bin] += 1.0;
    }
    let centres: Vec<f64> = edges.windows(2).map(|e| (e[0] + e[1]) / 2.0).collect();
    // class weights (float32 in skimage) and means (float64) below and above each cut
    let mut below = [0f32; BINS];
    let mut mean_below = [0f64; BINS];
    let (mut weight, mut mass) = (0f32, 0f64);
    for i in 0..BINS {
        weight += counts[i];
        mass += f64::from(counts[i]) * centres[i];
        below[i] = weight;
        mean_below[i] = mass / f64::from(weight);
    }
    let mut above = [0f32; BINS];
    let mut mean_above = [0f64; BINS];
    let (mut weight, mut mass) = (0f32, 0f64);
    for i in (0..BINS).rev() {
        weight += counts[i];
        mass += f64::from(counts[i]) * centres[i];
        above[i] = weight;
        mean_above[i] = mass / f64::from(weight);
    }
    let mut best = (0, f64::NEG_INFINITY);
    for i in 0..BINS - 1 {
        let variance =
            f64::from(below[i] * above[i + 1]) * (mean_below[i] - mean_above[i + 1]).powi(2);
        if variance > best.1 {
            best = (i, variance);
        }
    }
    centres[best.0] as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 4x4 image whose mask is the top-left 2x2 block.
    fn mask() -> Vec<bool> {
        (0..16).map(|i| i % 4 < 2 && i / 4 < 2).collect()
    }

    #[test]
    fn a_map_equal_to_the_mask_agrees_fully_and_one_outside_not_at_all() {
        let on: Vec<f32> = mask().iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
        let off: Vec<f32> = on.iter().map(|v| 1.0 - v).collect();
        for threshold in [Threshold::Fraction(0.2), Threshold::Otsu] {
            let a = Agreement::of(&on, &mask(), threshold);
            assert!(a.pointing, "{threshold}");
            assert_eq!(
                (a.iou, a.dice, a.energy_inside),
                (1.0, 1.0, 1.0),
                "{threshold}"
            );
            assert_eq!(a.area_share, 0.25);
            let b = Agreement::of(&off, &mask(), threshold);
            assert!(!b.pointing, "{threshold}");
            assert_eq!(
                (b.iou, b.dice, b.energy_inside),
                (0.0, 0.0, 0.0),
                "{threshold}"
            );
        }
        // Otsu cuts the two-valued map between its values: the centre of its first bin.
        assert_eq!(
            Agreement::of(&on, &mask(), Threshold::Otsu).threshold,
            0.5 / 256.0
        );
        let empty = Agreement::empty(&on, &mask());
        assert!(!empty.pointing);
        assert_eq!(
            (empty.iou, empty.dice, empty.energy_inside),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(empty.area_share, 0.25);
    }

    #[test]
    fn known_partial_answers() {
        // Values 0..15: the maximum (15) is at the bottom-right, outside the mask.
        let ramp: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let a = Agreement::of(&ramp, &mask(), Threshold::Fraction(0.2));
        assert!(!a.pointing);
        // Scaled values i/15 >= 0.2 for i >= 3: 13 hot pixels; the mask {0,1,4,5} shares {4,5}.
        // Union = 13 + 2 (pixels 0 and 1) = 15 -> IoU 2/15; Dice 2 * 2 / (13 + 4).
        assert!((a.iou - 2.0 / 15.0).abs() < 1e-6, "{a:?}");
        assert!((a.dice - 4.0 / 17.0).abs() < 1e-6, "{a:?}");
        assert_eq!(a.threshold, 0.2);
        // Energy: (0+1+4+5)/15 over (0+..+15)/15 = 10/120.
        assert!((a.energy_inside - 10.0 / 120.0).abs() < 1e-6);
        // NaN pixels carry no heat, are never the maximum, and are not in the area's share.
        let mut partial = vec![f32::NAN; 16];
        partial[5] = 2.0;
        partial[15] = 1.0;
        let p = Agreement::of(&partial, &mask(), Threshold::Fraction(0.2));
        assert!(p.pointing);
        assert_eq!(p.area_share, 0.5);
        // Pixel 5 alone is hot (15 scales to 0): IoU 1/4, Dice 2/5.
        assert_eq!((p.iou, p.dice), (0.25, 0.4));
        // A map without heat agrees with nothing.
        let none = Agreement::of(&[f32::NAN; 16], &mask(), Threshold::Otsu);
        assert!(!none.pointing && none.iou == 0.0 && none.area_share == 0.0);
        assert!(otsu(&[f32::NAN; 3]).is_nan());
    }

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        values: Vec<Option<f32>>,
        otsu: f64,
        otsu_float32: f64,
        #[serde(default)]
        mask: Vec<bool>,
        scaled_otsu: Option<f64>,
        chexlocalize_cut: Option<f64>,
        iou: Option<f32>,
        dice: Option<f32>,
    }

    /// skimage's `threshold_otsu` on `tests/fixtures/expected/agreement/otsu.json`
    /// (`make_agreement_fixtures.py`), within 1e-5; CheXlocalize's order of operations
    /// (scale, Otsu, strictly above) giving NumPy's IoU and Dice exactly; and our cut within
    /// 0.005 of the range of CheXlocalize's own (8 bits, OpenCV).
    #[test]
    fn otsu_equals_skimage_and_otsu_agreement_equals_numpys() {
        #[derive(serde::Deserialize)]
        struct Cases {
            cases: Vec<Case>,
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/expected/agreement/otsu.json");
        let cases: Cases = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(cases.cases.len(), 8);
        for c in &cases.cases {
            let values: Vec<f32> = c.values.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
            let ours = f64::from(otsu(&values));
            let error = (ours - c.otsu).abs();
            assert!(error <= 1e-5, "{}: ours {ours}, skimage {}", c.name, c.otsu);
            // skimage on the float32 values bins in float32: the same bin here
            assert!((ours - c.otsu_float32).abs() <= 1e-5, "{}: float32", c.name);
            if let (Some(t), Some(iou), Some(dice)) = (c.scaled_otsu, c.iou, c.dice) {
                let a = Agreement::of(&values, &c.mask, Threshold::Otsu);
                assert!((f64::from(a.threshold) - t).abs() <= 1e-5, "{}", c.name);
                assert_eq!((a.iou, a.dice), (iou, dice), "{}", c.name);
                let chexlocalize = c.chexlocalize_cut.unwrap();
                assert!(
                    (f64::from(a.threshold) - chexlocalize).abs() <= 0.005,
                    "{}: our cut {}, CheXlocalize's {chexlocalize}",
                    c.name,
                    a.threshold
                );
            }
        }
    }
}
