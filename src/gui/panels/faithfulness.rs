//! The faithfulness panel: deletion and insertion curves with their AUCs, Average Drop and the
//! confidence change of the map on screen, computed on the worker while the panel is open. It is
//! drawn in the side panel and in the View menu, over the same state.

use eframe::egui::{self, Align, Color32};

use crate::explain::faithfulness::{Curve, DEFAULT_STEPS, Faithfulness};

use crate::gui::session::Session;

pub struct FaithfulnessPanel {
    /// The panel is open (its scores are computed while it is).
    open: bool,
    /// The panel was just opened: scroll its scores into view once they show.
    reveal: bool,
    steps: usize,
}

impl Default for FaithfulnessPanel {
    fn default() -> Self {
        Self {
            open: false,
            reveal: false,
            steps: DEFAULT_STEPS,
        }
    }
}

impl FaithfulnessPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, session: &mut Session) {
        let was_open = self.open;
        ui.checkbox(&mut self.open, "Score the map (deletion, insertion)")
            .on_hover_text(
                "Removes (deletion) or restores (insertion) pixels in the map's order and \
                 follows the class probability: a faithful map makes it fall fast and rise fast.",
            );
        if !self.open {
            if was_open {
                session.stop_faithfulness();
            }
            return;
        }
        if !was_open {
            self.reveal = true;
        }
        ui.horizontal(|ui| {
            let label = ui.label("Steps");
            ui.add(egui::DragValue::new(&mut self.steps).range(2..=200))
                .labelled_by(label.id);
        });
        session.want_faithfulness(self.steps);
        if let Some(progress) = session.faithfulness_progress() {
            ui.add(
                egui::ProgressBar::new(progress.fraction())
                    .desired_width(200.0)
                    .show_percentage(),
            );
        }
        let current = session.faithfulness().filter(|s| {
            s.key.generation == session.analysis_generation() && s.key.class == session.class()
        });
        let Some(scored) = current else {
            if session.faithfulness_progress().is_none() {
                ui.weak("Waiting for the map…");
            }
            return;
        };
        faithfulness_plot_ui(ui, &scored.scores);
        let grid = scores_ui(ui, &scored.scores);
        // The side panel is often taller than the window: bring the new plot into view.
        if std::mem::take(&mut self.reveal) {
            grid.scroll_to_me(Some(Align::Max));
        }
    }
}

/// The AUCs, the drop and the confidence change, as a grid.
fn scores_ui(ui: &mut egui::Ui, scores: &Faithfulness) -> egui::Response {
    egui::Grid::new("faithfulness-scores")
        .num_columns(2)
        .spacing([8.0, 2.0])
        .show(ui, |ui| {
            ui.label("Deletion AUC");
            ui.label(format!("{:.3}", scores.deletion.auc))
                .on_hover_text("Lower is better");
            ui.end_row();
            ui.label("Insertion AUC");
            ui.label(format!("{:.3}", scores.insertion.auc))
                .on_hover_text("Higher is better");
            ui.end_row();
            ui.label("Drop");
            ui.label(format!("{:.1}%", scores.drop_percent))
                .on_hover_text(
                    "Fall of the class probability when the image is multiplied by the map \
                     (Average Drop's term; lower is better)",
                );
            ui.end_row();
            ui.label("Confidence");
            ui.label(if scores.increase {
                "increased"
            } else {
                "not increased"
            })
            .on_hover_text("Increase in Confidence's term for this image");
            ui.end_row();
        })
        .response
}

/// The deletion and insertion curves: class probability against the fraction of pixels.
fn faithfulness_plot_ui(ui: &mut egui::Ui, scores: &Faithfulness) {
    use egui_plot::{Legend, Line, Plot};
    let points = |c: &Curve| -> Vec<[f64; 2]> {
        c.fractions
            .iter()
            .zip(&c.probabilities)
            .map(|(&x, &y)| [f64::from(x), f64::from(y)])
            .collect()
    };
    Plot::new("faithfulness-curves")
        .height(150.0)
        .legend(Legend::default())
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label("fraction of pixels")
        .show(ui, |plot| {
            plot.line(
                Line::new(
                    format!("Deletion (AUC {:.3})", scores.deletion.auc),
                    points(&scores.deletion),
                )
                .color(Color32::from_rgb(220, 80, 60)),
            );
            plot.line(
                Line::new(
                    format!("Insertion (AUC {:.3})", scores.insertion.auc),
                    points(&scores.insertion),
                )
                .color(Color32::from_rgb(60, 140, 220)),
            );
        });
}
