//! The panels around the panes: the menu bar (`menu`), the toolbar (`toolbar`), the status line
//! and the error band (`status`), the side controls (`controls`, with the legend and the values
//! under the pointer in `legend`) and the faithfulness panel (`faithfulness`).
//!
//! The panels that run commands (menu, toolbar, side controls) are `CamviewApp` methods: a
//! command may touch any part of the app, and running it at once keeps the effects in the frame
//! and order they had. The others take only the state they draw.

pub mod agreement;
pub mod compare;
pub mod controls;
pub mod faithfulness;
pub mod legend;
pub mod menu;
pub mod sanity;
pub mod status;
pub mod toolbar;
pub mod window;

use eframe::egui;

pub use agreement::AgreementPanel;
pub use compare::ComparePanel;
pub use faithfulness::FaithfulnessPanel;
pub use sanity::SanityPanel;

use super::session::Session;

/// A progress bar and a Stop button while a method's maps are computed.
pub fn map_progress_ui(ui: &mut egui::Ui, session: &mut Session) {
    let Some(fraction) = session.map_progress().map(|p| p.fraction()) else {
        return;
    };
    ui.horizontal(|ui| {
        ui.add(
            egui::ProgressBar::new(fraction)
                .desired_width(160.0)
                .text(format!(
                    "{} {:.0}%",
                    session.method().title(),
                    100.0 * fraction
                )),
        );
        if ui
            .button("Stop")
            .on_hover_text("Stop computing these maps")
            .clicked()
        {
            session.stop_maps();
        }
    });
}
