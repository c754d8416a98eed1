//! The Compare window: every method's map of the class on screen in a grid, over the image as
//! the overlay draws it (each map scaled by its own range), computed in the background
//! (`Session::want_compare`, Score-CAM last), with the rank correlation of every pair of maps
//! (`explain::similarity::rank_correlations`, on the network's input grid). A click on a tile
//! makes that method the main map.

use std::collections::HashMap;

use eframe::egui::{
    self, Color32, Rect, RichText, Sense, Stroke, StrokeKind, TextureHandle, TextureOptions,
    WidgetInfo, pos2, vec2,
};

use crate::explain::similarity::rank_correlations;
use crate::explain::{ClassActivationMap, Method};
use crate::gui::heat::ScreenHeat;
use crate::gui::session::{CompareTile, Session};
use crate::gui::textures::Textures;
use crate::render::OverlayStyle;

/// A tile's longest side, in points.
const TILE: f32 = 170.0;
/// Tiles a row.
const COLUMNS: usize = 4;

/// What identifies a drawn map: its method, layer, class and values.
type Fingerprint = (Method, String, usize, usize, u32);

fn fingerprint(map: &ClassActivationMap) -> Fingerprint {
    let sum: f32 = map.values.iter().sum();
    (
        map.method,
        map.layer.name(),
        map.class,
        map.values.len(),
        sum.to_bits(),
    )
}

/// The maps' rank correlations: which maps (their fingerprints), their methods, the matrix.
type Correlations = (Vec<Fingerprint>, Vec<Method>, Vec<Vec<f64>>);

#[derive(Default)]
pub struct ComparePanel {
    pub open: bool,
    /// Heat textures by map, colormap and threshold.
    heat: HashMap<(Fingerprint, crate::render::Colormap, u32), TextureHandle>,
    /// The correlations of the maps on screen, and which maps they are of.
    correlations: Option<Correlations>,
}

impl ComparePanel {
    pub fn window_ui(
        &mut self,
        ctx: &egui::Context,
        session: &mut Session,
        textures: &mut Textures,
        style: OverlayStyle,
    ) {
        if !self.open {
            return;
        }
        session.want_compare();
        let mut open = self.open;
        let mut chosen = None;
        egui::Window::new("Compare methods")
            .open(&mut open)
            .default_width(4.0 * (TILE + 12.0))
            .show(ctx, |ui| {
                chosen = self.grid_ui(ui, session, textures, style);
                ui.separator();
                self.correlations_ui(ui, session);
            });
        if !open {
            session.stop_compare();
        }
        self.open = open;
        if let Some(method) = chosen {
            let layer = session.compare_choice(method).layer;
            session.choose_map(method, layer);
        }
    }

    /// The tiles; returns the method clicked, if any.
    fn grid_ui(
        &mut self,
        ui: &mut egui::Ui,
        session: &Session,
        textures: &mut Textures,
        style: OverlayStyle,
    ) -> Option<Method> {
        let image = session.image()?;
        let (w, h) = (image.source.width(), image.source.height());
        let size = {
            let s = TILE / w.max(h).max(1) as f32;
            vec2(w as f32 * s, h as f32 * s)
        };
        let ppp = ui.ctx().pixels_per_point();
        let background = textures.image_for(ui.ctx(), size.max_elem() * ppp);
        let shown = (session.method(), session.layer());
        let mut chosen = None;
        egui::Grid::new("compare-grid")
            .spacing([8.0, 8.0])
            .show(ui, |ui| {
                for (i, method) in Method::ALL.into_iter().enumerate() {
                    ui.vertical(|ui| {
                        let (rect, response) = ui.allocate_exact_size(size, Sense::click());
                        let title = method.title();
                        response.widget_info(|| {
                            WidgetInfo::labeled(
                                egui::accesskit::Role::Button,
                                true,
                                format!("{title} tile"),
                            )
                        });
                        let painter = ui.painter_at(rect);
                        painter.rect_filled(rect, 0.0, Color32::BLACK);
                        if let Some((id, uv)) = background {
                            painter.image(id, rect, uv, Color32::WHITE);
                        }
                        let tile = session.compare_tile(method);
                        let caption = match &tile {
                            CompareTile::Ready(map) => {
                                let texture = self.heat_texture(ui.ctx(), map, (w, h), style);
                                let alpha = (style.opacity * 255.0).round() as u8;
                                let full = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
                                painter.image(
                                    texture.id(),
                                    rect,
                                    full,
                                    Color32::from_white_alpha(alpha),
                                );
                                RichText::new(title)
                            }
                            CompareTile::Computing(fraction) => {
                                RichText::new(format!("{title}: {:.0}%", 100.0 * fraction)).weak()
                            }
                            CompareTile::Waiting => {
                                RichText::new(format!("{title}: waiting")).weak()
                            }
                            CompareTile::Failed(_) => {
                                RichText::new(format!("{title}: not defined")).weak()
                            }
                        };
                        let layer = session.compare_choice(method).layer;
                        if shown == (method, layer) {
                            painter.rect_stroke(
                                rect,
                                0.0,
                                Stroke::new(2.0, ui.visuals().selection.stroke.color),
                                StrokeKind::Inside,
                            );
                        }
                        let label = ui.label(caption);
                        if let CompareTile::Failed(why) = tile {
                            label.on_hover_text(why);
                        }
                        if response
                            .on_hover_text(format!("Show {title} at {layer} as the main map"))
                            .clicked()
                        {
                            chosen = Some(method);
                        }
                    });
                    if (i + 1) % COLUMNS == 0 {
                        ui.end_row();
                    }
                }
            });
        chosen
    }

    /// The heat texture of `map` over an image of `size`, made once per map, colormap and
    /// threshold.
    fn heat_texture(
        &mut self,
        ctx: &egui::Context,
        map: &ClassActivationMap,
        (w, h): (u32, u32),
        style: OverlayStyle,
    ) -> &TextureHandle {
        let key = (fingerprint(map), style.colormap, style.threshold.to_bits());
        if self.heat.len() > 64 {
            self.heat.clear(); // bounded: maps of images left behind go
        }
        self.heat.entry(key).or_insert_with(|| {
            let heat = ScreenHeat::of_map(map, map.min_max(), w, h, 2 * TILE as u32);
            ctx.load_texture(
                format!("compare-{}", map.method.name()),
                heat.colour(&style.colormap.lut(), style.threshold),
                TextureOptions::LINEAR,
            )
        })
    }

    /// Spearman's rank correlation of every pair of the maps computed, on the network's input
    /// grid.
    fn correlations_ui(&mut self, ui: &mut egui::Ui, session: &Session) {
        let Some(analysis) = session.analysis() else {
            return;
        };
        let ready: Vec<(Method, &ClassActivationMap)> = Method::ALL
            .into_iter()
            .filter_map(|m| match session.compare_tile(m) {
                CompareTile::Ready(map) => Some((m, map)),
                _ => None,
            })
            .collect();
        if ready.len() < 2 {
            return;
        }
        let prints: Vec<Fingerprint> = ready.iter().map(|(_, m)| fingerprint(m)).collect();
        if self
            .correlations
            .as_ref()
            .is_none_or(|(p, _, _)| *p != prints)
        {
            let (iw, ih) = analysis.input_size;
            let grids: Vec<Vec<f32>> = ready
                .iter()
                .map(|(_, m)| m.on_input_grid(iw as usize, ih as usize))
                .collect();
            let methods = ready.iter().map(|(m, _)| *m).collect();
            self.correlations = Some((prints, methods, rank_correlations(&grids)));
        }
        let Some((_, methods, matrix)) = &self.correlations else {
            return;
        };
        ui.label("Rank correlation (Spearman) of the maps");
        egui::Grid::new("compare-correlations")
            .striped(true)
            .spacing([10.0, 2.0])
            .show(ui, |ui| {
                ui.label("");
                for m in methods {
                    ui.label(RichText::new(m.title()).small());
                }
                ui.end_row();
                for (m, row) in methods.iter().zip(matrix) {
                    ui.label(RichText::new(m.title()).small());
                    for v in row {
                        ui.label(if v.is_finite() {
                            format!("{v:.2}")
                        } else {
                            "-".to_string()
                        });
                    }
                    ui.end_row();
                }
            });
    }
}
