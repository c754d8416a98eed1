//! The menu bar. Its command entries (text, shortcut text, group) come from the command table;
//! what is not a command (the recent files, the maps' progress, the faithfulness panel, the
//! version) is placed between the groups here.

use eframe::egui;

use super::map_progress_ui;
use crate::gui::app::CamviewApp;
use crate::gui::commands::{Command, Menu};
use crate::gui::widgets::section_ui;

impl CamviewApp {
    pub(in crate::gui) fn menu_bar_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                self.menu_group_ui(ui, Menu::File, 0);
                self.recent_files_ui(ui);
                ui.separator();
                self.menu_group_ui(ui, Menu::File, 1);
                ui.separator();
                self.menu_group_ui(ui, Menu::File, 2);
            });
            ui.menu_button("View", |ui| {
                self.menu_group_ui(ui, Menu::View, 0);
                map_progress_ui(ui, &mut self.session);
                ui.add_space(8.0);
                section_ui(ui, "Faithfulness");
                self.faithfulness.ui(ui, &mut self.session);
                ui.add_space(8.0);
                section_ui(ui, "Sanity");
                self.sanity
                    .ui(ui, &mut self.session, self.settings.colormap);
                ui.separator();
                self.menu_group_ui(ui, Menu::View, 1);
                self.menu_group_ui(ui, Menu::View, 2);
                ui.separator();
                ui.menu_button("Window", |ui| {
                    self.menu_group_ui(ui, Menu::Window, 0);
                    ui.separator();
                    self.menu_group_ui(ui, Menu::Window, 1);
                });
            });
            ui.menu_button("Help", |ui| {
                self.menu_group_ui(ui, Menu::Help, 0);
                ui.weak(format!("camview {}", env!("CARGO_PKG_VERSION")));
            });
        });
    }

    /// The entries of one menu group: a button with its keys for each command (which closes
    /// the menu), a checkbox for a command that switches something on and off.
    fn menu_group_ui(&mut self, ui: &mut egui::Ui, menu: Menu, group: u8) {
        for command in Command::in_menu(menu, group) {
            if self.switched_on(command).is_some() {
                self.command_checkbox_ui(ui, command);
                continue;
            }
            let button = egui::Button::new(self.command_label(command));
            let button = match command.shortcuts() {
                [] => button,
                _ => button.shortcut_text(command.shortcut_text()),
            };
            if ui.add(button).clicked() {
                // The entry shows the keys window; only F1 also hides it.
                let hides_keys = command == Command::ToggleKeys && self.keys_window_open();
                if !hides_keys {
                    self.run_command(ui.ctx(), command);
                }
                ui.close();
            }
        }
    }

    /// A command's entry: its label, or for a window preset the preset's name and window.
    fn command_label(&self, command: Command) -> String {
        match command {
            Command::WindowPreset(i) => self
                .settings
                .window_presets
                .get(usize::from(i))
                .map_or_else(
                    || format!("Preset {} (none)", i + 1),
                    |p| format!("{} (C {} / W {})", p.name, p.center, p.width),
                ),
            _ => command.label().to_string(),
        }
    }

    /// A command that switches a setting on and off, as a checkbox showing the setting.
    pub(in crate::gui) fn command_checkbox_ui(&mut self, ui: &mut egui::Ui, command: Command) {
        let Some(mut on) = self.switched_on(command) else {
            return;
        };
        if ui.checkbox(&mut on, command.checkbox_text()).changed() {
            self.run_command(ui.ctx(), command);
        }
    }

    /// File > Open recent: the images, then the models, opened before.
    fn recent_files_ui(&mut self, ui: &mut egui::Ui) {
        ui.menu_button("Open recent", |ui| {
            if self.settings.recent_images.is_empty() && self.settings.recent_models.is_empty() {
                ui.weak("Nothing opened yet");
            }
            let mut chosen = None;
            for path in &self.settings.recent_images {
                if ui.button(path.display().to_string()).clicked() {
                    chosen = Some(path.clone());
                }
            }
            if !self.settings.recent_models.is_empty() {
                ui.separator();
                ui.weak("Models");
                for path in &self.settings.recent_models {
                    if ui.button(path.display().to_string()).clicked() {
                        chosen = Some(path.clone());
                    }
                }
            }
            if let Some(path) = chosen {
                self.open_paths(ui.ctx(), vec![path]);
                ui.close();
            }
        });
    }
}
