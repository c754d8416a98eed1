//! Gray values wider than 8 bits (a DICOM frame, a 16-bit PNG or TIFF) and how they become the
//! 8-bit grey levels people and networks see: the VOI (value of interest) transformation.
//!
//! The pipeline, defined here once for every front end (README, "DICOM"):
//!
//! ```text
//! stored value ──Modality LUT (slope/intercept or the LUT sequence)──> modality value (HU for CT)
//!              ──VOI (a window: LINEAR, LINEAR_EXACT or SIGMOID; a VOI LUT; or min-max)──> 0..=255
//!              ──round half up, MONOCHROME1 inverted──> 8-bit grey
//! ```
//!
//! The windows follow PS3.3 C.11.2.1.2 (and pydicom's `apply_windowing`, which the fixtures are
//! checked against) with the output range 0..=255: pydicom's output range `[y_min, y_max]`
//! scaled linearly to `[0, 255]` is the same function.

use serde::{Deserialize, Serialize};

/// The VOI LUT Function of a window (PS3.3 C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WindowFunction {
    #[default]
    #[serde(rename = "LINEAR")]
    Linear,
    #[serde(rename = "LINEAR_EXACT")]
    LinearExact,
    #[serde(rename = "SIGMOID")]
    Sigmoid,
}

impl WindowFunction {
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "LINEAR",
            Self::LinearExact => "LINEAR_EXACT",
            Self::Sigmoid => "SIGMOID",
        }
    }

    /// The function a DICOM VOI LUT Function value names (none: LINEAR).
    pub fn from_dicom(value: &str) -> Option<Self> {
        match value.trim() {
            "" | "LINEAR" => Some(Self::Linear),
            "LINEAR_EXACT" => Some(Self::LinearExact),
            "SIGMOID" => Some(Self::Sigmoid),
            _ => None,
        }
    }
}

/// A window: centre (level) and width in modality units (HU for CT).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    #[serde(default, skip_serializing_if = "is_linear")]
    pub function: WindowFunction,
}

fn is_linear(f: &WindowFunction) -> bool {
    *f == WindowFunction::Linear
}

impl Window {
    pub fn linear(center: f64, width: f64) -> Self {
        Self {
            center,
            width,
            function: WindowFunction::Linear,
        }
    }

    /// Whether PS3.3 defines this window: LINEAR needs a width of at least 1, the others a
    /// positive one.
    pub fn is_valid(&self) -> bool {
        let least = match self.function {
            WindowFunction::Linear => 1.0,
            _ => f64::MIN_POSITIVE,
        };
        self.center.is_finite() && self.width.is_finite() && self.width >= least
    }

    /// The window's output for modality value `x`, in `[0, 255]` (not rounded).
    pub fn apply(&self, x: f64) -> f64 {
        let (center, width) = match self.function {
            WindowFunction::Linear => (self.center - 0.5, self.width - 1.0),
            WindowFunction::LinearExact | WindowFunction::Sigmoid => (self.center, self.width),
        };
        match self.function {
            WindowFunction::Sigmoid => 255.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
            _ if x <= center - width / 2.0 => 0.0,
            _ if x > center + width / 2.0 => 255.0,
            _ => ((x - center) / width + 0.5) * 255.0,
        }
    }
}

impl std::fmt::Display for Window {
    /// "C -600 / W 1500" (and the function when it is not LINEAR).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "C {} / W {}", trim(self.center), trim(self.width))?;
        if self.function != WindowFunction::Linear {
            write!(f, " {}", self.function.name())?;
        }
        Ok(())
    }
}

/// A number without a needless ".0".
fn trim(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A lookup table (a Modality LUT or VOI LUT Sequence item): `data[v - first]`, clamped at
/// both ends, with `bits` bits per entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupTable {
    pub first: i64,
    pub bits: u16,
    pub data: Vec<u16>,
}

impl LookupTable {
    pub fn lookup(&self, v: f64) -> f64 {
        let last = self.data.len().saturating_sub(1) as i64;
        let i = ((v.round() as i64).saturating_sub(self.first)).clamp(0, last);
        self.data
            .get(i as usize)
            .map_or(0.0, |&entry| f64::from(entry))
    }

    /// The largest value an entry can hold.
    pub fn max(&self) -> f64 {
        (2f64).powi(i32::from(self.bits.clamp(1, 16))) - 1.0
    }
}

/// How modality values become 0..=255.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Voi {
    Window(Window),
    /// A VOI LUT Sequence item, its output scaled from its entries' range to 0..=255.
    Lut(LookupTable),
    /// The image's smallest modality value becomes 0 and its largest 255.
    MinMax,
}

impl std::fmt::Display for Voi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Window(w) => w.fmt(f),
            Self::Lut(_) => f.write_str("the file's VOI LUT"),
            Self::MinMax => f.write_str("min-max"),
        }
    }
}

/// One frame's gray values at full depth.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayLevels {
    pub width: u32,
    pub height: u32,
    /// The stored values (after Bits Stored and Pixel Representation), row by row.
    pub stored: Vec<i32>,
    /// The modality values (`stored` through the Modality LUT), row by row.
    pub modality: Vec<f32>,
    /// The modality values' unit: "HU" for CT, none otherwise.
    pub unit: Option<String>,
    /// The file's VOI (its first window or VOI LUT; min-max when it has none).
    pub file_voi: Voi,
    /// Every window the file states, in its order.
    pub windows: Vec<Window>,
    /// MONOCHROME1: the smallest value is white.
    pub inverted: bool,
    /// The smallest and largest modality value.
    pub range: (f32, f32),
}

impl GrayLevels {
    /// Gray levels from stored and modality values (`range` computed here).
    pub fn new(width: u32, height: u32, stored: Vec<i32>, modality: Vec<f32>) -> Self {
        let range = modality
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let range = if range.0 <= range.1 {
            range
        } else {
            (0.0, 0.0)
        };
        Self {
            width,
            height,
            stored,
            modality,
            unit: None,
            file_voi: Voi::MinMax,
            windows: Vec::new(),
            inverted: false,
            range,
        }
    }

    /// The min-max window of these values, as a LINEAR_EXACT window (what "reset" and the
    /// numeric fields show for min-max).
    pub fn min_max_window(&self) -> Window {
        let (lo, hi) = (f64::from(self.range.0), f64::from(self.range.1));
        Window {
            center: (lo + hi) / 2.0,
            width: (hi - lo).max(1.0),
            function: WindowFunction::LinearExact,
        }
    }

    /// The 8-bit grey levels through `voi`, inverted when `invert` (MONOCHROME1 is already
    /// counted in: `invert` flips what the file's photometric interpretation says).
    pub fn render(&self, voi: &Voi, invert: bool) -> Vec<u8> {
        let flip = self.inverted != invert;
        let to8 = |v: f64| {
            let level = (v + 0.5).floor().clamp(0.0, 255.0) as u8;
            if flip { 255 - level } else { level }
        };
        match voi {
            Voi::Window(w) => self
                .modality
                .iter()
                .map(|&x| to8(w.apply(f64::from(x))))
                .collect(),
            Voi::Lut(lut) => {
                let scale = 255.0 / lut.max();
                self.modality
                    .iter()
                    .map(|&x| to8(lut.lookup(f64::from(x)) * scale))
                    .collect()
            }
            Voi::MinMax => {
                let (lo, hi) = (f64::from(self.range.0), f64::from(self.range.1));
                let span = hi - lo;
                self.modality
                    .iter()
                    .map(|&x| {
                        if span > 0.0 {
                            to8((f64::from(x) - lo) / span * 255.0)
                        } else {
                            to8(0.0)
                        }
                    })
                    .collect()
            }
        }
    }

    /// `render` as an RGB image (grey in all three channels).
    pub fn render_rgb(&self, voi: &Voi, invert: bool) -> image::RgbImage {
        let grey = self.render(voi, invert);
        let rgb = grey.iter().flat_map(|&g| [g, g, g]).collect();
        image::RgbImage::from_raw(self.width, self.height, rgb).unwrap_or_default()
    }

    /// The stored and modality value at a pixel.
    pub fn at(&self, x: u32, y: u32) -> Option<(i32, f32)> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = y as usize * self.width as usize + x as usize;
        Some((*self.stored.get(i)?, *self.modality.get(i)?))
    }
}

/// The window a model saw its inputs through, from its sidecar (`"window": {"center": -600,
/// "width": 1500}`, a preset name such as `"lung"`, or `"minmax"`) or the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkWindow {
    Window(Window),
    MinMax,
}

impl NetworkWindow {
    pub fn voi(&self) -> Voi {
        match self {
            Self::Window(w) => Voi::Window(*w),
            Self::MinMax => Voi::MinMax,
        }
    }

    /// A window from its written form: "C,W" (centre, width), "minmax", or a preset's name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("minmax") {
            return Ok(Self::MinMax);
        }
        if let Some((c, w)) = text.split_once(',') {
            let (center, width) = (c.trim().parse::<f64>(), w.trim().parse::<f64>());
            return match (center, width) {
                (Ok(center), Ok(width)) if Window::linear(center, width).is_valid() => {
                    Ok(Self::Window(Window::linear(center, width)))
                }
                _ => Err(format!(
                    "window '{text}' is not CENTRE,WIDTH with numbers and a width of at least 1"
                )),
            };
        }
        find_preset(&default_presets(), text)
            .map(|p| Self::Window(p.window()))
            .ok_or_else(|| {
                let names: Vec<String> = default_presets().into_iter().map(|p| p.name).collect();
                format!(
                    "window '{text}' is neither CENTRE,WIDTH, minmax nor a preset ({})",
                    names.join(", ")
                )
            })
    }
}

impl std::fmt::Display for NetworkWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Window(w) => w.fmt(f),
            Self::MinMax => f.write_str("min-max"),
        }
    }
}

impl Serialize for NetworkWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Window(w) => w.serialize(s),
            Self::MinMax => s.serialize_str("minmax"),
        }
    }
}

impl<'de> Deserialize<'de> for NetworkWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Name(String),
            Window(Window),
        }
        match Written::deserialize(d)? {
            Written::Name(name) => Self::parse(&name).map_err(serde::de::Error::custom),
            Written::Window(w) if w.is_valid() => Ok(Self::Window(w)),
            Written::Window(w) => Err(serde::de::Error::custom(format!(
                "window {w} has no valid width (at least 1 for LINEAR, above 0 otherwise)"
            ))),
        }
    }
}

/// What the viewer shows an image with gray levels through: a VOI and whether to invert it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayWindow {
    pub voi: Voi,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// A named window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    pub center: f64,
    pub width: f64,
}

impl Preset {
    pub fn window(&self) -> Window {
        Window::linear(self.center, self.width)
    }
}

/// The CT presets camview ships (centre / width). One source: Radiopaedia's "Windowing (CT)"
/// article (lung, mediastinum, abdomen, bone, brain, stroke), with the liver window of the
/// issue that asked for them; viewers differ (FIELD.md lists OHIF's, Slicer's, Weasis' and
/// Horos'), so users edit the list in the viewer's settings (README, "Window presets").
pub fn default_presets() -> Vec<Preset> {
    [
        ("lung", -600.0, 1500.0),
        ("mediastinum", 50.0, 350.0),
        ("abdomen", 50.0, 400.0),
        ("liver", 90.0, 150.0),
        ("bone", 400.0, 1800.0),
        ("brain", 40.0, 80.0),
        ("stroke", 40.0, 40.0),
    ]
    .into_iter()
    .map(|(name, center, width)| Preset {
        name: name.to_string(),
        center,
        width,
    })
    .collect()
}

/// The preset named `name` (case-insensitive) among `presets`.
pub fn find_preset<'a>(presets: &'a [Preset], name: &str) -> Option<&'a Preset> {
    presets.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_window_follows_ps3_3() {
        // C.11.2.1.2.1 with c = 40, w = 400: below c - 0.5 - (w-1)/2 = -160 is 0, above
        // c - 0.5 + (w-1)/2 = 239 is the top.
        let w = Window::linear(40.0, 400.0);
        assert_eq!(w.apply(-160.0), 0.0);
        assert_eq!(w.apply(240.0), 255.0);
        let mid = w.apply(39.5);
        assert!((mid - 127.5).abs() < 1e-12, "{mid}");
        let exact = Window {
            function: WindowFunction::LinearExact,
            ..w
        };
        assert_eq!(exact.apply(-160.0), 0.0);
        assert!((exact.apply(40.0) - 127.5).abs() < 1e-12);
        let sigmoid = Window {
            function: WindowFunction::Sigmoid,
            ..w
        };
        assert!((sigmoid.apply(40.0) - 127.5).abs() < 1e-12);
        assert!(!Window::linear(0.0, 0.5).is_valid());
        assert!(Window::linear(0.0, 1.0).is_valid());
    }

    #[test]
    fn min_max_lut_and_inversion() {
        let g = GrayLevels::new(4, 1, vec![0, 1, 2, 3], vec![-10.0, 0.0, 10.0, 20.0]);
        assert_eq!(g.render(&Voi::MinMax, false), vec![0, 85, 170, 255]);
        assert_eq!(g.render(&Voi::MinMax, true), vec![255, 170, 85, 0]);
        let lut = LookupTable {
            first: 0,
            bits: 8,
            data: vec![0, 100, 200],
        };
        // Values below the first entry take the first, above the last take the last.
        assert_eq!(g.render(&Voi::Lut(lut), false), vec![0, 0, 200, 200]);
        assert_eq!(g.at(3, 0), Some((3, 20.0)));
        assert_eq!(g.at(4, 0), None);
    }

    #[test]
    fn windows_print_as_radiologists_write_them() {
        assert_eq!(
            Window::linear(-600.0, 1500.0).to_string(),
            "C -600 / W 1500"
        );
        assert_eq!(
            find_preset(&default_presets(), "Lung").map(Preset::window),
            Some(Window::linear(-600.0, 1500.0))
        );
    }
}
