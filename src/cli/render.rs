//! `render`: one image's map drawn over it, saved with its provenance (and optionally the raw
//! map as `.npy`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::args::{ModelArgs, SourceArgs, StyleArgs, classes_to_draw, resolve_class};
use super::{Analysed, analyse_file};
use crate::export::{self, OverlayRequest, Provenance, ProvenanceDetail};
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
    pub style: StyleArgs,
    #[command(flatten)]
    pub source: SourceArgs,
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

/// Composes and writes one overlay and its sidecar (`render` and `batch`): the engine's one
/// composition, as the viewer's Save uses it.
pub(super) fn write_overlay(
    classifier: &Classifier,
    a: &Analysed,
    source: &Path,
    class: usize,
    style: &StyleArgs,
    detail: ProvenanceDetail,
    out: &Path,
) -> Result<Provenance> {
    let display = style.display();
    let request = OverlayRequest {
        image: &a.image,
        image_file: Some(source),
        classifier,
        analysis: &a.analysis,
        class,
        style: style.style(),
        annotations: &[],
        caption: style.caption,
        colour_bar: style.colorbar,
        display: display.as_ref(),
        detail,
    };
    let (provenance, _) = request.save(out, style.force)?;
    Ok(provenance)
}

pub fn render_command(args: &RenderArgs) -> Result<ExitCode> {
    let classifier = args.model.load()?;
    let choice = args.style.map.choice();
    let classes = classes_to_draw(&classifier, args.class.as_deref(), args.style.normalisation)?;
    let a = analyse_file(
        &classifier,
        &args.image,
        &args.source.frame,
        &choice,
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
    let provenance = write_overlay(
        &classifier,
        &a,
        &args.image,
        class,
        &args.style,
        args.source.provenance,
        &out,
    )?;
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
        println!(
            "{}: {} ({:.1}%), {} -> {}",
            args.image.display(),
            provenance.class.label,
            100.0 * provenance.class.probability,
            match provenance.model.output.activation {
                Activation::Softmax => format!("predicted {}", provenance.predicted.label),
                Activation::Sigmoid => provenance.findings(),
            },
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
