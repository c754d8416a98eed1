//! What is about to be dropped on the window, named over a dimmed window.

use eframe::egui::{self, Align2, Color32, FontId, Id};

pub fn drop_preview_ui(ctx: &egui::Context) {
    let hovered: Vec<String> = ctx.input(|i| {
        i.raw
            .hovered_files
            .iter()
            .map(|f| {
                f.path
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned())
            })
            .collect()
    });
    if hovered.is_empty() {
        return;
    }
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        Id::unique("camview-drop"),
    ));
    let screen = ctx.content_rect();
    painter.rect_filled(screen, 0.0, Color32::from_black_alpha(180));
    painter.text(
        screen.center(),
        Align2::CENTER_CENTER,
        format!("Drop to open {}", hovered.join(", ")),
        FontId::proportional(24.0),
        Color32::WHITE,
    );
}
