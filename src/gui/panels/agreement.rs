//! The agreement panel: where the map on screen points against the clinician's findings (closed
//! marks flagged as findings, `render::annotation::region_mask`), by `explain::agreement`'s
//! scores: the pointing game, IoU and Dice of the map thresholded at a fraction of its range
//! (the CAM paper's 20% by default) and at Otsu's threshold (CheXlocalize), and the share of the
//! map's energy inside the findings against the findings' share of the image. Computed on the UI
//! thread from the map already on screen (no network pass) when the map, the class, the
//! threshold or the findings change, on the screen heat grid (the image itself up to
//! `GRID_SIDE` pixels a side, shrunk beyond that).

use eframe::egui;

use crate::explain::agreement::{Agreement, Threshold};
use crate::gui::heat::ScreenHeat;
use crate::gui::session::Session;
use crate::render::Annotation;
use crate::render::annotation::region_mask;

/// The longest side of the grid the scores are computed on.
pub const GRID_SIDE: u32 = 1024;

/// What the scores on screen were computed from.
#[derive(Clone, PartialEq)]
struct Key {
    generation: u64,
    class: usize,
    fraction: f32,
    findings: Vec<Annotation>,
}

pub struct AgreementPanel {
    /// The threshold as a fraction of the map's range.
    fraction: f32,
    scores: Option<(Key, Agreement, Agreement)>,
}

impl Default for AgreementPanel {
    fn default() -> Self {
        Self {
            fraction: 0.2,
            scores: None,
        }
    }
}

impl AgreementPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, session: &Session) {
        let findings = session.annotations().findings();
        if findings.is_empty() {
            ui.weak(
                "Outline a finding with the Region tool (P), or select a closed mark and tick \
                 Finding (M): the map is then scored against it.",
            );
            return;
        }
        let (Some(analysis), Some(image)) = (session.analysis(), session.image()) else {
            return;
        };
        let Some(map) = analysis.map(session.class()) else {
            ui.weak("Waiting for the map…");
            return;
        };
        ui.horizontal(|ui| {
            let label = ui.label("Threshold");
            ui.add(
                egui::Slider::new(&mut self.fraction, 0.0..=1.0)
                    .custom_formatter(|v, _| format!("{:.0}%", 100.0 * v))
                    .custom_parser(|s| {
                        s.trim_end_matches('%')
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .map(|v| v / 100.0)
                    }),
            )
            .labelled_by(label.id)
            .on_hover_text("Pixels at or above this fraction of the map's range are its region");
        });
        let key = Key {
            generation: session.analysis_generation(),
            class: session.class(),
            fraction: self.fraction,
            findings,
        };
        if self.scores.as_ref().is_none_or(|(k, _, _)| *k != key) {
            let (w, h) = (image.source.width(), image.source.height());
            let heat = ScreenHeat::of_map(map, map.min_max(), w, h, GRID_SIDE);
            let (sx, sy) = (
                heat.width as f32 / w.max(1) as f32,
                heat.height as f32 / h.max(1) as f32,
            );
            let scaled: Vec<Annotation> = key
                .findings
                .iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.scale(sx, sy);
                    a
                })
                .collect();
            let mask = region_mask(&scaled, heat.width, heat.height);
            let at_fraction =
                Agreement::of(&heat.values, &mask, Threshold::Fraction(self.fraction));
            let at_otsu = Agreement::of(&heat.values, &mask, Threshold::Otsu);
            self.scores = Some((key, at_fraction, at_otsu));
        }
        if let Some((_, at_fraction, at_otsu)) = &self.scores {
            scores_ui(ui, self.fraction, at_fraction, at_otsu);
        }
    }
}

fn scores_ui(ui: &mut egui::Ui, fraction: f32, at_fraction: &Agreement, at_otsu: &Agreement) {
    egui::Grid::new("agreement-scores")
        .num_columns(3)
        .spacing([8.0, 2.0])
        .show(ui, |ui| {
            ui.label("Pointing game");
            ui.label(if at_fraction.pointing { "hit" } else { "miss" })
                .on_hover_text("Whether the map's maximum lies in a finding");
            ui.end_row();
            ui.label("");
            ui.weak(format!("at {:.0}%", 100.0 * fraction));
            ui.weak(format!("Otsu ({:.0}%)", 100.0 * at_otsu.threshold));
            ui.end_row();
            ui.label("IoU");
            ui.label(format!("{:.3}", at_fraction.iou));
            ui.label(format!("{:.3}", at_otsu.iou));
            ui.end_row();
            ui.label("Dice");
            ui.label(format!("{:.3}", at_fraction.dice));
            ui.label(format!("{:.3}", at_otsu.dice));
            ui.end_row();
            ui.label("Energy inside");
            ui.label(format!("{:.1}%", 100.0 * at_fraction.energy_inside))
                .on_hover_text("Share of the map's energy that falls inside the findings");
            ui.weak(format!("area {:.1}%", 100.0 * at_fraction.area_share))
                .on_hover_text(
                    "The findings' share of the image: a map no better than chance puts this \
                     share of its energy inside",
                );
            ui.end_row();
        });
}
