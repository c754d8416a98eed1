//! Images in and out of the network: decoding like PIL, resizing like PIL, preprocessing like
//! torchvision.

pub mod budget;
pub mod decode;
pub mod dicom;
pub mod levels;
pub mod preprocess;
pub mod resample;

pub use decode::{
    ImageError, SourceImage, decode_image, decode_image_frame, decode_image_within, open_image,
    open_image_frame,
};
pub use levels::{DisplayWindow, GrayLevels, NetworkWindow, Voi, Window};
pub use preprocess::{Geometry, Intensity, NetworkInput, PreprocessError, Preprocessing, Region};

/// File extensions camview opens as images (DICOM files may also have none).
pub const IMAGE_EXTENSIONS: [&str; 8] =
    ["png", "bmp", "jpg", "jpeg", "tif", "tiff", "dcm", "dicom"];

/// The image files directly in `dir` (not its subfolders): DICOM files first, as a series in
/// Instance Number order (then Slice Location, then name), then the others by name. A file
/// without an extension counts when it is DICOM (the `DICM` marker).
pub fn image_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<(SeriesPlace, std::path::PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter_map(|p| {
            let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase());
            let listed = match ext.as_deref() {
                Some(e) => IMAGE_EXTENSIONS.contains(&e),
                None => has_dicom_marker(&p),
            };
            listed.then(|| (series_place(&p), p))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Where a file sorts in a folder: DICOM by (Instance Number, Slice Location), others after.
#[derive(Debug, PartialEq)]
enum SeriesPlace {
    Dicom(i64, f64),
    Other,
}

impl Eq for SeriesPlace {}

impl PartialOrd for SeriesPlace {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeriesPlace {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Self::Dicom(a, x), Self::Dicom(b, y)) => a.cmp(b).then(x.total_cmp(y)),
            (Self::Dicom(..), Self::Other) => std::cmp::Ordering::Less,
            (Self::Other, Self::Dicom(..)) => std::cmp::Ordering::Greater,
            (Self::Other, Self::Other) => std::cmp::Ordering::Equal,
        }
    }
}

fn has_dicom_marker(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[128..] == b"DICM" || dicom::is_dicom(&head))
}

/// Bytes read from each DICOM file of a folder to sort the series: enough for a header, so
/// listing a folder (each Left/Right in the viewer) does not read every slice whole.
const SERIES_HEADER_BYTES: u64 = 64 * 1024;

fn series_place(path: &std::path::Path) -> SeriesPlace {
    use std::io::Read;
    if !has_dicom_marker(path) {
        return SeriesPlace::Other;
    }
    let read = |limit: u64| -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .ok()?;
        Some(bytes)
    };
    // A header longer than the prefix, or a data set without file meta (which dicom-rs reads
    // to its end), is read whole.
    let key = read(SERIES_HEADER_BYTES)
        .and_then(|head| dicom::series_key(&head))
        .or_else(|| read(decode::MAX_FILE_BYTES).and_then(|all| dicom::series_key(&all)));
    let (number, location) = key.unwrap_or((i64::MAX, f64::MAX));
    SeriesPlace::Dicom(number, location)
}
