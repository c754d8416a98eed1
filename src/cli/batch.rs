//! `batch`: an overlay and a sidecar per image of files and folders, and one predictions.csv.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use super::args::{
    MapArgs, ModelArgs, SourceArgs, StyleArgs, classes_to_draw, image_inputs, resolve_class,
};
use super::render::write_overlay;
use super::{Analysed, analyse_image, exit_for, message, report};
use crate::explain::MapChoice;
use crate::export;
use crate::imaging::{self, SourceImage};
use crate::network::Classifier;

#[derive(Debug, Args)]
pub struct BatchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Class to draw, by index or name; each image's predicted class by default.
    #[arg(long, value_name = "INDEX|NAME")]
    pub class: Option<String>,
    #[command(flatten)]
    pub map: MapArgs,
    #[command(flatten)]
    pub style: StyleArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Image files and folders (a folder's images, not its subfolders).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

/// One image of a batch: its analysis (then its overlay), or why there is none.
struct BatchRow {
    image: PathBuf,
    result: Result<Rendered>,
}

/// An analysed image with the class drawn and where its overlay goes.
struct Rendered {
    analysed: Analysed,
    class: usize,
    overlay: PathBuf,
}

pub fn batch(args: &BatchArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let files = image_inputs(&args.inputs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output folder", args.out.display()))?;
    let csv_path = args.out.join("predictions.csv");
    export::check_destination(&csv_path, args.style.force, &[])?;

    let progress = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let rows = pipeline(&classifier, args, &files, &progress)?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let failures = rows.iter().filter(|r| r.result.is_err()).count();
    let csv = predictions_csv(&classifier, &rows)?;
    export::write_atomic(&csv_path, args.style.force, |w| w.write_all(&csv))?;
    eprintln!(
        "camview: {} of {} images done, {failures} failed, in {seconds:.1} s ({:.1} images/s); wrote {}",
        rows.len() - failures,
        rows.len(),
        rows.len() as f64 / seconds.max(1e-9),
        csv_path.display()
    );
    Ok(exit_for(failures))
}

/// Images in flight between two stages of the pipeline.
const PIPELINE_DEPTH: usize = 2;

/// The work as three stages joined by bounded channels, so that decoding the next image and
/// composing + writing the previous one overlap with the network: a decoder thread, the
/// network on this thread (the engine's one analysis path, with the chosen method), a writer
/// thread. Rows come back in the order of `files`.
fn pipeline(
    classifier: &Classifier,
    args: &BatchArgs,
    files: &[PathBuf],
    progress: &indicatif::ProgressBar,
) -> Result<Vec<BatchRow>> {
    let (decoded_tx, decoded_rx) = sync_channel(PIPELINE_DEPTH);
    let (analysed_tx, analysed_rx) = sync_channel(PIPELINE_DEPTH);
    std::thread::scope(|scope| {
        let decoder = std::thread::Builder::new()
            .name("camview-decode".into())
            .spawn_scoped(scope, move || {
                decode_stage(files, args.source.frame.frame, &decoded_tx)
            })
            .context("cannot start the decoding thread")?;
        let writer = std::thread::Builder::new()
            .name("camview-write".into())
            .spawn_scoped(scope, move || {
                write_stage(classifier, args, analysed_rx, files.len(), progress)
            })
            .context("cannot start the writing thread")?;
        network_stage(classifier, args, decoded_rx, analysed_tx);
        if let Err(panic) = decoder.join() {
            std::panic::resume_unwind(panic);
        }
        match writer.join() {
            Ok(rows) => Ok(rows),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// An input file as the decoder leaves it.
struct Decoded {
    path: PathBuf,
    image: Result<SourceImage>,
}

fn decode_stage(files: &[PathBuf], frame: u32, decoded: &SyncSender<Decoded>) {
    for path in files {
        let image = imaging::open_image_frame(path, frame).map_err(anyhow::Error::from);
        if decoded
            .send(Decoded {
                path: path.clone(),
                image,
            })
            .is_err()
        {
            break;
        }
    }
}

/// Analyses each decoded image by the chosen map and names its overlay; two inputs that would
/// write the same overlay are refused rather than overwrite each other.
fn network_stage(
    classifier: &Classifier,
    args: &BatchArgs,
    decoded: Receiver<Decoded>,
    analysed: SyncSender<BatchRow>,
) {
    let choice = args.map.choice();
    let mut used_names = HashSet::new();
    for Decoded { path, image } in decoded {
        let result = image
            .and_then(|image| prepare(classifier, args, &choice, &path, image, &mut used_names));
        let row = BatchRow {
            image: path,
            result,
        };
        if analysed.send(row).is_err() {
            break;
        }
    }
}

fn prepare(
    classifier: &Classifier,
    args: &BatchArgs,
    choice: &MapChoice,
    path: &Path,
    image: SourceImage,
    used_names: &mut HashSet<PathBuf>,
) -> Result<Rendered> {
    let classes = classes_to_draw(classifier, args.class.as_deref(), args.style.normalisation)?;
    let analysed = analyse_image(classifier, image, choice, &classes)?;
    let class = resolve_class(
        classifier,
        args.class.as_deref(),
        analysed.analysis.predicted,
    )?;
    let name =
        export::default_overlay_path(path, &classifier.labels[class], choice.method, choice.layer);
    let overlay = args.out.join(name.file_name().unwrap_or_default());
    if !used_names.insert(overlay.clone()) {
        bail!(
            "{}: another input already wrote {}",
            path.display(),
            overlay.display()
        );
    }
    Ok(Rendered {
        analysed,
        class,
        overlay,
    })
}

fn write_stage(
    classifier: &Classifier,
    args: &BatchArgs,
    analysed: Receiver<BatchRow>,
    count: usize,
    progress: &indicatif::ProgressBar,
) -> Vec<BatchRow> {
    let mut rows = Vec::with_capacity(count);
    for BatchRow {
        image: path,
        result,
    } in analysed
    {
        progress.set_message(path.display().to_string());
        let result = result.and_then(|r| {
            write_overlay(
                classifier,
                &r.analysed,
                &path,
                r.class,
                &args.style,
                args.source.provenance,
                &r.overlay,
            )?;
            Ok(r)
        });
        if let Err(e) = &result {
            progress.suspend(|| report(e));
        }
        rows.push(BatchRow {
            image: path,
            result,
        });
        progress.inc(1);
    }
    rows
}

fn predictions_csv(classifier: &Classifier, rows: &[BatchRow]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "image",
        "status",
        "width",
        "height",
        "predicted",
        "predicted_label",
        "class",
        "overlay",
    ]
    .map(String::from)
    .to_vec();
    header.extend(classifier.labels.iter().map(|l| format!("p_{l}")));
    header.push("error".into());
    // Appended after the columns scripts already read: the positive findings (under sigmoid
    // every class at or above its threshold, under softmax the predicted class), ';'-separated.
    header.extend(["positives".into(), "positive_labels".into()]);
    w.write_record(&header)?;
    for row in rows {
        let mut record = vec![row.image.display().to_string()];
        match &row.result {
            Ok(Rendered {
                analysed: a,
                class,
                overlay,
            }) => {
                let p = a.analysis.predicted;
                record.extend([
                    "ok".to_string(),
                    a.image.width().to_string(),
                    a.image.height().to_string(),
                    p.to_string(),
                    classifier.labels[p].clone(),
                    class.to_string(),
                    overlay.display().to_string(),
                ]);
                record.extend(a.analysis.probabilities.iter().map(|p| format!("{p:.6}")));
                record.push(String::new());
                let positives = &a.analysis.positives;
                let join = |f: &dyn Fn(usize) -> String| {
                    positives
                        .iter()
                        .map(|&c| f(c))
                        .collect::<Vec<_>>()
                        .join(";")
                };
                record.push(join(&|c| c.to_string()));
                record.push(join(&|c| classifier.labels[c].clone()));
            }
            Err(e) => {
                record.push("error".into());
                record.extend(std::iter::repeat_n(
                    String::new(),
                    6 + classifier.labels.len(),
                ));
                record.push(message(e));
                record.extend([String::new(), String::new()]);
            }
        }
        w.write_record(&record)?;
    }
    w.into_inner()
        .map_err(|e| anyhow!("cannot build predictions.csv: {e}"))
}
