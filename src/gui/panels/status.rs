//! The status line (what runs, the latest message, the image's size, the network's time) and the
//! error band under the toolbar.

use eframe::egui::{self, Align, Color32, Layout, RichText};

use crate::gui::session::Session;

pub fn status_ui(ui: &mut egui::Ui, session: &Session) {
    ui.horizontal(|ui| {
        let activity = session.activity();
        if !activity.is_empty() {
            ui.spinner();
            ui.label(activity.join("  ·  "));
        } else if let Some(notice) = session.latest_info() {
            ui.label(&notice.text);
        } else {
            ui.weak("Ready");
        }
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            if let Some(image) = session.image() {
                ui.weak(format!(
                    "{} × {} px · {}",
                    image.source.width(),
                    image.source.height(),
                    image.source.format
                ));
            }
            if let Some(image) = session.image() {
                let network = session
                    .model()
                    .and_then(|m| m.preprocessing.window.as_ref());
                let names = (
                    image.source.network_window_name(network),
                    image.source.display_window_name(session.display_window()),
                );
                if let (Some(network), Some(shown)) = names {
                    ui.weak(format!("network saw {network} · shown {shown}"));
                }
            }
            if let Some(t) = session.last_analysis() {
                ui.weak(format!("network {:.0} ms", t.as_secs_f64() * 1000.0));
            }
        });
    });
}

/// The errors on show, newest first, across the window under the toolbar, until dismissed.
pub fn error_band_ui(ui: &mut egui::Ui, session: &mut Session) {
    if session.errors().is_empty() {
        return;
    }
    // One line each, the newest first.
    let text: Vec<&str> = session
        .errors()
        .iter()
        .rev()
        .map(|n| n.text.as_str())
        .collect();
    let text = text.join("\n");
    egui::Panel::top("camview-error")
        .frame(
            egui::Frame::new()
                .fill(Color32::from_rgb(120, 28, 28))
                .inner_margin(egui::Margin::symmetric(10, 6)),
        )
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    if ui.button("Dismiss").clicked() {
                        session.dismiss_notice();
                    }
                    ui.with_layout(Layout::left_to_right(Align::Center), |ui| {
                        ui.add(
                            egui::Label::new(
                                RichText::new(text)
                                    .color(Color32::from_rgb(255, 228, 228))
                                    .strong(),
                            )
                            .wrap(),
                        );
                    });
                });
            });
        });
}
