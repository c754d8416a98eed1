//! From a map to pixels: colormaps, blending, annotations, the caption band, and the composed
//! overlay every front end saves.

pub mod annotation;
pub mod caption;
pub mod colormap;
mod compose;
pub mod overlay;
pub mod text;

pub use annotation::Annotation;
pub use caption::{ColourBar, with_caption_band};
pub use colormap::Colormap;
pub use compose::{Decorations, compose};
pub use overlay::{Heat, OverlayStyle, blend};
