//! The toolbar: open (a native dialog, or the typed Open field), walk the folder, fit or 1:1,
//! and Save and Copy. The buttons' short texts are the toolbar's; their tooltips (with the keys)
//! come from the command table.

use eframe::egui::{self, Align, Layout, RichText};

use crate::gui::app::CamviewApp;
use crate::gui::commands::Command;

impl CamviewApp {
    pub(in crate::gui) fn toolbar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if ui.button(Command::OpenImage.label()).clicked() {
                self.run_command(ui.ctx(), Command::OpenImage);
            }
            self.open_field_ui(ui);
            ui.separator();
            let has_image = self.session.image().is_some();
            for (text, command) in [
                ("Previous", Command::PreviousImage),
                ("Next", Command::NextImage),
            ] {
                self.command_button_ui(ui, has_image, egui::Button::new(text), command);
            }
            ui.separator();
            for (text, command) in [("Fit", Command::Fit), ("1:1", Command::ActualPixels)] {
                self.command_button_ui(ui, has_image, egui::Button::new(text), command);
            }
            if has_image {
                ui.weak(format!("{:.0}%", self.view.scale() * 100.0));
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let ready = self.session.analysis().is_some();
                let copy = egui::Button::new("Copy");
                self.command_button_ui(ui, ready, copy, Command::CopyOverlay);
                let save = egui::Button::new(RichText::new(Command::SaveOverlay.label()).strong());
                self.command_button_ui(ui, ready, save, Command::SaveOverlay);
            });
        });
    }

    /// A button that runs `command`, with the command's tooltip.
    pub(in crate::gui) fn command_button_ui(
        &mut self,
        ui: &mut egui::Ui,
        enabled: bool,
        button: egui::Button<'_>,
        command: Command,
    ) {
        if ui
            .add_enabled(enabled, button)
            .on_hover_text(command.tooltip())
            .clicked()
        {
            self.run_command(ui.ctx(), command);
        }
    }
}
