//! Text in saved overlays (the caption band, notes): one font, the Hack face egui draws
//! monospace text with, so a burnt-in note looks as it did on screen.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::RgbImage;

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

/// Width of `text` drawn `px` high.
pub fn text_width(text: &str, px: f32) -> f32 {
    let Some(font) = font() else { return 0.0 };
    let scaled = font.as_scaled(PxScale::from(px));
    text.chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum()
}

/// The font's em size for a text `px` high: a viewer that sizes fonts by the em (egui does)
/// draws a note at `size * note_em_ratio()` to match the burnt-in text.
pub fn note_em_ratio() -> f32 {
    font().map_or(1.0, |f| {
        let height = f.height_unscaled();
        if height > 0.0 {
            f.units_per_em().unwrap_or(height) / height
        } else {
            1.0
        }
    })
}
