//! Reading the map: the legend (the colormap with the scale's ends and the threshold) and the
//! values under the pointer (the pixel, and the map's value there).

use eframe::egui::{
    self, Align, Color32, Layout, Mesh, Rect, Sense, Stroke, StrokeKind, pos2, vec2,
};

use crate::gui::heat::map_value_at;
use crate::gui::pane::PointedPixel;
use crate::gui::session::Session;
use crate::gui::settings::Settings;
use crate::imaging::GrayLevels;

/// The colormap as a bar, dimmed below the threshold, with the values its ends stand for.
pub fn legend_ui(ui: &mut egui::Ui, session: &Session, settings: &Settings) {
    let style = settings.style();
    let range = session.analysis().and_then(|a| {
        a.map(session.class())
            .map(|map| a.range(map, style.normalisation))
    });
    let width = ui.available_width().min(260.0);
    let (rect, _) = ui.allocate_exact_size(vec2(width, 16.0), Sense::hover());
    paint_colour_bar(ui, rect, &style.colormap.lut(), style.threshold);
    ui.horizontal(|ui| {
        ui.set_width(width);
        match range {
            Some((lo, hi)) => {
                ui.label(legend_number(lo, hi - lo));
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    ui.label(legend_number(hi, hi - lo));
                    let method = session.shown_map().method;
                    ui.centered_and_justified(|ui| ui.weak(format!("{} value", method.title())));
                });
            }
            None => {
                ui.weak("low");
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    ui.weak("high");
                });
            }
        }
    });
    if style.threshold > 0.0 {
        ui.weak(format!(
            "Below {:.0}% of the scale: not drawn",
            style.threshold * 100.0
        ));
    }
}

fn paint_colour_bar(ui: &egui::Ui, rect: Rect, lut: &[[u8; 3]], threshold: f32) {
    let mut mesh = Mesh::default();
    let n = lut.len();
    for (i, c) in lut.iter().enumerate() {
        let x0 = rect.left() + rect.width() * i as f32 / n as f32;
        let x1 = rect.left() + rect.width() * (i + 1) as f32 / n as f32;
        mesh.add_colored_rect(
            Rect::from_min_max(pos2(x0, rect.top()), pos2(x1, rect.bottom())),
            Color32::from_rgb(c[0], c[1], c[2]),
        );
    }
    ui.painter().add(mesh);
    if threshold > 0.0 {
        let cut = rect.left() + rect.width() * threshold;
        let hidden = Rect::from_min_max(rect.left_top(), pos2(cut, rect.bottom()));
        ui.painter()
            .rect_filled(hidden, 0.0, Color32::from_black_alpha(170));
        ui.painter().line_segment(
            [pos2(cut, rect.top() - 2.0), pos2(cut, rect.bottom() + 2.0)],
            Stroke::new(1.5, ui.visuals().strong_text_color()),
        );
    }
    ui.painter().rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, ui.visuals().weak_text_color()),
        StrokeKind::Outside,
    );
}

/// A legend end with enough decimals to tell the ends apart (the gradient methods' maps can
/// span 0.04 where CAM's spans 10).
fn legend_number(v: f32, span: f32) -> String {
    let decimals = if span > 0.0 {
        (2 - span.log10().floor() as i32).clamp(0, 6) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

/// The stored value and the modality value with its unit: "stored 1024, -600 HU".
pub fn gray_level_text(levels: &GrayLevels, x: u32, y: u32) -> Option<String> {
    let (stored, value) = levels.at(x, y)?;
    let value = if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    Some(match &levels.unit {
        Some(unit) => format!("stored {stored}, {value} {unit}"),
        None => format!("stored {stored}, value {value}"),
    })
}

/// The pixel under the pointer (on either pane) and the map's value there.
pub fn readout_ui(
    ui: &mut egui::Ui,
    session: &Session,
    settings: &Settings,
    pointed: Option<PointedPixel>,
) {
    let Some(image) = session.image() else {
        ui.weak("—");
        return;
    };
    let Some(PointedPixel { at, .. }) = pointed else {
        ui.weak("Point at the image to read its values");
        return;
    };
    let (x, y) = (at.x.floor(), at.y.floor());
    if x < 0.0 || y < 0.0 || x >= image.source.width() as f32 || y >= image.source.height() as f32 {
        ui.weak("Point at the image to read its values");
        return;
    }
    let (x, y) = (x as u32, y as u32);
    let [r, g, b] = image.source.rgb.get_pixel(x, y).0;
    egui::Grid::new("readout").num_columns(2).show(ui, |ui| {
        ui.label("Pixel");
        ui.label(format!("x {x}, y {y}"));
        ui.end_row();
        ui.label("Value");
        ui.label(if r == g && g == b {
            format!("{r}")
        } else {
            format!("RGB {r} {g} {b}")
        });
        ui.end_row();
        if let Some(text) = image
            .source
            .levels
            .as_deref()
            .and_then(|l| gray_level_text(l, x, y))
        {
            ui.label("Gray level");
            ui.label(text);
            ui.end_row();
        }
        if let Some(analysis) = session.analysis() {
            ui.label(session.shown_map().method.title());
            match map_value_at(analysis, session.class(), x, y).zip(analysis.map(session.class())) {
                Some((v, map)) => {
                    let (lo, hi) = analysis.range(map, settings.normalisation);
                    let share = if hi > lo {
                        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    ui.label(format!("{v:.3}  ({:.0}% of the scale)", share * 100.0));
                }
                None => {
                    ui.weak("outside what the network saw");
                }
            }
            ui.end_row();
        }
    });
}
