//! `render`: one image's map drawn over it, saved with its provenance (and optionally the raw
//! map as `.npy`); or, with `--method all`, every method's overlay side by side in one image.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::args::{
    BarProgress, LayerArgs, ModelArgs, SourceArgs, StyleArgs, classes_to_draw, resolve_class,
};
use super::{Analysed, analyse_file};
use crate::explain::similarity::rank_correlations;
use crate::explain::{self, Analysis, AnalysisError, ExplainError, MapChoice, Method};
use crate::export::{
    self, GridRequest, OverlayRequest, Provenance, ProvenanceDetail, SkippedMethod,
};
use crate::imaging::{DisplayWindow, SourceImage};
use crate::network::{Activation, Classifier};

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
    pub map: RenderMapArgs,
    #[command(flatten)]
    pub style: StyleArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output image (.png, .bmp, .jpg, .tif); default `<image>_<method>_<class>.png` beside the
    /// image (`<image>_all_<class>.png` with --method all).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the method's map at the layer's resolution (float32, h x w, after the
    /// method's own ReLU, before any normalisation) as NumPy .npy.
    #[arg(long, value_name = "FILE.npy")]
    pub raw_cam: Option<PathBuf>,
    /// With --method all: print how alike the methods' maps are, Spearman's rank correlation of
    /// every pair (at the layer's resolution), as a table headed by the methods' names.
    #[arg(long)]
    pub correlations: bool,
    /// Print the provenance as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// Which maps `render` draws: one method's, or every method's.
#[derive(Debug, Args)]
pub struct RenderMapArgs {
    /// Explanation method: cam, gradcam, gradcam++, xgradcam, hirescam, layercam, scorecam,
    /// eigencam; or all: every method's overlay of the class in one image, a tile each (a
    /// method the model does not allow, such as CAM for a head of several layers, is left out
    /// with a note).
    #[arg(long, value_enum, default_value = "cam", value_name = "NAME|all")]
    pub method: MethodSelection,
    #[command(flatten)]
    pub layer: LayerArgs,
}

/// `render --method`: one method, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodSelection {
    One(Method),
    All,
}

impl ValueEnum for MethodSelection {
    fn value_variants<'a>() -> &'a [Self] {
        const SELECTIONS: [MethodSelection; Method::ALL.len() + 1] = {
            let mut all = [MethodSelection::All; Method::ALL.len() + 1];
            let mut i = 0;
            while i < Method::ALL.len() {
                all[i] = MethodSelection::One(Method::ALL[i]);
                i += 1;
            }
            all
        };
        &SELECTIONS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Self::One(method) => method.name(),
            Self::All => "all",
        }))
    }
}

/// How `render` and `batch` draw every overlay: the model, the style, and what the provenance
/// tells of the image.
pub(super) struct Drawing<'a> {
    classifier: &'a Classifier,
    style: &'a StyleArgs,
    display: Option<DisplayWindow>,
    detail: ProvenanceDetail,
}

impl<'a> Drawing<'a> {
    pub(super) fn new(
        classifier: &'a Classifier,
        style: &'a StyleArgs,
        detail: ProvenanceDetail,
    ) -> Self {
        Self {
            classifier,
            style,
            display: style.display(),
            detail,
        }
    }

    /// The engine's one composition of `class`'s map of `analysis` over `image` (the file
    /// `source`), as the viewer's Save uses it.
    fn request<'b>(
        &'b self,
        image: &'b SourceImage,
        source: &'b Path,
        analysis: &'b Analysis,
        class: usize,
    ) -> OverlayRequest<'b> {
        OverlayRequest {
            image,
            image_file: Some(source),
            classifier: self.classifier,
            analysis,
            class,
            style: self.style.style(),
            annotations: &[],
            caption: self.style.caption,
            colour_bar: self.style.colorbar,
            display: self.display.as_ref(),
            detail: self.detail,
        }
    }
}

/// Composes and writes one overlay and its sidecar (`render` and `batch`).
pub(super) fn write_overlay(
    drawing: &Drawing<'_>,
    a: &Analysed,
    source: &Path,
    class: usize,
    out: &Path,
    replace: bool,
) -> Result<Provenance> {
    let request = drawing.request(&a.image, source, &a.analysis, class);
    let (provenance, _) = request.save(out, replace)?;
    Ok(provenance)
}

pub fn render_command(args: &RenderArgs) -> Result<ExitCode> {
    match args.map.method {
        MethodSelection::One(_) if args.correlations => {
            bail!("--correlations compares the methods' maps: use it with --method all")
        }
        MethodSelection::All if args.raw_cam.is_some() => {
            bail!("--raw-cam writes one method's map: use it with --method NAME, not all")
        }
        MethodSelection::One(method) => render_one(args, &args.map.layer.choice(method)),
        MethodSelection::All => render_every_method(args),
    }
}

/// `render --method NAME`.
fn render_one(args: &RenderArgs, choice: &MapChoice) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let classes = classes_to_draw(&classifier, args.class.as_deref(), args.style.normalisation)?;
    let a = analyse_file(
        &classifier,
        &args.image,
        &args.source.frame,
        choice,
        &classes,
    )?;
    let class = resolve_class(&classifier, args.class.as_deref(), a.analysis.predicted)?;
    let out = args.out.clone().unwrap_or_else(|| {
        export::default_overlay_path(
            &args.image,
            &classifier.labels[class],
            choice.method,
            choice.layer,
        )
    });
    if let Some(raw) = &args.raw_cam {
        export::check_destination(raw, args.style.force, &[&args.image])?;
    }
    let drawing = Drawing::new(&classifier, &args.style, args.source.provenance);
    let provenance = write_overlay(&drawing, &a, &args.image, class, &out, args.style.force)?;
    if let Some(raw) = &args.raw_cam {
        export::save_raw_map(raw, a.map(class)?, args.style.force, &[&args.image])?;
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
        print_summary(&args.image, &provenance, &out);
    }
    Ok(ExitCode::SUCCESS)
}

/// The line `render` prints: the class drawn, the prediction, and where the overlay went.
fn print_summary(image: &Path, provenance: &Provenance, out: &Path) {
    println!(
        "{}: {} ({:.1}%), {} -> {}",
        image.display(),
        provenance.class.label,
        100.0 * provenance.class.probability,
        match provenance.model.output.activation {
            Activation::Softmax => format!("predicted {}", provenance.predicted.label),
            Activation::Sigmoid => provenance.findings(),
        },
        out.display()
    );
}

/// `render --method all`: every method's map from one forward pass (the engine's one analysis
/// path, `explain::explain_image_each`, sharing the layer's activations), each composed as
/// `render --method NAME` would, laid out in one image with one sidecar.
fn render_every_method(args: &RenderArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let classes = classes_to_draw(&classifier, args.class.as_deref(), args.style.normalisation)?;
    let image = args.source.frame.open(&args.image)?;
    let choices: Vec<MapChoice> = (Method::ALL.iter())
        .map(|&m| args.map.layer.choice(m))
        .collect();
    let progress = BarProgress::new(&format!("every method {}", image.name));
    let answers = explain::explain_image_each(&classifier, &image, &choices, &classes, &progress);
    progress.0.finish_and_clear();
    let (mut analyses, mut skipped) = (Vec::new(), Vec::new());
    for (choice, answer) in choices.iter().zip(answers?) {
        match answer {
            Ok(analysis) => analyses.push((choice.method, analysis)),
            Err(AnalysisError::Map {
                reason:
                    reason @ (ExplainError::CamNeedsLinearHead { .. }
                    | ExplainError::CamNeedsNorm5 { .. }),
                ..
            }) => {
                eprintln!(
                    "camview: {}: {} left out: {reason}",
                    args.image.display(),
                    choice.method.title()
                );
                skipped.push(SkippedMethod {
                    method: choice.method,
                    reason: reason.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some((_, first)) = analyses.first() else {
        bail!(
            "{}: no method could explain this model",
            args.image.display()
        );
    };
    let class = resolve_class(&classifier, args.class.as_deref(), first.predicted)?;
    let out = args.out.clone().unwrap_or_else(|| {
        export::default_grid_path(&args.image, &classifier.labels[class], args.map.layer.layer)
    });
    let drawing = Drawing::new(&classifier, &args.style, args.source.provenance);
    let tiles: Vec<OverlayRequest> = (analyses.iter())
        .map(|(_, analysis)| drawing.request(&image, &args.image, analysis, class))
        .collect();
    let grid = GridRequest {
        tiles: &tiles,
        skipped: &skipped,
        caption: args.style.caption,
        colour_bar: args.style.colorbar,
    };
    let (provenance, sidecar) = grid.save(&out, args.style.force)?;
    let correlations = args.correlations.then(|| {
        let maps: Vec<Vec<f32>> = (analyses.iter())
            .map(|(_, a)| a.map(class).map(|m| m.values.clone()).unwrap_or_default())
            .collect();
        Correlations {
            methods: analyses.iter().map(|(method, _)| *method).collect(),
            spearman: rank_correlations(&maps),
        }
    });
    if args.json {
        #[derive(Serialize)]
        struct Rendered<'a> {
            overlay: String,
            sidecar: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            correlations: Option<&'a Correlations>,
            #[serde(flatten)]
            provenance: &'a export::GridProvenance,
        }
        let rendered = Rendered {
            overlay: out.display().to_string(),
            sidecar: sidecar.display().to_string(),
            correlations: correlations.as_ref(),
            provenance: &provenance,
        };
        println!("{}", serde_json::to_string(&rendered)?);
    } else {
        if let Some(tile) = provenance.tiles.first() {
            print_summary(&args.image, &tile.provenance, &out);
        }
        if let Some(c) = &correlations {
            c.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How alike the methods' maps are: Spearman's rank correlation of every pair.
#[derive(Debug, Serialize)]
struct Correlations {
    methods: Vec<Method>,
    /// `[i][j]`: methods `i` and `j` (NaN, in JSON null, for a constant map).
    spearman: Vec<Vec<f64>>,
}

impl Correlations {
    /// The matrix as a table, the methods' names as row and column headers.
    fn print(&self) {
        let width = (self.methods.iter())
            .map(|m| m.name().len())
            .max()
            .unwrap_or(0)
            .max(6);
        let header: Vec<String> = (self.methods.iter())
            .map(|m| format!("{:>width$}", m.name()))
            .collect();
        println!("{:width$} {}", "", header.join(" "));
        for (method, row) in self.methods.iter().zip(&self.spearman) {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>width$.3}")).collect();
            println!("{:width$} {}", method.name(), cells.join(" "));
        }
    }
}
