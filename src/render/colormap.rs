//! Colormaps as 256-entry lookup tables, indexed like OpenCV's `applyColorMap` on an 8-bit map.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    /// OpenCV's COLORMAP_JET (the original script's), blue to red.
    #[default]
    Jet,
    /// Google's Turbo: jet's shape, perceptually smoother.
    Turbo,
    /// Perceptually uniform, colour-blind safe.
    Viridis,
    Inferno,
    Gray,
}

pub type Lut = [[u8; 3]; 256];

impl Colormap {
    pub const ALL: [Colormap; 5] = [
        Self::Jet,
        Self::Turbo,
        Self::Viridis,
        Self::Inferno,
        Self::Gray,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Jet => "jet",
            Self::Turbo => "turbo",
            Self::Viridis => "viridis",
            Self::Inferno => "inferno",
            Self::Gray => "gray",
        }
    }

    /// The table: entry `i` colours the normalised value `i / 255`.
    pub fn lut(self) -> Lut {
        let gradient = match self {
            Self::Jet => return jet_lut(),
            Self::Gray => return std::array::from_fn(|i| [i as u8; 3]),
            Self::Turbo => colorous::TURBO,
            Self::Viridis => colorous::VIRIDIS,
            Self::Inferno => colorous::INFERNO,
        };
        std::array::from_fn(|i| {
            let c = gradient.eval_rational(i, 256);
            [c.r, c.g, c.b]
        })
    }
}

/// OpenCV's jet, built the way OpenCV builds it so every entry is the same byte: the GNU Octave
/// formula `clamp(min(4x - a, b - 4x), 0, 1)` sampled at `x = i / 255` and stored as f32, then
/// OpenCV's `linear_colormap` re-interpolates it in f32 at its own `linspace(0, 1, 256)`
/// (which moves some entries by an ulp), and `convertTo(CV_8U, 255)` rounds half to even.
fn jet_lut() -> Lut {
    let step = 1.0f32 / 255.0;
    let xs: Vec<f32> = (0..256).map(|k| k as f32 * step).collect();
    let channel = |a: f64, b: f64| -> Vec<u8> {
        let ys: Vec<f32> = (0..256)
            .map(|i| {
                let x = f64::from(i) / 255.0;
                (4.0 * x - a).min(b - 4.0 * x).clamp(0.0, 1.0) as f32
            })
            .collect();
        (0..256)
            .map(|k| {
                let y = if k == 0 {
                    ys[0]
                } else {
                    let dx = xs[k] - xs[k - 1];
                    ys[k - 1] + dx * (ys[k] - ys[k - 1]) / dx
                };
                (y * 255.0).round_ties_even().clamp(0.0, 255.0) as u8
            })
            .collect()
    };
    let (r, g, b) = (channel(1.5, 4.5), channel(0.5, 3.5), channel(-0.5, 2.5));
    std::array::from_fn(|i| [r[i], g[i], b[i]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_runs_from_dark_blue_to_dark_red() {
        let lut = Colormap::Jet.lut();
        assert_eq!(lut[0], [0, 0, 128]);
        assert_eq!(lut[255], [128, 0, 0]);
    }

    #[test]
    fn gray_is_identity() {
        let lut = Colormap::Gray.lut();
        assert!(lut.iter().enumerate().all(|(i, c)| *c == [i as u8; 3]));
    }
}
