//! What the viewer remembers between runs (eframe storage). The window's size and position are
//! remembered by eframe itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::explain::Normalisation;
use crate::imaging::levels::{Preset, default_presets};
use crate::render::{Colormap, OverlayStyle};

/// How many recent files are remembered.
pub const RECENT_LIMIT: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the last image or model was opened or an overlay saved: dialogs start there.
    pub last_folder: Option<PathBuf>,
    pub colormap: Colormap,
    /// 0..1.
    pub opacity: f32,
    /// 0..1.
    pub threshold: f32,
    pub normalisation: Normalisation,
    pub show_overlay: bool,
    /// Most recent first.
    pub recent_images: Vec<PathBuf>,
    /// Most recent first.
    pub recent_models: Vec<PathBuf>,
    /// Burn a caption band (image, class, probability, model) under saved overlays.
    pub caption: bool,
    /// Burn a colour bar with its scale under saved overlays.
    pub colour_bar: bool,
    pub annotation_colour: [u8; 3],
    /// The display window presets, in the order of their keys (1 to 7) and menu entries.
    pub window_presets: Vec<Preset>,
}

impl Default for Settings {
    fn default() -> Self {
        let style = OverlayStyle::default();
        Self {
            last_folder: None,
            colormap: style.colormap,
            opacity: style.opacity,
            threshold: style.threshold,
            normalisation: style.normalisation,
            show_overlay: true,
            recent_images: Vec::new(),
            recent_models: Vec::new(),
            caption: false,
            colour_bar: false,
            annotation_colour: [255, 255, 255],
            window_presets: default_presets(),
        }
    }
}

impl Settings {
    /// The settings with every number in its range (a hand-edited or damaged file may hold any).
    pub fn sanitised(mut self) -> Self {
        let defaults = Self::default();
        let unit = |v: f32, default: f32| {
            if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                default
            }
        };
        self.opacity = unit(self.opacity, defaults.opacity);
        self.threshold = unit(self.threshold, defaults.threshold);
        self.recent_images.truncate(RECENT_LIMIT);
        self.recent_models.truncate(RECENT_LIMIT);
        self.window_presets
            .retain(|p| p.center.is_finite() && p.width.is_finite() && p.width > 0.0);
        if self.window_presets.is_empty() {
            self.window_presets = defaults.window_presets;
        }
        self
    }

    pub fn style(&self) -> OverlayStyle {
        OverlayStyle {
            opacity: self.opacity.clamp(0.0, 1.0),
            colormap: self.colormap,
            threshold: self.threshold.clamp(0.0, 1.0),
            normalisation: self.normalisation,
        }
    }

    pub fn remember_image(&mut self, path: &Path) {
        remember(&mut self.recent_images, path);
        self.last_folder = path.parent().map(Path::to_path_buf);
    }

    pub fn remember_model(&mut self, path: &Path) {
        remember(&mut self.recent_models, path);
        self.last_folder = path.parent().map(Path::to_path_buf);
    }
}

/// The settings eframe remembered, and a message when they could not be read: `storage` is
/// eframe's (None when it keeps none, as in tests: then nothing is read), `file` the file it
/// reads (`app.ron`). eframe drops a file it cannot parse without a word, so the file is read
/// again here to tell the user; the next save replaces it, so the message is shown once.
pub fn remembered(
    storage: Option<&dyn eframe::Storage>,
    file: Option<&Path>,
) -> (Settings, Option<String>) {
    let Some(storage) = storage else {
        return (Settings::default(), None);
    };
    let damaged = |where_: String, reason: String| {
        format!(
            "camview's settings in {where_} could not be read ({reason}); the defaults are used"
        )
    };
    let file_name = || file.map_or_else(|| "its storage".to_string(), |f| f.display().to_string());
    if let Some(text) = storage.get_string(eframe::APP_KEY) {
        return match parse_settings(&text) {
            Ok(settings) => (settings, None),
            Err(reason) => (Settings::default(), Some(damaged(file_name(), reason))),
        };
    }
    let Some(text) = file.and_then(|f| std::fs::read(f).ok()) else {
        return (Settings::default(), None);
    };
    match parse_stored(&text) {
        Ok(settings) => (settings.unwrap_or_default(), None),
        Err(reason) => (Settings::default(), Some(damaged(file_name(), reason))),
    }
}

/// The viewer's settings in the text of eframe's `app.ron` (a RON map of strings, ours under
/// `eframe::APP_KEY`): None when the file holds none, an error when it cannot be read.
pub fn parse_stored(app_ron: &[u8]) -> Result<Option<Settings>, String> {
    let text = std::str::from_utf8(app_ron).map_err(|_| "it is not text".to_string())?;
    let map: std::collections::HashMap<String, String> =
        ron::from_str(text).map_err(|e| e.to_string())?;
    map.get(eframe::APP_KEY)
        .map(|s| parse_settings(s))
        .transpose()
}

/// The viewer's settings from their RON text, each number brought into its range.
pub fn parse_settings(text: &str) -> Result<Settings, String> {
    ron::from_str::<Settings>(text)
        .map(Settings::sanitised)
        .map_err(|e| e.to_string())
}

fn remember(list: &mut Vec<PathBuf>, path: &Path) {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    list.retain(|p| *p != path);
    list.insert(0, path);
    list.truncate(RECENT_LIMIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_files_are_unique_newest_first_and_bounded() {
        let mut s = Settings::default();
        for i in 0..15 {
            s.remember_image(Path::new(&format!("/nowhere/scan{i}.png")));
        }
        s.remember_image(Path::new("/nowhere/scan3.png"));
        assert_eq!(s.recent_images.len(), RECENT_LIMIT);
        assert_eq!(s.recent_images[0], Path::new("/nowhere/scan3.png"));
        assert_eq!(s.recent_images[1], Path::new("/nowhere/scan14.png"));
        assert_eq!(s.last_folder.as_deref(), Some(Path::new("/nowhere")));
    }

    #[test]
    fn old_or_partial_settings_still_load() {
        let s: Settings = serde_json::from_str(r#"{"opacity": 0.7, "unknown": 1}"#).unwrap();
        assert_eq!(s.opacity, 0.7);
        assert_eq!(s.colormap, Colormap::Jet);
        assert!(s.show_overlay);
        assert_eq!(s.window_presets, default_presets());
    }

    #[test]
    fn edited_presets_are_remembered() {
        let mut s = Settings::default();
        s.window_presets.truncate(1);
        s.window_presets[0].center = -500.0;
        let back: Settings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.window_presets, s.window_presets);
    }
}
