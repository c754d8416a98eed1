//! The saved overlay, composed once for every front end (`render`, `batch` and the viewer's Save
//! and Copy): the same request gives the same pixels and the same provenance.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::{
    DecorationRecord, ExportError, ImageRecord, Provenance, ProvenanceDetail, save_overlay,
    save_with_sidecar, secondary_capture,
};
use crate::explain::{Analysis, ClassActivationMap};
use crate::imaging::{DisplayWindow, SourceImage};
use crate::network::Classifier;
use crate::render::{self, Annotation, Decorations, OverlayStyle};

/// Everything an overlay and its provenance depend on.
#[derive(Clone, Copy)]
pub struct OverlayRequest<'a> {
    pub image: &'a SourceImage,
    /// The image's file, when it has one: named in the provenance and never written over.
    pub image_file: Option<&'a Path>,
    pub classifier: &'a Classifier,
    /// The forward pass showing the chosen method's maps.
    pub analysis: &'a Analysis,
    pub class: usize,
    pub style: OverlayStyle,
    /// Marks burnt into the overlay and recorded in the provenance.
    pub annotations: &'a [Annotation],
    /// A caption band below the overlay: image, class, prediction, method, model.
    pub caption: bool,
    /// A colour bar with the map's scale, in the caption band.
    pub colour_bar: bool,
    /// The window the image under the overlay is shown with (images with gray levels; `None`:
    /// the file's own).
    pub display: Option<&'a DisplayWindow>,
    /// How much of a DICOM source's identity the provenance carries.
    pub detail: ProvenanceDetail,
}

impl OverlayRequest<'_> {
    /// The map of the request's class (an error when the analysis lacks it: front ends compute
    /// the maps of the classes they draw, `explain::Classes`).
    fn map(&self) -> Result<&ClassActivationMap, ExportError> {
        self.analysis
            .map(self.class)
            .ok_or_else(|| ExportError::NoMap {
                file: self.image.name.clone(),
                label: self
                    .classifier
                    .labels
                    .get(self.class)
                    .cloned()
                    .unwrap_or_else(|| self.class.to_string()),
            })
    }

    pub fn provenance(&self) -> Result<Provenance, ExportError> {
        let record = ImageRecord::of(
            self.image,
            self.image_file,
            self.classifier.preprocessing.window.as_ref(),
            self.display,
            self.detail,
        );
        let mut provenance = Provenance::new(
            record,
            self.classifier,
            self.analysis,
            self.map()?,
            &self.style,
        );
        provenance.annotations = self.annotations.to_vec();
        provenance.decorations = Some(DecorationRecord {
            caption: self.caption,
            colour_bar: self.colour_bar,
        });
        Ok(provenance)
    }

    /// The overlay at the image's own resolution, with its provenance.
    pub fn compose(&self) -> Result<(RgbImage, Provenance), ExportError> {
        let provenance = self.provenance()?;
        let caption = if self.caption {
            provenance.caption_lines()
        } else {
            Vec::new()
        };
        let decorations = Decorations {
            annotations: self.annotations,
            caption: &caption,
            colour_bar: self.colour_bar,
        };
        let overlay = render::compose(
            &self.image.displayed(self.display),
            self.analysis,
            self.map()?,
            &self.style,
            &decorations,
        );
        Ok((overlay, provenance))
    }

    /// Composes the overlay and writes it to `dest` with its sidecar (never over the image);
    /// returns the provenance and the sidecar's path.
    pub fn save(&self, dest: &Path, replace: bool) -> Result<(Provenance, PathBuf), ExportError> {
        let (img, provenance) = self.compose()?;
        let sources: Vec<&Path> = self.image_file.into_iter().collect();
        let sidecar = if secondary_capture::is_dicom_path(dest) {
            let object = secondary_capture::secondary_capture(dest, &img, &provenance, self.image)?;
            save_with_sidecar(dest, &provenance, replace, &sources, |w| {
                secondary_capture::write_dicom(w, &object)
            })?
        } else {
            save_overlay(dest, &img, &provenance, replace, &sources)?
        };
        Ok((provenance, sidecar))
    }
}
