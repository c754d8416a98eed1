//! Saving what is on the screen: the engine's full-resolution overlay with the annotations (and,
//! if asked, the caption band and colour bar) burnt in, written with its provenance sidecar.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;

use crate::explain::{Analysis, Method, Stage};
use crate::export::{self, ImageRecord, Provenance};
use crate::imaging::SourceImage;
use crate::network::Classifier;
use crate::render::{self, Annotation, ColourBar, Heat, OverlayStyle};

/// Everything needed to compose one overlay, detached from the session so the worker can do it.
#[derive(Clone)]
pub struct ComposeRequest {
    pub image: Arc<SourceImage>,
    /// The image's file, when it has one: named in the provenance and never written over.
    pub image_file: Option<PathBuf>,
    pub classifier: Arc<Classifier>,
    pub analysis: Arc<Analysis>,
    pub class: usize,
    pub style: OverlayStyle,
    pub annotations: Vec<Annotation>,
    pub caption: bool,
    pub colour_bar: bool,
}

/// The overlay at the image's own resolution: heat blended as `render::blend` does, then the
/// annotations, then (optionally) the caption band and colour bar below it.
pub fn compose(req: &ComposeRequest) -> (RgbImage, Provenance) {
    let (w, h) = (req.image.width(), req.image.height());
    let record = ImageRecord {
        file: req
            .image_file
            .as_ref()
            .map_or_else(|| req.image.name.clone(), |p| p.display().to_string()),
        width: w,
        height: h,
    };
    let mut provenance = Provenance::new(
        record,
        &req.classifier,
        &req.analysis,
        req.class,
        &req.style,
    );
    provenance.annotations = req.annotations.clone();
    let heat = Heat::of(&req.analysis, req.class, req.style.normalisation, w, h);
    let mut overlay = render::blend(&req.image.rgb, &heat, &req.style);
    render::annotation::burn_in(&mut overlay, &req.annotations);
    if !req.caption && !req.colour_bar {
        return (overlay, provenance);
    }
    let lines = if req.caption {
        provenance.caption_lines()
    } else {
        Vec::new()
    };
    let bar = req.colour_bar.then_some(ColourBar {
        colormap: req.style.colormap,
        low: heat.range.0,
        high: heat.range.1,
    });
    (render::with_caption_band(&overlay, &lines, bar), provenance)
}

/// Composes and writes the overlay and its sidecar; returns both paths.
pub fn save(
    req: &ComposeRequest,
    dest: &Path,
    replace: bool,
) -> Result<(PathBuf, PathBuf), String> {
    let (img, provenance) = compose(req);
    let sources: Vec<&Path> = req.image_file.iter().map(PathBuf::as_path).collect();
    let sidecar = export::save_overlay(dest, &img, &provenance, replace, &sources)
        .map_err(|e| e.to_string())?;
    Ok((dest.to_path_buf(), sidecar))
}

/// The file formats a saved overlay can have, by extension.
pub const FORMATS: [(&str, &str); 4] = [
    ("PNG", "png"),
    ("BMP", "bmp"),
    ("JPEG", "jpg"),
    ("TIFF", "tif"),
];

/// The suggested destination: `<image>_cam_<class>.png` beside the image, or in `fallback_dir`
/// for an image that has no file (a demo image).
pub fn default_destination(
    image_file: Option<&Path>,
    image_name: &str,
    label: &str,
    (method, layer): (Method, Stage),
    fallback_dir: &Path,
) -> PathBuf {
    match image_file {
        Some(path) => export::default_overlay_path(path, label, method, layer),
        None => export::default_overlay_path(&fallback_dir.join(image_name), label, method, layer),
    }
}

/// Why a destination cannot be used as it is, before anything is composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ready,
    /// The overlay or its sidecar exists: ask before replacing.
    Exists(PathBuf),
    Refused(String),
}

/// Checks a destination the way `export::save_overlay` will, so the user is asked before
/// anything is replaced and told at once what is wrong.
pub fn check(dest: &Path, image_file: Option<&Path>) -> Check {
    if dest.as_os_str().is_empty() {
        return Check::Refused("type a file name to save to".to_string());
    }
    let extension = dest
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !FORMATS
        .iter()
        .any(|(_, ext)| *ext == extension || (extension == "jpeg" && *ext == "jpg"))
        && extension != "tiff"
    {
        return Check::Refused(format!(
            "{}: unknown output format '{extension}' (use .png, .bmp, .jpg or .tif)",
            dest.display()
        ));
    }
    let sources: Vec<&Path> = image_file.into_iter().collect();
    for path in [dest.to_path_buf(), export::sidecar_path(dest)] {
        match export::check_destination(&path, false, &sources) {
            Ok(()) => {}
            Err(export::ExportError::Exists { .. }) => return Check::Exists(path),
            Err(e) => return Check::Refused(e.to_string()),
        }
    }
    match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Check::Refused(format!(
            "{}: cannot write: the folder {} does not exist",
            dest.display(),
            dir.display()
        )),
        _ => Check::Ready,
    }
}

/// `path` with its extension replaced by `extension`.
pub fn with_extension(path: &str, extension: &str) -> String {
    let p = Path::new(path);
    if path.is_empty() {
        return String::new();
    }
    p.with_extension(extension).display().to_string()
}
