//! Saving what is on the screen: the engine's full-resolution overlay with the annotations (and,
//! if asked, the caption band and colour bar) burnt in, written with its provenance sidecar.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::explain::{Analysis, Method, Stage};
use crate::export::{self, OverlayRequest};
use crate::imaging::SourceImage;
use crate::network::Classifier;
use crate::render::{Annotation, OverlayStyle};

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

impl ComposeRequest {
    /// The engine's request for this overlay: the one composition every front end uses.
    pub fn overlay(&self) -> OverlayRequest<'_> {
        OverlayRequest {
            image: &self.image,
            image_file: self.image_file.as_deref(),
            classifier: &self.classifier,
            analysis: &self.analysis,
            class: self.class,
            style: self.style,
            annotations: &self.annotations,
            caption: self.caption,
            colour_bar: self.colour_bar,
        }
    }
}

/// Composes and writes the overlay and its sidecar; returns both paths.
pub fn save(
    req: &ComposeRequest,
    dest: &Path,
    replace: bool,
) -> Result<(PathBuf, PathBuf), String> {
    let (_, sidecar) = req
        .overlay()
        .save(dest, replace)
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
