//! From a map to pixels: colormaps, blending, the caption band.

pub mod caption;
pub mod colormap;
pub mod overlay;

pub use caption::{ColourBar, with_caption_band};
pub use colormap::Colormap;
pub use overlay::{Heat, OverlayStyle, blend};
