//! A caption band under the overlay: text lines on the left, a labelled colour bar on the right.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use super::colormap::Colormap;

const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);
const TEXT: [u8; 3] = [235, 235, 235];

fn font() -> Option<FontRef<'static>> {
    FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR).ok()
}

/// Draws `text` with its baseline-top at `(x, y)`; returns the width drawn.
pub fn draw_text(img: &mut RgbImage, text: &str, x: f32, y: f32, px: f32, colour: [u8; 3]) -> f32 {
    let Some(font) = font() else { return 0.0 };
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = x;
    let mut previous = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(prev) = previous {
            caret += scaled.kern(prev, id);
        }
        let glyph = id.with_scale_and_position(px, ab_glyph::point(caret, y + scaled.ascent()));
        caret += scaled.h_advance(id);
        previous = Some(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let px_x = bounds.min.x as i64 + i64::from(gx);
            let px_y = bounds.min.y as i64 + i64::from(gy);
            if px_x < 0
                || px_y < 0
                || px_x >= i64::from(img.width())
                || px_y >= i64::from(img.height())
            {
                return;
            }
            let p = img.get_pixel_mut(px_x as u32, px_y as u32);
            let a = coverage.clamp(0.0, 1.0);
            for (v, c) in p.0.iter_mut().zip(colour) {
                *v = (f32::from(*v) * (1.0 - a) + f32::from(c) * a).round() as u8;
            }
        });
    }
    caret - x
}

/// What the colour bar stands for: the colormap and the raw map values at its two ends.
#[derive(Debug, Clone, Copy)]
pub struct ColourBar {
    pub colormap: Colormap,
    pub low: f32,
    pub high: f32,
}

/// The overlay with a band below it holding `lines` and, optionally, a colour bar.
/// The overlay's own pixels are untouched: the band only adds rows.
pub fn with_caption_band(overlay: &RgbImage, lines: &[String], bar: Option<ColourBar>) -> RgbImage {
    let width = overlay.width();
    let px = (width as f32 / 48.0).clamp(11.0, 40.0);
    let line_height = (px * 1.3).ceil();
    let pad = (px * 0.6).ceil();
    let text_rows = lines.len().max(if bar.is_some() { 2 } else { 0 }) as f32;
    let band = (text_rows * line_height + 2.0 * pad).ceil() as u32;
    let mut out = RgbImage::from_pixel(width, overlay.height() + band, BACKGROUND);
    image::imageops::replace(&mut out, overlay, 0, 0);
    let top = overlay.height() as f32 + pad;
    for (i, line) in lines.iter().enumerate() {
        draw_text(&mut out, line, pad, top + i as f32 * line_height, px, TEXT);
    }
    if let Some(bar) = bar {
        let bar_w = (width as f32 * 0.3).max(40.0);
        let x0 = width as f32 - pad - bar_w;
        let bar_h = line_height * 0.8;
        let lut = bar.colormap.lut();
        for x in 0..bar_w as u32 {
            let idx = ((x as f32 / (bar_w - 1.0).max(1.0)) * 255.0).round() as usize;
            for y in 0..bar_h as u32 {
                let (px_x, px_y) = (x0 as u32 + x, top as u32 + y);
                if px_x < out.width() && px_y < out.height() {
                    out.put_pixel(px_x, px_y, Rgb(lut[idx.min(255)]));
                }
            }
        }
        let label_y = top + line_height;
        let small = px * 0.85;
        draw_text(
            &mut out,
            &format!("{:.3}", bar.low),
            x0,
            label_y,
            small,
            TEXT,
        );
        let high = format!("{:.3}", bar.high);
        let high_w = measure(&high, small);
        draw_text(&mut out, &high, x0 + bar_w - high_w, label_y, small, TEXT);
    }
    out
}

fn measure(text: &str, px: f32) -> f32 {
    let Some(font) = font() else { return 0.0 };
    let scaled = font.as_scaled(PxScale::from(px));
    text.chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_adds_rows_keeps_overlay_and_holds_text() {
        let overlay = RgbImage::from_pixel(300, 200, Rgb([10, 200, 10]));
        let bar = ColourBar {
            colormap: Colormap::Jet,
            low: -1.0,
            high: 2.5,
        };
        let out = with_caption_band(&overlay, &["scan.bmp: lesion 93.1%".into()], Some(bar));
        assert_eq!(out.width(), 300);
        assert!(out.height() > 200);
        assert_eq!(*out.get_pixel(150, 100), Rgb([10, 200, 10]));
        // Some bright text pixels exist in the band's left half.
        let bright = (0..150)
            .flat_map(|x| (200..out.height()).map(move |y| (x, y)))
            .filter(|&(x, y)| out.get_pixel(x, y).0[0] > 150)
            .count();
        assert!(bright > 20, "only {bright} text pixels");
        // The colour bar starts blue (jet) at its left end.
        let jet = Colormap::Jet.lut();
        let found = (150..300).any(|x| out.get_pixel(x, 212).0 == jet[0]);
        assert!(found, "no colour bar found");
    }
}
