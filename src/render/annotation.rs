//! A clinician's marks on an overlay (notes, arrows, ellipses, freehand strokes), kept in image
//! pixel coordinates so that they land on the same pixels at any zoom, and burnt into the saved
//! overlay. The geometry here is shared by the viewer (which draws it with egui) and the burn-in,
//! so what is saved is what was on the screen.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::text::{draw_text, text_width};

/// A point in image pixel coordinates: `(0, 0)` is the top-left corner of the top-left pixel.
pub type Point = [f32; 2];

/// One mark, in one colour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub shape: Shape,
    /// sRGB colour.
    pub colour: [u8; 3],
    /// Line width (arrows, ellipses, strokes) in image pixels.
    pub width: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Shape {
    /// A text note whose top-left corner is at `at`; `size` is the text height in image pixels.
    Note { at: Point, text: String, size: f32 },
    /// An arrow pointing from `from` to `to`.
    Arrow { from: Point, to: Point },
    /// An axis-aligned ellipse.
    Ellipse { centre: Point, radii: Point },
    /// A freehand stroke through `points`.
    Freehand { points: Vec<Point> },
}

/// The dark outline drawn around every mark so it stays legible over any heat colour.
pub const HALO: [u8; 3] = [0, 0, 0];
/// The outline's opacity.
pub const HALO_ALPHA: f32 = 0.6;

impl Annotation {
    /// The line segments that draw this mark (empty for a note).
    pub fn segments(&self) -> Vec<(Point, Point)> {
        match &self.shape {
            Shape::Note { .. } => Vec::new(),
            Shape::Arrow { from, to } => arrow_segments(*from, *to, self.width),
            Shape::Ellipse { centre, radii } => polyline(&ellipse_points(*centre, *radii)),
            Shape::Freehand { points } => {
                if points.len() == 1 {
                    vec![(points[0], points[0])]
                } else {
                    polyline(points)
                }
            }
        }
    }

    /// The rectangle `[x0, y0, x1, y1]` that holds the mark, line width included.
    pub fn bounds(&self) -> [f32; 4] {
        if let Shape::Note { at, text, size } = &self.shape {
            return [at[0], at[1], at[0] + text_width(text, *size), at[1] + size];
        }
        let half = self.width / 2.0 + 1.0;
        let mut b = [
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        for (a, c) in self.segments() {
            for p in [a, c] {
                b = [
                    b[0].min(p[0] - half),
                    b[1].min(p[1] - half),
                    b[2].max(p[0] + half),
                    b[3].max(p[1] + half),
                ];
            }
        }
        b
    }

    /// How far `p` is from the mark, in image pixels (0 inside a note's box).
    pub fn distance(&self, p: Point) -> f32 {
        if let Shape::Note { .. } = &self.shape {
            let [x0, y0, x1, y1] = self.bounds();
            let dx = (x0 - p[0]).max(p[0] - x1).max(0.0);
            let dy = (y0 - p[1]).max(p[1] - y1).max(0.0);
            return dx.hypot(dy);
        }
        self.segments()
            .iter()
            .map(|&(a, b)| (segment_distance(p, a, b) - self.width / 2.0).max(0.0))
            .fold(f32::INFINITY, f32::min)
    }

    /// The mark moved by `(dx, dy)` image pixels.
    pub fn translate(&mut self, dx: f32, dy: f32) {
        let shift = |p: &mut Point| {
            p[0] += dx;
            p[1] += dy;
        };
        match &mut self.shape {
            Shape::Note { at, .. } => shift(at),
            Shape::Arrow { from, to } => {
                shift(from);
                shift(to);
            }
            Shape::Ellipse { centre, .. } => shift(centre),
            Shape::Freehand { points } => points.iter_mut().for_each(shift),
        }
    }
}

fn polyline(points: &[Point]) -> Vec<(Point, Point)> {
    points.windows(2).map(|w| (w[0], w[1])).collect()
}

/// An arrow's shaft and the two strokes of its head (30 degrees either side, a quarter of the
/// arrow long but at least four line widths).
pub fn arrow_segments(from: Point, to: Point, width: f32) -> Vec<(Point, Point)> {
    let (dx, dy) = (to[0] - from[0], to[1] - from[1]);
    let len = dx.hypot(dy);
    if len <= f32::EPSILON {
        return vec![(from, to)];
    }
    let (ux, uy) = (dx / len, dy / len);
    let head = (len * 0.25).max(4.0 * width).min(len);
    let (s, c) = (
        std::f32::consts::FRAC_PI_6.sin(),
        std::f32::consts::FRAC_PI_6.cos(),
    );
    let wing = |sign: f32| -> Point {
        // The shaft's direction reversed and turned by +-30 degrees.
        let (bx, by) = (-ux, -uy);
        let rx = bx * c - sign * by * s;
        let ry = sign * bx * s + by * c;
        [to[0] + head * rx, to[1] + head * ry]
    };
    vec![(from, to), (to, wing(1.0)), (to, wing(-1.0))]
}

/// Points around an ellipse, closed (the last point is the first).
pub fn ellipse_points(centre: Point, radii: Point) -> Vec<Point> {
    let n = ((radii[0].abs() + radii[1].abs()) * 0.5).clamp(24.0, 256.0) as usize;
    (0..=n)
        .map(|i| {
            let t = i as f32 / n as f32 * std::f32::consts::TAU;
            [
                centre[0] + radii[0] * t.cos(),
                centre[1] + radii[1] * t.sin(),
            ]
        })
        .collect()
}

fn segment_distance(p: Point, a: Point, b: Point) -> f32 {
    let (abx, aby) = (b[0] - a[0], b[1] - a[1]);
    let len2 = abx * abx + aby * aby;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * abx + (p[1] - a[1]) * aby) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (p[0] - a[0] - t * abx).hypot(p[1] - a[1] - t * aby)
}

/// Draws the marks onto `img` (antialiased, each with a dark outline), in order.
pub fn burn_in(img: &mut RgbImage, annotations: &[Annotation]) {
    for a in annotations {
        match &a.shape {
            Shape::Note { at, text, size } => {
                let halo = (size / 16.0).max(1.0);
                for (ox, oy) in [(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)] {
                    draw_text(img, text, at[0] + ox * halo, at[1] + oy * halo, *size, HALO);
                }
                draw_text(img, text, at[0], at[1], *size, a.colour);
            }
            _ => {
                let segments = a.segments();
                let halo_width = a.width + 2.0 * (a.width / 3.0).max(1.0);
                stroke_segments(img, &segments, halo_width, HALO, HALO_ALPHA);
                stroke_segments(img, &segments, a.width, a.colour, 1.0);
            }
        }
    }
}

/// Strokes segments `width` pixels wide: each pixel takes the largest coverage of any segment,
/// so joints are not drawn twice.
fn stroke_segments(
    img: &mut RgbImage,
    segments: &[(Point, Point)],
    width: f32,
    colour: [u8; 3],
    alpha: f32,
) {
    if segments.is_empty() || img.width() == 0 || img.height() == 0 {
        return;
    }
    let half = width / 2.0;
    let reach = half + 1.0;
    let (w, h) = (img.width() as f32, img.height() as f32);
    let mut x0 = f32::INFINITY;
    let mut y0 = f32::INFINITY;
    let mut x1 = f32::NEG_INFINITY;
    let mut y1 = f32::NEG_INFINITY;
    for (a, b) in segments {
        x0 = x0.min(a[0].min(b[0]) - reach);
        y0 = y0.min(a[1].min(b[1]) - reach);
        x1 = x1.max(a[0].max(b[0]) + reach);
        y1 = y1.max(a[1].max(b[1]) + reach);
    }
    let (x0, y0) = (
        x0.floor().clamp(0.0, w) as u32,
        y0.floor().clamp(0.0, h) as u32,
    );
    let (x1, y1) = (
        x1.ceil().clamp(0.0, w) as u32,
        y1.ceil().clamp(0.0, h) as u32,
    );
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let bw = (x1 - x0) as usize;
    let mut coverage = vec![0f32; bw * (y1 - y0) as usize];
    for (a, b) in segments {
        let sx0 = ((a[0].min(b[0]) - reach).floor().max(x0 as f32)) as u32;
        let sy0 = ((a[1].min(b[1]) - reach).floor().max(y0 as f32)) as u32;
        let sx1 = ((a[0].max(b[0]) + reach).ceil().min(x1 as f32)) as u32;
        let sy1 = ((a[1].max(b[1]) + reach).ceil().min(y1 as f32)) as u32;
        for y in sy0..sy1 {
            for x in sx0..sx1 {
                let d = segment_distance([x as f32 + 0.5, y as f32 + 0.5], *a, *b);
                let c = (half + 0.5 - d).clamp(0.0, 1.0);
                let cell = &mut coverage[(y - y0) as usize * bw + (x - x0) as usize];
                *cell = cell.max(c);
            }
        }
    }
    for y in y0..y1 {
        for x in x0..x1 {
            let c = coverage[(y - y0) as usize * bw + (x - x0) as usize] * alpha;
            if c <= 0.0 {
                continue;
            }
            let p = img.get_pixel_mut(x, y);
            for (v, k) in p.0.iter_mut().zip(colour) {
                *v = (f32::from(*v) * (1.0 - c) + f32::from(k) * c).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn mark(shape: Shape) -> Annotation {
        Annotation {
            shape,
            colour: [255, 255, 0],
            width: 3.0,
        }
    }

    #[test]
    fn strokes_land_where_they_are_drawn() {
        let mut img = RgbImage::from_pixel(40, 40, Rgb([0, 0, 255]));
        burn_in(
            &mut img,
            &[mark(Shape::Freehand {
                points: vec![[5.0, 20.0], [35.0, 20.0]],
            })],
        );
        // On the line: the mark's colour; far from it: untouched.
        assert_eq!(img.get_pixel(20, 19).0, [255, 255, 0]);
        assert_eq!(img.get_pixel(20, 5).0, [0, 0, 255]);
        assert_eq!(img.get_pixel(20, 30).0, [0, 0, 255]);
    }

    #[test]
    fn notes_are_drawn_in_their_colour_inside_their_bounds() {
        let note = mark(Shape::Note {
            at: [4.0, 4.0],
            text: "lesion".into(),
            size: 16.0,
        });
        let mut img = RgbImage::from_pixel(100, 40, Rgb([0, 0, 0]));
        burn_in(&mut img, std::slice::from_ref(&note));
        let [x0, y0, x1, y1] = note.bounds();
        let mut yellow = 0;
        for (x, y, p) in img.enumerate_pixels() {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            if p.0 != [0, 0, 0] {
                assert!(
                    fx > x0 - 3.0 && fx < x1 + 3.0 && fy > y0 - 3.0 && fy < y1 + 3.0,
                    "ink outside the note at {x},{y}"
                );
            }
            if p.0[0] > 200 && p.0[1] > 200 && p.0[2] < 50 {
                yellow += 1;
            }
        }
        assert!(yellow > 30, "only {yellow} note pixels");
    }

    #[test]
    fn hit_testing_and_moving() {
        let mut arrow = mark(Shape::Arrow {
            from: [0.0, 0.0],
            to: [100.0, 0.0],
        });
        assert_eq!(arrow.distance([50.0, 1.0]), 0.0);
        assert!((arrow.distance([50.0, 11.5]) - 10.0).abs() < 1e-4);
        arrow.translate(0.0, 10.0);
        assert_eq!(arrow.distance([50.0, 10.0]), 0.0);
        let ellipse = mark(Shape::Ellipse {
            centre: [50.0, 50.0],
            radii: [20.0, 10.0],
        });
        assert!(ellipse.distance([70.0, 50.0]) < 0.1);
        assert!(ellipse.distance([50.0, 50.0]) > 8.0);
    }

    #[test]
    fn serialises_with_a_kind_tag() {
        let note = mark(Shape::Note {
            at: [1.0, 2.0],
            text: "here".into(),
            size: 12.0,
        });
        let json = serde_json::to_value(&note).unwrap();
        assert_eq!(json["shape"]["kind"], "note");
        assert_eq!(json["shape"]["text"], "here");
        let back: Annotation = serde_json::from_value(json).unwrap();
        assert_eq!(back, note);
    }
}
