//! The textures the panes draw: the image (a level of its pyramid, see `pyramid`), and the heat
//! map drawn over it with the opacity as its alpha. Each is created once and updated with
//! `TextureHandle::set`; a pyramid level is uploaded when it is first drawn; the heat texture is
//! rebuilt only when what it shows changes (never for the opacity), and the normalised heat
//! behind it is kept while only the colormap or threshold change.

use eframe::egui::{self, Rect, TextureHandle, TextureId, TextureOptions, Vec2};

use crate::explain::Normalisation;
use crate::render::{Colormap, OverlayStyle};

use super::heat::{SCREEN_HEAT_MAX_SIDE, ScreenHeat};
use super::pyramid::Pyramid;
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

/// The image's pyramid and the textures of the levels drawn so far.
struct ImageTextures {
    pyramid: Pyramid,
    /// One slot per level, filled when the level is first drawn.
    uploaded: Vec<Option<TextureHandle>>,
}

#[derive(Default)]
pub struct Textures {
    image: Option<ImageTextures>,
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
    /// The texture to draw the image with when it is `on_screen` physical pixels large (its
    /// longer side), and the part of it that covers the image: the pyramid level just above
    /// that size, uploaded now if it is the first time it is drawn.
    pub fn image_for(&mut self, ctx: &egui::Context, on_screen: f32) -> Option<(TextureId, Rect)> {
        let textures = self.image.as_mut()?;
        let index = textures.pyramid.level_for(on_screen);
        let level = &textures.pyramid.levels()[index];
        let handle = textures.uploaded[index].get_or_insert_with(|| {
            ctx.load_texture(
                format!("camview-image-{index}"),
                std::sync::Arc::clone(&level.image),
                image_texture_options(),
            )
        });
        Some((handle.id(), level.uv))
    }

    /// Whether there is an image to draw.
    pub fn has_image(&self) -> bool {
        self.image.is_some()
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

    /// Shows a new image, `size` image pixels large; the heat is rebuilt for it. Its levels
    /// are uploaded as they are drawn.
    pub fn set_image(&mut self, display: Pyramid, size: Vec2) {
        self.image = Some(ImageTextures {
            uploaded: vec![None; display.levels().len()],
            pyramid: display,
        });
        self.image_size = size;
        self.heat_key = None;
        self.normalised = None;
    }

    /// Shows the same image through another display window: the heat stays, and so do the
    /// textures of the levels drawn so far (updated in place).
    pub fn replace_image(&mut self, display: Pyramid) {
        let Some(textures) = &mut self.image else {
            return;
        };
        if textures.uploaded.len() != display.levels().len() {
            textures.uploaded = vec![None; display.levels().len()];
        }
        for (slot, level) in textures.uploaded.iter_mut().zip(display.levels()) {
            if let Some(handle) = slot {
                handle.set(std::sync::Arc::clone(&level.image), image_texture_options());
            }
        }
        textures.pyramid = display;
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
