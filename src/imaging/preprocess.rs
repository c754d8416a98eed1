//! From an RGB image to the network's input tensor, recording where that input sits on the
//! original image so every map is drawn exactly over the region the network saw.

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::resample::resize_bilinear_like_pil;

/// ImageNet statistics used by torchvision's `Normalize` in nearly every fine-tuning script.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

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

/// The preprocessing a model expects. Default: torchvision's ImageNet evaluation transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocessing {
    pub input_size: u32,
    pub geometry: Geometry,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Preprocessing {
    fn default() -> Self {
        Self {
            input_size: 224,
            geometry: Geometry::Stretch,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
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
    /// `[1, 3, H, W]`, normalised.
    pub tensor: Tensor,
    /// The 8-bit image the tensor was made from (what the network saw).
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

impl Preprocessing {
    fn check(&self) -> Result<(), PreprocessError> {
        if self.input_size < MIN_NETWORK_SIDE || self.input_size > MAX_NATIVE_SIDE {
            return Err(PreprocessError::Invalid(format!(
                "input size {} is outside {MIN_NETWORK_SIDE}..={MAX_NATIVE_SIDE}",
                self.input_size
            )));
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

    /// Applies the geometry and the normalisation.
    pub fn prepare(&self, image: &RgbImage) -> Result<NetworkInput, PreprocessError> {
        self.check()?;
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
        let tensor = self.to_tensor(&pixels)?;
        Ok(NetworkInput {
            tensor,
            pixels,
            region,
        })
    }

    /// torchvision `ToTensor` + `Normalize`, in f32 exactly as PyTorch computes it.
    pub fn to_tensor(&self, pixels: &RgbImage) -> Result<Tensor, candle_core::Error> {
        let (w, h) = (pixels.width() as usize, pixels.height() as usize);
        let mut data = vec![0f32; 3 * w * h];
        for (i, p) in pixels.pixels().enumerate() {
            for c in 0..3 {
                data[c * w * h + i] = (f32::from(p.0[c]) / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Tensor::from_vec(data, (1, 3, h, w), &Device::Cpu)
    }
}

/// torchvision `Resize(S * 256 / 224)` (shorter side) + `CenterCrop(S)`.
fn centre_crop(image: &RgbImage, size: u32) -> (RgbImage, Region) {
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
        let input = p.prepare(&img).unwrap();
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
        let t = p.prepare(&img).unwrap().tensor;
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
            native.prepare(&img).unwrap_err().to_string(),
            "the image is 10 x 12 pixels; the network needs at least 32 x 32"
        );
        assert!(Preprocessing::default().prepare(&img).is_ok());
    }
}
