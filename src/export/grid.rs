//! Every method's overlay of one class side by side in one image, with one sidecar that lists
//! each tile's method and provenance (`camview render --method all`). Each tile is the
//! overlay `OverlayRequest::compose` gives for its method without a caption, pixel for pixel,
//! above a band that names the method (the caption drawing of `render::with_caption_band`);
//! the layer, shared by the tiles, is in the grid's caption and in every tile's provenance.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::{ExportError, OverlayRequest, Provenance, encode_image, format_of, save_with_sidecar};
use crate::explain::Method;
use crate::render::{self, ColourBar, GridLayout};

/// A method left out of a grid, and why (CAM for a head of several layers, or away from
/// norm5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedMethod {
    pub method: Method,
    pub reason: String,
}

/// One tile: its cell, and the provenance of its overlay (whose `method` says which map).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridTile {
    pub column: u32,
    pub row: u32,
    #[serde(flatten)]
    pub provenance: Provenance,
}

/// A grid's sidecar.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridProvenance {
    pub camview_version: String,
    pub layout: GridLayout,
    /// In order, row by row.
    pub tiles: Vec<GridTile>,
    pub skipped: Vec<SkippedMethod>,
}

/// Everything a grid depends on: one overlay request per tile, in order (each request's own
/// `caption` and `colour_bar` are not used: the grid's say what is drawn).
#[derive(Clone, Copy)]
pub struct GridRequest<'a> {
    pub tiles: &'a [OverlayRequest<'a>],
    pub skipped: &'a [SkippedMethod],
    /// A caption band below the grid: the image, class and findings; the layer and the model.
    pub caption: bool,
    /// In each tile's band, a colour bar with its own map's scale.
    pub colour_bar: bool,
}

impl GridRequest<'_> {
    /// The grid and its sidecar.
    pub fn compose(&self) -> Result<(RgbImage, GridProvenance), ExportError> {
        let mut tiles = Vec::with_capacity(self.tiles.len());
        let mut provenances = Vec::with_capacity(self.tiles.len());
        for request in self.tiles {
            let bare = OverlayRequest {
                caption: false,
                colour_bar: false,
                ..*request
            };
            let (overlay, provenance) = bare.compose()?;
            let title = provenance.method.title().to_string();
            let bar = self.colour_bar.then_some(ColourBar {
                colormap: request.style.colormap,
                low: provenance.map_range.0,
                high: provenance.map_range.1,
            });
            tiles.push(render::with_caption_band(&overlay, &[title], bar));
            provenances.push(provenance);
        }
        let (grid, layout) = render::tile_grid(&tiles);
        let grid = match provenances.first().filter(|_| self.caption) {
            Some(p) => {
                let how = format!("every method at {}  |  {}", p.layer, p.model_line());
                render::with_caption_band(&grid, &[p.subject_line(), how], None)
            }
            None => grid,
        };
        let tiles = (provenances.into_iter().enumerate())
            .map(|(i, provenance)| {
                let (column, row) = layout.cell(i);
                GridTile {
                    column,
                    row,
                    provenance,
                }
            })
            .collect();
        let provenance = GridProvenance {
            camview_version: env!("CARGO_PKG_VERSION").to_string(),
            layout,
            tiles,
            skipped: self.skipped.to_vec(),
        };
        Ok((grid, provenance))
    }

    /// Composes the grid and writes it to `dest` (.png, .bmp, .jpg, .tif) with its sidecar,
    /// never over the image; returns the sidecar and its path.
    pub fn save(
        &self,
        dest: &Path,
        replace: bool,
    ) -> Result<(GridProvenance, PathBuf), ExportError> {
        if super::secondary_capture::is_dicom_path(dest) {
            return Err(ExportError::GridNotDicom {
                file: dest.display().to_string(),
            });
        }
        let format = format_of(dest)?;
        let (img, provenance) = self.compose()?;
        let sources: Vec<&Path> = self.tiles.iter().filter_map(|t| t.image_file).collect();
        let sidecar = save_with_sidecar(dest, &provenance, replace, &sources, |w| {
            encode_image(w, format, &img, None)
        })?;
        Ok((provenance, sidecar))
    }
}
