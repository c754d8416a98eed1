//! The side panel's "Window" section, for an image with gray levels (the status line says which
//! window the network saw and which is shown): the presets, the centre and width, the file's own
//! windows, Invert, the frame of a multi-frame file, and the presets' editor (kept in the
//! settings).

use eframe::egui;

use crate::gui::app::CamviewApp;
use crate::gui::commands::Command;
use crate::gui::textures::max_texture_side;
use crate::imaging::levels::{Preset, Window, default_presets};

impl CamviewApp {
    /// Nothing for an 8-bit image: it has no levels to window.
    pub(in crate::gui) fn window_ui(&mut self, ui: &mut egui::Ui) {
        let Some(levels) = self.session.levels().cloned() else {
            return;
        };
        let side = max_texture_side(ui.ctx());
        let Some(shown) = self.session.shown_window() else {
            return;
        };
        let unit = levels.unit.clone().unwrap_or_default();
        let mut chosen: Option<Window> = None;
        egui::Grid::new("window")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                let label = ui.label("Preset");
                let current = self
                    .settings
                    .window_presets
                    .iter()
                    .find(|p| p.window() == shown)
                    .map_or("custom", |p| p.name.as_str());
                egui::ComboBox::from_id_salt("window-preset")
                    .selected_text(current)
                    .show_ui(ui, |ui| {
                        for (i, p) in self.settings.window_presets.iter().enumerate() {
                            let text = match i {
                                0..7 => format!("{}  ({})", p.name, i + 1),
                                _ => p.name.clone(),
                            };
                            if ui.selectable_label(p.window() == shown, text).clicked() {
                                chosen = Some(p.window());
                            }
                        }
                    })
                    .response
                    .labelled_by(label.id);
                ui.end_row();
                let (mut center, mut width) = (shown.center, shown.width);
                let label = ui.label("Centre");
                let c = ui
                    .add(
                        egui::DragValue::new(&mut center)
                            .speed(1.0)
                            .suffix(format!(" {unit}")),
                    )
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Width");
                let w = ui
                    .add(
                        egui::DragValue::new(&mut width)
                            .speed(1.0)
                            .range(1.0..=f64::MAX)
                            .suffix(format!(" {unit}")),
                    )
                    .labelled_by(label.id);
                ui.end_row();
                if c.changed() || w.changed() {
                    chosen = Some(Window {
                        center,
                        width,
                        function: shown.function,
                    });
                }
            });
        if let Some(window) = chosen {
            self.session.set_window(window, side);
        }
        ui.horizontal_wrapped(|ui| {
            let reset = Command::ResetWindow;
            let button = egui::Button::new(reset.label());
            self.command_button_ui(ui, true, button, reset);
            for (i, w) in levels.windows.iter().enumerate().skip(1) {
                let text = format!("File window {} ({w})", i + 1);
                if ui.button(text).clicked() {
                    self.session.reset_window(Some(i), side);
                }
            }
        });
        self.command_checkbox_ui(ui, Command::InvertWindow);
        ui.weak("Right-drag on the image: across for the width, up and down for the level");
        self.frame_ui(ui);
        ui.collapsing("Edit the presets", |ui| {
            presets_editor_ui(ui, &mut self.settings.window_presets);
        });
    }

    /// The frame of a multi-frame file, as a slider (Page Up / Page Down step it).
    pub(in crate::gui) fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let (frame, frames) = self.session.frame();
        if frames < 2 {
            return;
        }
        let mut picked = frame;
        let slider = egui::Slider::new(&mut picked, 1..=frames).text(format!("frame of {frames}"));
        let response = ui.add(slider).on_hover_text(format!(
            "{} / {}",
            Command::PreviousFrame.shortcut_text(),
            Command::NextFrame.shortcut_text()
        ));
        // Opening a frame reanalyses it: only once the slider is let go.
        if picked != frame && !response.dragged() {
            self.session.open_frame(picked, max_texture_side(ui.ctx()));
        }
    }
}

/// Name, centre and width rows, with add, remove and the defaults back.
fn presets_editor_ui(ui: &mut egui::Ui, presets: &mut Vec<Preset>) {
    let mut remove = None;
    egui::Grid::new("window-presets")
        .num_columns(4)
        .spacing([6.0, 4.0])
        .show(ui, |ui| {
            let name = ui.weak("name").id;
            let center = ui.weak("centre").id;
            let width = ui.weak("width").id;
            ui.end_row();
            for (i, p) in presets.iter_mut().enumerate() {
                ui.add(egui::TextEdit::singleline(&mut p.name).desired_width(90.0))
                    .labelled_by(name);
                ui.add(egui::DragValue::new(&mut p.center).speed(1.0))
                    .labelled_by(center);
                ui.add(
                    egui::DragValue::new(&mut p.width)
                        .speed(1.0)
                        .range(1.0..=f64::MAX),
                )
                .labelled_by(width);
                if ui.small_button("Remove").clicked() {
                    remove = Some(i);
                }
                ui.end_row();
            }
        });
    if let Some(i) = remove {
        presets.remove(i);
    }
    ui.horizontal(|ui| {
        if ui.button("Add a preset").clicked() {
            presets.push(Preset {
                name: format!("preset {}", presets.len() + 1),
                center: 40.0,
                width: 400.0,
            });
        }
        if ui.button("Restore the defaults").clicked() {
            *presets = default_presets();
        }
    });
}
