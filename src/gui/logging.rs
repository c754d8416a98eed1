//! The viewer's log. Started from a desktop menu, camview has no console: what it says goes to
//! `camview.log` in the user's state folder (`$XDG_STATE_HOME/camview`, by default
//! `~/.local/state/camview`), and to standard error as before (a terminal, or a script's pipe). Panics are
//! logged with their backtrace; a failure to start is also shown in a message box where a
//! desktop can show one (`show_failure`).

use std::io::IsTerminal;
use std::path::PathBuf;

/// Above this size the log is moved to `camview.log.1` (the one before is dropped) when the
/// viewer starts.
const ROTATE_BYTES: u64 = 1 << 20;

/// The target of what is written to the log file only (the terminal has it otherwise).
pub const FILE_ONLY: &str = "camview::log-file";

/// Where the log goes: `$XDG_STATE_HOME/camview/camview.log`, or under `~/.local/state`.
pub fn log_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join(super::APP_ID).join("camview.log"))
}

/// Starts logging for the viewer; the log file's path (`None` when there is no home folder, and
/// then standard error alone has the messages). Called once, before the window opens.
pub fn start() -> Option<PathBuf> {
    let path = log_path();
    let file = path.as_ref().and_then(|path| {
        std::fs::create_dir_all(path.parent()?).ok()?;
        if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
            let _ = std::fs::rename(path, path.with_extension("log.1"));
        }
        fern::log_file(path).ok()
    });
    let mut dispatch = fern::Dispatch::new()
        // camview's own messages; of the libraries' (winit, wgpu, eframe), warnings.
        .level(log::LevelFilter::Warn)
        .level_for("camview", log::LevelFilter::Info);
    if let Some(file) = file {
        dispatch = dispatch.chain(
            fern::Dispatch::new()
                .format(|out, message, record| {
                    out.finish(format_args!(
                        "{} {} {}: {message}",
                        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                        record.level(),
                        record.target()
                    ))
                })
                .chain(file),
        );
    }
    dispatch = dispatch.chain(
        fern::Dispatch::new()
            .filter(|meta| meta.target() != FILE_ONLY)
            .format(|out, message, _| out.finish(format_args!("camview: {message}")))
            .chain(std::io::stderr()),
    );
    // A second start (tests open several viewers in one process) keeps the first logger.
    if dispatch.apply().is_ok() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            log::error!(
                target: FILE_ONLY,
                "panic in thread {}: {info}\n{}",
                thread.name().unwrap_or("unnamed"),
                std::backtrace::Backtrace::force_capture()
            );
            previous(info);
        }));
    }
    log::info!(
        target: FILE_ONLY,
        "camview {} started: {}",
        env!("CARGO_PKG_VERSION"),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    path
}

/// Says that the viewer could not start: in the log, and in a message box when there is a
/// display to show one on (a desktop started camview from its menu: nobody sees stderr).
pub fn show_failure(message: &str, log: Option<&std::path::Path>) {
    log::error!(target: FILE_ONLY, "the viewer could not start: {message}");
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !has_display || std::io::stderr().is_terminal() {
        return;
    }
    let mut text = format!("camview could not start.\n\n{message}");
    if let Some(log) = log {
        text.push_str(&format!("\n\nDetails are in {}.", log.display()));
    }
    rfd::MessageDialog::new()
        .set_level(rfd::MessageLevel::Error)
        .set_title("camview")
        .set_description(text)
        .set_buttons(rfd::MessageButtons::Ok)
        .show();
}
