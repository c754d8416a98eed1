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

mod painter;
mod random;
mod shapes;

use std::io::Write;
use std::path::{Path, PathBuf};

use image::GrayImage;

use crate::export::{ExportError, write_atomic};
use painter::Painter;
use random::Rand;

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

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("{file}: already exists")]
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
    use super::random::{Noise, Rand};
    use super::shapes::Wobble;

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
