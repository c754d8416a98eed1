//! From a map to pixels: colormaps, blending, the caption band, annotations.

pub mod annotation;
pub mod caption;
pub mod colormap;
pub mod overlay;

pub use annotation::Annotation;
pub use caption::{ColourBar, with_caption_band};
pub use colormap::Colormap;
pub use overlay::{Heat, OverlayStyle, blend};
