//! Tiles side by side in one image (every method's overlay of one class: `render --method
//! all`), row by row, at most `GridLayout::MAX_COLUMNS` a row. Tiles are copied pixel for
//! pixel, never resampled, so each is exactly the overlay it was composed as.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::caption::BACKGROUND;

/// Where the tiles sit: `columns x rows` cells of `cell_width x cell_height` pixels (the
/// largest tile's size); tile `i` at column `i % columns`, row `i / columns`, in its cell's
/// top-left corner. What a cell's tile leaves, and empty cells, are the caption band's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridLayout {
    pub columns: u32,
    pub rows: u32,
    pub cell_width: u32,
    pub cell_height: u32,
}

impl GridLayout {
    /// Four columns: the eight methods make two rows of four, near the shape of a screen.
    pub const MAX_COLUMNS: u32 = 4;

    /// The layout of `tiles`.
    pub fn of(tiles: &[RgbImage]) -> Self {
        let count = tiles.len() as u32;
        let columns = count.clamp(1, Self::MAX_COLUMNS);
        Self {
            columns,
            rows: count.div_ceil(columns),
            cell_width: tiles.iter().map(RgbImage::width).max().unwrap_or(0),
            cell_height: tiles.iter().map(RgbImage::height).max().unwrap_or(0),
        }
    }

    /// Tile `index`'s cell: `(column, row)`.
    pub fn cell(&self, index: usize) -> (u32, u32) {
        let index = index as u32;
        (index % self.columns, index / self.columns)
    }

    /// The top-left corner of tile `index`'s cell.
    pub fn origin(&self, index: usize) -> (u32, u32) {
        let (column, row) = self.cell(index);
        (column * self.cell_width, row * self.cell_height)
    }
}

/// `tiles` laid out by `GridLayout::of`.
pub fn tile_grid(tiles: &[RgbImage]) -> (RgbImage, GridLayout) {
    let layout = GridLayout::of(tiles);
    let mut out = RgbImage::from_pixel(
        layout.columns * layout.cell_width,
        layout.rows * layout.cell_height,
        BACKGROUND,
    );
    for (i, tile) in tiles.iter().enumerate() {
        let (x, y) = layout.origin(i);
        image::imageops::replace(&mut out, tile, i64::from(x), i64::from(y));
    }
    (out, layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn tiles_are_copied_into_their_cells_row_by_row() {
        let tiles: Vec<RgbImage> = (0..6u8)
            .map(|i| RgbImage::from_pixel(5, 3 + u32::from(i % 2), Rgb([i, 100, 200])))
            .collect();
        let (grid, layout) = tile_grid(&tiles);
        assert_eq!(
            layout,
            GridLayout {
                columns: 4,
                rows: 2,
                cell_width: 5,
                cell_height: 4
            }
        );
        assert_eq!(grid.dimensions(), (20, 8));
        assert_eq!(layout.cell(5), (1, 1));
        assert_eq!(layout.origin(5), (5, 4));
        assert_eq!(grid.get_pixel(5 + 4, 4 + 3).0, [5, 100, 200]);
        // the shorter tile 4 leaves its cell's last row, and cells 6 and 7 are empty
        assert_eq!(*grid.get_pixel(0, 7), BACKGROUND);
        assert_eq!(*grid.get_pixel(19, 7), BACKGROUND);
        assert_eq!(tile_grid(&tiles[..3]).0.dimensions(), (15, 4));
        assert_eq!(tile_grid(&[]).0.dimensions(), (0, 0));
    }
}
