//! Writing overlays, raw maps, region masks and their provenance: atomically, never over the
//! source image, never over an existing file unless asked.

mod grid;
mod mask;
mod overlay;
mod provenance;
pub mod secondary_capture;

pub use grid::{GridProvenance, GridRequest, GridTile, SkippedMethod};
pub use mask::{save_mask_png, write_mask_png};
pub use overlay::OverlayRequest;
pub use provenance::{
    ClassRecord, DecorationRecord, ImageDetails, ImageRecord, Provenance, ProvenanceDetail,
    UidRecord,
};

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};

use crate::explain::{ClassActivationMap, Method, Stage};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{file}: already exists")]
    Exists { file: String },
    #[error("{file}: refusing to write over the source image")]
    IsSource { file: String },
    #[error("{file}: unknown output format '{extension}' (use .png, .bmp, .jpg, .tif or .dcm)")]
    UnknownFormat { file: String, extension: String },
    #[error("{file}: cannot write: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}: the map of class '{label}' has not been computed")]
    NoMap { file: String, label: String },
    #[error("{file}: a grid of overlays is written as .png, .bmp, .jpg or .tif, not as DICOM")]
    GridNotDicom { file: String },
    #[error("{file}: a mask is written as PNG: name it .png")]
    MaskNotPng { file: String },
    #[error("{file}: the mask has {pixels} pixels, not {width} x {height}")]
    MaskSize {
        file: String,
        width: u32,
        height: u32,
        pixels: usize,
    },
}

/// The default overlay name: `<image stem>_<method>_<class label>.png` beside the image, with
/// the layer after the method when it is not norm5 (`scan_gradcam-denseblock3_lesion.png`).
pub fn default_overlay_path(image: &Path, label: &str, method: Method, layer: Stage) -> PathBuf {
    output_path(image, method.name(), label, layer)
}

/// The default name of every method's overlays side by side: `<image stem>_all_<class
/// label>.png` beside the image, with the layer as `default_overlay_path` adds it.
pub fn default_grid_path(image: &Path, label: &str, layer: Stage) -> PathBuf {
    output_path(image, "all", label, layer)
}

/// `<image stem>_<what>[-<layer>]_<class label>.png` beside the image.
fn output_path(image: &Path, what: &str, label: &str, layer: Stage) -> PathBuf {
    let stem = image
        .file_stem()
        .map_or("image".into(), |s| s.to_string_lossy());
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let what = match layer {
        Stage::Norm5 => what.to_string(),
        other => format!("{what}-{}", other.name().trim_start_matches("features.")),
    };
    image.with_file_name(format!("{stem}_{what}_{label}.png"))
}

/// The JSON sidecar written beside an overlay: `<overlay>.json`.
pub fn sidecar_path(overlay: &Path) -> PathBuf {
    let mut name = overlay.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn io_error(file: &Path, e: &std::io::Error) -> ExportError {
    ExportError::Io {
        file: file.display().to_string(),
        reason: crate::describe_io_error(e),
    }
}

/// Refuses a destination that exists (unless `replace`) or that is one of the `sources`.
pub fn check_destination(dest: &Path, replace: bool, sources: &[&Path]) -> Result<(), ExportError> {
    let file = dest.display().to_string();
    if let Ok(dest_real) = std::fs::canonicalize(dest) {
        if sources
            .iter()
            .filter_map(|s| std::fs::canonicalize(s).ok())
            .any(|s| s == dest_real)
        {
            return Err(ExportError::IsSource { file });
        }
        if !replace {
            return Err(ExportError::Exists { file });
        }
    }
    Ok(())
}

/// Writes through a temporary file in the destination's folder, then renames it into place, so
/// a reader never sees half a file and a failure leaves nothing behind.
pub fn write_atomic(
    dest: &Path,
    replace: bool,
    write: impl FnOnce(&mut BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> Result<(), ExportError> {
    stage(dest, write)?.commit(replace)
}

/// A file written whole under a temporary name in its destination's folder, not yet in place
/// (dropped, it is removed).
pub struct Staged {
    dest: PathBuf,
    file: tempfile::NamedTempFile,
}

/// Writes `dest`'s content to a temporary file beside it and flushes it to the disk; a failure
/// (a full disk) leaves nothing behind.
pub fn stage(
    dest: &Path,
    write: impl FnOnce(&mut BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> Result<Staged, ExportError> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = temporary_prefix();
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMPORARY_SUFFIX);
    // A temporary file is private (0600); the file it becomes is an ordinary one (0644 less the
    // umask), readable by the colleague it is made for.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let tmp = builder.tempfile_in(dir).map_err(|e| io_error(dest, &e))?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        write(&mut w).map_err(|e| io_error(dest, &e))?;
        w.flush().map_err(|e| io_error(dest, &e))?;
    }
    tmp.as_file().sync_all().map_err(|e| io_error(dest, &e))?;
    Ok(Staged {
        dest: dest.to_path_buf(),
        file: tmp,
    })
}

impl Staged {
    /// Renames the file into place (over an existing file only if `replace`).
    pub fn commit(self, replace: bool) -> Result<(), ExportError> {
        let dest = self.dest;
        let persisted = if replace {
            self.file.persist(&dest).map_err(|e| e.error)
        } else {
            self.file.persist_noclobber(&dest).map_err(|e| e.error)
        };
        match persisted {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(ExportError::Exists {
                file: dest.display().to_string(),
            }),
            Err(e) => Err(io_error(&dest, &e)),
        }
    }
}

/// How a temporary file's name ends.
const TEMPORARY_SUFFIX: &str = ".part";

/// This machine's name, for temporary files' names (a folder may be shared between machines).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string())
}

/// `.camview-<host>-<pid>-`: whose temporary file it is, so that one left by a process that was
/// killed can be told from one still being written (`remove_stale_temporaries`).
fn temporary_prefix() -> String {
    format!(".camview-{}-{}-", host_name(), std::process::id())
}

/// Removes from `dir` the temporary files `write_atomic` left when its process was killed (on
/// this machine: the process no longer runs); returns their names. A temporary file of a
/// process still running, or of another machine, is left alone.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mine = format!(".camview-{}-", host_name());
    // Without /proc (not Linux) a running process cannot be told from a killed one.
    let Some(entries) = Path::new("/proc/self")
        .exists()
        .then(|| std::fs::read_dir(dir).ok())
        .flatten()
    else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(&mine)
            .filter(|_| name.ends_with(TEMPORARY_SUFFIX))
        else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        let running = pid.parse::<u32>().is_ok_and(|pid| {
            pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
        });
        if !running && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// The format an overlay is written in, by its extension.
pub fn format_of(path: &Path) -> Result<ImageFormat, ExportError> {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => Ok(ImageFormat::Png),
        "bmp" => Ok(ImageFormat::Bmp),
        "jpg" | "jpeg" => Ok(ImageFormat::Jpeg),
        "tif" | "tiff" => Ok(ImageFormat::Tiff),
        _ => Err(ExportError::UnknownFormat {
            file: path.display().to_string(),
            extension,
        }),
    }
}

fn to_io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A PNG encoder's error as the I/O error it carries (a full disk stays a full disk), or as
/// another one.
fn png_io(e: png::EncodingError) -> std::io::Error {
    match e {
        png::EncodingError::IoError(io) => io,
        other => to_io(other),
    }
}

/// Encodes an image by the extension of `dest`; PNGs carry the provenance in text chunks.
pub fn encode_image(
    w: &mut impl Write,
    format: ImageFormat,
    img: &RgbImage,
    provenance: Option<&Provenance>,
) -> std::io::Result<()> {
    if format != ImageFormat::Png {
        let mut buffer = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buffer, format).map_err(to_io)?;
        return w.write_all(buffer.get_ref());
    }
    let mut encoder = png::Encoder::new(w, img.width(), img.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .add_text_chunk(
            "Software".into(),
            format!("camview {}", env!("CARGO_PKG_VERSION")),
        )
        .map_err(to_io)?;
    if let Some(p) = provenance {
        encoder
            .add_itxt_chunk("Description".into(), p.caption_lines().join("\n"))
            .map_err(to_io)?;
        let json = serde_json::to_string(p).map_err(to_io)?;
        encoder
            .add_itxt_chunk("camview".into(), json)
            .map_err(to_io)?;
    }
    let mut writer = encoder.write_header().map_err(png_io)?;
    writer.write_image_data(img.as_raw()).map_err(png_io)?;
    writer.finish().map_err(png_io)
}

/// Saves an overlay and its JSON sidecar. Nothing is written unless both can be.
pub fn save_overlay(
    dest: &Path,
    img: &RgbImage,
    provenance: &Provenance,
    replace: bool,
    sources: &[&Path],
) -> Result<PathBuf, ExportError> {
    let format = format_of(dest)?;
    save_with_sidecar(dest, provenance, replace, sources, |w| {
        encode_image(w, format, img, Some(provenance))
    })
}

/// Writes a file with `write` and its JSON provenance (an overlay's, or a grid's) beside it,
/// both atomically, neither over a source; returns the sidecar's path.
pub fn save_with_sidecar(
    dest: &Path,
    provenance: &impl serde::Serialize,
    replace: bool,
    sources: &[&Path],
    write: impl FnOnce(&mut BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> Result<PathBuf, ExportError> {
    let sidecar = sidecar_path(dest);
    check_destination(dest, replace, sources)?;
    check_destination(&sidecar, replace, sources)?;
    let json = serde_json::to_vec_pretty(provenance).map_err(|e| ExportError::Io {
        file: sidecar.display().to_string(),
        reason: e.to_string(),
    })?;
    // Both written whole before either is put in place: a full disk leaves neither.
    let file = stage(dest, write)?;
    let record = stage(&sidecar, |w| w.write_all(&json))?;
    file.commit(replace)?;
    if let Err(e) = record.commit(replace) {
        let _ = std::fs::remove_file(dest);
        return Err(e);
    }
    Ok(sidecar)
}

/// Writes a raw map (`height x width`, float32) as a NumPy `.npy` file.
pub fn save_raw_map(
    dest: &Path,
    map: &ClassActivationMap,
    replace: bool,
    sources: &[&Path],
) -> Result<(), ExportError> {
    check_destination(dest, replace, sources)?;
    write_atomic(dest, replace, |w| {
        write_npy_f32(w, &[map.height, map.width], &map.values)
    })
}

/// NumPy format 1.0, little-endian float32, C order.
pub fn write_npy_f32(w: &mut impl Write, shape: &[usize], values: &[f32]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in values {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_never_replaces_without_permission() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        write_atomic(&dest, false, |w| w.write_all(b"first")).unwrap();
        let err = write_atomic(&dest, false, |w| w.write_all(b"second")).unwrap_err();
        assert!(matches!(err, ExportError::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"first");
        write_atomic(&dest, true, |w| w.write_all(b"second")).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o444, 0o444, "not readable by others: {mode:o}");
        }
        // A failing writer leaves neither a file nor a temporary behind.
        let failed = dir.path().join("failed.bin");
        assert!(write_atomic(&failed, false, |_| Err(std::io::Error::other("disk full"))).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_source_is_never_a_destination() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("scan.png");
        std::fs::write(&src, b"pixels").unwrap();
        let err = check_destination(&dir.path().join("./scan.png"), true, &[&src]).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("refusing to write over the source image")
        );
        assert_eq!(std::fs::read(&src).unwrap(), b"pixels");
    }

    #[test]
    fn npy_header_is_numpy_s() {
        let mut out = Vec::new();
        write_npy_f32(&mut out, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(&out[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([out[8], out[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let header = std::str::from_utf8(&out[10..10 + len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!(out.len(), 10 + len + 24);
    }

    #[test]
    fn default_names() {
        let p = default_overlay_path(
            Path::new("/data/scan 1.bmp"),
            "lesion/benign",
            Method::Cam,
            Stage::Norm5,
        );
        assert_eq!(p, Path::new("/data/scan 1_cam_lesion_benign.png"));
        let grid = default_grid_path(Path::new("/data/s.bmp"), "lesion", Stage::DenseBlock(2));
        assert_eq!(grid, Path::new("/data/s_all-denseblock2_lesion.png"));
        assert_eq!(
            sidecar_path(&p),
            Path::new("/data/scan 1_cam_lesion_benign.png.json")
        );
    }
}
