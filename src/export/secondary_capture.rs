//! The overlay as a DICOM Secondary Capture Image (PS3.3 A.8.1), so it can go back to the PACS
//! into the source's study: the one output that carries the patient module, because it must
//! file into the same study (the save window says so).
//!
//! Written with dicom-object: the source's patient and study modules copied, new Series and SOP
//! Instance UIDs (UUID-derived, PS3.5 B.2), RGB pixels, Burned In Annotation YES, and a
//! Derivation Description naming camview, the model's hash, the method, class and probability.

use std::io::Write;
use std::path::Path;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use image::RgbImage;
use sha2::{Digest, Sha256};

use super::{ExportError, Provenance};
use crate::imaging::SourceImage;
use crate::imaging::dicom::IMPLEMENTATION_CLASS_UID;

/// Whether `path` asks for a DICOM file.
pub fn is_dicom_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| matches!(e.to_string_lossy().to_lowercase().as_str(), "dcm" | "dicom"))
}

/// A new UID from the overlay's own content and the time: `2.25.<128 bits>` (PS3.5 B.2).
fn new_uid(seed: &[u8], purpose: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update(purpose.as_bytes())
        .chain_update(now.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A version-4-like UUID: the variant and version bits set as RFC 4122 does.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

fn put_str(object: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, value: &str) {
    object.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

fn put_u16(object: &mut InMemDicomObject, tag: dicom_core::Tag, value: u16) {
    object.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
}

/// What the overlay shows, for Derivation Description (at most 1024 characters, ST).
fn derivation(provenance: &Provenance) -> String {
    let text = format!(
        "camview {}: {} at {} of class {} ({:.1}%), model {} sha256 {}",
        provenance.camview_version,
        provenance.method.title(),
        provenance.layer,
        provenance.class.label,
        100.0 * provenance.class.probability,
        provenance.model.architecture,
        provenance.model.sha256,
    );
    text.chars().take(1024).collect()
}

/// `img` (the composed overlay) as a Secondary Capture in `source`'s study; `dest` names the
/// file in messages.
pub fn secondary_capture(
    dest: &Path,
    img: &RgbImage,
    provenance: &Provenance,
    source: &SourceImage,
) -> Result<DefaultDicomObject, ExportError> {
    let file = dest.display().to_string();
    let too_large = |what: &str| ExportError::Io {
        file: file.clone(),
        reason: format!("the overlay's {what} does not fit a DICOM image (65535 at most)"),
    };
    let columns = u16::try_from(img.width()).map_err(|_| too_large("width"))?;
    let rows = u16::try_from(img.height()).map_err(|_| too_large("height"))?;
    let mut object = InMemDicomObject::new_empty();
    let dicom = source.dicom.as_deref();
    if let Some(d) = dicom {
        for element in d.patient_study.elements() {
            object.put(element.clone());
        }
    }
    let seed = img.as_raw();
    let study = dicom
        .and_then(|d| d.identifiers.study.clone())
        .unwrap_or_else(|| new_uid(seed, "study"));
    let sop_instance = new_uid(seed, "instance");
    put_str(&mut object, tags::STUDY_INSTANCE_UID, VR::UI, &study);
    put_str(
        &mut object,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &new_uid(seed, "series"),
    );
    put_str(&mut object, tags::SOP_INSTANCE_UID, VR::UI, &sop_instance);
    put_str(
        &mut object,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    );
    // The source's modality stays in its study; a Secondary Capture's own is OT unless copied.
    if object.get(tags::MODALITY).is_none() {
        put_str(&mut object, tags::MODALITY, VR::CS, "OT");
    }
    put_str(&mut object, tags::CONVERSION_TYPE, VR::CS, "WSD");
    put_str(
        &mut object,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "camview overlay",
    );
    put_str(&mut object, tags::SERIES_NUMBER, VR::IS, "9901");
    put_str(&mut object, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut object, tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY");
    put_str(
        &mut object,
        tags::DERIVATION_DESCRIPTION,
        VR::ST,
        &derivation(provenance),
    );
    put_str(&mut object, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    put_str(&mut object, tags::MANUFACTURER, VR::LO, "camview");
    put_str(&mut object, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB");
    put_u16(&mut object, tags::SAMPLES_PER_PIXEL, 3);
    put_u16(&mut object, tags::PLANAR_CONFIGURATION, 0);
    put_u16(&mut object, tags::ROWS, rows);
    put_u16(&mut object, tags::COLUMNS, columns);
    put_u16(&mut object, tags::BITS_ALLOCATED, 8);
    put_u16(&mut object, tags::BITS_STORED, 8);
    put_u16(&mut object, tags::HIGH_BIT, 7);
    put_u16(&mut object, tags::PIXEL_REPRESENTATION, 0);
    let mut pixels = img.as_raw().clone();
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(format!("CAMVIEW_{}", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ExportError::Io {
            file: file.clone(),
            reason: e.to_string(),
        })?;
    Ok(object.with_exact_meta(meta))
}

/// Writes a Secondary Capture (preamble, file meta, data set).
pub fn write_dicom(w: &mut impl Write, object: &DefaultDicomObject) -> std::io::Result<()> {
    object
        .write_all(w)
        .map_err(|e| std::io::Error::other(e.to_string()))
}
