//! The desktop viewer: an eframe/egui app over the engine.
//!
//! - `session`: the one state type (model, image, cached analysis, class, annotations, work in
//!   flight); `worker`: the named thread that does the slow work and answers over a channel;
//!   `prefetch`: the thread that prepares the next and previous images while the user looks.
//! - `app`: the app over the session, and what each command does; `commands`: the one table of
//!   commands (text, keys, menu place), from which the keys, the menus and the keys window come.
//! - `panels`: menu, toolbar, status and error band, side controls, faithfulness; `pane`: the
//!   original and overlay panes with their tools; `dialogs`: save, keys, file dialogs and the
//!   Open field, drop preview; `widgets`: small widgets that know nothing of the session.
//! - `view`: the zoom and pan shared by both panes; `heat`: the heat map as the screen shows it;
//!   `pyramid`: the image's half-size levels for zoomed-out views; `textures`: the image and heat
//!   textures; `annotate`: the annotation tools; `save`: composing
//!   the full-resolution overlay and writing it; `settings`: what is remembered between runs;
//!   `logging`: the log file in the user's state folder, and the message box of a failed start.

pub mod annotate;
pub mod app;
pub mod commands;
pub mod dialogs;
pub mod heat;
pub mod logging;
pub mod pane;
pub mod panels;
pub mod prefetch;
pub mod pyramid;
pub mod save;
pub mod session;
pub mod settings;
pub mod textures;
pub mod view;
pub mod widgets;
pub mod worker;

pub use crate::model_request::ModelRequest;
pub use app::{CamviewApp, Launch};
pub use commands::Command;
pub use session::{Session, TaskKind};
pub use worker::ImageOrigin;

use eframe::egui;

pub use crate::demo::demo_images;

/// The application's id: the window's app id and the name of eframe's storage folder.
pub const APP_ID: &str = "camview";

/// Opens the viewer window and runs it until it is closed.
pub fn run(launch: Launch) -> Result<(), String> {
    const HEADLESS_HINT: &str =
        "the commands predict, render and batch work without one (see camview --help)";
    if cfg!(all(unix, not(target_os = "macos")))
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
        && std::env::var_os("WAYLAND_SOCKET").is_none()
    {
        return Err(format!(
            "no display to open the viewer window on (DISPLAY and WAYLAND_DISPLAY are not set); \
             {HEADLESS_HINT}"
        ));
    }
    // CAMVIEW_WINDOW_SIZE=WxH (used by tools/screenshot.sh to fill a virtual screen).
    let size = std::env::var("CAMVIEW_WINDOW_SIZE")
        .ok()
        .and_then(|s| {
            let (w, h) = s.split_once('x')?;
            Some([w.trim().parse::<f32>().ok()?, h.trim().parse::<f32>().ok()?])
        })
        .unwrap_or([1280.0, 800.0]);
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("camview")
            .with_app_id(APP_ID)
            .with_inner_size(size)
            .with_min_inner_size([760.0, 480.0])
            .with_drag_and_drop(true)
            .with_icon(window_icon()),
        ..Default::default()
    };
    eframe::run_native(
        APP_ID,
        options,
        Box::new(move |cc| {
            let app = CamviewApp::new(cc, launch)?;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| format!("cannot open the viewer window: {e}; {HEADLESS_HINT}"))
}

/// The window's icon: the one the desktop entry names (assets/icons, drawn for camview).
fn window_icon() -> egui::IconData {
    eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icons/camview.png"))
        .unwrap_or_default()
}
