//! Saving what is on the screen: the engine's full-resolution overlay with the annotations (and,
//! if asked, the caption band and colour bar) burnt in, written with its provenance sidecar.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::explain::Analysis;
use crate::export::{self, OverlayRequest, ProvenanceDetail};
use crate::imaging::{DisplayWindow, SourceImage};
use crate::network::Classifier;
use crate::render::{Annotation, OverlayStyle};

use super::session::ShownMap;

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
    /// The window the image is shown with (images with gray levels).
    pub display: Option<DisplayWindow>,
    /// Whether the provenance carries a DICOM source's UIDs.
    pub detail: ProvenanceDetail,
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
            display: self.display.as_ref(),
            detail: self.detail,
        }
    }
}

/// The files a save wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFiles {
    pub overlay: PathBuf,
    /// The JSON provenance beside it.
    pub sidecar: PathBuf,
}

/// Composes and writes the overlay and its sidecar.
pub fn save(req: &ComposeRequest, dest: &Path, replace: bool) -> Result<SavedFiles, String> {
    let (_, sidecar) = req
        .overlay()
        .save(dest, replace)
        .map_err(|e| e.to_string())?;
    Ok(SavedFiles {
        overlay: dest.to_path_buf(),
        sidecar,
    })
}

/// A file format a saved overlay can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub name: &'static str,
    /// The extension that chooses it (the one offered; `jpeg` and `tiff` are taken too).
    pub extension: &'static str,
}

impl Format {
    const fn new(name: &'static str, extension: &'static str) -> Self {
        Self { name, extension }
    }

    /// Whether a file with this extension (lower case) is written in this format.
    pub fn has_extension(self, extension: &str) -> bool {
        extension == self.extension
            || (self.extension == "jpg" && extension == "jpeg")
            || (self.extension == "tif" && extension == "tiff")
            || (self.extension == "dcm" && extension == "dicom")
    }
}

/// A DICOM Secondary Capture in the source's study (`export::secondary_capture`).
pub const DICOM: Format = Format::new("DICOM", "dcm");

/// The file formats a saved overlay can have.
pub const FORMATS: [Format; 5] = [
    Format::new("PNG", "png"),
    Format::new("BMP", "bmp"),
    Format::new("JPEG", "jpg"),
    Format::new("TIFF", "tif"),
    DICOM,
];

/// The suggested destination: `<image>_cam_<class>.png` beside the image, or in `fallback_dir`
/// for an image that has no file (a demo image).
pub fn default_destination(
    image_file: Option<&Path>,
    image_name: &str,
    label: &str,
    shown: ShownMap,
    fallback_dir: &Path,
) -> PathBuf {
    let ShownMap { method, layer } = shown;
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
    if !FORMATS.iter().any(|f| f.has_extension(&extension)) {
        return Check::Refused(format!(
            "{}: unknown output format '{extension}' (use .png, .bmp, .jpg, .tif or .dcm)",
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
