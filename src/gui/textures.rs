//! The two textures the panes draw: the image, and the heat map drawn over it with the opacity as
//! its alpha. Each is created once and updated with `TextureHandle::set`; the heat texture is
//! rebuilt only when what it shows changes (never for the opacity), and the normalised heat
//! behind it is kept while only the colormap or threshold change.

use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions, Vec2};

use crate::explain::Normalisation;
use crate::render::{Colormap, OverlayStyle};

use super::heat::{SCREEN_HEAT_MAX_SIDE, ScreenHeat};
use super::session::Session;

/// What the heat texture shows, to rebuild it only when that changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatKey {
    /// `Session::analysis_generation`.
    pub analysis: u64,
    pub class: usize,
    pub normalisation: Normalisation,
    pub colormap: Colormap,
    pub threshold: f32,
}

/// What the normalised heat depends on: the heat key without the colormap and threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
struct NormalisedHeatKey {
    analysis: u64,
    class: usize,
    normalisation: Normalisation,
}

impl HeatKey {
    fn normalised(self) -> NormalisedHeatKey {
        NormalisedHeatKey {
            analysis: self.analysis,
            class: self.class,
            normalisation: self.normalisation,
        }
    }
}

/// A class's map scaled to `[0, 1]` on the screen grid, and what it was computed from.
struct NormalisedHeat {
    key: NormalisedHeatKey,
    heat: ScreenHeat,
}

#[derive(Default)]
pub struct Textures {
    image: Option<TextureHandle>,
    /// The image's size in image pixels (the texture may be smaller for huge images).
    image_size: Vec2,
    heat: Option<TextureHandle>,
    heat_key: Option<HeatKey>,
    /// The normalised heat, kept while only the colormap or threshold change.
    normalised: Option<NormalisedHeat>,
}

/// Real pixels when magnified (1:1 and above shows every image pixel as a sharp square), smooth
/// when shrunk.
pub fn image_texture_options() -> TextureOptions {
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::LINEAR
    }
}

/// The largest texture side to ask of the GPU.
pub fn max_texture_side(ctx: &egui::Context) -> usize {
    ctx.input(|i| i.max_texture_side).min(8192)
}

impl Textures {
    pub fn image(&self) -> Option<&TextureHandle> {
        self.image.as_ref()
    }

    /// The image's size in image pixels.
    pub fn image_size(&self) -> Vec2 {
        self.image_size
    }

    /// The heat texture if it shows the analysis of `generation` (none while a new one is
    /// computed).
    pub fn heat_of(&self, generation: u64) -> Option<&TextureHandle> {
        self.heat
            .as_ref()
            .filter(|_| self.heat_key.is_some_and(|k| k.analysis == generation))
    }

    /// Shows a new image, `size` image pixels large; the heat is rebuilt for it.
    pub fn set_image(&mut self, ctx: &egui::Context, display: ColorImage, size: Vec2) {
        let options = image_texture_options();
        match &mut self.image {
            Some(t) => t.set(display, options),
            None => self.image = Some(ctx.load_texture("camview-image", display, options)),
        }
        self.image_size = size;
        self.heat_key = None;
        self.normalised = None;
    }

    /// Shows the same image through another display window: the heat stays.
    pub fn replace_image(&mut self, ctx: &egui::Context, display: ColorImage) {
        let options = image_texture_options();
        match &mut self.image {
            Some(t) => t.set(display, options),
            None => self.image = Some(ctx.load_texture("camview-image", display, options)),
        }
    }

    /// Rebuilds the heat texture when the class, normalisation, colormap or threshold changed
    /// (never for the opacity: that is the texture's alpha when drawn).
    pub fn update_heat(&mut self, ctx: &egui::Context, session: &Session, style: OverlayStyle) {
        let (Some(analysis), Some(image)) = (session.analysis(), session.image()) else {
            return;
        };
        let key = HeatKey {
            analysis: session.analysis_generation(),
            class: session.class(),
            normalisation: style.normalisation,
            colormap: style.colormap,
            threshold: style.threshold,
        };
        if self.heat_key == Some(key) {
            return;
        }
        let (width, height) = (image.source.width(), image.source.height());
        let Some(map) = analysis.map(key.class) else {
            // not computed yet: no heat rather than another class's
            self.heat = None;
            self.heat_key = None;
            return;
        };
        if self.normalised.as_ref().map(|n| n.key) != Some(key.normalised()) {
            let heat = ScreenHeat::of(
                analysis,
                map,
                key.normalisation,
                width,
                height,
                SCREEN_HEAT_MAX_SIDE.min(max_texture_side(ctx) as u32),
            );
            self.normalised = Some(NormalisedHeat {
                key: key.normalised(),
                heat,
            });
        }
        let Some(NormalisedHeat { heat, .. }) = &self.normalised else {
            return;
        };
        let texture = heat.colour(&style.colormap.lut(), style.threshold);
        // At the image's own size the heat is drawn texel for pixel, as the saved file has it.
        let options = if heat.width == width && heat.height == height {
            image_texture_options()
        } else {
            TextureOptions::LINEAR
        };
        match &mut self.heat {
            Some(t) => t.set(texture, options),
            None => self.heat = Some(ctx.load_texture("camview-heat", texture, options)),
        }
        self.heat_key = Some(key);
    }
}
