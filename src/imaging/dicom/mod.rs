//! DICOM files: read with dicom-rs (`dicom-object` for the data set, `dicom-pixeldata`'s codecs
//! for compressed pixel data), then turned into a `SourceImage` by camview's own pixel pipeline
//! (`imaging::levels`), which is the one the README documents and the fixtures check against
//! pydicom.
//!
//! Why our own pipeline after the codecs: dicom-pixeldata applies a window only when making an
//! 8-bit image (not to the modality values a viewer re-windows every frame), does not read
//! planar configuration 1 or native YBR_FULL_422, and reports a decoded RLE colour frame as RGB
//! whatever it holds. The decoders (JPEG, JPEG 2000, RLE, deflate) are theirs.

mod attributes;
mod jpeg;
mod lengths;
mod pixels;
mod rle;

use std::sync::Arc;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use serde::{Deserialize, Serialize};

pub use attributes::{DicomIdentifiers, PatientStudy};

use super::ImageError;
use super::levels::GrayLevels;

/// camview's Implementation Class UID: a UUID-derived UID (PS3.5 B.2, root 2.25), fixed.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.141226175818704177890454385319637617207";

/// What a DICOM file says about itself that is safe to export (no patient data), and the frame
/// shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DicomInfo {
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub rows: u32,
    pub columns: u32,
    /// Row and column spacing in mm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_spacing: Option<[f64; 2]>,
    /// The frame shown, counted from 1 as DICOM counts them.
    pub frame: u32,
    pub frames: u32,
    pub photometric: String,
    pub transfer_syntax: String,
    /// Study, Series and SOP Instance UIDs: exported only when the user asks
    /// (`ProvenanceDetail::Full`).
    #[serde(skip)]
    pub identifiers: DicomIdentifiers,
    /// The patient and study modules, kept only to file a Secondary Capture in the same
    /// study; never serialised.
    #[serde(skip)]
    pub patient_study: Arc<PatientStudy>,
}

/// Whether `bytes` look like DICOM: the `DICM` magic after a 128-byte preamble or at the start,
/// or a raw data set (no file meta) starting with a group 0x0008 element.
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
        || bytes.starts_with(b"DICM")
        || attributes::raw_data_set_syntax(bytes).is_some()
}

/// Reads frame `frame` (from 1) of a DICOM file's bytes; `name` is used in messages.
pub fn decode_dicom(
    name: &str,
    bytes: &[u8],
    frame: u32,
    budget: Option<u64>,
) -> Result<(GrayOrColour, DicomInfo), ImageError> {
    let fail = |reason: String| ImageError::Dicom {
        file: name.to_string(),
        reason,
    };
    // dicom-rs is not built for hostile input; a panic in it is a damaged file, not a crash.
    let object = quietly(|| read_object(bytes, false))
        .ok_or_else(|| fail("the DICOM data set is damaged (the reader failed)".to_string()))?
        .map_err(fail)?;
    let (width, height, gray) = pixels::dimensions(&object).map_err(fail)?;
    crate::imaging::decode::within_budget(name, width, height, gray, budget)?;
    quietly(|| pixels::decode_frame(&object, frame))
        .ok_or_else(|| fail("the pixel data is damaged (the decoder failed)".to_string()))?
        .map_err(fail)
}

/// The name of the threads `quietly` runs on.
const QUIET_THREAD: &str = "camview-dicom";

/// Runs `f` on a thread of its own with a large stack (nested sequences recurse in the
/// reader), whose panics print nothing: a panic there is a damaged file, which the caller
/// reports in one message. `None` when `f` panicked.
fn quietly<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(QUIET_THREAD) {
                previous(info);
            }
        }));
    });
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(QUIET_THREAD.to_string())
            .stack_size(256 << 20)
            .spawn_scoped(scope, f)
            .ok()?
            .join()
            .ok()
    })
}

/// A decoded frame: gray values at full depth, or 8-bit RGB.
pub enum GrayOrColour {
    Gray(GrayLevels),
    Colour(image::RgbImage),
}

/// The data set, with or without preamble and file meta.
/// With `header_only`, reading stops at the pixel data, so the file's beginning is enough.
fn read_object(bytes: &[u8], header_only: bool) -> Result<DefaultDicomObject, String> {
    lengths::check_lengths(bytes, header_only)?;
    let options = || {
        let options = OpenFileOptions::new().read_preamble(dicom_object::file::ReadPreamble::Never);
        if header_only {
            options.read_until(tags::PIXEL_DATA)
        } else {
            options
        }
    };
    let damaged = |e: dicom_object::ReadError| describe_read_error(&e);
    if bytes.get(128..132) == Some(b"DICM") {
        return options().from_reader(&bytes[128..]).map_err(damaged);
    }
    if bytes.starts_with(b"DICM") {
        return options().from_reader(bytes).map_err(damaged);
    }
    let Some(ts) = attributes::raw_data_set_syntax(bytes) else {
        return Err("not a DICOM file (no DICM marker and no data set)".to_string());
    };
    let object = InMemDicomObject::read_dataset_with_ts(bytes, &ts).map_err(damaged)?;
    let uid = |tag| {
        object
            .get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_else(|| "1.2.3".to_string())
    };
    let meta = dicom_object::meta::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(uid(tags::SOP_CLASS_UID))
        .media_storage_sop_instance_uid(uid(tags::SOP_INSTANCE_UID))
        .transfer_syntax(ts.uid())
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .build()
        .map_err(|e| format!("not a readable DICOM file: {e}"))?;
    Ok(object.with_exact_meta(meta))
}

/// A reading failure in words: a transfer syntax by name, anything else as damage.
fn describe_read_error(e: &dicom_object::ReadError) -> String {
    use dicom_object::ReadError as E;
    match e {
        E::ReadUnrecognizedTransferSyntax { uid, .. } => {
            format!("the transfer syntax {uid} is not one camview can read")
        }
        E::ReadUnsupportedTransferSyntax { uid, name, .. }
        | E::ReadUnsupportedTransferSyntaxWithSuggestion { uid, name, .. } => {
            format!("the transfer syntax {name} ({uid}) is not one camview can read")
        }
        E::ParseMetaDataSet { .. } | E::ReadPreambleBytes { .. } => {
            format!("not a readable DICOM file: its file meta information is damaged ({e})")
        }
        _ => format!("the DICOM data set is damaged or cut short ({e})"),
    }
}

/// The order of a series: Instance Number, then Slice Location (the file name comes after).
/// `bytes` may be only the file's beginning: the header is read, up to the pixel data.
pub fn series_key(bytes: &[u8]) -> Option<(i64, f64)> {
    quietly(|| {
        let object = read_object(bytes, true).ok()?;
        let number = |tag| {
            object
                .get(tag)
                .and_then(|e| e.to_str().ok())
                .and_then(|s| s.trim().parse::<f64>().ok())
        };
        Some((
            number(tags::INSTANCE_NUMBER).map_or(i64::MAX, |n| n as i64),
            number(tags::SLICE_LOCATION).unwrap_or(f64::MAX),
        ))
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder is sorted from each file's first bytes: the header up to the pixel data is
    /// enough, and a damaged header is still refused there.
    #[test]
    fn a_series_is_sorted_from_the_header_alone() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom");
        let bytes = std::fs::read(dir.join("series/b.dcm")).unwrap();
        let pixels = bytes
            .windows(4)
            .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
            .unwrap();
        let head = &bytes[..pixels + 100];
        assert!(
            read_object(head, false).is_err(),
            "the cut file reads whole"
        );
        assert_eq!(series_key(head), Some((2, 20.0)));
        assert_eq!(series_key(&bytes), Some((2, 20.0)));
        let mut bomb = head.to_vec();
        let at = bomb
            .windows(4)
            .position(|w| w == [0x28, 0x00, 0x10, 0x00])
            .unwrap();
        bomb[at + 6..at + 8].copy_from_slice(&[0xFF, 0xFF]);
        assert_eq!(series_key(&bomb), None);
    }
}
