//! From an RGB image to the network's input tensor, recording where that input sits on the
//! original image so every map is drawn exactly over the region the network saw.
//!
//! The steps run in a training pipeline's order: the channels the network takes (PIL's
//! `convert("RGB")`, or `convert("L")` for a grayscale network); the image's value range when
//! the intensity is min-max scaled (MONAI's `ScaleIntensity` runs before any `Resize`, on the
//! whole image, so the range is read before the geometry); the geometry (Pillow's resize,
//! torchvision's centre crop); then the intensities in `[0, 1]` and `Normalize`.

use candle_core::{Device, Tensor};
use image::{DynamicImage, ImageBuffer, Pixel, RgbImage};
use serde::{Deserialize, Serialize};

use super::levels::NetworkWindow;

use super::decode::to_luma_like_pil;
use super::resample::resize_bilinear_like_pil;

/// ImageNet statistics used by torchvision's `Normalize` in nearly every fine-tuning script.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The input channels camview can make from an image: 1 (PIL's `convert("L")`) or 3 (PIL's
/// `convert("RGB")`).
pub const INPUT_CHANNELS: [usize; 2] = [1, 3];

/// Smallest side the network accepts: five halvings must leave at least one pixel.
pub const MIN_NETWORK_SIDE: u32 = 32;
/// Largest side fed to the network in native geometry (memory grows with the square).
pub const MAX_NATIVE_SIDE: u32 = 2048;

/// How the image becomes the network's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Geometry {
    /// torchvision `Resize((S, S))`: the whole image, aspect ratio not kept.
    Stretch,
    /// torchvision `Resize(S * 256 / 224)` + `CenterCrop(S)`: the centre of the image.
    #[serde(rename = "crop")]
    CentreCrop,
    /// The image as it is, no resizing.
    Native,
}

impl Geometry {
    pub const ALL: [Geometry; 3] = [Self::Stretch, Self::CentreCrop, Self::Native];

    /// The name in sidecars and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stretch => "stretch",
            Self::CentreCrop => "crop",
            Self::Native => "native",
        }
    }
}

/// How 8-bit values become intensities in `[0, 1]`, before the mean and std.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Intensity {
    /// torchvision's `ToTensor`: every value divided by 255.
    #[default]
    #[serde(rename = "unit")]
    Unit,
    /// MONAI's `ScaleIntensity()` (`rescale_array` to `[0, 1]`, not channel-wise): the image's
    /// smallest value becomes 0 and its largest 1, over all its channels; a constant image
    /// becomes 0 everywhere, as MONAI makes it.
    #[serde(rename = "minmax")]
    MinMax,
}

/// The preprocessing a model expects. Default: torchvision's ImageNet evaluation transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocessing {
    pub input_size: u32,
    pub geometry: Geometry,
    /// One value per input channel, or one for every channel: torchvision's `Normalize`
    /// broadcasts a single value over the channels, so training code may give one for RGB.
    pub mean: Vec<f32>,
    /// As `mean`.
    pub std: Vec<f32>,
    pub intensity: Intensity,
    /// The network was trained on images transposed (rows as columns): MONAI's image readers
    /// (`LoadImage`, whose PIL and ITK readers use `reverse_indexing=True`) give arrays indexed
    /// `(x, y)`, so a network trained through them saw every image transposed. The input is
    /// transposed after the geometry and intensities; the maps are turned back
    /// (`ClassActivationMap::transposed`).
    #[serde(skip_serializing_if = "is_false")]
    pub transpose: bool,
    /// The window the network's 8-bit input was made with, from images with more than 8 bits
    /// of gray (DICOM, 16-bit PNG and TIFF): `None` takes the file's own window for DICOM and
    /// PIL's conversion for PNG and TIFF (`SourceImage::network_rgb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<NetworkWindow>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for Preprocessing {
    fn default() -> Self {
        Self {
            input_size: 224,
            geometry: Geometry::Stretch,
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
            intensity: Intensity::Unit,
            transpose: false,
            window: None,
        }
    }
}

/// A rectangle on the original image, in pixels (fractional where a resize made it so).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Region {
    pub fn whole(width: u32, height: u32) -> Self {
        Self {
            x: 0.0,
            y: 0.0,
            width: f64::from(width),
            height: f64::from(height),
        }
    }
}

/// The network's input and where it came from.
#[derive(Debug, Clone)]
pub struct NetworkInput {
    /// `[1, C, H, W]`, normalised, `C` the network's input channels.
    pub tensor: Tensor,
    /// The 8-bit image the tensor was made from (what the network saw; for a grayscale
    /// network its grey levels, in all three channels).
    pub pixels: RgbImage,
    /// Where `pixels` sits on the original image.
    pub region: Region,
}

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error(
        "the image is {width} x {height} pixels; the network needs at least {MIN_NETWORK_SIDE} x {MIN_NETWORK_SIDE}"
    )]
    TooSmall { width: u32, height: u32 },
    #[error(
        "native geometry feeds the network at most {MAX_NATIVE_SIDE} pixels a side; this image is {width} x {height} (use stretch or crop)"
    )]
    TooLargeForNative { width: u32, height: u32 },
    #[error("invalid preprocessing: {0}")]
    Invalid(String),
    #[error("cannot build the input tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// `values[channel]`, or the single value every channel shares.
fn per_channel(values: &[f32], channel: usize) -> f32 {
    values
        .get(if values.len() == 1 { 0 } else { channel })
        .copied()
        .unwrap_or(f32::NAN)
}

/// "1 input channel (grayscale)", "3 input channels (RGB)".
fn describe_channels(channels: usize) -> String {
    match channels {
        1 => "1 input channel (grayscale)".to_string(),
        3 => "3 input channels (RGB)".to_string(),
        c => format!("{c} input channels"),
    }
}

impl Preprocessing {
    /// Checks that this preprocessing can feed a network of `channels` input channels.
    fn check(&self, channels: usize) -> Result<(), PreprocessError> {
        if self.input_size < MIN_NETWORK_SIDE || self.input_size > MAX_NATIVE_SIDE {
            return Err(PreprocessError::Invalid(format!(
                "input size {} is outside {MIN_NETWORK_SIDE}..={MAX_NATIVE_SIDE}",
                self.input_size
            )));
        }
        self.check_statistics(channels)
    }

    /// Checks the channels, mean and std (the input size may still be overridden).
    fn check_statistics(&self, channels: usize) -> Result<(), PreprocessError> {
        if !INPUT_CHANNELS.contains(&channels) {
            return Err(PreprocessError::Invalid(format!(
                "the network takes {}; camview makes 1 (grayscale) or 3 (RGB) from an image",
                describe_channels(channels)
            )));
        }
        for (what, values) in [("mean", &self.mean), ("std", &self.std)] {
            if values.len() != 1 && values.len() != channels {
                let give = if channels == 1 {
                    "give one value (camview's default mean and std are ImageNet's RGB ones, \
                     so a grayscale model's sidecar must state its own)"
                } else {
                    "give one value per channel, or one for all"
                };
                return Err(PreprocessError::Invalid(format!(
                    "the {what} has {} values {values:?} but the network takes {}: {give}",
                    values.len(),
                    describe_channels(channels)
                )));
            }
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0)
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(PreprocessError::Invalid(format!(
                "mean {:?} / std {:?} must be finite with std > 0",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// This preprocessing as it feeds a network of `channels` input channels: checked, with a
    /// single mean or std repeated for every channel (what `Normalize` does with it), so that
    /// it says exactly what is applied.
    pub fn for_channels(&self, channels: usize) -> Result<Self, PreprocessError> {
        self.check_statistics(channels)?;
        let spread = |values: &[f32]| -> Vec<f32> {
            (0..channels).map(|c| per_channel(values, c)).collect()
        };
        Ok(Self {
            mean: spread(&self.mean),
            std: spread(&self.std),
            ..self.clone()
        })
    }

    /// Makes the input of a network of `channels` input channels: the channels, the geometry,
    /// the intensities and the normalisation.
    pub fn prepare(
        &self,
        image: &RgbImage,
        channels: usize,
    ) -> Result<NetworkInput, PreprocessError> {
        self.check(channels)?;
        if channels == 1 {
            let gray = to_luma_like_pil(image);
            let table = self.intensity_table(gray.as_raw());
            let (pixels, region) = self.geometry_of(&gray)?;
            Ok(NetworkInput {
                tensor: self.tensor_of(&pixels, &table)?,
                pixels: DynamicImage::ImageLuma8(pixels).to_rgb8(),
                region,
            })
        } else {
            let table = self.intensity_table(image.as_raw());
            let (pixels, region) = self.geometry_of(image)?;
            Ok(NetworkInput {
                tensor: self.tensor_of(&pixels, &table)?,
                pixels,
                region,
            })
        }
    }

    /// The intensities and normalisation of pixels already at the network's size (the
    /// geometry done): `[1, channels, H, W]`; a grayscale network takes their luma. A
    /// preprocessing that cannot feed `channels` is an error like the tensor's own.
    pub fn to_tensor(&self, pixels: &RgbImage, channels: usize) -> candle_core::Result<Tensor> {
        self.check(channels)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        if channels == 1 {
            let gray = to_luma_like_pil(pixels);
            self.tensor_of(&gray, &self.intensity_table(gray.as_raw()))
        } else {
            self.tensor_of(pixels, &self.intensity_table(pixels.as_raw()))
        }
    }

    /// Each 8-bit value's intensity in `[0, 1]` for an image holding `values`, in f32 as
    /// torchvision (`x / 255`) and MONAI (`(x - min) / (max - min)`) compute it.
    fn intensity_table(&self, values: &[u8]) -> [f32; 256] {
        match self.intensity {
            Intensity::Unit => std::array::from_fn(|v| v as f32 / 255.0),
            Intensity::MinMax => {
                let (lo, hi) = values
                    .iter()
                    .fold((u8::MAX, u8::MIN), |(l, h), &v| (l.min(v), h.max(v)));
                let (lo, hi) = (f32::from(lo), f32::from(hi));
                std::array::from_fn(|v| {
                    if hi > lo {
                        (v as f32 - lo) / (hi - lo)
                    } else {
                        0.0
                    }
                })
            }
        }
    }

    /// The geometry: the pixels the network sees and where they sit on the image.
    fn geometry_of<P: Pixel<Subpixel = u8> + 'static>(
        &self,
        image: &ImageBuffer<P, Vec<u8>>,
    ) -> Result<(ImageBuffer<P, Vec<u8>>, Region), PreprocessError> {
        let (w, h) = image.dimensions();
        let size = self.input_size;
        let (pixels, region) = match self.geometry {
            Geometry::Stretch => (
                resize_bilinear_like_pil(image, size, size),
                Region::whole(w, h),
            ),
            Geometry::CentreCrop => centre_crop(image, size),
            Geometry::Native => {
                if w.max(h) > MAX_NATIVE_SIDE {
                    return Err(PreprocessError::TooLargeForNative {
                        width: w,
                        height: h,
                    });
                }
                (image.clone(), Region::whole(w, h))
            }
        };
        if pixels.width() < MIN_NETWORK_SIDE || pixels.height() < MIN_NETWORK_SIDE {
            return Err(PreprocessError::TooSmall {
                width: w,
                height: h,
            });
        }
        Ok((pixels, region))
    }

    /// `(intensity - mean) / std` per channel, in f32 as torchvision's `Normalize` computes it:
    /// `[1, channels of P, H, W]`, or `[1, channels of P, W, H]` when `transpose`.
    fn tensor_of<P: Pixel<Subpixel = u8>>(
        &self,
        pixels: &ImageBuffer<P, Vec<u8>>,
        table: &[f32; 256],
    ) -> candle_core::Result<Tensor> {
        let channels = usize::from(P::CHANNEL_COUNT);
        let (w, h) = (pixels.width() as usize, pixels.height() as usize);
        let mut data = vec![0f32; channels * w * h];
        let stats: Vec<(f32, f32)> = (0..channels)
            .map(|c| (per_channel(&self.mean, c), per_channel(&self.std, c)))
            .collect();
        for (i, p) in pixels.as_raw().chunks_exact(channels).enumerate() {
            // Pixel (x, y) is at y * w + x, or at x * h + y in the transposed input.
            let at = if self.transpose {
                (i % w) * h + i / w
            } else {
                i
            };
            for (c, (&v, &(mean, std))) in p.iter().zip(&stats).enumerate() {
                data[c * w * h + at] = (table[usize::from(v)] - mean) / std;
            }
        }
        let (rows, columns) = if self.transpose { (w, h) } else { (h, w) };
        Tensor::from_vec(data, (1, channels, rows, columns), &Device::Cpu)
    }
}

/// torchvision `Resize(S * 256 / 224)` (shorter side) + `CenterCrop(S)`.
fn centre_crop<P: Pixel<Subpixel = u8> + 'static>(
    image: &ImageBuffer<P, Vec<u8>>,
    size: u32,
) -> (ImageBuffer<P, Vec<u8>>, Region) {
    let (w, h) = image.dimensions();
    let short_target = size * 256 / 224;
    // torchvision: the long side is int(short_target * long / short).
    let (rw, rh) = if w <= h {
        (
            short_target,
            (f64::from(short_target) * f64::from(h) / f64::from(w)) as u32,
        )
    } else {
        (
            (f64::from(short_target) * f64::from(w) / f64::from(h)) as u32,
            short_target,
        )
    };
    let resized = resize_bilinear_like_pil(image, rw, rh);
    // torchvision: int(round((side - crop) / 2.0)), with Python's round-half-to-even.
    let left = (f64::from(rw - size.min(rw)) / 2.0).round_ties_even() as u32;
    let top = (f64::from(rh - size.min(rh)) / 2.0).round_ties_even() as u32;
    let crop =
        image::imageops::crop_imm(&resized, left, top, size.min(rw), size.min(rh)).to_image();
    let (sx, sy) = (f64::from(w) / f64::from(rw), f64::from(h) / f64::from(rh));
    let region = Region {
        x: f64::from(left) * sx,
        y: f64::from(top) * sy,
        width: f64::from(crop.width()) * sx,
        height: f64::from(crop.height()) * sy,
    };
    (crop, region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_crop_region_maps_back_to_the_original() {
        let img = RgbImage::new(300, 260);
        let p = Preprocessing {
            geometry: Geometry::CentreCrop,
            ..Default::default()
        };
        let input = p.prepare(&img, 3).unwrap();
        assert_eq!(input.pixels.dimensions(), (224, 224));
        // 300x260 -> 295x256 (int(256*300/260) = 295); left = round(35.5) = 36 (half to even), top = 16.
        let sx = 300.0 / 295.0;
        let sy = 260.0 / 256.0;
        assert!((input.region.x - 36.0 * sx).abs() < 1e-9);
        assert!((input.region.y - 16.0 * sy).abs() < 1e-9);
        assert!((input.region.width - 224.0 * sx).abs() < 1e-9);
        assert!((input.region.height - 224.0 * sy).abs() < 1e-9);
        assert_eq!(input.tensor.dims(), &[1, 3, 224, 224]);
    }

    #[test]
    fn normalisation_is_torchvision_s() {
        let img = RgbImage::from_pixel(40, 40, image::Rgb([0, 128, 255]));
        let p = Preprocessing {
            geometry: Geometry::Native,
            ..Default::default()
        };
        let t = p.prepare(&img, 3).unwrap().tensor;
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v[0], (0.0 - 0.485) / 0.229);
        assert_eq!(v[1600], (128.0f32 / 255.0 - 0.456) / 0.224);
        assert_eq!(v[3200], (1.0 - 0.406) / 0.225);
    }

    #[test]
    fn tiny_images_are_refused_in_native_geometry_but_stretched_otherwise() {
        let img = RgbImage::new(10, 12);
        let native = Preprocessing {
            geometry: Geometry::Native,
            ..Default::default()
        };
        assert_eq!(
            native.prepare(&img, 3).unwrap_err().to_string(),
            "the image is 10 x 12 pixels; the network needs at least 32 x 32"
        );
        assert!(Preprocessing::default().prepare(&img, 3).is_ok());
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// No resizing, one mean and std for every channel.
    fn native(mean: f32, std: f32, intensity: Intensity) -> Preprocessing {
        Preprocessing {
            geometry: Geometry::Native,
            mean: vec![mean],
            std: vec![std],
            intensity,
            ..Default::default()
        }
    }

    #[test]
    fn a_grayscale_network_gets_pil_s_luma_with_one_mean_and_std() {
        let img = RgbImage::from_pixel(40, 40, image::Rgb([10, 200, 31]));
        let p = native(0.5, 0.25, Intensity::Unit);
        let input = p.prepare(&img, 1).unwrap();
        assert_eq!(input.tensor.dims(), &[1, 1, 40, 40]);
        // PIL: convert("L") of (10, 200, 31) is 124
        assert_eq!(values(&input.tensor)[0], (124.0f32 / 255.0 - 0.5) / 0.25);
        assert_eq!(input.pixels.get_pixel(3, 3).0, [124, 124, 124]);
    }

    #[test]
    fn one_mean_and_std_serve_every_channel_of_an_rgb_network() {
        let p = native(0.5, 0.25, Intensity::Unit);
        let spread = p.for_channels(3).unwrap();
        assert_eq!((spread.mean, spread.std), (vec![0.5; 3], vec![0.25; 3]));
        let img = RgbImage::from_pixel(32, 32, image::Rgb([0, 51, 255]));
        let v = values(&p.prepare(&img, 3).unwrap().tensor);
        assert_eq!([v[0], v[1024], v[2048]], [-2.0, (0.2 - 0.5) / 0.25, 2.0]);
    }

    #[test]
    fn statistics_that_cannot_feed_the_network_are_refused_by_name() {
        let err = Preprocessing::default()
            .for_channels(1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid preprocessing: the mean has 3 values [0.485, 0.456, 0.406] but the network \
             takes 1 input channel (grayscale): give one value (camview's default mean and std \
             are ImageNet's RGB ones, so a grayscale model's sidecar must state its own)"
        );
        let two = Preprocessing {
            std: vec![0.2, 0.3],
            ..Default::default()
        };
        assert_eq!(
            two.for_channels(3).unwrap_err().to_string(),
            "invalid preprocessing: the std has 2 values [0.2, 0.3] but the network takes 3 \
             input channels (RGB): give one value per channel, or one for all"
        );
        assert_eq!(
            Preprocessing::default()
                .prepare(&RgbImage::new(40, 40), 2)
                .unwrap_err()
                .to_string(),
            "invalid preprocessing: the network takes 2 input channels; camview makes 1 \
             (grayscale) or 3 (RGB) from an image"
        );
    }

    #[test]
    fn a_sidecar_may_give_one_mean_and_std_and_min_max_intensity() {
        let p: Preprocessing = serde_json::from_str(
            r#"{"input_size": 64, "mean": [0.0], "std": [1.0], "intensity": "minmax"}"#,
        )
        .unwrap();
        assert_eq!((p.mean.len(), p.intensity), (1, Intensity::MinMax));
        let default: Preprocessing = serde_json::from_str("{}").unwrap();
        assert_eq!(default, Preprocessing::default());
        let err = serde_json::from_str::<Preprocessing>(r#"{"intensity": "max"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("unknown variant `max`, expected `unit` or `minmax`"),
            "{err}"
        );
    }

    #[test]
    fn min_max_intensity_is_monai_s_scale_intensity() {
        let p = native(0.0, 1.0, Intensity::MinMax);
        let img = RgbImage::from_fn(32, 32, |x, _| {
            let v = (40 + 5 * x) as u8;
            image::Rgb([v, v, v])
        });
        let v = values(&p.prepare(&img, 1).unwrap().tensor);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[31], 1.0);
        assert_eq!(v[7], 35.0f32 / 155.0);
        // rescale_array: a constant image becomes minv, 0
        let flat = RgbImage::from_pixel(32, 32, image::Rgb([9, 9, 9]));
        assert!(
            values(&p.prepare(&flat, 1).unwrap().tensor)
                .iter()
                .all(|&v| v == 0.0)
        );
        // not channel-wise: one range over the three channels
        let rgb = RgbImage::from_pixel(32, 32, image::Rgb([10, 60, 110]));
        let v = values(&p.prepare(&rgb, 3).unwrap().tensor);
        assert_eq!([v[0], v[1024], v[2048]], [0.0, 0.5, 1.0]);
    }

    #[test]
    fn min_max_range_is_the_whole_image_s_before_resizing() {
        // One bright pixel that the shrinking resize spreads out: MONAI scales before Resize,
        // so 255 still maps to 1 and the resized peak stays below it.
        let mut img = RgbImage::from_pixel(128, 128, image::Rgb([20, 20, 20]));
        img.put_pixel(64, 64, image::Rgb([255, 255, 255]));
        let p = Preprocessing {
            input_size: 32,
            mean: vec![0.0],
            std: vec![1.0],
            intensity: Intensity::MinMax,
            ..Default::default()
        };
        let input = p.prepare(&img, 1).unwrap();
        let peak = input.pixels.pixels().map(|p| p.0[0]).max().unwrap();
        assert!(peak < 255 && peak > 20, "{peak}");
        let top = values(&input.tensor).into_iter().fold(0f32, f32::max);
        assert_eq!(top, (f32::from(peak) - 20.0) / 235.0);
    }
}
