//! The heat map as the screen shows it: a second texture drawn over the image with the opacity as
//! its alpha, so moving the opacity slider costs nothing and the network never runs again.
//!
//! The map is smooth by construction (a 7x7-ish grid upsampled bilinearly), so the screen copy is
//! computed at a capped resolution and the GPU stretches it over the image; the saved overlay
//! uses the engine's full-resolution path (`render::Heat::of` + `render::blend`) instead.

use eframe::egui::{Color32, ColorImage};

use crate::explain::{Analysis, ClassActivationMap, Normalisation};
use crate::imaging::Region;
use crate::render::Heat;
use crate::render::colormap::Lut;

/// The longest side of the screen heat texture, in texels.
pub const SCREEN_HEAT_MAX_SIDE: u32 = 1024;

/// A class's map scaled to `[0, 1]` on a grid of at most `max_side` texels a side that covers the
/// whole image (NaN where the network saw nothing), with the raw values 0 and 1 stand for.
#[derive(Debug, Clone)]
pub struct ScreenHeat {
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
    pub range: (f32, f32),
}

/// The texture size for an image: the image's own size, or shrunk (keeping its aspect ratio) so
/// that the long side is `max_side`.
pub fn heat_size(image_width: u32, image_height: u32, max_side: u32) -> (u32, u32) {
    let long = image_width.max(image_height).max(1);
    if long <= max_side {
        return (image_width.max(1), image_height.max(1));
    }
    let s = f64::from(max_side) / f64::from(long);
    let side = |v: u32| ((f64::from(v) * s).round() as u32).max(1);
    (side(image_width), side(image_height))
}

/// `cam` with its region expressed on a grid `sx` x `sy` times the image's size.
fn rescaled(cam: &ClassActivationMap, sx: f64, sy: f64) -> ClassActivationMap {
    let r = cam.region;
    let mut out = cam.clone();
    out.region = Region {
        x: r.x * sx,
        y: r.y * sy,
        width: r.width * sx,
        height: r.height * sy,
    };
    out
}

impl ScreenHeat {
    /// Upsamples `map` (one of `analysis`'s) onto the screen grid of a
    /// `image_width x image_height` image.
    pub fn of(
        analysis: &Analysis,
        map: &ClassActivationMap,
        normalisation: Normalisation,
        image_width: u32,
        image_height: u32,
        max_side: u32,
    ) -> Self {
        let range = analysis.range(map, normalisation);
        Self::of_map(map, range, image_width, image_height, max_side)
    }

    /// `map` scaled by `range` to `[0, 1]` and upsampled onto the screen grid of a
    /// `image_width x image_height` image.
    pub fn of_map(
        map: &ClassActivationMap,
        range: (f32, f32),
        image_width: u32,
        image_height: u32,
        max_side: u32,
    ) -> Self {
        let (width, height) = heat_size(image_width, image_height, max_side);
        let cam = rescaled(
            map,
            f64::from(width) / f64::from(image_width.max(1)),
            f64::from(height) / f64::from(image_height.max(1)),
        );
        let heat = Heat::of_map(&cam, range, width, height);
        Self {
            width,
            height,
            values: heat.values,
            range: heat.range,
        }
    }

    /// The texture: the colormap's colour where the heat reaches `threshold`, transparent
    /// elsewhere. Drawn with alpha = opacity it gives exactly `render::blend`'s formula.
    pub fn colour(&self, lut: &Lut, threshold: f32) -> ColorImage {
        let table: [Color32; 256] = std::array::from_fn(|i| {
            let [r, g, b] = lut[i];
            Color32::from_rgb(r, g, b)
        });
        let pixels = self
            .values
            .iter()
            .map(|&v| {
                // NaN: no heat there.
                if v.is_nan() || v < threshold {
                    Color32::TRANSPARENT
                } else {
                    // Same index as `render::blend`'s `(v * 255).round()`: for 0 <= x <= 255,
                    // adding 0.5 and truncating rounds half away from zero exactly.
                    table[((v.clamp(0.0, 1.0) * 255.0 + 0.5) as usize).min(255)]
                }
            })
            .collect();
        ColorImage::new([self.width as usize, self.height as usize], pixels)
    }
}

/// The raw map value of `class` at image pixel `(x, y)` of a `width x height` image, computed
/// exactly as the full-resolution upsampling would (None outside the region the network saw).
pub fn map_value_at(analysis: &Analysis, class: usize, x: u32, y: u32) -> Option<f32> {
    let cam = analysis.map(class)?;
    // Shift the region so that pixel (x, y) becomes pixel (0, 0) of a 1 x 1 image.
    let mut one = cam.clone();
    one.region.x -= f64::from(x);
    one.region.y -= f64::from(y);
    one.upsample(&cam.values, 1, 1)
        .first()
        .copied()
        .filter(|v| !v.is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::{Method, softmax};
    use crate::render::overlay::blend_with_lut;
    use crate::render::{Colormap, Heat};
    use candle_core::{DType, Device, Tensor};

    fn analysis(region: Region) -> Analysis {
        let values: Vec<f32> = (0..49).map(|i| (i as f32 * 0.37).sin()).collect();
        let cam = ClassActivationMap {
            transposed: false,
            score_cam_most_active: None,
            class: 0,
            method: Method::Cam,
            layer: crate::explain::Stage::Norm5,
            width: 7,
            height: 7,
            values,
            region,
        };
        Analysis {
            transposed: false,
            logits: vec![0.0],
            probabilities: softmax(&[0.0]),
            activation: crate::network::Activation::Softmax,
            predicted: 0,
            positives: vec![0],
            maps: vec![cam],
            region,
            input_size: (224, 224),
            features: Tensor::zeros((1, 7, 7), DType::F32, &Device::Cpu).unwrap(),
            input: Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).unwrap(),
        }
    }

    #[test]
    fn sizes_keep_the_aspect_ratio() {
        assert_eq!(heat_size(300, 200, 1024), (300, 200));
        assert_eq!(heat_size(4000, 2000, 1000), (1000, 500));
        assert_eq!(heat_size(100, 5000, 1000), (20, 1000));
    }

    #[test]
    fn small_images_get_the_engine_s_exact_heat() {
        let region = Region {
            x: 10.0,
            y: 0.0,
            width: 60.0,
            height: 50.0,
        };
        let a = analysis(region);
        let screen = ScreenHeat::of(&a, &a.maps[0], Normalisation::PerMap, 80, 50, 1024);
        let engine = Heat::of(&a, &a.maps[0], Normalisation::PerMap, 80, 50);
        assert_eq!(screen.values.len(), engine.values.len());
        for (s, e) in screen.values.iter().zip(&engine.values) {
            assert!(s == e || (s.is_nan() && e.is_nan()), "{s} != {e}");
        }
        // The texture has the colours `render::blend` uses, and no heat where it draws none.
        let lut = Colormap::Jet.lut();
        let texture = screen.colour(&lut, 0.3);
        let black = image::RgbImage::new(80, 50);
        let blended = blend_with_lut(&black, &engine.values, &lut, 1.0, 0.3);
        for (t, b) in texture.pixels.iter().zip(blended.pixels()) {
            if t.a() == 0 {
                assert_eq!(b.0, [0, 0, 0]);
            } else {
                assert_eq!([t.r(), t.g(), t.b()], b.0);
            }
        }
        // The point sampler agrees with the full upsampling (before normalisation).
        let raw = &a.maps[0];
        let full = raw.upsample(&raw.values, 80, 50);
        for (x, y) in [(0, 0), (10, 3), (45, 20), (69, 49), (79, 10)] {
            let expected = full[(y * 80 + x) as usize];
            match map_value_at(&a, 0, x, y) {
                Some(v) => assert!((v - expected).abs() < 1e-6, "({x},{y}) {v} vs {expected}"),
                None => assert!(expected.is_nan(), "({x},{y}) should have heat"),
            }
        }
    }

    #[test]
    fn large_images_get_a_smaller_grid_over_the_same_region() {
        let region = Region::whole(4000, 2000);
        let a = analysis(region);
        let screen = ScreenHeat::of(&a, &a.maps[0], Normalisation::PerMap, 4000, 2000, 1000);
        assert_eq!((screen.width, screen.height), (1000, 500));
        assert!(screen.values.iter().all(|v| (0.0..=1.0).contains(v)));
        let texture = screen.colour(&Colormap::Jet.lut(), 0.5);
        assert_eq!(texture.size, [1000, 500]);
        let transparent = texture.pixels.iter().filter(|p| p.a() == 0).count();
        assert!(transparent > 0 && transparent < texture.pixels.len());
    }
}
