//! `sanity`: the model randomisation test (`explain::sanity`) of one image's map.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::analyse_file;
use super::args::{BarProgress, FrameArgs, MapArgs, ModelArgs, classes_to_draw, resolve_class};
use crate::explain::sanity::{Randomisation, SanityReport, Similarity, sanity_check};
use crate::explain::{Method, Normalisation, Stage};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Randomise from the top down, keeping the modules above random.
    Cascading,
    /// Randomise each module alone.
    Independent,
}

#[derive(Debug, Args)]
pub struct SanityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub map: MapArgs,
    #[command(flatten)]
    pub frame: FrameArgs,
    /// Class whose map is tested, by index or name; the predicted class by default.
    #[arg(long, value_name = "INDEX|NAME")]
    pub class: Option<String>,
    /// Which modules each step randomises.
    #[arg(long, value_enum, default_value = "cascading")]
    pub mode: ModeArg,
    /// Seed of the random weights (the same seed gives the same weights and scores).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One JSON object with every step's scores.
    #[arg(long)]
    pub json: bool,
    /// The image to test.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
}

#[derive(Serialize)]
struct StepRecord<'a> {
    randomised: &'a [String],
    #[serde(flatten)]
    similarity: JsonSimilarity,
}

/// NaN (undefined) scores as JSON nulls.
#[derive(Serialize)]
struct JsonSimilarity {
    spearman: Option<f64>,
    spearman_abs: Option<f64>,
    ssim: Option<f64>,
    hog: Option<f64>,
}

impl From<&Similarity> for JsonSimilarity {
    fn from(s: &Similarity) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        Self {
            spearman: finite(s.spearman),
            spearman_abs: finite(s.spearman_abs),
            ssim: finite(s.ssim),
            hog: finite(s.hog),
        }
    }
}

#[derive(Serialize)]
struct Record<'a> {
    image: String,
    model_sha256: &'a str,
    class: usize,
    label: &'a str,
    method: Method,
    layer: Stage,
    mode: Randomisation,
    seed: u64,
    steps: Vec<StepRecord<'a>>,
}

pub fn sanity_command(args: &SanityArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let choice = args.map.choice();
    let classes = classes_to_draw(&classifier, args.class.as_deref(), Normalisation::PerMap)?;
    let analysed = analyse_file(&classifier, &args.image, &args.frame, &choice, &classes)?;
    let class = resolve_class(
        &classifier,
        args.class.as_deref(),
        analysed.analysis.predicted,
    )?;
    let mode = match args.mode {
        ModeArg::Cascading => Randomisation::Cascading,
        ModeArg::Independent => Randomisation::Independent,
    };
    let progress = BarProgress::new(&format!("sanity {}", analysed.image.name));
    let report = sanity_check(
        &classifier,
        &analysed.image,
        &choice,
        class,
        mode,
        args.seed,
        &progress,
    );
    progress.0.finish_and_clear();
    let report =
        report.with_context(|| format!("{}: cannot run the sanity check", args.image.display()))?;
    let label = &classifier.labels[class];
    if args.json {
        let record = Record {
            image: args.image.display().to_string(),
            model_sha256: &classifier.info.sha256,
            class,
            label,
            method: choice.method,
            layer: choice.layer,
            mode,
            seed: args.seed,
            steps: report
                .steps
                .iter()
                .map(|s| StepRecord {
                    randomised: &s.randomised,
                    similarity: (&s.similarity).into(),
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&record)?);
    } else {
        print_table(&args.image.display().to_string(), label, &report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(image: &str, label: &str, report: &SanityReport) {
    let mode = match report.mode {
        Randomisation::Cascading => "cascading",
        Randomisation::Independent => "independent",
    };
    println!(
        "{image}: {label}, {} at {}, {mode} randomisation, seed {}",
        report.choice.method, report.choice.layer, report.seed
    );
    println!(
        "similarity to the trained model's map (1: unchanged, 0: unrelated)\n\
         {:<28} {:>9} {:>11} {:>7} {:>7}",
        "randomised", "Spearman", "|Spearman|", "SSIM", "HOG"
    );
    let score = |v: f64| {
        if v.is_finite() {
            format!("{v:.3}")
        } else {
            "-".to_string()
        }
    };
    for step in &report.steps {
        let name = match report.mode {
            Randomisation::Cascading if step.randomised.len() > 1 => {
                format!("+ {}", step.randomised.last().map_or("", String::as_str))
            }
            _ => step.randomised.join(", "),
        };
        let s = &step.similarity;
        println!(
            "{name:<28} {:>9} {:>11} {:>7} {:>7}",
            score(s.spearman),
            score(s.spearman_abs),
            score(s.ssim),
            score(s.hog)
        );
    }
}
