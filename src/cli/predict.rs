//! `predict`: the top classes of each image, and with `--map` where the predicted class's map
//! peaks. A multi-label (sigmoid) model's findings are its positive classes, several or none.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::args::{MapArgs, ModelArgs, SourceArgs, image_inputs};
use super::{Analysed, analyse_file, exit_for, report};
use crate::explain::{self, ClassActivationMap, Classes, Method, Stage};
use crate::export::ImageDetails;
use crate::imaging::Preprocessing;
use crate::network::{Activation, Classifier, ModelInfo};

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also compute the predicted class's map and report where it peaks (with --method,
    /// --layer; off by default, as predict needs only the forward pass).
    #[arg(long)]
    pub map: bool,
    #[command(flatten)]
    pub map_args: MapArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Images (or folders of images) to classify.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

#[derive(Serialize)]
struct PredictRecord<'a> {
    image: String,
    width: u32,
    height: u32,
    /// The file's SHA-256, the safe DICOM attributes, the window the network saw.
    #[serde(flatten)]
    details: ImageDetails,
    model: &'a ModelInfo,
    preprocessing: UsedPreprocessing<'a>,
    logits: &'a [f32],
    probabilities: &'a [f32],
    /// How `probabilities` were computed (also in `model`, with the thresholds).
    activation: Activation,
    /// The class with the largest logit (the class `--map` explains).
    predicted: usize,
    /// The positive findings in class order: under sigmoid every class at or above its
    /// threshold (maybe none, maybe several); under softmax `[predicted]`.
    positives: &'a [usize],
    labels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    map: Option<MapPeak>,
}

/// How the image became the network's input: the model's preprocessing (its sidecar's, or the
/// default, with the command line's overrides) and the network's input channels.
#[derive(Serialize)]
struct UsedPreprocessing<'a> {
    channels: usize,
    #[serde(flatten)]
    preprocessing: &'a Preprocessing,
}

/// Where the predicted class's map peaks (`predict --map`).
#[derive(Serialize)]
struct MapPeak {
    method: Method,
    layer: Stage,
    /// The map's size (the layer's resolution).
    width: usize,
    height: usize,
    /// The peak's centre in image pixels.
    peak: (f64, f64),
    /// The raw map's range.
    range: (f32, f32),
}

impl MapPeak {
    fn of(map: &ClassActivationMap) -> Self {
        let best = map
            .values
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .map_or(0, |(i, _)| i);
        let (col, row) = (best % map.width.max(1), best / map.width.max(1));
        let r = map.region;
        Self {
            method: map.method,
            layer: map.layer,
            width: map.width,
            height: map.height,
            peak: (
                r.x + (col as f64 + 0.5) * r.width / map.width.max(1) as f64,
                r.y + (row as f64 + 0.5) * r.height / map.height.max(1) as f64,
            ),
            range: map.min_max(),
        }
    }
}

pub fn predict(args: &PredictArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    // Without --map, only the forward pass: its maps (CAM at norm5) come with it.
    let choice = if args.map {
        args.map_args.choice()
    } else {
        explain::forward_pass_choice(&classifier)
    };
    let mut failures = 0;
    for path in &image_inputs(&args.images)? {
        match analyse_file(
            &classifier,
            path,
            &args.source.frame,
            &choice,
            &Classes::Predicted,
        ) {
            Ok(a) => print_prediction(&classifier, path, &a, args)?,
            Err(e) => {
                report(&e);
                failures += 1;
            }
        }
    }
    Ok(exit_for(failures))
}

fn print_prediction(
    classifier: &Classifier,
    path: &std::path::Path,
    a: &Analysed,
    args: &PredictArgs,
) -> Result<()> {
    let predicted = a.analysis.predicted;
    let peak = if args.map {
        Some(MapPeak::of(a.map(predicted)?))
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let record = PredictRecord {
            image: path.display().to_string(),
            width: a.image.width(),
            height: a.image.height(),
            details: ImageDetails::of(
                &a.image,
                classifier.preprocessing.window.as_ref(),
                None,
                args.source.provenance,
            ),
            model: &classifier.info,
            preprocessing: UsedPreprocessing {
                channels: classifier.config().in_channels,
                preprocessing: &classifier.preprocessing,
            },
            logits: &a.analysis.logits,
            probabilities: &a.analysis.probabilities,
            activation: a.analysis.activation,
            predicted,
            positives: &a.analysis.positives,
            labels: &classifier.labels,
            map: peak,
        };
        writeln!(out, "{}", serde_json::to_string(&record)?)?;
        return Ok(());
    }
    writeln!(out, "{}: {}", path.display(), findings(classifier, a))?;
    if let Some(m) = &peak {
        writeln!(
            out,
            "  {} at {}: peak at ({:.0}, {:.0})",
            m.method, m.layer, m.peak.0, m.peak.1
        )?;
    }
    let analysis = &a.analysis;
    let multi_label = analysis.activation == Activation::Sigmoid;
    // The five most probable classes, and under sigmoid every positive one too.
    for (rank, c) in analysis.ranked().into_iter().enumerate() {
        let positive = multi_label && analysis.is_positive(c);
        if rank >= 5 && !positive {
            continue;
        }
        writeln!(
            out,
            "  {:>6.2}%  {}{}",
            100.0 * analysis.probabilities[c],
            classifier.labels[c],
            if positive { "  (positive)" } else { "" }
        )?;
    }
    Ok(())
}

/// The first line's verdict: the predicted class under softmax; under sigmoid the positive
/// findings, or that there is none (then the most probable class, so the line says something).
fn findings(classifier: &Classifier, a: &Analysed) -> String {
    let analysis = &a.analysis;
    let named = |c: usize| {
        format!(
            "{} ({:.1}%)",
            classifier.labels[c],
            100.0 * analysis.probabilities[c]
        )
    };
    match analysis.activation {
        Activation::Softmax => named(analysis.predicted),
        Activation::Sigmoid if analysis.positives.is_empty() => format!(
            "no class at or above its threshold (sigmoid); the most probable is {}",
            named(analysis.predicted)
        ),
        Activation::Sigmoid => {
            let names: Vec<String> = (analysis.ranked().into_iter())
                .filter(|&c| analysis.is_positive(c))
                .map(named)
                .collect();
            format!("positive (sigmoid): {}", names.join(", "))
        }
    }
}
