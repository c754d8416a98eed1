//! The arguments several commands share, and how they become the engine's requests: a model
//! (`ModelArgs` → `ModelRequest`), a map (`MapArgs` → `MapChoice`), a style (`StyleArgs` →
//! `OverlayStyle`). The engine's enums get their command-line names here, so the engine itself
//! knows nothing of clap.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};

use crate::explain::agreement::Threshold;
use crate::explain::{self, Classes, MapChoice, Method, MethodOptions, Normalisation, Stage};
use crate::export::ProvenanceDetail;
use crate::imaging::{self, DisplayWindow, Geometry, NetworkWindow, SourceImage};
use crate::model_request::{ModelRequest, ModelSource};
use crate::network::{Activation, Classifier};
use crate::render::{Colormap, OverlayStyle};

/// `ValueEnum` for an engine enum with `ALL` and `name()` (the names the engine also writes in
/// provenance and sidecars).
macro_rules! value_enum_by_name {
    ($($t:ty),*) => {$(
        impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &<$t>::ALL
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name()))
            }
        }
    )*};
}
value_enum_by_name!(
    Method,
    Colormap,
    Normalisation,
    Geometry,
    Activation,
    ProvenanceDetail
);

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
    /// In a file holding several DenseNets, the prefix of the one to use (e.g. ema_model.;
    /// '' for the one at the top level). By default: the one nearest the top, then the first.
    #[arg(long, value_name = "PREFIX")]
    pub submodel: Option<String>,
    /// How the logits become probabilities (overrides the model's sidecar): softmax = one
    /// distribution over the classes; sigmoid = each class on its own (multi-label models).
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// The window the network's input is made with from DICOM and 16-bit images (overrides
    /// the model's sidecar): CENTRE,WIDTH (e.g. -600,1500), minmax, or a preset's name.
    #[arg(long, value_name = "C,W|minmax|PRESET", allow_hyphen_values = true,
          value_parser = NetworkWindow::parse, conflicts_with = "window_preset")]
    pub window: Option<NetworkWindow>,
    /// A CT window preset for the network's input: lung, mediastinum, abdomen, liver, bone,
    /// brain, stroke.
    #[arg(long, value_name = "NAME", value_parser = parse_preset)]
    pub window_preset: Option<NetworkWindow>,
}

fn parse_preset(name: &str) -> Result<NetworkWindow, String> {
    match NetworkWindow::parse(name)? {
        NetworkWindow::Window(w) if !name.contains(',') => Ok(NetworkWindow::Window(w)),
        _ => Err(format!("'{name}' is not a preset's name")),
    }
}

/// Which frame of a multi-frame DICOM file, and how much of a DICOM file's identity the
/// outputs carry.
#[derive(Debug, Args)]
pub struct SourceArgs {
    #[command(flatten)]
    pub frame: FrameArgs,
    /// minimal: no patient data and no UIDs in any output; full: also the Study, Series and
    /// SOP Instance UIDs, to link a result back to its source.
    #[arg(long, value_enum, default_value = "minimal")]
    pub provenance: ProvenanceDetail,
}

/// Which frame of a multi-frame DICOM file.
#[derive(Debug, Args)]
pub struct FrameArgs {
    /// The frame of a multi-frame DICOM file, from 1 (default: the first, as the output says).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub frame: u32,
}

impl FrameArgs {
    /// Opens an image at the chosen frame; says on stderr which frame of several it is.
    pub fn open(&self, path: &std::path::Path) -> Result<SourceImage> {
        let image = imaging::open_image_frame(path, self.frame)?;
        if let Some(d) = image.dicom.as_ref().filter(|d| d.frames > 1) {
            eprintln!(
                "camview: {}: frame {} of {} (choose with --frame N)",
                path.display(),
                d.frame,
                d.frames
            );
        }
        Ok(image)
    }
}

impl ModelArgs {
    /// The model these arguments ask for.
    pub fn request(&self) -> Result<ModelRequest> {
        let source = match (&self.model, &self.labels) {
            (Some(path), labels) => ModelSource::File {
                path: path.clone(),
                labels: labels.clone(),
            },
            (None, Some(_)) => {
                bail!("--labels needs --model: the demo model has its own class names")
            }
            (None, None) if self.submodel.is_some() => {
                bail!("--submodel needs --model: the demo model is one network")
            }
            (None, None) => ModelSource::Demo,
        };
        Ok(ModelRequest {
            source,
            input_size: self.input_size,
            geometry: self.geometry,
            submodel: self.submodel.clone(),
            activation: self.activation,
            window: self.window.clone().or_else(|| self.window_preset.clone()),
        })
    }

    /// Loads the model; says on stderr which network it used when the file holds several.
    pub fn load(&self) -> Result<Classifier> {
        let classifier = self.request()?.load()?;
        if let Some(note) = classifier.info.other_networks_note() {
            eprintln!("camview: {note} (choose with --submodel PREFIX)");
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
    #[command(flatten)]
    pub layer: LayerArgs,
}

impl MapArgs {
    pub fn choice(&self) -> MapChoice {
        self.layer.choice(self.method)
    }
}

/// The layer a map explains and the methods' options (what every method's map of a command
/// shares).
#[derive(Debug, Clone, Args)]
pub struct LayerArgs {
    /// Target layer: features.denseblockN, features.transitionN, or features.norm5 (the
    /// default: norm5 after torchvision's final ReLU, the maps CAM weighs).
    #[arg(long, default_value = "features.norm5", value_name = "NAME", value_parser = parse_stage)]
    pub layer: Stage,
    /// Score-CAM: run the N channels with the strongest activation only ('all': every
    /// channel, as pytorch-grad-cam does; one forward pass per channel).
    #[arg(long, default_value = "64", value_name = "N|all", value_parser = parse_channels)]
    pub scorecam_channels: ChannelLimit,
}

impl LayerArgs {
    /// `method`'s map at this layer, with these options.
    pub fn choice(&self, method: Method) -> MapChoice {
        MapChoice {
            method,
            layer: self.layer,
            options: MethodOptions {
                score_cam_channels: self.scorecam_channels.0,
                ..MethodOptions::default()
            },
        }
    }
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

/// How the overlay looks, and whether it may replace files.
#[derive(Debug, Args)]
pub struct StyleArgs {
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
    /// The window the image under the heat map is drawn with (DICOM and 16-bit images; the
    /// network's input is --window's): CENTRE,WIDTH, minmax, or a preset's name. Default: the
    /// file's own window (min-max for 16-bit PNG and TIFF).
    #[arg(long, value_name = "C,W|minmax|PRESET", allow_hyphen_values = true,
          value_parser = NetworkWindow::parse)]
    pub display_window: Option<NetworkWindow>,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
}

impl StyleArgs {
    /// The display window `--display-window` asks for.
    pub fn display(&self) -> Option<DisplayWindow> {
        self.display_window.as_ref().map(|w| DisplayWindow {
            voi: w.voi(),
            invert: false,
        })
    }

    pub fn style(&self) -> OverlayStyle {
        OverlayStyle {
            opacity: self.opacity,
            colormap: self.colormap,
            threshold: self.threshold,
            normalisation: self.normalisation,
        }
    }
}

/// `--threshold` of `eval`: a fraction of the map's range, or `otsu`.
pub fn parse_threshold(s: &str) -> Result<Threshold, String> {
    if s.eq_ignore_ascii_case("otsu") {
        return Ok(Threshold::Otsu);
    }
    unit_interval(s)
        .map(Threshold::Fraction)
        .map_err(|e| format!("{e}: give a fraction of the map's range or 'otsu'"))
}

fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0..1"))
    }
}

/// The class given as an index or a name, or the predicted one when none is given.
pub fn resolve_class(
    classifier: &Classifier,
    class: Option<&str>,
    predicted: usize,
) -> Result<usize> {
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

/// The classes whose maps a command drawing `class` (a name or index; `None`: the predicted
/// class) needs: every class under a shared normalisation (its range spans them all),
/// otherwise that one alone (the gradient methods cost a backward pass per class).
pub fn classes_to_draw(
    classifier: &Classifier,
    class: Option<&str>,
    normalisation: Normalisation,
) -> Result<Classes> {
    Ok(match (normalisation, class) {
        (Normalisation::Shared, _) => Classes::All,
        (_, None) => Classes::Predicted,
        (_, Some(_)) => Classes::Only(vec![resolve_class(classifier, class, 0)?]),
    })
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

/// A progress bar on standard error for the slow methods (shown only after a second).
pub struct BarProgress(pub indicatif::ProgressBar);

impl BarProgress {
    pub fn new(message: &str) -> Self {
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
