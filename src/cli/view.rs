//! No command: the viewer window, on the demo model or the model and images given.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::args::{MapArgs, ModelArgs};

/// The viewer's arguments (no command).
#[derive(Debug, Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The method and layer the viewer shows first.
    #[command(flatten)]
    pub map: MapArgs,
    /// Images (or folders) to open in the viewer; Left/Right walk through them.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

/// Opens the viewer window. Its log goes to a file as well (`gui::logging`); a failure to
/// start is also shown in a message box (started from a menu, nobody reads stderr).
#[cfg(feature = "gui")]
pub fn view(args: &ViewArgs, started: Instant) -> Result<ExitCode> {
    let log = crate::gui::logging::start();
    let opened = open_viewer(args, started);
    if let Err(e) = &opened {
        crate::gui::logging::show_failure(&format!("{e:#}"), log.as_deref());
    }
    opened
}

#[cfg(feature = "gui")]
fn open_viewer(args: &ViewArgs, started: Instant) -> Result<ExitCode> {
    let model = args.model.request()?;
    let choice = args.map.choice();
    choice.check().map_err(|e| {
        anyhow::anyhow!("{e}; use --method gradcam, or another method, at that layer")
    })?;
    let launch = crate::gui::Launch {
        model,
        images: super::args::expand_inputs(&args.images)?,
        method: choice.method,
        layer: choice.layer,
        started,
    };
    crate::gui::run(launch).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Without the viewer (built without the `gui` feature), only the commands work.
#[cfg(not(feature = "gui"))]
pub fn view(_args: &ViewArgs, _started: Instant) -> Result<ExitCode> {
    anyhow::bail!(
        "this camview was built without the viewer (feature gui); the commands predict, \
         render and batch work (see camview --help)"
    )
}
