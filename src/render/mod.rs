//! From a map to pixels: colormaps, blending, annotations, the caption band, the composed
//! overlay every front end saves, and a grid of overlays side by side.

pub mod annotation;
pub mod caption;
pub mod colormap;
mod compose;
pub mod grid;
pub mod overlay;
pub mod text;

pub use annotation::Annotation;
pub use caption::{ColourBar, with_caption_band};
pub use colormap::Colormap;
pub use compose::{Decorations, compose};
pub use grid::{GridLayout, tile_grid};
pub use overlay::{Heat, OverlayStyle, blend};
