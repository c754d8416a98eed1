//! `faithfulness`: deletion and insertion curves of a map, their AUC, Average Drop and Increase
//! in Confidence.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::args::{
    BarProgress, FrameArgs, MapArgs, ModelArgs, classes_to_draw, expand_inputs, resolve_class,
};
use super::{analyse_file, exit_for, report};
use crate::explain::faithfulness::{self, Faithfulness, FaithfulnessOptions, FaithfulnessSummary};
use crate::explain::{MapChoice, Method, Normalisation, Stage};
use crate::network::Classifier;

#[derive(Debug, Args)]
pub struct FaithfulnessArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub map: MapArgs,
    #[command(flatten)]
    pub frame: FrameArgs,
    /// Class whose map is scored, by index or name; each image's predicted class by default.
    #[arg(long, value_name = "INDEX|NAME")]
    pub class: Option<String>,
    /// Steps of the deletion and insertion curves (one forward pass per step and curve).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub steps: u16,
    /// One JSON object per image (with both curves), then one with the summary.
    #[arg(long)]
    pub json: bool,
    /// Images (or folders) to score.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

#[derive(Serialize)]
struct FaithfulnessRecord<'a> {
    image: String,
    method: Method,
    layer: Stage,
    label: &'a str,
    #[serde(flatten)]
    scores: &'a Faithfulness,
}

pub fn faithfulness_command(args: &FaithfulnessArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let files = expand_inputs(&args.images)?;
    let options = FaithfulnessOptions {
        steps: usize::from(args.steps),
        ..FaithfulnessOptions::default()
    };
    let choice = args.map.choice();
    let mut failures = 0;
    let mut all = Vec::new();
    for path in &files {
        let scores = match score(&classifier, path, args, &choice, &options) {
            Ok(s) => s,
            Err(e) => {
                report(&e);
                failures += 1;
                continue;
            }
        };
        print_scores(&classifier, path, &choice, &scores, args.json)?;
        all.push(scores);
    }
    let summary = FaithfulnessSummary::of(&all);
    if args.json {
        #[derive(Serialize)]
        struct Summary {
            summary: FaithfulnessSummary,
        }
        println!("{}", serde_json::to_string(&Summary { summary })?);
    } else if all.len() > 1 {
        print_faithfulness_summary(&summary);
    }
    Ok(exit_for(failures))
}

/// The scores of one image's map of `class` (the predicted one by default).
fn score(
    classifier: &Classifier,
    path: &Path,
    args: &FaithfulnessArgs,
    choice: &MapChoice,
    options: &FaithfulnessOptions,
) -> Result<Faithfulness> {
    let classes = classes_to_draw(classifier, args.class.as_deref(), Normalisation::PerMap)?;
    let a = analyse_file(classifier, path, &args.frame, choice, &classes)?;
    let class = resolve_class(classifier, args.class.as_deref(), a.analysis.predicted)?;
    let progress = BarProgress::new(&format!("faithfulness {}", a.image.name));
    let scores = faithfulness::faithfulness(
        classifier,
        &a.analysis.input,
        a.map(class)?,
        options,
        &progress,
    );
    progress.0.finish_and_clear();
    scores.with_context(|| format!("{}: cannot score the map", path.display()))
}

fn print_scores(
    classifier: &Classifier,
    path: &Path,
    choice: &MapChoice,
    scores: &Faithfulness,
    json: bool,
) -> Result<()> {
    let label = &classifier.labels[scores.class];
    if json {
        let record = FaithfulnessRecord {
            image: path.display().to_string(),
            method: choice.method,
            layer: choice.layer,
            label,
            scores,
        };
        println!("{}", serde_json::to_string(&record)?);
        return Ok(());
    }
    println!(
        "{}: {label} ({:.1}%), {} at {}: deletion AUC {:.4}, insertion AUC {:.4}, \
         drop {:.1}%, confidence {}",
        path.display(),
        100.0 * scores.probability,
        choice.method,
        choice.layer,
        scores.deletion.auc,
        scores.insertion.auc,
        scores.drop_percent,
        if scores.increase {
            "increased"
        } else {
            "did not increase"
        }
    );
    Ok(())
}

/// The summary lines `faithfulness` and `eval` print.
pub(super) fn print_faithfulness_summary(s: &FaithfulnessSummary) {
    println!(
        "deletion AUC     {:.4} (lower is better; mean of {} maps)",
        s.deletion_auc, s.images
    );
    println!("insertion AUC    {:.4} (higher is better)", s.insertion_auc);
    println!("average drop     {:.2}% (lower is better)", s.average_drop);
    println!(
        "increase in conf {:.2}% (higher is better)",
        s.increase_in_confidence
    );
}
