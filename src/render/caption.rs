//! A caption band under the overlay: text lines on the left, a labelled colour bar on the right.

use image::{Rgb, RgbImage};

use super::colormap::Colormap;
use super::text::{draw_text, text_width};

/// The band's colour (also the empty cells' of a grid of overlays).
pub(crate) const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);
const TEXT: [u8; 3] = [235, 235, 235];

/// What the colour bar stands for: the colormap and the raw map values at its two ends.
#[derive(Debug, Clone, Copy)]
pub struct ColourBar {
    pub colormap: Colormap,
    pub low: f32,
    pub high: f32,
}

/// The overlay with a band below it holding `lines` and, optionally, a colour bar with its scale.
/// The overlay's own pixels are untouched: the band only adds rows. Text shrinks to fit the
/// image's width, and a line still too long is cut with an ellipsis.
pub fn with_caption_band(overlay: &RgbImage, lines: &[String], bar: Option<ColourBar>) -> RgbImage {
    let width = overlay.width();
    let pad = (width as f32 / 80.0).clamp(4.0, 24.0).ceil();
    let usable = width as f32 - 2.0 * pad;
    let mut px = (width as f32 / 48.0).clamp(11.0, 40.0);
    let widest = lines.iter().map(|l| text_width(l, px)).fold(0.0, f32::max);
    if widest > usable {
        px = (px * usable / widest).max(9.0);
    }
    let lines: Vec<String> = lines.iter().map(|l| fit(l, px, usable)).collect();
    let line_height = (px * 1.3).ceil();
    let bar_rows = if bar.is_some() { 2.0 } else { 0.0 };
    let band = ((lines.len() as f32 + bar_rows) * line_height + 2.0 * pad).ceil() as u32;
    let mut out = RgbImage::from_pixel(width, overlay.height() + band, BACKGROUND);
    image::imageops::replace(&mut out, overlay, 0, 0);
    let mut y = overlay.height() as f32 + pad;
    for line in &lines {
        draw_text(&mut out, line, pad, y, px, TEXT);
        y += line_height;
    }
    if let Some(bar) = bar {
        let lut = bar.colormap.lut();
        let bar_h = (line_height * 0.7).max(4.0) as u32;
        let (x0, bar_w) = (pad as u32, usable.max(2.0) as u32);
        for x in 0..bar_w {
            let idx = (x as f32 / (bar_w - 1) as f32 * 255.0).round() as usize;
            for dy in 0..bar_h {
                out.put_pixel(x0 + x, y as u32 + dy, Rgb(lut[idx.min(255)]));
            }
        }
        y += line_height;
        let small = px * 0.85;
        let low = format!("{:.3}", bar.low);
        let high = format!("{:.3}", bar.high);
        draw_text(&mut out, &low, pad, y, small, TEXT);
        let title = "CAM value";
        draw_text(
            &mut out,
            title,
            (width as f32 - text_width(title, small)) / 2.0,
            y,
            small,
            TEXT,
        );
        draw_text(
            &mut out,
            &high,
            width as f32 - pad - text_width(&high, small),
            y,
            small,
            TEXT,
        );
    }
    out
}

/// `text`, cut with an ellipsis so it is at most `max_width` wide at `px`.
fn fit(text: &str, px: f32, max_width: f32) -> String {
    if text_width(text, px) <= max_width {
        return text.to_string();
    }
    let mut cut: String = text.to_string();
    while !cut.is_empty() && text_width(&format!("{cut}…"), px) > max_width {
        cut.pop();
    }
    format!("{}…", cut.trim_end())
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
        // The colour bar runs from jet's first colour at the left to its last at the right.
        let jet = Colormap::Jet.lut();
        let row = (200..out.height())
            .find(|&y| out.get_pixel(4, y).0 == jet[0])
            .expect("no colour bar found");
        assert_eq!(out.get_pixel(295, row).0, jet[255]);
    }
}
