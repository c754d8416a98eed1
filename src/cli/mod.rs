//! The command line: `predict`, `render`, `batch`. Scripts depend on its exact contract
//! (README.md, "Command line").

mod demo;

pub use demo::{DEMO_LABELS, EvalReport};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::explain::faithfulness::{self, FaithfulnessOptions, FaithfulnessSummary};
use crate::explain::{self, Analysis, Method, MethodOptions, Normalisation, Stage};
use crate::export::{self, ImageRecord, Provenance};
use crate::imaging::{self, Geometry, SourceImage};
use crate::network::{Classifier, ModelInfo, ModelSource};
use crate::render::{self, Colormap, ColourBar, Heat, OverlayStyle};

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
    pub view: ViewArgs,
}

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify images and print the top classes.
    Predict(PredictArgs),
    /// Draw one image's class activation map over it and save the overlay.
    Render(RenderArgs),
    /// Overlays, sidecars and a predictions.csv for every image of files or folders.
    Batch(BatchArgs),
    /// Write synthetic scans with lesion masks (the demo model's data).
    DemoData(demo::DemoDataArgs),
    /// Train a compact DenseNet on synthetic scans or a demo-data folder.
    Train(demo::TrainArgs),
    /// Classification and localisation scores (pointing game, IoU, energy) of a model.
    Eval(demo::EvalArgs),
    /// How faithful a map is to the model: deletion and insertion curves and their AUC,
    /// Average Drop and Increase in Confidence.
    Faithfulness(FaithfulnessArgs),
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// DenseNet checkpoint (.pth, .pt, .safetensors); the embedded demo model when omitted.
    #[arg(long, value_name = "CKPT")]
    pub model: Option<PathBuf>,
    /// Class names: one per line, or a JSON array.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Network input size (overrides the model's sidecar).
    #[arg(long, value_name = "PIXELS")]
    pub input_size: Option<u32>,
    /// How the image becomes the input: stretch = Resize((S,S)), crop = Resize + CenterCrop, native.
    #[arg(long, value_enum)]
    pub geometry: Option<Geometry>,
}

impl ModelArgs {
    fn load(&self) -> Result<Classifier> {
        if self.labels.is_some() && self.model.is_none() {
            bail!("--labels needs --model: the demo model has its own class names");
        }
        let source = match &self.model {
            Some(path) => ModelSource::File {
                path: path.clone(),
                labels: self.labels.clone(),
            },
            None => ModelSource::Demo,
        };
        let mut classifier = source.load()?;
        if let Some(size) = self.input_size {
            classifier.preprocessing.input_size = size;
        }
        if let Some(geometry) = self.geometry {
            classifier.preprocessing.geometry = geometry;
        }
        Ok(classifier)
    }
}

/// Which map: the method, the layer it explains, and the methods' options.
#[derive(Debug, Clone, Args)]
pub struct MapArgs {
    /// Explanation method: cam, gradcam, gradcam++, xgradcam, hirescam, layercam, scorecam,
    /// eigencam.
    #[arg(long, value_enum, default_value = "cam")]
    pub method: Method,
    /// Target layer: features.denseblockN, features.transitionN, or features.norm5 (the
    /// default: norm5 after torchvision's final ReLU, the maps CAM weighs).
    #[arg(long, default_value = "features.norm5", value_name = "NAME", value_parser = parse_stage)]
    pub layer: Stage,
    /// Score-CAM: run the N channels with the strongest activation only ('all': every
    /// channel, as pytorch-grad-cam does; one forward pass per channel).
    #[arg(long, default_value = "64", value_name = "N|all", value_parser = parse_channels)]
    pub scorecam_channels: ChannelLimit,
}

/// `--scorecam-channels`: a number, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimit(pub Option<usize>);

fn parse_channels(s: &str) -> Result<ChannelLimit, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(ChannelLimit(None));
    }
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(ChannelLimit(Some(n))),
        _ => Err(format!("'{s}' is not a positive number or 'all'")),
    }
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    s.parse()
}

impl MapArgs {
    fn options(&self) -> MethodOptions {
        MethodOptions {
            score_cam_channels: self.scorecam_channels.0,
            ..MethodOptions::default()
        }
    }

    fn is_plain_cam(&self) -> bool {
        self.method == Method::Cam && self.layer == Stage::Norm5
    }

    /// Replaces the analysis's maps (CAM at norm5) by this method's at this layer.
    fn apply(&self, classifier: &Classifier, a: &mut Analysed) -> Result<()> {
        self.apply_to(classifier, &mut a.analysis, &a.image.name)
    }

    /// `apply` for an analysis of the image called `name`.
    pub(crate) fn apply_to(
        &self,
        classifier: &Classifier,
        analysis: &mut Analysis,
        name: &str,
    ) -> Result<()> {
        if self.is_plain_cam() {
            return Ok(());
        }
        let progress = BarProgress::new(&format!("{} {name}", self.method));
        let maps = explain::methods::explain(
            classifier,
            analysis,
            self.method,
            self.layer,
            &self.options(),
            &progress,
        );
        progress.0.finish_and_clear();
        analysis.cams = maps
            .with_context(|| format!("{name}: cannot compute {} at {}", self.method, self.layer))?;
        Ok(())
    }
}

/// A progress bar on standard error for the slow methods (shown only after a second).
pub(crate) struct BarProgress(pub(crate) indicatif::ProgressBar);

impl BarProgress {
    pub(crate) fn new(message: &str) -> Self {
        let bar = indicatif::ProgressBar::hidden().with_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(message.to_string());
        Self(bar)
    }
}

impl explain::Progress for BarProgress {
    fn report(&self, done: usize, total: usize) {
        self.0.set_length(total as u64);
        self.0.set_position(done as u64);
        if self.0.is_hidden() && self.0.elapsed().as_secs_f32() > 1.0 && done < total {
            self.0
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }
}

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
    /// Images (or folders of images) to classify.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StyleArgs {
    #[command(flatten)]
    pub map: MapArgs,
    /// Opacity of the heat map, 0 to 1.
    #[arg(long, default_value_t = 0.4, value_parser = unit_interval)]
    pub opacity: f32,
    #[arg(long, value_enum, default_value = "jet")]
    pub colormap: Colormap,
    /// Normalised heat below this (0 to 1) is left transparent.
    #[arg(long, default_value_t = 0.0, value_parser = unit_interval)]
    pub threshold: f32,
    /// per-map: each map's own min..max; shared: one scale for all classes of an image.
    #[arg(long, value_enum, default_value = "per-map")]
    pub normalisation: Normalisation,
    /// Add a caption band: image, class and probability, prediction, method, model.
    #[arg(long)]
    pub caption: bool,
    /// Add a colour bar with the map's scale (in the caption band).
    #[arg(long)]
    pub colorbar: bool,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
}

impl StyleArgs {
    fn style(&self) -> OverlayStyle {
        OverlayStyle {
            opacity: self.opacity,
            colormap: self.colormap,
            threshold: self.threshold,
            normalisation: self.normalisation,
        }
    }
}

fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0..1"))
    }
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image to explain (never modified).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Class to explain, by index or name; the predicted class by default.
    #[arg(long, value_name = "INDEX|NAME")]
    pub class: Option<String>,
    #[command(flatten)]
    pub style: StyleArgs,
    /// Output image (.png, .bmp, .jpg, .tif); default `<image>_cam_<class>.png` beside the image.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the method's map at the layer's resolution (float32, h x w, after the
    /// method's own ReLU, before any normalisation) as NumPy .npy.
    #[arg(long, value_name = "FILE.npy")]
    pub raw_cam: Option<PathBuf>,
    /// Print the provenance as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

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
    pub style: StyleArgs,
    /// Image files and folders (a folder's images, not its subfolders).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

/// Entry point of the binary: every failure is one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let result = match cli.command {
        None => view(&cli.view, started),
        Some(Command::Predict(args)) => predict(&args),
        Some(Command::Render(args)) => render_command(&args),
        Some(Command::Batch(args)) => batch(&args),
        Some(Command::DemoData(args)) => demo::demo_data(&args),
        Some(Command::Train(args)) => demo::train_command(&args),
        Some(Command::Eval(args)) => demo::eval_command(&args),
        Some(Command::Faithfulness(args)) => faithfulness_command(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("camview: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the viewer window.
fn view(args: &ViewArgs, started: std::time::Instant) -> Result<ExitCode> {
    if args.model.labels.is_some() && args.model.model.is_none() {
        bail!("--labels needs --model: the demo model has its own class names");
    }
    let source = match &args.model.model {
        Some(path) => ModelSource::File {
            path: path.clone(),
            labels: args.model.labels.clone(),
        },
        None => ModelSource::Demo,
    };
    if args.map.method == Method::Cam && args.map.layer != Stage::Norm5 {
        bail!(
            "CAM is defined only at features.norm5; use --method gradcam (or another method) for {}",
            args.map.layer
        );
    }
    let launch = crate::gui::Launch {
        model: crate::gui::ModelRequest {
            source,
            input_size: args.model.input_size,
            geometry: args.model.geometry,
        },
        images: expand_inputs(&args.images)?,
        method: args.map.method,
        layer: args.map.layer,
        started,
    };
    crate::gui::run(launch).map_err(|e| anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// One analysed image.
struct Analysed {
    image: SourceImage,
    analysis: Analysis,
}

fn analyse_file(classifier: &Classifier, path: &Path) -> Result<Analysed> {
    analyse_image(classifier, imaging::open_image(path)?)
}

fn analyse_image(classifier: &Classifier, image: imaging::SourceImage) -> Result<Analysed> {
    let analysis = explain::analyse(
        classifier,
        &image.name,
        &image.rgb,
        &classifier.preprocessing,
    )?;
    Ok(Analysed { image, analysis })
}

#[derive(Serialize)]
struct PredictRecord<'a> {
    image: String,
    width: u32,
    height: u32,
    model: &'a ModelInfo,
    logits: &'a [f32],
    probabilities: &'a [f32],
    predicted: usize,
    labels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    map: Option<MapPeak>,
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
    fn of(a: &Analysed, class: usize, args: &MapArgs) -> Self {
        let map = &a.analysis.cams[class];
        let best = map
            .values
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .map_or(0, |(i, _)| i);
        let (col, row) = (best % map.width.max(1), best / map.width.max(1));
        let r = map.region;
        Self {
            method: args.method,
            layer: args.layer,
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

fn predict(args: &PredictArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let mut failures = 0;
    let stdout = std::io::stdout();
    for path in &image_inputs(&args.images)? {
        let a = match analyse_file(&classifier, path).and_then(|mut a| {
            if args.map {
                args.map_args.apply(&classifier, &mut a)?;
            }
            Ok(a)
        }) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("camview: {e:#}");
                failures += 1;
                continue;
            }
        };
        let peak = args
            .map
            .then(|| MapPeak::of(&a, a.analysis.predicted, &args.map_args));
        let mut out = stdout.lock();
        if args.json {
            let record = PredictRecord {
                image: path.display().to_string(),
                width: a.image.width(),
                height: a.image.height(),
                model: &classifier.info,
                logits: &a.analysis.logits,
                probabilities: &a.analysis.probabilities,
                predicted: a.analysis.predicted,
                labels: &classifier.labels,
                map: peak,
            };
            writeln!(out, "{}", serde_json::to_string(&record)?)?;
        } else {
            let p = a.analysis.predicted;
            writeln!(
                out,
                "{}: {} ({:.1}%)",
                path.display(),
                classifier.labels[p],
                100.0 * a.analysis.probabilities[p]
            )?;
            if let Some(m) = &peak {
                writeln!(
                    out,
                    "  {} at {}: peak at ({:.0}, {:.0})",
                    m.method, m.layer, m.peak.0, m.peak.1
                )?;
            }
            for c in a.analysis.ranked().into_iter().take(5) {
                writeln!(
                    out,
                    "  {:>6.2}%  {}",
                    100.0 * a.analysis.probabilities[c],
                    classifier.labels[c]
                )?;
            }
        }
    }
    Ok(exit_for(failures))
}

fn exit_for(failures: usize) -> ExitCode {
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn resolve_class(classifier: &Classifier, class: Option<&str>, predicted: usize) -> Result<usize> {
    match class {
        None => Ok(predicted),
        Some(c) => classifier.class_index(c).ok_or_else(|| {
            anyhow!(
                "unknown class '{c}': the model's classes are {}",
                classifier
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("{i} ({l})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
    }
}

/// The overlay image for one class, with the caption band and colour bar if asked.
fn compose(
    a: &Analysed,
    class: usize,
    style: &StyleArgs,
    provenance: &Provenance,
) -> image::RgbImage {
    let s = style.style();
    let heat = Heat::of(
        &a.analysis,
        class,
        s.normalisation,
        a.image.width(),
        a.image.height(),
    );
    let overlay = render::blend(&a.image.rgb, &heat, &s);
    if !style.caption && !style.colorbar {
        return overlay;
    }
    let lines = if style.caption {
        provenance.caption_lines()
    } else {
        Vec::new()
    };
    let bar = style.colorbar.then_some(ColourBar {
        colormap: s.colormap,
        low: heat.range.0,
        high: heat.range.1,
    });
    render::with_caption_band(&overlay, &lines, bar)
}

fn render_one(
    classifier: &Classifier,
    a: &Analysed,
    source: &Path,
    class: usize,
    style: &StyleArgs,
    out: &Path,
) -> Result<Provenance> {
    let record = ImageRecord {
        file: source.display().to_string(),
        width: a.image.width(),
        height: a.image.height(),
    };
    let provenance = Provenance::new(record, classifier, &a.analysis, class, &style.style());
    let img = compose(a, class, style, &provenance);
    export::save_overlay(out, &img, &provenance, style.force, &[source])?;
    Ok(provenance)
}

fn render_command(args: &RenderArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let mut a = analyse_file(&classifier, &args.image)?;
    let class = resolve_class(&classifier, args.class.as_deref(), a.analysis.predicted)?;
    args.style.map.apply(&classifier, &mut a)?;
    let out = args.out.clone().unwrap_or_else(|| {
        export::default_overlay_path(
            &args.image,
            &classifier.labels[class],
            args.style.map.method,
            args.style.map.layer,
        )
    });
    if let Some(raw) = &args.raw_cam {
        export::check_destination(raw, args.style.force, &[&args.image])?;
    }
    let provenance = render_one(&classifier, &a, &args.image, class, &args.style, &out)?;
    if let Some(raw) = &args.raw_cam {
        export::save_raw_map(
            raw,
            &a.analysis.cams[class],
            args.style.force,
            &[&args.image],
        )?;
    }
    if args.json {
        #[derive(Serialize)]
        struct Rendered<'a> {
            overlay: String,
            sidecar: String,
            raw_cam: Option<String>,
            #[serde(flatten)]
            provenance: &'a Provenance,
        }
        let rendered = Rendered {
            overlay: out.display().to_string(),
            sidecar: export::sidecar_path(&out).display().to_string(),
            raw_cam: args.raw_cam.as_ref().map(|p| p.display().to_string()),
            provenance: &provenance,
        };
        println!("{}", serde_json::to_string(&rendered)?);
    } else {
        println!(
            "{}: {} ({:.1}%), predicted {} -> {}",
            args.image.display(),
            provenance.class.label,
            100.0 * provenance.class.probability,
            provenance.predicted.label,
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct FaithfulnessArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub map: MapArgs,
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
    scores: &'a faithfulness::Faithfulness,
}

fn faithfulness_command(args: &FaithfulnessArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let files = expand_inputs(&args.images)?;
    let options = FaithfulnessOptions {
        steps: usize::from(args.steps),
        ..FaithfulnessOptions::default()
    };
    let mut failures = 0;
    let mut all = Vec::new();
    for path in &files {
        let result = (|| -> Result<faithfulness::Faithfulness> {
            let mut a = analyse_file(&classifier, path)?;
            let class = resolve_class(&classifier, args.class.as_deref(), a.analysis.predicted)?;
            args.map.apply(&classifier, &mut a)?;
            let progress = BarProgress::new(&format!("faithfulness {}", a.image.name));
            let scores = faithfulness::faithfulness(
                &classifier,
                &a.analysis.input,
                &a.analysis.cams[class],
                &options,
                &progress,
            );
            progress.0.finish_and_clear();
            scores.with_context(|| format!("{}: cannot score the map", path.display()))
        })();
        let scores = match result {
            Ok(s) => s,
            Err(e) => {
                eprintln!("camview: {e:#}");
                failures += 1;
                continue;
            }
        };
        let label = &classifier.labels[scores.class];
        if args.json {
            let record = FaithfulnessRecord {
                image: path.display().to_string(),
                method: args.map.method,
                layer: args.map.layer,
                label,
                scores: &scores,
            };
            println!("{}", serde_json::to_string(&record)?);
        } else {
            println!(
                "{}: {label} ({:.1}%), {} at {}: deletion AUC {:.4}, insertion AUC {:.4}, \
                 drop {:.1}%, confidence {}",
                path.display(),
                100.0 * scores.probability,
                args.map.method,
                args.map.layer,
                scores.deletion.auc,
                scores.insertion.auc,
                scores.drop_percent,
                if scores.increase {
                    "increased"
                } else {
                    "did not increase"
                }
            );
        }
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

/// The summary lines `faithfulness` and `eval` print.
pub(crate) fn print_faithfulness_summary(s: &FaithfulnessSummary) {
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

/// Files as given, and each folder's image files (sorted, not recursive).
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let found = imaging::image_files(input)
                .with_context(|| format!("{}: cannot list the folder", input.display()))?;
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// [`expand_inputs`] for a command that needs at least one image.
pub fn image_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let files = expand_inputs(inputs)?;
    if files.is_empty() {
        bail!(
            "no images found in {}",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(files)
}

/// One image of a batch: its overlay, or why there is none.
struct BatchRow {
    image: PathBuf,
    result: Result<Rendered>,
}

struct Rendered {
    analysed: Analysed,
    class: usize,
    overlay: PathBuf,
}

fn batch(args: &BatchArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let files = image_inputs(&args.inputs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the output folder", args.out.display()))?;
    let csv_path = args.out.join("predictions.csv");
    export::check_destination(&csv_path, args.style.force, &[])?;
    let sources: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();

    let progress = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let rows = batch_pipeline(&classifier, args, &files, &sources, &progress)?;
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

/// Images in flight between two stages of the batch pipeline.
const PIPELINE_DEPTH: usize = 2;

/// `batch`'s work as three stages joined by bounded channels, so that decoding the next image
/// and composing + writing the previous one overlap with the network: a decoder thread, the
/// network on this thread, a writer thread. Rows come back in the order of `files`.
fn batch_pipeline(
    classifier: &Classifier,
    args: &BatchArgs,
    files: &[PathBuf],
    sources: &[&Path],
    progress: &indicatif::ProgressBar,
) -> Result<Vec<BatchRow>> {
    use std::sync::mpsc::sync_channel;
    /// An analysed image with the class to draw and where its overlay goes.
    type Prepared = Result<(Analysed, usize, PathBuf)>;
    let (decoded_tx, decoded_rx) = sync_channel::<(PathBuf, Result<SourceImage>)>(PIPELINE_DEPTH);
    let (analysed_tx, analysed_rx) = sync_channel::<(PathBuf, Prepared)>(PIPELINE_DEPTH);
    std::thread::scope(|scope| {
        let decoder = std::thread::Builder::new()
            .name("camview-decode".into())
            .spawn_scoped(scope, move || {
                for path in files {
                    let image = imaging::open_image(path).map_err(anyhow::Error::from);
                    if decoded_tx.send((path.clone(), image)).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the decoding thread")?;
        let writer = std::thread::Builder::new()
            .name("camview-write".into())
            .spawn_scoped(scope, move || {
                let mut rows = Vec::with_capacity(files.len());
                for (path, analysed) in analysed_rx {
                    progress.set_message(path.display().to_string());
                    let result = analysed.and_then(|(a, class, out)| {
                        render_one(classifier, &a, &path, class, &args.style, &out).map_err(
                            |e| {
                                if sources.contains(&out.as_path()) {
                                    anyhow!("{e:#}")
                                } else {
                                    e
                                }
                            },
                        )?;
                        Ok(Rendered {
                            analysed: a,
                            class,
                            overlay: out,
                        })
                    });
                    if let Err(e) = &result {
                        progress.suspend(|| eprintln!("camview: {e:#}"));
                    }
                    rows.push(BatchRow {
                        image: path,
                        result,
                    });
                    progress.inc(1);
                }
                rows
            })
            .context("cannot start the writing thread")?;
        let mut used_names = std::collections::HashSet::new();
        for (path, image) in decoded_rx {
            let analysed = image.and_then(|image| {
                let a = analyse_image(classifier, image)?;
                let class = resolve_class(classifier, args.class.as_deref(), a.analysis.predicted)?;
                let name = export::default_overlay_path(
                    &path,
                    &classifier.labels[class],
                    args.style.map.method,
                    args.style.map.layer,
                );
                let out = args.out.join(name.file_name().unwrap_or_default());
                if !used_names.insert(out.clone()) {
                    bail!(
                        "{}: another input already wrote {}",
                        path.display(),
                        out.display()
                    );
                }
                Ok((a, class, out))
            });
            if analysed_tx.send((path, analysed)).is_err() {
                break;
            }
        }
        drop(analysed_tx);
        if let Err(panic) = decoder.join() {
            std::panic::resume_unwind(panic);
        }
        match writer.join() {
            Ok(rows) => Ok(rows),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
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
    w.write_record(&header)?;
    for row in rows {
        let mut record = vec![row.image.display().to_string()];
        match &row.result {
            Ok(Rendered {
                analysed: a,
                class,
                overlay: out,
            }) => {
                let p = a.analysis.predicted;
                record.extend([
                    "ok".to_string(),
                    a.image.width().to_string(),
                    a.image.height().to_string(),
                    p.to_string(),
                    classifier.labels[p].clone(),
                    class.to_string(),
                    out.display().to_string(),
                ]);
                record.extend(a.analysis.probabilities.iter().map(|p| format!("{p:.6}")));
                record.push(String::new());
            }
            Err(e) => {
                record.push("error".into());
                record.extend(std::iter::repeat_n(
                    String::new(),
                    6 + classifier.labels.len(),
                ));
                record.push(format!("{e:#}"));
            }
        }
        w.write_record(&record)?;
    }
    w.into_inner()
        .map_err(|e| anyhow!("cannot build predictions.csv: {e}"))
}
