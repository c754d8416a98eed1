//! The sanity panel: the model randomisation test of the map on screen (Adebayo et al. 2018,
//! `explain::sanity`), computed on the worker while the panel is open, with progress and Stop:
//! a strip of the maps as the model is randomised and the similarity curves.

use eframe::egui::{self, Color32, TextureHandle, TextureOptions, vec2};

use crate::explain::ClassActivationMap;
use crate::explain::sanity::{Randomisation, SanityReport, Similarity};
use crate::gui::heat::ScreenHeat;
use crate::gui::session::{SanityKey, Session};
use crate::render::Colormap;

/// The thumbnails' longest side, in points.
const THUMB: f32 = 56.0;

pub struct SanityPanel {
    open: bool,
    mode: Randomisation,
    seed: u64,
    /// The thumbnails of the report on screen: what they show and in which colormap.
    thumbs: Option<(SanityKey, Colormap, Vec<TextureHandle>)>,
}

impl Default for SanityPanel {
    fn default() -> Self {
        Self {
            open: false,
            mode: Randomisation::Cascading,
            seed: 0,
            thumbs: None,
        }
    }
}

impl SanityPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, session: &mut Session, colormap: Colormap) {
        let was_open = self.open;
        ui.checkbox(&mut self.open, "Randomise the model (sanity check)")
            .on_hover_text(
                "Re-draws the model's weights module by module from the top and compares each \
                 map with this one. A map that stays similar once the top blocks are random is \
                 not explaining what this model learned (Adebayo et al., NeurIPS 2018).",
            );
        if !self.open {
            if was_open {
                session.stop_sanity();
            }
            return;
        }
        ui.horizontal(|ui| {
            ui.radio_value(&mut self.mode, Randomisation::Cascading, "Cascading")
                .on_hover_text("Step k: the top k modules random");
            ui.radio_value(&mut self.mode, Randomisation::Independent, "One at a time")
                .on_hover_text("Step k: the k-th module alone random");
        });
        ui.horizontal(|ui| {
            let label = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.seed))
                .labelled_by(label.id);
        });
        session.want_sanity(self.mode, self.seed);
        if let Some(fraction) = session.sanity_progress().map(|p| p.fraction()) {
            ui.horizontal(|ui| {
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(150.0)
                        .show_percentage(),
                );
                if ui.button("Stop").clicked() {
                    session.stop_sanity();
                }
            });
        } else if session.sanity_halted(self.mode, self.seed) && ui.button("Run again").clicked() {
            session.rerun_sanity(self.mode, self.seed);
        }
        let current = session.sanity().filter(|(k, _)| {
            k.generation == session.analysis_generation()
                && k.class == session.class()
                && k.mode == self.mode
                && k.seed == self.seed
        });
        let Some((key, report)) = current else {
            if session.sanity_progress().is_none() && !session.sanity_halted(self.mode, self.seed) {
                ui.weak("Waiting for the map…");
            }
            return;
        };
        let size = session
            .image()
            .map_or((1, 1), |i| (i.source.width(), i.source.height()));
        self.strip_ui(ui, key, report, colormap, size);
        similarity_plot_ui(ui, report);
    }

    /// The trained model's map, then each step's, with the module randomised under each.
    fn strip_ui(
        &mut self,
        ui: &mut egui::Ui,
        key: SanityKey,
        report: &SanityReport,
        colormap: Colormap,
        (width, height): (u32, u32),
    ) {
        if !matches!(&self.thumbs, Some((k, c, _)) if *k == key && *c == colormap) {
            let lut = colormap.lut();
            let texture = |i: usize, map: &ClassActivationMap| {
                let heat = ScreenHeat::of_map(map, map.min_max(), width, height, 2 * THUMB as u32);
                ui.ctx().load_texture(
                    format!("sanity-{i}"),
                    heat.colour(&lut, 0.0),
                    TextureOptions::LINEAR,
                )
            };
            let maps = std::iter::once(&report.original).chain(report.steps.iter().map(|s| &s.map));
            let textures = maps.enumerate().map(|(i, m)| texture(i, m)).collect();
            self.thumbs = Some((key, colormap, textures));
        }
        let Some((_, _, textures)) = &self.thumbs else {
            return;
        };
        let names = step_names(report);
        egui::ScrollArea::horizontal()
            .id_salt("sanity-strip")
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    for (texture, name) in textures.iter().zip(names) {
                        ui.vertical(|ui| {
                            let [w, h] = texture.size_vec2().into();
                            let scale = THUMB / w.max(h);
                            ui.image((texture.id(), vec2(w * scale, h * scale)));
                            ui.small(name);
                        });
                    }
                });
            });
    }
}

/// The strip's and the plot's names: "trained", then the module each step randomised last.
fn step_names(report: &SanityReport) -> Vec<String> {
    let last = |s: &crate::explain::sanity::SanityStep| {
        short_name(s.randomised.last().map_or("", String::as_str))
    };
    std::iter::once("trained".to_string())
        .chain(report.steps.iter().map(last))
        .collect()
}

/// "features.denseblock4" as "block 4", "features.transition3" as "trans. 3".
fn short_name(module: &str) -> String {
    let name = module.strip_prefix("features.").unwrap_or(module);
    if let Some(n) = name.strip_prefix("denseblock") {
        format!("block {n}")
    } else if let Some(n) = name.strip_prefix("transition") {
        format!("trans. {n}")
    } else if name == "classifier" {
        "head".to_string()
    } else {
        name.to_string()
    }
}

/// One of the similarity scores.
type Score = fn(&Similarity) -> f64;

/// Similarity to the trained model's map at each step (x = 0: the trained model, all 1).
fn similarity_plot_ui(ui: &mut egui::Ui, report: &SanityReport) {
    use egui_plot::{Legend, Line, Plot};
    let names = step_names(report);
    let series = |score: Score| -> Vec<[f64; 2]> {
        std::iter::once([0.0, 1.0])
            .chain(report.steps.iter().enumerate().filter_map(|(i, s)| {
                let v = score(&s.similarity);
                v.is_finite().then_some([(i + 1) as f64, v])
            }))
            .collect()
    };
    Plot::new("sanity-curves")
        .height(170.0)
        .legend(Legend::default().position(egui_plot::Corner::RightBottom))
        .include_y(-1.0)
        .include_y(1.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            names.get(i as usize).cloned().unwrap_or_default()
        })
        .show(ui, |plot| {
            let lines: [(&str, Score, Color32); 4] = [
                ("Spearman", |s| s.spearman, Color32::from_rgb(220, 80, 60)),
                (
                    "|Spearman|",
                    |s| s.spearman_abs,
                    Color32::from_rgb(230, 160, 40),
                ),
                ("SSIM", |s| s.ssim, Color32::from_rgb(60, 140, 220)),
                ("HOG", |s| s.hog, Color32::from_rgb(90, 170, 90)),
            ];
            for (name, score, colour) in lines {
                plot.line(Line::new(name, series(score)).color(colour));
            }
        });
}
