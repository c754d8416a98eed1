//! `batch`: an overlay and a sidecar per image of files and folders, and one predictions.csv.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use super::args::{
    MapArgs, ModelArgs, SourceArgs, StyleArgs, classes_to_draw, image_inputs, resolve_class,
};
use super::render::{Drawing, write_overlay};
use super::shard::{
    self, BatchOptions, InputList, Manifest, ManifestImage, RunRecord, Shard, ShardArg, Timings,
};
use super::{Analysed, analyse_image, exit_for, message, report};
use crate::explain::MapChoice;
use crate::export::{self, ClassRecord, ImageRecord, Provenance};
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
    /// Finish an interrupted batch: an image whose overlay and sidecar are in the output
    /// folder, made by this camview from the same file (its SHA-256), model (its SHA-256,
    /// network, head and outputs), class names and settings, is not analysed again, and its
    /// row of predictions.csv is read from its sidecar. An overlay whose sidecar is missing
    /// (what a kill between the two leaves) is made again; one made otherwise is replaced only
    /// with --force.
    #[arg(long)]
    pub resume: bool,
    /// Analyse one shard of the inputs, for many machines or processes: I/N takes the inputs
    /// at positions I, I+N, I+2N, ... (from 1) of the whole list, and writes
    /// predictions-I-of-N.csv and manifest-I-of-N.json; `camview merge` joins the shards.
    /// auto: the index from a Slurm job array (SLURM_ARRAY_TASK_ID, of SLURM_ARRAY_TASK_COUNT);
    /// auto/N: from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, of N completions).
    #[arg(long, value_name = "I/N|auto|auto/N", value_parser = shard::parse_shard)]
    pub shard: Option<ShardArg>,
    /// Image files and folders (a folder's images, not its subfolders).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

/// One image of a batch: its overlay's provenance, or why there is none.
struct BatchRow {
    image: PathBuf,
    result: Result<Written>,
}

/// An overlay in the output folder and its provenance (what predictions.csv's row says).
struct Written {
    provenance: Provenance,
    overlay: PathBuf,
}

/// What the network stage hands to the writer.
enum Prepared {
    /// An analysed image with the class drawn and where its overlay goes.
    New {
        analysed: Box<Analysed>,
        class: usize,
        overlay: PathBuf,
        /// Whether the overlay may replace a file (`--force`, or `--resume` over an overlay
        /// whose sidecar is missing).
        replace: bool,
    },
    /// Found finished in the output folder (`--resume`).
    Finished(Box<Written>),
}

/// A prepared image as it leaves the network stage.
struct PreparedRow {
    image: PathBuf,
    result: Result<Prepared>,
}

pub fn batch(args: &BatchArgs) -> Result<ExitCode> {
    let shard = args
        .shard
        .map(|s| s.resolve(|name| std::env::var(name).ok()))
        .transpose()?;
    let classifier = args.model.load()?;
    let all_files = image_inputs(&args.inputs)?;
    // This shard's inputs and their positions in the whole list.
    let (positions, files): (Vec<usize>, Vec<PathBuf>) = all_files
        .iter()
        .enumerate()
        .filter(|(position, _)| shard.is_none_or(|s| s.holds(*position)))
        .map(|(position, file)| (position, file.clone()))
        .unzip();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output folder", args.out.display()))?;
    let csv_name = shard.map_or_else(|| "predictions.csv".to_string(), Shard::predictions_name);
    let csv_path = args.out.join(&csv_name);
    // A resumed batch rewrites its predictions.csv (written last, so it is whole or absent).
    let replace_csv = args.style.force || args.resume;
    export::check_destination(&csv_path, replace_csv, &[])?;
    if let Some(shard) = shard {
        export::check_destination(&args.out.join(shard.manifest_name()), replace_csv, &[])?;
    }
    if args.resume {
        for stale in export::remove_stale_temporaries(&args.out) {
            eprintln!(
                "camview: removed {}, left by a batch that was stopped",
                stale.display()
            );
        }
    }

    let progress = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let resumed_count = AtomicUsize::new(0);
    let rows = pipeline(&classifier, args, &files, &progress, &resumed_count)?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let failures = rows.iter().filter(|r| r.result.is_err()).count();
    let csv = predictions_csv(&classifier, &rows)?;
    export::write_atomic(&csv_path, replace_csv, |w| w.write_all(&csv))?;
    let (shard_note, manifest_note) = match shard {
        Some(shard) => {
            let manifest = Manifest {
                shard,
                inputs: InputList::of(&all_files),
                run: RunRecord::of_run(&classifier, &args.style, &args.map.choice()),
                options: batch_options(args),
                predictions: csv_name,
                images: rows
                    .iter()
                    .zip(&positions)
                    .map(|(row, &position)| ManifestImage {
                        position,
                        image: row.image.display().to_string(),
                        overlay: row
                            .result
                            .as_ref()
                            .ok()
                            .map(|w| w.overlay.display().to_string()),
                        error: row.result.as_ref().err().map(message),
                    })
                    .collect(),
                timings: Timings {
                    host: export::host_name(),
                    started: started_at,
                    seconds,
                    images_per_second: rows.len() as f64 / seconds.max(1e-9),
                    resumed: resumed_count.load(Ordering::Relaxed),
                },
            };
            let path = manifest.write(&args.out, replace_csv)?;
            (
                format!(
                    "shard {} of {} ({} of {} inputs): ",
                    shard.index,
                    shard.count,
                    files.len(),
                    all_files.len()
                ),
                format!(" and {}", path.display()),
            )
        }
        None => Default::default(),
    };
    let resumed = if args.resume {
        format!(
            " ({} found finished)",
            resumed_count.load(Ordering::Relaxed)
        )
    } else {
        String::new()
    };
    eprintln!(
        "camview: {shard_note}{} of {} images done{resumed}, {failures} failed, in {seconds:.1} s ({:.1} images/s); wrote {}{manifest_note}",
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
    resumed: &AtomicUsize,
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
        network_stage(classifier, args, decoded_rx, analysed_tx, resumed);
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
    analysed: SyncSender<PreparedRow>,
    resumed: &AtomicUsize,
) {
    let choice = args.map.choice();
    let mut used_names = HashSet::new();
    for Decoded { path, image } in decoded {
        let result = image.and_then(|image| {
            let finished = if args.resume {
                finished(classifier, args, &choice, &path, &image)?
            } else {
                None
            };
            match finished {
                Some(done) => {
                    claim_name(&mut used_names, &path, &done.overlay)?;
                    resumed.fetch_add(1, Ordering::Relaxed);
                    Ok(Prepared::Finished(Box::new(done)))
                }
                None => prepare(classifier, args, &choice, &path, image, &mut used_names),
            }
        });
        let row = PreparedRow {
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
) -> Result<Prepared> {
    let classes = classes_to_draw(classifier, args.class.as_deref(), args.style.normalisation)?;
    let analysed = analyse_image(classifier, image, choice, &classes)?;
    let class = resolve_class(
        classifier,
        args.class.as_deref(),
        analysed.analysis.predicted,
    )?;
    let overlay = overlay_path(classifier, args, choice, path, class);
    claim_name(used_names, path, &overlay)?;
    // Under --resume an overlay without its sidecar is what a kill between the two writes
    // leaves: it is made again.
    let orphan = args.resume && !export::sidecar_path(&overlay).exists();
    Ok(Prepared::New {
        analysed: Box::new(analysed),
        class,
        overlay,
        replace: args.style.force || orphan,
    })
}

/// Where `class`'s overlay of the image `path` goes in the output folder.
fn overlay_path(
    classifier: &Classifier,
    args: &BatchArgs,
    choice: &MapChoice,
    path: &Path,
    class: usize,
) -> PathBuf {
    let name =
        export::default_overlay_path(path, &classifier.labels[class], choice.method, choice.layer);
    args.out.join(name.file_name().unwrap_or_default())
}

/// Refuses a second input that would write the same overlay as an earlier one.
fn claim_name(used_names: &mut HashSet<PathBuf>, path: &Path, overlay: &Path) -> Result<()> {
    if !used_names.insert(overlay.to_path_buf()) {
        bail!(
            "{}: another input already wrote {}",
            path.display(),
            overlay.display()
        );
    }
    Ok(())
}

/// `--resume`: the overlay of `image` (the file `path`) already in the output folder, if its
/// sidecar says it was made as this run would make it (`made_alike`).
fn finished(
    classifier: &Classifier,
    args: &BatchArgs,
    choice: &MapChoice,
    path: &Path,
    image: &SourceImage,
) -> Result<Option<Written>> {
    // The class drawn: the one asked for, or (unknown until the network runs) any.
    let asked = match args.class.as_deref() {
        Some(class) => Some(resolve_class(classifier, Some(class), 0)?),
        None => None,
    };
    let record = ImageRecord::of(
        image,
        Some(path),
        classifier.preprocessing.window.as_ref(),
        args.style.display().as_ref(),
        args.source.provenance,
    );
    let run = RunRecord::of_run(classifier, &args.style, choice);
    let candidates: Vec<usize> =
        asked.map_or_else(|| (0..classifier.labels.len()).collect(), |c| vec![c]);
    for class in candidates {
        let overlay = overlay_path(classifier, args, choice, path, class);
        let sidecar = export::sidecar_path(&overlay);
        let Ok(text) = std::fs::read(&sidecar) else {
            continue;
        };
        let alike = Provenance::from_json(&text)
            .filter(|done| overlay.is_file() && made_alike(done, &run, &record, asked));
        if let Some(provenance) = alike {
            return Ok(Some(Written {
                provenance,
                overlay,
            }));
        }
    }
    Ok(None)
}

/// Whether `done`, an overlay's provenance, is what this run writes for the image `record`
/// apart from what the network computes: the same run record (camview, model wherever its file
/// now is, class names, preprocessing, map, style, decorations), image record (file, hash,
/// frame, windows) and class (`asked`, or the predicted one).
fn made_alike(
    done: &Provenance,
    run: &RunRecord,
    record: &ImageRecord,
    asked: Option<usize>,
) -> bool {
    RunRecord::of_provenance(done).as_ref() == Some(run)
        // As written: the record's patient data and UIDs are not in a sidecar (serde skip).
        && serde_json::to_value(&done.image).ok() == serde_json::to_value(record).ok()
        && done.class.index == asked.unwrap_or(done.predicted.index)
}

/// The settings of `args` that a manifest records besides the run record.
fn batch_options(args: &BatchArgs) -> BatchOptions {
    BatchOptions {
        class: args.class.clone(),
        frame: args.source.frame.frame,
        provenance: args.source.provenance.name().to_string(),
        display_window: args.style.display(),
    }
}

fn write_stage(
    classifier: &Classifier,
    args: &BatchArgs,
    analysed: Receiver<PreparedRow>,
    count: usize,
    progress: &indicatif::ProgressBar,
) -> Vec<BatchRow> {
    let drawing = Drawing::new(classifier, &args.style, args.source.provenance);
    let mut rows = Vec::with_capacity(count);
    for PreparedRow {
        image: path,
        result,
    } in analysed
    {
        progress.set_message(path.display().to_string());
        let result = result.and_then(|prepared| match prepared {
            Prepared::Finished(written) => Ok(*written),
            Prepared::New {
                analysed,
                class,
                overlay,
                replace,
            } => {
                let provenance =
                    write_overlay(&drawing, &analysed, &path, class, &overlay, replace)?;
                Ok(Written {
                    provenance,
                    overlay,
                })
            }
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
            Ok(Written {
                provenance: p,
                overlay,
            }) => {
                record.extend([
                    "ok".to_string(),
                    p.image.width.to_string(),
                    p.image.height.to_string(),
                    p.predicted.index.to_string(),
                    p.predicted.label.clone(),
                    p.class.index.to_string(),
                    overlay.display().to_string(),
                ]);
                record.extend(p.probabilities.iter().map(|p| format!("{p:.6}")));
                record.push(String::new());
                let join = |f: &dyn Fn(&ClassRecord) -> String| {
                    p.positives.iter().map(f).collect::<Vec<_>>().join(";")
                };
                record.push(join(&|c| c.index.to_string()));
                record.push(join(&|c| c.label.clone()));
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
