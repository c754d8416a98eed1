//! The image as the screen shows it at any zoom: a pyramid of half-size levels, each its own egui
//! texture.
//!
//! egui 0.37 has `TextureOptions::mipmap_mode`, but only egui_glow honours it: egui-wgpu (our
//! renderer) creates every texture with one mip level. Shrunk by linear filtering alone, an
//! 8000-pixel image fitted into a 700-pixel pane samples 4 texels out of every ~130, so fine
//! detail (noise, stripes, thin lines) turns into grain and moiré. So the worker builds the levels
//! itself (a 2 x 2 box filter, each level from the one above) and the pane draws the smallest
//! level still at least as large as the image on screen: linear filtering then shrinks by less
//! than 2, which it does without aliasing.
//!
//! Memory: the levels below the first add at most a third of it (1/4 + 1/16 + ...); they stop
//! at `MIN_LEVEL_SIDE`. Textures are uploaded only when a level is first drawn (`Textures`), so
//! opening a huge image fitted to the pane uploads a level of about the pane's size, not the
//! whole image.

use std::sync::Arc;

use eframe::egui::{Color32, ColorImage, Rect, pos2};
use rayon::prelude::*;

/// No level is made whose longer side would be below this (a smaller one is never needed: the
/// pane is larger).
pub const MIN_LEVEL_SIDE: usize = 64;

/// One level: its pixels, and how much of the texture the image covers (a level of an odd-sized
/// one has a last row or column that stands for fewer source pixels, see `box_halve`).
#[derive(Clone)]
pub struct Level {
    pub image: Arc<ColorImage>,
    /// The part of the texture that covers the image, in texture coordinates.
    pub uv: Rect,
}

/// The levels, the full-size one first.
#[derive(Clone)]
pub struct Pyramid {
    levels: Vec<Level>,
}

impl Pyramid {
    /// Builds the levels below `image` (on the worker; each level's rows in parallel).
    pub fn build(image: ColorImage) -> Self {
        let [width, height] = image.size;
        let mut levels = vec![Level {
            image: Arc::new(image),
            uv: Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)),
        }];
        let mut scale = 1usize;
        while let Some(last) = levels
            .last()
            .filter(|l| l.image.size[0].max(l.image.size[1]).div_ceil(2) >= MIN_LEVEL_SIDE)
        {
            let next = box_halve(&last.image);
            scale *= 2;
            let [nw, nh] = next.size;
            // The level's texels cover `scale * nw` source pixels, the image `width` of them.
            let uv = Rect::from_min_max(
                pos2(0.0, 0.0),
                pos2(
                    width as f32 / (scale * nw) as f32,
                    height as f32 / (scale * nh) as f32,
                ),
            );
            levels.push(Level {
                image: Arc::new(next),
                uv,
            });
        }
        Self { levels }
    }

    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// The level to draw an image `on_screen` physical pixels wide (its longer side): the
    /// smallest one at least that large, so the GPU shrinks it by less than 2; the full-size
    /// level when the image is shown at or above its size.
    pub fn level_for(&self, on_screen: f32) -> usize {
        self.levels
            .iter()
            .rposition(|l| l.image.size[0].max(l.image.size[1]) as f32 >= on_screen)
            .unwrap_or(0)
    }
}

/// The image at half size (rounded up): each texel the mean of a 2 x 2 block of `image`'s, of
/// the pixels there are at an odd edge; rounded to nearest. Averaged in the bytes' (sRGB) space,
/// as the displayed gray levels are: a region keeps the mean gray it is shown with.
pub fn box_halve(image: &ColorImage) -> ColorImage {
    let [w, h] = image.size;
    let (nw, nh) = (w.div_ceil(2).max(1), h.div_ceil(2).max(1));
    let mut pixels = vec![Color32::TRANSPARENT; nw * nh];
    pixels.par_chunks_mut(nw).enumerate().for_each(|(y, row)| {
        let rows = [2 * y, (2 * y + 1).min(h - 1)];
        let ny = if rows[0] == rows[1] { 1 } else { 2 };
        for (x, out) in row.iter_mut().enumerate() {
            let cols = [2 * x, (2 * x + 1).min(w - 1)];
            let nx = if cols[0] == cols[1] { 1 } else { 2 };
            let mut sum = [0u32; 4];
            for &sy in &rows[..ny] {
                for &sx in &cols[..nx] {
                    let p = image.pixels[sy * w + sx].to_array();
                    for (s, v) in sum.iter_mut().zip(p) {
                        *s += u32::from(v);
                    }
                }
            }
            let n = (nx * ny) as u32;
            let [r, g, b, a] = sum.map(|s| ((s + n / 2) / n) as u8);
            *out = Color32::from_rgba_premultiplied(r, g, b, a);
        }
    });
    ColorImage::new([nw, nh], pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> ColorImage {
        let pixels = (0..w * h)
            .map(|i| Color32::from_gray(f(i % w, i / w)))
            .collect();
        ColorImage::new([w, h], pixels)
    }

    #[test]
    fn each_level_is_the_box_filter_of_the_one_above() {
        let image = gray(301, 150, |x, y| ((x * 7 + y * 13) % 256) as u8);
        let pyramid = Pyramid::build(image.clone());
        let sizes: Vec<[usize; 2]> = pyramid.levels().iter().map(|l| l.image.size).collect();
        assert_eq!(sizes, [[301, 150], [151, 75], [76, 38]]);
        let level = &pyramid.levels()[1].image;
        for (x, y) in [(0, 0), (17, 40), (149, 74)] {
            let block: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .map(|(dx, dy)| u32::from(image.pixels[(2 * y + dy) * 301 + 2 * x + dx].r()))
                .sum();
            assert_eq!(u32::from(level.pixels[y * 151 + x].r()), (block + 2) / 4);
        }
        // The last column stands for the one source column there is.
        for y in [0, 30, 74] {
            let pair = u32::from(image.pixels[2 * y * 301 + 300].r())
                + u32::from(image.pixels[(2 * y + 1) * 301 + 300].r());
            assert_eq!(u32::from(level.pixels[y * 151 + 150].r()), pair.div_ceil(2));
        }
        // So that column is drawn over half a texel's width less than a full one.
        let uv = pyramid.levels()[1].uv;
        assert!((uv.max.x - 301.0 / 302.0).abs() < 1e-6 && uv.max.y == 1.0);
        let uv = pyramid.levels()[2].uv;
        assert!((uv.max.x - 301.0 / 304.0).abs() < 1e-6 && (uv.max.y - 150.0 / 152.0).abs() < 1e-6);
    }

    #[test]
    fn fine_stripes_become_their_mean_gray() {
        // 1-pixel stripes, black and white: what aliases into moiré when sampled sparsely.
        let image = gray(512, 512, |x, _| if x % 2 == 0 { 0 } else { 255 });
        let pyramid = Pyramid::build(image);
        for level in &pyramid.levels()[1..] {
            assert!(
                level.image.pixels.iter().all(|p| p.r() == 128),
                "{:?}",
                level.image.size
            );
        }
    }

    #[test]
    fn the_level_drawn_is_the_smallest_at_least_as_large_as_the_screen() {
        let pyramid = Pyramid::build(gray(8000, 6000, |_, _| 0));
        let sides: Vec<usize> = pyramid.levels().iter().map(|l| l.image.size[0]).collect();
        assert_eq!(sides, [8000, 4000, 2000, 1000, 500, 250, 125]);
        assert_eq!(pyramid.level_for(700.0), 3, "1000 pixels for 700 on screen");
        assert_eq!(pyramid.level_for(1000.0), 3);
        assert_eq!(pyramid.level_for(1001.0), 2);
        assert_eq!(pyramid.level_for(8000.0), 0);
        assert_eq!(pyramid.level_for(20_000.0), 0, "zoomed in: the full image");
        assert_eq!(pyramid.level_for(10.0), 6, "the smallest there is");
    }
}
