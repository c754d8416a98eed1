//! A class activation map and how maps are scaled for drawing.

use serde::{Deserialize, Serialize};

use super::{Method, Stage};
use crate::imaging::Region;

/// A raw class activation map: `height x width` values over `region` of the original image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassActivationMap {
    pub class: usize,
    pub method: Method,
    /// The stage whose activations it weighs.
    pub layer: Stage,
    pub width: usize,
    pub height: usize,
    /// Row-major, before any normalisation.
    pub values: Vec<f32>,
    /// Where the network's input (and so this map) sits on the original image.
    pub region: Region,
    /// The network saw the image transposed (`Preprocessing::transpose`, as MONAI's readers
    /// give images): `values` are already turned back into the image's orientation, and the
    /// network's own grid is their transpose (`in_network_orientation`).
    pub transposed: bool,
    /// Score-CAM that weighed only this many of the layer's most active channels
    /// (`MethodOptions::score_cam_channels`); `None` for Score-CAM over every channel and for
    /// every other method.
    pub score_cam_most_active: Option<usize>,
}

/// `values`, `height` rows of `width`, transposed: `width` rows of `height`.
pub fn transpose(values: &[f32], width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for (y, row) in values.chunks_exact(width.max(1)).take(height).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            out[x * height + y] = v;
        }
    }
    out
}

impl ClassActivationMap {
    /// The map on the network's own grid (the transpose of `values` when the network saw the
    /// image transposed), for what is compared with the network's input.
    pub fn in_network_orientation(&self) -> Self {
        if !self.transposed {
            return self.clone();
        }
        Self {
            values: transpose(&self.values, self.width, self.height),
            width: self.height,
            height: self.width,
            transposed: false,
            ..self.clone()
        }
    }

    pub fn min_max(&self) -> (f32, f32) {
        self.values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// The map's values scaled by `(v - lo) / (hi - lo)` into `[0, 1]` (all 0 when hi == lo).
    pub fn scaled(&self, (lo, hi): (f32, f32)) -> Vec<f32> {
        let span = hi - lo;
        self.values
            .iter()
            .map(|&v| {
                if span > 0.0 {
                    ((v - lo) / span).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The map bilinearly upsampled onto the network's `w x h` input grid, in the network's
    /// orientation (what the faithfulness scores and the sanity checks compare).
    pub fn on_input_grid(&self, w: usize, h: usize) -> Vec<f32> {
        let mut on_input = self.in_network_orientation();
        on_input.region = Region::whole(w as u32, h as u32);
        on_input.upsample(&on_input.values, w as u32, h as u32)
    }

    /// Bilinear upsampling (PyTorch's `F.interpolate(.., mode="bilinear", align_corners=False)`)
    /// of `values` onto a `width x height` image, placed over `self.region`. Pixels whose centre
    /// is outside the region are NaN (no heat there). Computed separably: each map row is
    /// interpolated across the width once, then every output row blends two of those (the same
    /// arithmetic as blending four neighbours, 5-10x faster: the viewer runs it on every class
    /// change).
    pub fn upsample(&self, values: &[f32], width: u32, height: u32) -> Vec<f32> {
        let r = self.region;
        let (mw, mh) = (self.width, self.height);
        let (w, h) = (width as usize, height as usize);
        if mw == 0 || mh == 0 || values.len() < mw * mh {
            return vec![f32::NAN; w * h];
        }
        let axis = |n: u32, start: f64, len: f64, m: usize| -> Vec<Option<(usize, usize, f32)>> {
            (0..n)
                .map(|i| {
                    let centre = f64::from(i) + 0.5;
                    if centre < start || centre > start + len {
                        return None;
                    }
                    let src = ((centre - start) * m as f64 / len - 0.5).max(0.0);
                    let i0 = (src.floor() as usize).min(m - 1);
                    let i1 = (i0 + 1).min(m - 1);
                    Some((i0, i1, (src - i0 as f64) as f32))
                })
                .collect()
        };
        let xs = axis(width, r.x, r.width, mw);
        let ys = axis(height, r.y, r.height, mh);
        let mut rows = vec![f32::NAN; mh * w];
        for (j, row) in rows.chunks_exact_mut(w.max(1)).enumerate() {
            let map_row = &values[j * mw..(j + 1) * mw];
            for (out, x) in row.iter_mut().zip(&xs) {
                if let Some((x0, x1, lx)) = *x {
                    *out = map_row[x0] * (1.0 - lx) + map_row[x1] * lx;
                }
            }
        }
        let mut out = Vec::with_capacity(w * h);
        for y in &ys {
            match *y {
                Some((y0, y1, ly)) => {
                    let top = &rows[y0 * w..(y0 + 1) * w];
                    let bottom = &rows[y1 * w..(y1 + 1) * w];
                    out.extend(top.iter().zip(bottom).map(|(t, b)| t * (1.0 - ly) + b * ly));
                }
                None => out.extend(std::iter::repeat_n(f32::NAN, w)),
            }
        }
        out
    }
}

/// How maps are scaled to `[0, 1]` before colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalisation {
    /// Each map's own min..max (like the original script): best contrast, not comparable.
    #[default]
    PerMap,
    /// One min..max over the maps of all classes of the image: classes can be compared.
    Shared,
}

impl Normalisation {
    pub const ALL: [Normalisation; 2] = [Self::PerMap, Self::Shared];

    /// The name in provenance and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::PerMap => "per-map",
            Self::Shared => "shared",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(values: Vec<f32>, w: usize, h: usize, region: Region) -> ClassActivationMap {
        ClassActivationMap {
            transposed: false,
            score_cam_most_active: None,
            class: 0,
            method: Method::Cam,
            layer: Stage::Norm5,
            width: w,
            height: h,
            values,
            region,
        }
    }

    #[test]
    fn upsampling_matches_pytorch_half_pixel_rule() {
        // F.interpolate([[0, 1], [2, 3]], size=(4, 4), bilinear, align_corners=False)
        let m = map(vec![0.0, 1.0, 2.0, 3.0], 2, 2, Region::whole(4, 4));
        let up = m.upsample(&m.values, 4, 4);
        let expected = [
            0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
        ];
        assert_eq!(up, expected);
    }

    #[test]
    fn pixels_outside_the_region_get_no_heat() {
        let region = Region {
            x: 2.0,
            y: 0.0,
            width: 4.0,
            height: 4.0,
        };
        let m = map(vec![1.0; 4], 2, 2, region);
        let up = m.upsample(&m.values, 8, 4);
        for y in 0..4 {
            for x in 0..8 {
                let v = up[y * 8 + x];
                assert_eq!(v.is_nan(), !(2..6).contains(&x), "x={x} y={y} v={v}");
            }
        }
    }

    #[test]
    fn scaling_into_the_unit_interval() {
        let m = map(vec![-1.0, 1.0, 3.0, 3.0], 2, 2, Region::whole(2, 2));
        assert_eq!(m.min_max(), (-1.0, 3.0));
        assert_eq!(m.scaled(m.min_max()), [0.0, 0.5, 1.0, 1.0]);
        assert_eq!(m.scaled((2.0, 2.0)), [0.0; 4]);
    }
}
