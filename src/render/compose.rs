//! The overlay at the image's own resolution: the heat blended over the image, the marks burnt
//! in, and optionally a caption band with a colour bar below it.

use image::RgbImage;

use super::annotation::{self, Annotation};
use super::caption::{ColourBar, with_caption_band};
use super::overlay::{Heat, OverlayStyle, blend};
use crate::explain::{Analysis, ClassActivationMap};

/// What is drawn on and under the blended overlay.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decorations<'a> {
    pub annotations: &'a [Annotation],
    /// The caption band's lines (none: no text in the band).
    pub caption: &'a [String],
    /// A colour bar with the map's scale, in the caption band.
    pub colour_bar: bool,
}

/// `map` (one of `analysis`'s) over `image`, drawn with `style`, then the decorations.
pub fn compose(
    image: &RgbImage,
    analysis: &Analysis,
    map: &ClassActivationMap,
    style: &OverlayStyle,
    decorations: &Decorations,
) -> RgbImage {
    let heat = Heat::of(
        analysis,
        map,
        style.normalisation,
        image.width(),
        image.height(),
    );
    let mut overlay = blend(image, &heat, style);
    annotation::burn_in(&mut overlay, decorations.annotations);
    if decorations.caption.is_empty() && !decorations.colour_bar {
        return overlay;
    }
    let bar = decorations.colour_bar.then_some(ColourBar {
        colormap: style.colormap,
        low: heat.range.0,
        high: heat.range.1,
    });
    with_caption_band(&overlay, decorations.caption, bar)
}
