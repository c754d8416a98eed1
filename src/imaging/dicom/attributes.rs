//! Reading attributes off a data set, and the two groups of attributes camview keeps apart from
//! everything it exports: the identifiers (UIDs) and the patient and study modules.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_transfer_syntax_registry::entries;

/// The transfer syntax of a data set stored without file meta: explicit VR when the first
/// element's VR bytes are two capital letters, implicit otherwise; big endian when its group
/// 0x0008 reads so. `None` when the bytes do not start with a group 0x0008 element, the group
/// every such file starts with.
pub(super) fn raw_data_set_syntax(bytes: &[u8]) -> Option<dicom_encoding::TransferSyntax> {
    let explicit = bytes
        .get(4..6)
        .is_some_and(|vr| vr.iter().all(u8::is_ascii_uppercase));
    match bytes.get(0..2)? {
        [0x08, 0x00] if explicit => Some(entries::EXPLICIT_VR_LITTLE_ENDIAN.erased()),
        [0x08, 0x00] => Some(entries::IMPLICIT_VR_LITTLE_ENDIAN.erased()),
        // Big endian data sets are explicit VR (PS3.5 A.3).
        [0x00, 0x08] if explicit => Some(entries::EXPLICIT_VR_BIG_ENDIAN.erased()),
        _ => None,
    }
    .filter(|_| bytes.len() >= 8)
}

/// A text attribute, trimmed; `None` when absent or empty.
pub(super) fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(['\0', ' ']).to_string();
    (!value.is_empty()).then_some(value)
}

/// A numeric attribute's values (DS, IS, US, SS, FL, FD...).
pub(super) fn numbers(object: &InMemDicomObject, tag: Tag) -> Vec<f64> {
    object
        .get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .unwrap_or_default()
}

/// A numeric attribute's first value.
pub(super) fn number(object: &InMemDicomObject, tag: Tag) -> Option<f64> {
    numbers(object, tag).first().copied()
}

/// Study, Series and SOP Instance UIDs (exported only when the user asks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DicomIdentifiers {
    pub study: Option<String>,
    pub series: Option<String>,
    pub sop_instance: Option<String>,
}

impl DicomIdentifiers {
    pub(super) fn of(object: &DefaultDicomObject) -> Self {
        Self {
            study: text(object, tags::STUDY_INSTANCE_UID),
            series: text(object, tags::SERIES_INSTANCE_UID),
            sop_instance: text(object, tags::SOP_INSTANCE_UID),
        }
    }
}

/// The patient and general study modules of the source (PS3.3 C.7.1.1, C.7.2.1), copied into a
/// Secondary Capture so that it files into the same study. Held privately and never serialised:
/// no other output may carry them.
#[derive(Debug, Clone, Default)]
pub struct PatientStudy {
    elements: Vec<dicom_object::mem::InMemElement>,
}

impl PartialEq for PatientStudy {
    fn eq(&self, other: &Self) -> bool {
        self.elements.len() == other.elements.len()
    }
}

/// The patient and study module attributes a Secondary Capture copies.
pub const PATIENT_STUDY_TAGS: [Tag; 16] = [
    tags::SPECIFIC_CHARACTER_SET,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::PATIENT_AGE,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_ID,
    tags::ACCESSION_NUMBER,
    tags::STUDY_DESCRIPTION,
    tags::MODALITY,
    tags::BODY_PART_EXAMINED,
];

impl PatientStudy {
    pub(super) fn of(object: &DefaultDicomObject) -> Self {
        Self {
            elements: PATIENT_STUDY_TAGS
                .iter()
                .filter_map(|&tag| object.get(tag).cloned())
                .collect(),
        }
    }

    /// The kept elements (for writing a Secondary Capture).
    pub fn elements(&self) -> &[dicom_object::mem::InMemElement] {
        &self.elements
    }
}
