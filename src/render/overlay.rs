//! Blending a coloured map over the original image.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::colormap::{Colormap, Lut};
use crate::explain::{Analysis, ClassActivationMap, Normalisation};

/// How a map is drawn; everything a person changes with the mouse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverlayStyle {
    /// 0 shows only the image, 1 only the heat.
    pub opacity: f32,
    pub colormap: Colormap,
    /// Normalised heat below this (0..1) is left transparent.
    pub threshold: f32,
    pub normalisation: Normalisation,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        Self {
            opacity: 0.4,
            colormap: Colormap::Jet,
            threshold: 0.0,
            normalisation: Normalisation::PerMap,
        }
    }
}

/// A class's map scaled to `[0, 1]` and upsampled onto the whole image (NaN outside the region
/// the network saw), with the raw values that 0 and 1 stand for.
#[derive(Debug, Clone)]
pub struct Heat {
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
    pub range: (f32, f32),
}

impl Heat {
    /// `map` (one of `analysis`'s) scaled under `normalisation` and upsampled.
    pub fn of(
        analysis: &Analysis,
        map: &ClassActivationMap,
        normalisation: Normalisation,
        width: u32,
        height: u32,
    ) -> Self {
        let range = analysis.range(map, normalisation);
        Self::of_map(map, range, width, height)
    }

    /// `cam` scaled by `range` to `[0, 1]` and upsampled onto a `width x height` grid over which
    /// its region is expressed.
    pub fn of_map(cam: &ClassActivationMap, range: (f32, f32), width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            values: cam.upsample(&cam.scaled(range), width, height),
            range,
        }
    }
}

/// `out = (1 - alpha) * image + alpha * colour(heat)` where heat >= threshold; the image elsewhere.
pub fn blend(image: &RgbImage, heat: &Heat, style: &OverlayStyle) -> RgbImage {
    let lut = style.colormap.lut();
    blend_with_lut(image, &heat.values, &lut, style.opacity, style.threshold)
}

/// The blending kernel, separate so callers can keep the table between frames.
pub fn blend_with_lut(
    image: &RgbImage,
    heat: &[f32],
    lut: &Lut,
    opacity: f32,
    threshold: f32,
) -> RgbImage {
    let alpha = opacity.clamp(0.0, 1.0);
    let mut out = image.clone();
    for (p, &v) in out.pixels_mut().zip(heat) {
        if v.is_nan() || v < threshold {
            continue;
        }
        let c = lut[(v.clamp(0.0, 1.0) * 255.0).round() as usize];
        for (v, c) in p.0.iter_mut().zip(c) {
            *v = ((1.0 - alpha) * f32::from(*v) + alpha * f32::from(c)).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_follows_the_formula_and_threshold() {
        let image = RgbImage::from_pixel(4, 1, image::Rgb([100, 100, 100]));
        let heat = [0.0, 0.5, 1.0, f32::NAN];
        let lut = Colormap::Gray.lut();
        let out = blend_with_lut(&image, &heat, &lut, 0.5, 0.0);
        assert_eq!(out.get_pixel(0, 0).0, [50; 3]);
        assert_eq!(out.get_pixel(1, 0).0, [114; 3]); // (100 + 128) / 2
        assert_eq!(out.get_pixel(2, 0).0, [178; 3]); // (100 + 255) / 2 = 177.5 -> 178
        assert_eq!(out.get_pixel(3, 0).0, [100; 3]);
        let out = blend_with_lut(&image, &heat, &lut, 0.5, 0.6);
        assert_eq!(out.get_pixel(1, 0).0, [100; 3]);
        assert_eq!(out.get_pixel(2, 0).0, [178; 3]);
        let out = blend_with_lut(&image, &heat, &lut, 0.0, 0.0);
        assert_eq!(out, image);
    }
}
