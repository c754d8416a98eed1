//! The keys window (F1): every command that has keys, from the command table, then the pointer's
//! gestures (which are not commands).

use eframe::egui;

use crate::gui::commands::Command;

/// Something the pointer does, listed with the keys.
struct PointerGesture {
    input: &'static str,
    description: &'static str,
}

const POINTER_GESTURES: [PointerGesture; 2] = [
    PointerGesture {
        input: "Mouse wheel",
        description: "Zoom at the pointer",
    },
    PointerGesture {
        input: "Drag",
        description: "Pan (with Select; right or middle drag always)",
    },
];

/// The commands the keys window lists: those with keys. A command without one is in a menu (a
/// test of the table makes sure), where it is found.
pub fn listed_commands() -> impl Iterator<Item = Command> {
    Command::ALL
        .into_iter()
        .filter(|c| !c.shortcuts().is_empty())
}

pub fn keys_window_ui(ctx: &egui::Context, open: &mut bool) {
    egui::Window::new("Keyboard shortcuts")
        .open(open)
        .collapsible(false)
        .resizable(false)
        .show(ctx, |ui| {
            egui::Grid::new("keys")
                .num_columns(2)
                .striped(true)
                .show(ui, |ui| {
                    for command in listed_commands() {
                        ui.strong(command.shortcut_text());
                        ui.label(command.description());
                        ui.end_row();
                    }
                    for gesture in POINTER_GESTURES {
                        ui.strong(gesture.input);
                        ui.label(gesture.description);
                        ui.end_row();
                    }
                });
        });
}
