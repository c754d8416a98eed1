//! `demo-data`, `train` and `eval`: the commands that make the demo model honestly and measure
//! whether its maps point at the lesions (the tooling itself is `crate::training`).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::Tensor;
use clap::Args;
use image::{GrayImage, RgbImage};
use serde::Serialize;

use super::args::{MapArgs, ModelArgs, image_inputs};
use super::faithfulness::print_faithfulness_summary;
use crate::explain::faithfulness::{self, FaithfulnessOptions, FaithfulnessSummary};
use crate::explain::{self, Classes, NoProgress};
use crate::export;
use crate::imaging::{self, Geometry, SourceImage};
use crate::network::{Classifier, ModelSidecar};
use crate::training::scores;
use crate::training::synth::{self, ScanGenerator};
use crate::training::train::{self, LabelledImage, TrainConfig, Trainer};

/// Class names of the demo model and of `demo-data`'s labels.
pub const DEMO_LABELS: [&str; 2] = ["normal", "lesion"];

#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// Output folder: scan_NNNNN.bmp, masks/scan_NNNNN.png, labels.csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

pub fn demo_data(args: &DemoDataArgs) -> Result<ExitCode> {
    let summary = synth::write_dataset(&args.out, args.count, args.seed, args.force)?;
    println!(
        "wrote {} scans ({} with lesions, {} without) to {}",
        summary.count,
        summary.positives,
        summary.negatives,
        summary.dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data", "synthetic"])))]
pub struct TrainArgs {
    /// A folder written by `camview demo-data` (or laid out the same way).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Generate this many synthetic scans (seeded by --seed) instead of reading a folder.
    #[arg(long, value_name = "N")]
    pub synthetic: Option<u64>,
    /// The trained model (.safetensors); a sidecar <model>.json with labels and preprocessing is
    /// written beside it.
    #[arg(long, value_name = "MODEL.safetensors")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    /// Network input size.
    #[arg(long, default_value_t = 128)]
    pub input_size: u32,
    /// Layers per dense block, comma-separated (torchvision's `block_config`); the demo
    /// model's when omitted.
    #[arg(long, value_name = "N,N,..", value_delimiter = ',')]
    pub blocks: Option<Vec<usize>>,
    /// Growth rate (channels each dense layer adds); the demo model's when omitted.
    #[arg(long, value_name = "K")]
    pub growth: Option<usize>,
    /// Weight of the localisation term, which uses the lesion masks: it rewards a class map
    /// whose peak lies on the lesion. 0 trains on the image labels alone. With --data, the
    /// masks are the labels.csv column `mask` (a positive image without one adds no term).
    #[arg(long, default_value_t = 0.0, value_name = "W", allow_negative_numbers = true, value_parser = non_negative)]
    pub mask_weight: f64,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("a number, 0 or more".into()),
    }
}

/// Writes trained weights as `.safetensors` (atomically).
fn save_trained(tensors: &[(String, Tensor)], path: &Path, force: bool) -> Result<()> {
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .context("cannot serialise the weights")?;
    export::write_atomic(path, force, |w| w.write_all(&bytes))?;
    Ok(())
}

/// Reads `labels.csv` (image,label,... with a header) of a demo-data folder; with `with_masks`,
/// also each row's `mask` column (a positive image without a mask is kept, without one).
fn read_labelled_folder(dir: &Path, with_masks: bool) -> Result<Vec<LabelledImage>> {
    let csv_path = dir.join("labels.csv");
    let mut reader = csv::Reader::from_path(&csv_path)
        .with_context(|| format!("{}: cannot read the labels", csv_path.display()))?;
    let mask_column = if with_masks {
        let headers = reader
            .headers()
            .with_context(|| format!("{}: cannot read the header", csv_path.display()))?;
        let Some(column) = headers.iter().position(|h| h.trim() == "mask") else {
            bail!(
                "{}: no 'mask' column, which --mask-weight needs",
                csv_path.display()
            );
        };
        Some(column)
    } else {
        None
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: malformed row", csv_path.display()))?;
        let (Some(name), Some(label)) = (record.get(0), record.get(1)) else {
            bail!("{}: each row needs image,label", csv_path.display());
        };
        let label: u32 = label
            .trim()
            .parse()
            .ok()
            .filter(|l| *l <= 1)
            .with_context(|| format!("{}: label '{label}' is not 0 or 1", csv_path.display()))?;
        let image = imaging::open_image(&dir.join(name))?;
        let mask = match mask_column
            .and_then(|c| record.get(c))
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            Some(m) => Some(read_mask(&dir.join(m), image.rgb.dimensions())?),
            None => None,
        };
        out.push(LabelledImage {
            image: image.rgb,
            label,
            mask,
        });
    }
    Ok(out)
}

fn gray_to_rgb(image: &GrayImage) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        image::Rgb([image.get_pixel(x, y).0[0]; 3])
    })
}

pub fn train_command(args: &TrainArgs) -> Result<ExitCode> {
    let sidecar_path = args.out.with_extension("json");
    for path in [&args.out, &sidecar_path] {
        export::check_destination(path, args.force, &[])?;
    }
    let config = train_config(args)?;
    let start = Instant::now();
    let images = training_images(args)?;
    let samples = train::prepare_samples(
        images.into_iter(),
        &config.preprocessing,
        config.model.in_channels,
    )?;
    let (train_set, validation) = train::split(samples, config.validation_fraction, config.seed)?;
    eprintln!(
        "camview: {} training and {} validation images at {}x{} ({:.1} s to prepare); model {}",
        train_set.len(),
        validation.len(),
        config.preprocessing.input_size,
        config.preprocessing.input_size,
        start.elapsed().as_secs_f32(),
        config.model.architecture_name()
    );
    let mut trainer = Trainer::new(config.clone())?;
    let steps = train_set.len().div_ceil(config.batch_size);
    let bar = indicatif::ProgressBar::new((steps * config.epochs) as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps {msg} [{elapsed}<{eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let sidecar = ModelSidecar {
        labels: Some(DEMO_LABELS.iter().map(|s| s.to_string()).collect()),
        preprocessing: Some(config.preprocessing.clone()),
        ..ModelSidecar::default()
    };
    let sidecar_json = serde_json::to_vec_pretty(&sidecar)?;
    // The model is saved after every epoch, so an interrupted run keeps its last epoch; a
    // failed write stops the training.
    let mut save_error = None;
    let reports = trainer.fit(
        &train_set,
        &validation,
        |_, loss| {
            bar.set_message(format!("loss {loss:.3}"));
            bar.inc(1);
        },
        |r, trainer| {
            bar.suspend(|| {
                eprintln!(
                    "epoch {:>2}: train loss {:.4} acc {:.3} | validation loss {:.4} acc {:.3} | {:.0} s",
                    r.epoch, r.train_loss, r.train_accuracy, r.validation_loss, r.validation_accuracy, r.seconds
                )
            });
            let force = args.force || r.epoch > 1;
            match save_epoch(trainer, &args.out, &sidecar_path, &sidecar_json, force) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    save_error = Some(e);
                    ControlFlow::Break(())
                }
            }
        },
    )?;
    bar.finish_and_clear();
    if let Some(e) = save_error {
        return Err(e);
    }
    #[derive(Serialize)]
    struct Log<'a> {
        config: &'a TrainConfig,
        epochs: &'a [train::EpochReport],
        seconds: f32,
    }
    let log = Log {
        config: &config,
        epochs: &reports,
        seconds: start.elapsed().as_secs_f32(),
    };
    println!("{}", serde_json::to_string(&log)?);
    eprintln!(
        "camview: wrote {} and {} in {:.0} s",
        args.out.display(),
        sidecar_path.display(),
        start.elapsed().as_secs_f32()
    );
    Ok(ExitCode::SUCCESS)
}

/// The training configuration the arguments ask for (the demo model's architecture unless
/// --blocks or --growth change it).
fn train_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut model = train::demo_config();
    if let Some(blocks) = &args.blocks {
        if blocks.is_empty() || blocks.contains(&0) {
            bail!("--blocks needs one or more positive layer counts, e.g. 6 or 3,4");
        }
        model.block_config.clone_from(blocks);
    }
    if let Some(growth) = args.growth {
        if growth == 0 {
            bail!("--growth must be positive");
        }
        model.growth_rate = growth;
    }
    Ok(TrainConfig {
        model,
        epochs: args.epochs,
        batch_size: args.batch_size.max(1),
        learning_rate: args.learning_rate,
        mask_weight: args.mask_weight,
        seed: args.seed,
        preprocessing: imaging::Preprocessing {
            input_size: args.input_size,
            geometry: Geometry::Stretch,
            ..Default::default()
        },
        ..TrainConfig::default()
    })
}

/// The labelled images to train on: a demo-data folder, or synthetic scans; with their lesion
/// masks when the localisation term needs them.
fn training_images(args: &TrainArgs) -> Result<Vec<LabelledImage>> {
    let with_masks = args.mask_weight > 0.0;
    match (&args.data, args.synthetic) {
        (Some(dir), _) => read_labelled_folder(dir, with_masks),
        (None, Some(n)) => {
            let generator = ScanGenerator::new(args.seed);
            Ok((0..n)
                .map(|i| {
                    let scan = generator.scan(i);
                    LabelledImage {
                        image: gray_to_rgb(&scan.image),
                        label: u32::from(scan.positive),
                        mask: with_masks.then_some(scan.mask),
                    }
                })
                .collect())
        }
        (None, None) => bail!("give --data DIR or --synthetic N"),
    }
}

/// Writes the model as it is after an epoch, and its sidecar.
fn save_epoch(
    trainer: &Trainer,
    out: &Path,
    sidecar_path: &Path,
    sidecar_json: &[u8],
    force: bool,
) -> Result<()> {
    save_trained(&trainer.state_dict()?, out, force)?;
    export::write_atomic(sidecar_path, force, |w| w.write_all(sidecar_json))?;
    Ok(())
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["synthetic", "images"])))]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Evaluate on this many synthetic scans (seeded by --seed).
    #[arg(long, value_name = "N")]
    pub synthetic: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    pub seed: u64,
    /// A folder of images; with --masks, a folder of PNG masks named by the image's stem
    /// (an image with a non-empty mask is positive, one without a mask negative).
    #[arg(long, value_name = "DIR", requires = "masks")]
    pub images: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    pub masks: Option<PathBuf>,
    /// The class whose maps are scored, by index or name.
    #[arg(long, default_value = "1", value_name = "INDEX|NAME")]
    pub positive_class: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The maps scored (localisation and faithfulness).
    #[command(flatten)]
    pub map: MapArgs,
    /// Steps of the deletion and insertion curves; 0 skips the faithfulness scores.
    #[arg(long, default_value_t = 20)]
    pub steps: u16,
}

/// The scores `camview eval` reports.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub images: usize,
    pub positives: usize,
    pub accuracy: f32,
    pub roc_auc: Option<f64>,
    /// Over positive images: the map's maximum inside a lesion.
    pub pointing_game: f32,
    /// Over positive images: IoU of the map above 20% of its range with the mask.
    pub mean_iou_at_20: f32,
    /// Over positive images: share of the map's mass inside the mask.
    pub energy_inside_mask: f32,
    /// Over positive images: share of the image the mask covers (the energy a map spread
    /// evenly would score).
    pub mask_share: f32,
    /// Over positive images, for the positive class's map: deletion and insertion AUC,
    /// Average Drop, Increase in Confidence (absent with --steps 0).
    pub faithfulness: Option<FaithfulnessSummary>,
    pub seconds: f32,
}

/// One evaluation item: an image and, when it is positive, its lesion mask.
struct Item {
    image: SourceImage,
    mask: Option<Vec<bool>>,
}

fn mask_bits(mask: &GrayImage) -> Vec<bool> {
    mask.pixels().map(|p| p.0[0] > 127).collect()
}

/// A mask image as 255 (where its first channel exceeds 127) or 0; it must be `size`.
fn read_mask(path: &Path, size: (u32, u32)) -> Result<GrayImage> {
    let m = imaging::open_image(path)?;
    if m.rgb.dimensions() != size {
        bail!(
            "{}: the mask is {}x{} but the image is {}x{}",
            path.display(),
            m.width(),
            m.height(),
            size.0,
            size.1
        );
    }
    Ok(GrayImage::from_fn(m.width(), m.height(), |x, y| {
        image::Luma([if m.rgb.get_pixel(x, y).0[0] > 127 {
            255
        } else {
            0
        }])
    }))
}

fn folder_items(images: &Path, masks: &Path) -> Result<Vec<Item>> {
    let files = image_inputs(&[images.to_path_buf()])?;
    files
        .iter()
        .map(|path| {
            let image = imaging::open_image(path)?;
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let mask_path = masks.join(format!("{stem}.png"));
            let mask = if mask_path.exists() {
                let bits = mask_bits(&read_mask(&mask_path, image.rgb.dimensions())?);
                bits.iter().any(|b| *b).then_some(bits)
            } else {
                None
            };
            Ok(Item { image, mask })
        })
        .collect()
}

/// Classification and localisation scores of `classifier` over `items`.
fn evaluate(
    classifier: &Classifier,
    items: impl Iterator<Item = Result<Item>>,
    positive: usize,
    total: usize,
    args: &EvalArgs,
) -> Result<EvalReport> {
    let choice = args.map.choice();
    let mut faithful = Vec::new();
    let faithfulness_options = FaithfulnessOptions {
        steps: usize::from(args.steps),
        ..FaithfulnessOptions::default()
    };
    let start = Instant::now();
    let bar = indicatif::ProgressBar::new(total as u64);
    let (mut probabilities, mut labels, mut right) = (Vec::new(), Vec::new(), 0usize);
    let (mut pointing, mut iou, mut energy, mut share) = (0f32, 0f32, 0f32, 0f32);
    for item in items {
        let item = item?;
        let a = explain::explain_image(
            classifier,
            &item.image,
            &choice,
            &Classes::Only(vec![positive]),
            &NoProgress,
        )?;
        let is_positive = item.mask.is_some();
        probabilities.push(a.probabilities[positive]);
        labels.push(is_positive);
        right += usize::from((a.predicted == positive) == is_positive);
        if let Some(mask) = &item.mask {
            let cam = a
                .map(positive)
                .ok_or_else(|| anyhow::anyhow!("{}: the map was not computed", item.image.name))?;
            let map = cam.upsample(&cam.values, item.image.width(), item.image.height());
            pointing += f32::from(u8::from(scores::pointing_game(&map, mask)));
            iou += scores::iou_at(&map, mask, 0.2);
            energy += scores::energy_inside(&map, mask);
            share += mask.iter().filter(|m| **m).count() as f32 / mask.len() as f32;
            if args.steps > 0 {
                faithful.push(
                    faithfulness::faithfulness(
                        classifier,
                        &a.input,
                        cam,
                        &faithfulness_options,
                        &NoProgress,
                    )
                    .with_context(|| format!("{}: cannot score the map", item.image.name))?,
                );
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = labels.len();
    let positives = labels.iter().filter(|p| **p).count();
    let per_positive = |v: f32| {
        if positives > 0 {
            v / positives as f32
        } else {
            0.0
        }
    };
    Ok(EvalReport {
        images: n,
        positives,
        accuracy: right as f32 / n.max(1) as f32,
        roc_auc: scores::roc_auc(&probabilities, &labels),
        pointing_game: per_positive(pointing),
        mean_iou_at_20: per_positive(iou),
        energy_inside_mask: per_positive(energy),
        mask_share: per_positive(share),
        faithfulness: (args.steps > 0).then(|| FaithfulnessSummary::of(&faithful)),
        seconds: start.elapsed().as_secs_f32(),
    })
}

pub fn eval_command(args: &EvalArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let Some(positive) = classifier.class_index(&args.positive_class) else {
        bail!(
            "unknown class '{}' for --positive-class",
            args.positive_class
        );
    };
    let report = match (args.synthetic, &args.images, &args.masks) {
        (Some(n), _, _) => {
            let generator = ScanGenerator::new(args.seed);
            let items = (0..n).map(|i| {
                let scan = generator.scan(i);
                Ok(Item {
                    image: SourceImage::from_rgb(
                        &format!("synthetic scan {i} (seed {})", args.seed),
                        gray_to_rgb(&scan.image),
                        "synthetic",
                    ),
                    mask: scan.positive.then(|| mask_bits(&scan.mask)),
                })
            });
            evaluate(&classifier, items, positive, n as usize, args)?
        }
        (None, Some(images), Some(masks)) => {
            let items = folder_items(images, masks)?;
            let total = items.len();
            evaluate(
                &classifier,
                items.into_iter().map(Ok),
                positive,
                total,
                args,
            )?
        }
        _ => bail!("give --synthetic N, or --images DIR with --masks DIR"),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let auc = report
            .roc_auc
            .map_or("n/a".to_string(), |a| format!("{a:.4}"));
        println!(
            "images           {} ({} with lesions)",
            report.images, report.positives
        );
        println!("accuracy         {:.4}", report.accuracy);
        println!("ROC AUC          {auc}");
        println!("pointing game    {:.4}", report.pointing_game);
        println!("IoU at 20%       {:.4}", report.mean_iou_at_20);
        println!(
            "energy in mask   {:.4} (mask covers {:.4} of the image)",
            report.energy_inside_mask, report.mask_share
        );
        if let Some(f) = &report.faithfulness {
            print_faithfulness_summary(f);
        }
    }
    Ok(ExitCode::SUCCESS)
}
