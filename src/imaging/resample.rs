//! Pillow's bilinear `Image.resize` for 8-bit RGB and L images, reproduced operation for
//! operation.
//!
//! torchvision's `Resize` on a PIL image calls `img.resize(size, BILINEAR)`, which is not the
//! textbook bilinear interpolation: when shrinking, the triangle filter is widened by the scale
//! factor (antialiasing), weights are turned into 22-bit fixed point, and the image is resized
//! horizontally first into an 8-bit intermediate, then vertically. Doing the same steps gives the
//! same bytes as Pillow (`Resample.c`: `precompute_coeffs`, `normalize_coeffs_8bpc`,
//! `ImagingResampleHorizontal_8bpc`, `ImagingResampleVertical_8bpc`). Those functions treat
//! each band alike, with the same weights and rounding, whether the image has one band (L)
//! or several (RGB), so one pass serves every band count.

use image::{ImageBuffer, Pixel};
use rayon::prelude::*;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output pixel: the first input index and the fixed-point weights.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for the box `[0, in_size)`.
fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    const SUPPORT: f64 = 1.0;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero; the value is clamped at 0 right after.
        let xmin = ((center - support + 0.5).trunc() as i64).max(0) as usize;
        let xmax = ((center + support + 0.5).trunc() as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let k: Vec<f64> = (0..count)
            .map(|x| bilinear_filter((x as f64 + xmin as f64 - center + 0.5) * ss))
            .collect();
        let ww: f64 = k.iter().sum();
        let fixed = k
            .iter()
            .map(|&w| {
                let w = if ww != 0.0 { w / ww } else { w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                if scaled < 0.0 {
                    (-0.5 + scaled).trunc() as i32
                } else {
                    (0.5 + scaled).trunc() as i32
                }
            })
            .collect();
        bounds.push((xmin, count));
        weights.push(fixed);
    }
    Coefficients { bounds, weights }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// An interleaved 8-bit buffer of `width x height` pixels of `bands` values each.
struct Planes<'a> {
    data: std::borrow::Cow<'a, [u8]>,
    width: usize,
    height: usize,
    bands: usize,
}

/// One separable pass (`horizontal` resizes rows, otherwise columns), rounding back to 8 bits
/// as Pillow does. Output rows are computed in parallel (each pixel is its own sum, so the
/// result does not depend on the split).
fn pass(src: &Planes, c: &Coefficients, horizontal: bool) -> Planes<'static> {
    let (width, bands) = (src.width, src.bands);
    let (out_w, out_h) = if horizontal {
        (c.bounds.len(), src.height)
    } else {
        (width, c.bounds.len())
    };
    let round = 1i32 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; out_w * out_h * bands];
    out.par_chunks_mut((out_w * bands).max(1))
        .enumerate()
        .for_each(|(y, row)| {
            let mut ss = vec![0i32; bands];
            for x in 0..out_w {
                let (i, fixed_index) = if horizontal { (x, y) } else { (y, x) };
                let (start, count) = c.bounds[i];
                ss.fill(round);
                for (t, &w) in c.weights[i].iter().enumerate().take(count) {
                    let o = if horizontal {
                        (fixed_index * width + start + t) * bands
                    } else {
                        ((start + t) * width + fixed_index) * bands
                    };
                    for (s, &v) in ss.iter_mut().zip(&src.data[o..o + bands]) {
                        *s += i32::from(v) * w;
                    }
                }
                for (d, &s) in row[x * bands..(x + 1) * bands].iter_mut().zip(&ss) {
                    *d = clip8(s);
                }
            }
        });
    Planes {
        data: std::borrow::Cow::Owned(out),
        width: out_w,
        height: out_h,
        bands,
    }
}

/// Resizes like Pillow's `img.resize((width, height), Image.BILINEAR)` on an RGB or L image.
///
/// Pillow 13 (PR #9549) runs the vertical pass first when the image shrinks vertically by more
/// than twice what it loses horizontally; earlier versions always went horizontal first. The
/// two orders differ by at most 1 per channel on some pixels. We follow Pillow 13, against which
/// the fixtures were made (tests/fixtures/README.md).
pub fn resize_bilinear_like_pil<P: Pixel<Subpixel = u8>>(
    src: &ImageBuffer<P, Vec<u8>>,
    width: u32,
    height: u32,
) -> ImageBuffer<P, Vec<u8>> {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let vertical_first = out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64);
    let mut planes = Planes {
        data: std::borrow::Cow::Borrowed(src.as_raw().as_slice()),
        width: in_w,
        height: in_h,
        bands: usize::from(P::CHANNEL_COUNT),
    };
    for horizontal in if vertical_first {
        [false, true]
    } else {
        [true, false]
    } {
        if horizontal && planes.width != out_w {
            planes = pass(&planes, &coefficients(planes.width, out_w), true);
        } else if !horizontal && planes.height != out_h {
            planes = pass(&planes, &coefficients(planes.height, out_h), false);
        }
    }
    ImageBuffer::from_raw(width, height, planes.data.into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point_and_stay_in_bounds() {
        for (i, o) in [(61, 224), (300, 224), (224, 224), (5, 3), (1, 9), (1000, 7)] {
            let c = coefficients(i, o);
            for ((xmin, count), k) in c.bounds.iter().zip(&c.weights) {
                assert!(xmin + count <= i);
                let sum: i64 = k.iter().map(|&w| i64::from(w)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= count.max(&1).to_owned() as i64);
            }
        }
    }

    #[test]
    fn an_l_image_resizes_as_each_band_of_an_rgb_one() {
        // Pillow resizes every band alike: an L image gives the bytes of any band of the RGB
        // image holding it (here with two unrelated bands beside it).
        let gray =
            image::GrayImage::from_fn(53, 41, |x, y| image::Luma([((x * 7 + y * 13) % 256) as u8]));
        let rgb = image::RgbImage::from_fn(53, 41, |x, y| {
            let v = gray.get_pixel(x, y).0[0];
            image::Rgb([255 - v, v, (x * y % 256) as u8])
        });
        for (w, h) in [(224, 224), (20, 9), (50, 12)] {
            let small = resize_bilinear_like_pil(&gray, w, h);
            let bands = resize_bilinear_like_pil(&rgb, w, h);
            let green: Vec<u8> = bands.pixels().map(|p| p.0[1]).collect();
            assert_eq!(small.as_raw(), &green, "{w}x{h}");
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = image::RgbImage::from_pixel(37, 23, image::Rgb([10, 128, 250]));
        for (w, h) in [(224, 224), (5, 4), (100, 7)] {
            let out = resize_bilinear_like_pil(&img, w, h);
            assert_eq!((out.width(), out.height()), (w, h));
            assert!(out.pixels().all(|p| p.0 == [10, 128, 250]));
        }
    }
}
