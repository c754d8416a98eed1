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

use super::args::{MapArgs, ModelArgs, image_inputs, parse_threshold};
use super::faithfulness::print_faithfulness_summary;
use crate::explain::agreement::{Agreement, Threshold};
use crate::explain::faithfulness::{self, FaithfulnessOptions, FaithfulnessSummary};
use crate::explain::{self, Classes, NoProgress};
use crate::export;
use crate::imaging::{self, Geometry, SourceImage};
use crate::network::{Classifier, ModelSidecar};
use crate::training::scores::{self, Interval};
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
    /// Where the map is cut into hot pixels for the IoU and Dice: a share of its range, 0 to 1
    /// (0.2: the CAM paper's rule), or otsu (Otsu's threshold of the scaled map, CheXlocalize's
    /// rule).
    #[arg(long, default_value = "0.2", value_name = "FRACTION|otsu", value_parser = parse_threshold)]
    pub threshold: Threshold,
    /// A positive image whose probability of the positive class is below P is scored as an
    /// empty map (no hot pixel: IoU 0, the pointing game missed), CheXlocalize's rule: a finding
    /// the model does not report is not localised.
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = non_negative)]
    pub min_probability: f64,
    /// Bootstrap resamples for the 95% confidence intervals of the pointing game, the mean IoU
    /// and the ROC AUC; 0 skips them.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
    /// The seed of the bootstrap's resampling (the same seed, the same intervals).
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub bootstrap_seed: u64,
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
    /// Over positive images: IoU of the map above 20% of its range with the mask, whatever
    /// `threshold` is (kept for the scripts that read it; `mean_iou` is at `threshold`).
    pub mean_iou_at_20: f32,
    /// The cut of `mean_iou` and `mean_dice`: `{"fraction": F}` or `"otsu"`.
    pub threshold: Threshold,
    /// Over positive images: IoU of the map's hot pixels (by `threshold`) with the mask.
    pub mean_iou: f32,
    /// Over positive images: Dice of the map's hot pixels (by `threshold`) with the mask.
    pub mean_dice: f32,
    /// Over positive images: share of the map's mass inside the mask.
    pub energy_inside_mask: f32,
    /// Over positive images: share of the image the mask covers (of its pixels with heat,
    /// when the geometry crops it: the energy a map spread evenly would score).
    pub mask_share: f32,
    /// Positive images whose probability was below this were scored as empty maps.
    pub min_probability: f64,
    /// How many positive images that was.
    pub below_min_probability: usize,
    /// 95% bootstrap confidence intervals (absent with --bootstrap 0).
    pub intervals: Option<Intervals>,
    /// Over positive images, for the positive class's map: deletion and insertion AUC,
    /// Average Drop, Increase in Confidence (absent with --steps 0).
    pub faithfulness: Option<FaithfulnessSummary>,
    pub seconds: f32,
}

/// Confidence intervals of `eval`'s headline scores: each `{"value", "low", "high"}`, the
/// value being the score on the data as it is (absent when the score is: no positive image,
/// or no ROC AUC without both labels).
#[derive(Debug, Serialize)]
pub struct Intervals {
    /// 0.95.
    pub confidence: f64,
    /// "percentile, stratified": the 2.5th and 97.5th percentiles of the scores of resamples
    /// that keep the numbers of positive and negative images.
    pub method: &'static str,
    pub resamples: usize,
    pub seed: u64,
    pub pointing_game: Option<Interval>,
    pub mean_iou: Option<Interval>,
    pub roc_auc: Option<Interval>,
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

/// What one image scored: its probability of the positive class and, for a positive image,
/// its map's agreement with the mask.
struct Scored {
    probability: f32,
    localised: Option<Localised>,
}

struct Localised {
    /// At `--threshold`.
    agreement: Agreement,
    /// At 20% of the range, for `mean_iou_at_20`.
    at_20: Agreement,
}

/// The mean of `score` over the positive images among `sample` (indices into `scored`);
/// `None` without one.
fn positive_mean(
    scored: &[Scored],
    sample: &[usize],
    score: impl Fn(&Localised) -> f32,
) -> Option<f64> {
    let (sum, n) = (sample.iter())
        .filter_map(|&i| scored[i].localised.as_ref())
        .fold((0f64, 0usize), |(sum, n), l| {
            (sum + f64::from(score(l)), n + 1)
        });
    (n > 0).then(|| sum / n as f64)
}

/// The ROC AUC of the probabilities of `sample` (indices into `scored`).
fn sample_auc(scored: &[Scored], sample: &[usize]) -> Option<f64> {
    let probabilities: Vec<f32> = sample.iter().map(|&i| scored[i].probability).collect();
    let labels: Vec<bool> = sample
        .iter()
        .map(|&i| scored[i].localised.is_some())
        .collect();
    scores::roc_auc(&probabilities, &labels)
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
    let (mut scored, mut right, mut below) = (Vec::new(), 0usize, 0usize);
    for item in items {
        let item = item?;
        let a = explain::explain_image(
            classifier,
            &item.image,
            &choice,
            &Classes::Only(vec![positive]),
            &NoProgress,
        )?;
        let probability = a.probabilities[positive];
        right += usize::from((a.predicted == positive) == item.mask.is_some());
        let mut localised = None;
        if let Some(mask) = &item.mask {
            let cam = a
                .map(positive)
                .ok_or_else(|| anyhow::anyhow!("{}: the map was not computed", item.image.name))?;
            let map = cam.upsample(&cam.values, item.image.width(), item.image.height());
            localised = Some(if f64::from(probability) < args.min_probability {
                below += 1;
                let empty = Agreement::empty(&map, mask);
                Localised {
                    agreement: empty,
                    at_20: empty,
                }
            } else {
                Localised {
                    agreement: Agreement::of(&map, mask, args.threshold),
                    at_20: Agreement::of(&map, mask, Threshold::Fraction(0.2)),
                }
            });
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
        scored.push(Scored {
            probability,
            localised,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let all: Vec<usize> = (0..scored.len()).collect();
    let (positives, negatives): (Vec<usize>, Vec<usize>) =
        all.iter().partition(|&&i| scored[i].localised.is_some());
    let pointing = |l: &Localised| f32::from(u8::from(l.agreement.pointing));
    let iou = |l: &Localised| l.agreement.iou;
    let mean = |score: &dyn Fn(&Localised) -> f32| positive_mean(&scored, &all, score);
    let intervals = (args.bootstrap > 0).then(|| {
        let resamples = scores::stratified_resamples(
            &[positives.clone(), negatives],
            args.bootstrap,
            args.bootstrap_seed,
        );
        let interval = |value: Option<f64>, statistic: &dyn Fn(&[usize]) -> Option<f64>| {
            let samples: Vec<f64> = (resamples.iter())
                .map(|s| statistic(s).unwrap_or(f64::NAN))
                .collect();
            value.and_then(|v| scores::percentile_interval(v, &samples, 0.95))
        };
        Intervals {
            confidence: 0.95,
            method: "percentile, stratified",
            resamples: args.bootstrap,
            seed: args.bootstrap_seed,
            pointing_game: interval(mean(&pointing), &|s| positive_mean(&scored, s, pointing)),
            mean_iou: interval(mean(&iou), &|s| positive_mean(&scored, s, iou)),
            roc_auc: interval(sample_auc(&scored, &all), &|s| sample_auc(&scored, s)),
        }
    });
    let per_positive = |score: &dyn Fn(&Localised) -> f32| mean(score).unwrap_or(0.0) as f32;
    Ok(EvalReport {
        images: scored.len(),
        positives: positives.len(),
        accuracy: right as f32 / scored.len().max(1) as f32,
        roc_auc: sample_auc(&scored, &all),
        pointing_game: per_positive(&pointing),
        mean_iou_at_20: per_positive(&|l| l.at_20.iou),
        threshold: args.threshold,
        mean_iou: per_positive(&iou),
        mean_dice: per_positive(&|l| l.agreement.dice),
        energy_inside_mask: per_positive(&|l| l.agreement.energy_inside),
        mask_share: per_positive(&|l| l.agreement.area_share),
        min_probability: args.min_probability,
        below_min_probability: below,
        intervals,
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
        print_eval_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// `eval`'s text output.
fn print_eval_report(report: &EvalReport) {
    let intervals = report.intervals.as_ref();
    let with_interval = |value: String, interval: Option<Interval>| match interval {
        Some(i) => format!("{value} (95% CI {:.4} to {:.4})", i.low, i.high),
        None => value,
    };
    let auc = report
        .roc_auc
        .map_or("n/a".to_string(), |a| format!("{a:.4}"));
    println!(
        "images           {} ({} with lesions)",
        report.images, report.positives
    );
    println!("accuracy         {:.4}", report.accuracy);
    println!(
        "ROC AUC          {}",
        with_interval(auc, intervals.and_then(|i| i.roc_auc))
    );
    println!(
        "pointing game    {}",
        with_interval(
            format!("{:.4}", report.pointing_game),
            intervals.and_then(|i| i.pointing_game)
        )
    );
    println!(
        "mean IoU         {} at {}",
        with_interval(
            format!("{:.4}", report.mean_iou),
            intervals.and_then(|i| i.mean_iou)
        ),
        report.threshold
    );
    println!("mean Dice        {:.4}", report.mean_dice);
    println!(
        "energy in mask   {:.4} (mask covers {:.4} of the image)",
        report.energy_inside_mask, report.mask_share
    );
    if report.min_probability > 0.0 {
        println!(
            "below P          {} lesion images scored as empty maps (probability below {})",
            report.below_min_probability, report.min_probability
        );
    }
    if let Some(i) = intervals {
        println!(
            "intervals        {} bootstrap resamples (stratified, seed {})",
            i.resamples, i.seed
        );
    }
    if let Some(f) = &report.faithfulness {
        print_faithfulness_summary(f);
    }
}
