//! The command line: `predict`, `render`, `batch` (and `merge` of its shards), `faithfulness`,
//! `sanity`, the demo model's `demo-data`, `train` and `eval`, and, with no command, the
//! viewer. Scripts depend on its exact contract (README.md, "Command line").
//!
//! `args` turns arguments into the engine's requests; each command has its own file; every
//! command that draws a map goes through `analyse_image` (the engine's one analysis path) and
//! `render::write_overlay` (its one composition).

mod args;
mod batch;
mod faithfulness;
mod predict;
mod render;
mod sanity;
mod shard;
mod training;
mod view;

pub use training::{DEMO_LABELS, EvalReport};

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::explain::{
    self, Analysis, AnalysisError, ClassActivationMap, Classes, ExplainError, MapChoice,
};
use crate::export::ExportError;
use crate::imaging::SourceImage;
use crate::network::Classifier;
use crate::training::synth::SynthError;
use args::BarProgress;

#[derive(Debug, Parser)]
#[command(
    name = "camview",
    version,
    about = "See which part of an image made a DenseNet classifier decide what it did (class activation maps)."
)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "With no command, camview opens the viewer window: `camview` shows the demo model \
                  on a demo image, `camview IMAGE...` and `camview --model CKPT [--labels FILE] \
                  [IMAGE...]` open those (a folder opens its images)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub view: view::ViewArgs,
    /// Most memory one image may take (e.g. 6G, 512M; 0: no limit): a larger image is refused
    /// from its header, before its pixels are decoded. Half of this machine's memory unless
    /// CAMVIEW_MEMORY_BUDGET says otherwise.
    #[arg(long, global = true, value_name = "SIZE", value_parser = crate::imaging::budget::parse_bytes)]
    pub memory_budget: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify images and print the top classes.
    Predict(predict::PredictArgs),
    /// Draw one image's class activation map over it and save the overlay.
    Render(render::RenderArgs),
    /// Overlays, sidecars and a predictions.csv for every image of files or folders.
    Batch(batch::BatchArgs),
    /// Write synthetic scans with lesion masks (the demo model's data).
    DemoData(training::DemoDataArgs),
    /// Train a compact DenseNet on synthetic scans or a demo-data folder.
    Train(training::TrainArgs),
    /// Classification and localisation scores (pointing game, IoU, energy) of a model.
    Eval(training::EvalArgs),
    /// How faithful a map is to the model: deletion and insertion curves and their AUC,
    /// Average Drop and Increase in Confidence.
    Faithfulness(faithfulness::FaithfulnessArgs),
    /// Does the map depend on what the model learned? Randomises the model module by module
    /// and compares each map with the trained model's (Adebayo et al. 2018).
    Sanity(sanity::SanityArgs),
    /// Join the shards of a batch (`batch --shard I/N`) into one predictions.csv, as one
    /// machine would have written it, after checking they were made alike and cover every
    /// input once.
    Merge(shard::MergeArgs),
}

/// Entry point of the binary: every failure is one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    if let Some(bytes) = cli.memory_budget {
        crate::imaging::budget::set_memory_budget((bytes > 0).then_some(bytes));
    }
    let result = match cli.command {
        None => view::view(&cli.view, started),
        Some(Command::Predict(args)) => predict::predict(&args),
        Some(Command::Render(args)) => render::render_command(&args),
        Some(Command::Batch(args)) => batch::batch(&args),
        Some(Command::DemoData(args)) => training::demo_data(&args),
        Some(Command::Train(args)) => training::train_command(&args),
        Some(Command::Eval(args)) => training::eval_command(&args),
        Some(Command::Faithfulness(args)) => faithfulness::faithfulness_command(&args),
        Some(Command::Sanity(args)) => sanity::sanity_command(&args),
        Some(Command::Merge(args)) => shard::merge_command(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error as the one line the user sees.
fn report(e: &anyhow::Error) {
    eprintln!("camview: {}", message(e));
}

/// An error in one line: its chain of causes, then what to do about it on the command line
/// (the engine's messages name no flag, so the hints are added here).
fn message(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    match hint(e) {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
    }
}

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    const FORCE: &str = "use --force to replace it";
    e.chain().find_map(|cause| {
        if let Some(ExportError::Exists { .. }) = cause.downcast_ref() {
            return Some(FORCE);
        }
        if let Some(SynthError::Exists { .. }) = cause.downcast_ref() {
            return Some(FORCE);
        }
        match cause.downcast_ref() {
            Some(AnalysisError::Map {
                reason: ExplainError::CamNeedsNorm5 { .. },
                ..
            }) => Some("use --method gradcam, or another method, at that layer"),
            Some(AnalysisError::Map {
                reason: ExplainError::CamNeedsLinearHead { .. },
                ..
            }) => Some("use --method gradcam, or another method but cam"),
            _ => None,
        }
    })
}

fn exit_for(failures: usize) -> ExitCode {
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One image with its analysis by the chosen map.
struct Analysed {
    image: SourceImage,
    analysis: Analysis,
}

impl Analysed {
    /// `class`'s map (computed, as the command asked for the maps it draws).
    fn map(&self, class: usize) -> Result<&ClassActivationMap> {
        self.analysis.map(class).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the map of class {class} was not computed",
                self.image.name
            )
        })
    }
}

/// The engine's one analysis path (`explain::explain_image`), with a progress bar for the slow
/// methods.
fn analyse_image(
    classifier: &Classifier,
    image: SourceImage,
    choice: &MapChoice,
    classes: &Classes,
) -> Result<Analysed> {
    let progress = BarProgress::new(&format!("{} {}", choice.method, image.name));
    let analysis = explain::explain_image(classifier, &image, choice, classes, &progress);
    progress.0.finish_and_clear();
    Ok(Analysed {
        analysis: analysis?,
        image,
    })
}

/// [`analyse_image`] of a file (at the frame `source` asks for).
fn analyse_file(
    classifier: &Classifier,
    path: &Path,
    frame: &args::FrameArgs,
    choice: &MapChoice,
    classes: &Classes,
) -> Result<Analysed> {
    analyse_image(classifier, frame.open(path)?, choice, classes)
}
