//! A clinician's marks on an overlay (notes, arrows, ellipses, freehand strokes, polygons), kept
//! in image pixel coordinates so that they land on the same pixels at any zoom, and burnt into
//! the saved overlay. The geometry here is shared by the viewer (which draws it with egui) and
//! the burn-in, so what is saved is what was on the screen. A closed mark flagged as a finding
//! is also a region: `region_mask` turns the findings into the mask a map's agreement with the
//! clinician is scored against (`explain::agreement`).

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
    /// The mark outlines the finding (the clinician's region): its inside is part of
    /// `region_mask`. Only closed marks have an inside (`outline`). Absent from sidecars
    /// written before it existed, and from marks that are not findings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finding: bool,
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
    /// A closed polygon through `points`: drawn with the side from the last point back to the
    /// first.
    Polygon { points: Vec<Point> },
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
            Shape::Freehand { points } | Shape::Polygon { points } if points.len() == 1 => {
                vec![(points[0], points[0])]
            }
            Shape::Freehand { points } => polyline(points),
            Shape::Polygon { points } => {
                let mut segments = polyline(points);
                if let (Some(&first), Some(&last)) = (points.first(), points.last()) {
                    segments.push((last, first));
                }
                segments
            }
        }
    }

    /// The closed outline of a closed mark, whose inside is a region: an ellipse (sampled
    /// finer than its drawn stroke, within 0.01 pixel of the true ellipse, so the region's area
    /// is the ellipse's), a polygon of 3 points or more, or a freehand stroke whose end came
    /// back to its start: within 3 line widths, or 5% of its bounding box's diagonal, whichever
    /// is larger (a hand closing a loop stops near, rarely on, where it began). `None` for
    /// notes, arrows and open strokes.
    pub fn outline(&self) -> Option<Vec<Point>> {
        match &self.shape {
            Shape::Note { .. } | Shape::Arrow { .. } => None,
            Shape::Ellipse { centre, radii } => {
                // the sagitta r (1 - cos(pi / n)) ~ r pi^2 / (2 n^2) at most 0.01 pixel
                let r = radii[0].abs().max(radii[1].abs());
                let n = (std::f32::consts::PI * (r / 0.02).sqrt()).ceil();
                Some(ellipse_polygon(
                    *centre,
                    *radii,
                    n.clamp(24.0, 4096.0) as usize,
                ))
            }
            Shape::Polygon { points } => (points.len() >= 3).then(|| points.clone()),
            Shape::Freehand { points } => {
                let (&first, &last) = (points.first()?, points.last()?);
                let (mut x0, mut y0, mut x1, mut y1) = (first[0], first[1], first[0], first[1]);
                for p in points {
                    (x0, y0, x1, y1) = (x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1]));
                }
                let reach = (3.0 * self.width).max(0.05 * (x1 - x0).hypot(y1 - y0));
                let gap = (last[0] - first[0]).hypot(last[1] - first[1]);
                (points.len() >= 3 && gap <= reach).then(|| points.clone())
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
        self.each_point(|p| {
            p[0] += dx;
            p[1] += dy;
        });
    }

    /// The mark on an image `sx` x `sy` times the size (an ellipse's radii and the line width
    /// follow; a note's text keeps its size).
    pub fn scale(&mut self, sx: f32, sy: f32) {
        self.each_point(|p| {
            p[0] *= sx;
            p[1] *= sy;
        });
        if let Shape::Ellipse { radii, .. } = &mut self.shape {
            radii[0] *= sx;
            radii[1] *= sy;
        }
        self.width *= (sx * sy).sqrt();
    }

    /// Applies `f` to every point that places the mark.
    fn each_point(&mut self, mut f: impl FnMut(&mut Point)) {
        match &mut self.shape {
            Shape::Note { at, .. } => f(at),
            Shape::Arrow { from, to } => {
                f(from);
                f(to);
            }
            Shape::Ellipse { centre, .. } => f(centre),
            Shape::Freehand { points } | Shape::Polygon { points } => points.iter_mut().for_each(f),
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

/// Points around an ellipse, closed (the last point is the first): as many as drawing it
/// smoothly needs.
pub fn ellipse_points(centre: Point, radii: Point) -> Vec<Point> {
    let n = ((radii[0].abs() + radii[1].abs()) * 0.5).clamp(24.0, 256.0) as usize;
    ellipse_polygon(centre, radii, n)
}

/// `n` sides around an ellipse, closed (`n + 1` points, the last the first).
fn ellipse_polygon(centre: Point, radii: Point, n: usize) -> Vec<Point> {
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

/// The clinician's region on a `width x height` image, row-major: true where a pixel's centre
/// `(x + 0.5, y + 0.5)` lies inside the outline (`Annotation::outline`) of a mark flagged as a
/// finding. Each outline is filled by the even-odd rule (a polygon that crosses itself leaves
/// the parts it wraps twice out), and the findings are united. A centre exactly on a left edge
/// is inside, on a right edge outside, so two polygons sharing a side never both take a pixel.
pub fn region_mask(annotations: &[Annotation], width: u32, height: u32) -> Vec<bool> {
    let (w, h) = (width as usize, height as usize);
    let mut mask = vec![false; w * h];
    let outlines = annotations
        .iter()
        .filter(|a| a.finding)
        .filter_map(Annotation::outline);
    for outline in outlines {
        if outline
            .iter()
            .any(|p| !p[0].is_finite() || !p[1].is_finite())
        {
            continue;
        }
        let (top, bottom) = outline
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(t, b), p| {
                (t.min(p[1]), b.max(p[1]))
            });
        // the rows whose centre may lie inside: top <= y + 0.5 <= bottom
        let first_row = (top - 0.5).ceil().clamp(0.0, h as f32) as usize;
        let end_row = ((bottom - 0.5).floor() + 1.0).clamp(0.0, h as f32) as usize;
        let mut crossings = Vec::new();
        for y in first_row..end_row {
            let yc = y as f32 + 0.5;
            crossings.clear();
            let edges = outline.iter().zip(outline.iter().cycle().skip(1));
            for (a, b) in edges {
                // half-open in y, so a vertex on the scan line counts once
                if (a[1] > yc) != (b[1] > yc) {
                    crossings.push(a[0] + (yc - a[1]) * (b[0] - a[0]) / (b[1] - a[1]));
                }
            }
            crossings.sort_by(f32::total_cmp);
            for span in crossings.chunks_exact(2) {
                // centres x + 0.5 in [left, right)
                let from = (span[0] - 0.5).ceil().clamp(0.0, w as f32) as usize;
                let to = (span[1] - 0.5).ceil().clamp(0.0, w as f32) as usize;
                mask[y * w + from..y * w + to.max(from)].fill(true);
            }
        }
    }
    mask
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
            finding: false,
        }
    }

    fn finding(shape: Shape) -> Annotation {
        Annotation {
            finding: true,
            ..mark(shape)
        }
    }

    /// The pixels a mask holds, as (x, y).
    fn pixels(mask: &[bool], width: u32) -> Vec<(u32, u32)> {
        (mask.iter().enumerate())
            .filter(|(_, m)| **m)
            .map(|(i, _)| (i as u32 % width, i as u32 / width))
            .collect()
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

    #[test]
    fn a_polygon_is_drawn_closed_and_moves_whole() {
        let mut triangle = mark(Shape::Polygon {
            points: vec![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]],
        });
        let segments = triangle.segments();
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[2], ([0.0, 10.0], [0.0, 0.0]), "the closing side");
        // on the closing side (x = 0), far from the open polyline's two sides
        assert_eq!(triangle.distance([0.0, 5.0]), 0.0);
        assert_eq!(triangle.bounds(), [-2.5, -2.5, 12.5, 12.5]);
        triangle.translate(5.0, 1.0);
        assert_eq!(triangle.distance([5.0, 6.0]), 0.0);
        let mut img = RgbImage::from_pixel(30, 30, Rgb([0, 0, 255]));
        burn_in(&mut img, std::slice::from_ref(&triangle));
        assert_eq!(
            img.get_pixel(5, 7).0,
            [255, 255, 0],
            "the closing side is burnt in"
        );
    }

    #[test]
    fn only_closed_marks_have_an_outline() {
        let loop_back = |end: Point| {
            mark(Shape::Freehand {
                points: vec![[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], end],
            })
        };
        // the reach is max(3 widths = 9, 5% of the diagonal 141 = 7.1) = 9 pixels
        assert!(loop_back([0.0, 8.9]).outline().is_some());
        assert!(loop_back([0.0, 9.1]).outline().is_none());
        assert!(loop_back([0.0, 100.0]).outline().is_none());
        let two = Shape::Polygon {
            points: vec![[0.0, 0.0], [5.0, 5.0]],
        };
        assert!(mark(two).outline().is_none());
        let arrow = Shape::Arrow {
            from: [0.0, 0.0],
            to: [9.0, 9.0],
        };
        assert!(mark(arrow).outline().is_none());
        let note = Shape::Note {
            at: [0.0, 0.0],
            text: "a".into(),
            size: 9.0,
        };
        assert!(mark(note).outline().is_none());
        let ellipse = mark(Shape::Ellipse {
            centre: [0.0, 0.0],
            radii: [30.0, 20.0],
        });
        let outline = ellipse.outline().unwrap();
        // every point on the ellipse
        for p in &outline {
            let r = (p[0] / 30.0).powi(2) + (p[1] / 20.0).powi(2);
            assert!((r - 1.0).abs() < 1e-5, "{p:?} is off the ellipse");
        }
    }

    #[test]
    fn a_rectangle_region_covers_exactly_its_pixels() {
        let rectangle = finding(Shape::Polygon {
            points: vec![[2.0, 3.0], [7.0, 3.0], [7.0, 9.0], [2.0, 9.0]],
        });
        let mask = region_mask(&[rectangle], 12, 10);
        let expected: Vec<(u32, u32)> = (3..9).flat_map(|y| (2..7).map(move |x| (x, y))).collect();
        let mut got = pixels(&mask, 12);
        got.sort_by_key(|&(x, y)| (y, x));
        assert_eq!(got, expected);
        // A rectangle reaching past the image is cut at its edges, never out of bounds.
        let outside = finding(Shape::Polygon {
            points: vec![[-5.0, -5.0], [3.0, -5.0], [3.0, 2.0], [-5.0, 2.0]],
        });
        assert_eq!(pixels(&region_mask(&[outside], 12, 10), 12).len(), 3 * 2);
    }

    #[test]
    fn an_ellipse_region_has_the_ellipses_area() {
        let (a, b) = (40.0f32, 25.0f32);
        let ellipse = finding(Shape::Ellipse {
            centre: [60.3, 50.7],
            radii: [a, b],
        });
        let area = pixels(&region_mask(&[ellipse], 128, 100), 128).len() as f32;
        let exact = std::f32::consts::PI * a * b;
        assert!(
            (area - exact).abs() <= 6.0,
            "{area} pixels for an ellipse of area {exact}"
        );
    }

    #[test]
    fn marks_that_are_not_findings_and_open_strokes_add_nothing() {
        let square = |finding_flag: bool| Annotation {
            finding: finding_flag,
            ..mark(Shape::Polygon {
                points: vec![[1.0, 1.0], [6.0, 1.0], [6.0, 6.0], [1.0, 6.0]],
            })
        };
        assert!(!region_mask(&[square(false)], 8, 8).contains(&true));
        let open = finding(Shape::Freehand {
            points: vec![[0.0, 0.0], [7.0, 0.0], [7.0, 7.0]],
        });
        assert!(!region_mask(&[open], 8, 8).contains(&true));
        // two findings are united
        let other = finding(Shape::Polygon {
            points: vec![[0.0, 7.0], [1.0, 7.0], [1.0, 8.0], [0.0, 8.0]],
        });
        let both = region_mask(&[square(true), other], 8, 8);
        assert_eq!(pixels(&both, 8).len(), 25 + 1);
        // an image without pixels has an empty mask
        assert!(region_mask(&[square(true)], 0, 0).is_empty());
    }

    #[test]
    fn a_self_intersecting_region_follows_the_even_odd_rule() {
        // A five-pointed star drawn in one line: its centre pentagon is wrapped twice, so it
        // is outside; its tips once, so they are inside.
        let (cx, cy, r) = (50.0f32, 50.0f32, 45.0f32);
        let tip = |k: usize| {
            let t = -std::f32::consts::FRAC_PI_2 + k as f32 * std::f32::consts::TAU / 5.0;
            [cx + r * t.cos(), cy + r * t.sin()]
        };
        let star = finding(Shape::Polygon {
            points: [0, 2, 4, 1, 3].iter().map(|&k| tip(k)).collect(),
        });
        let mask = region_mask(&[star], 100, 100);
        let at = |x: usize, y: usize| mask[y * 100 + x];
        assert!(!at(50, 52), "the doubly wrapped centre is outside");
        assert!(at(50, 12), "the top tip is inside");
        assert!(!at(5, 95), "a corner is outside");
    }

    #[test]
    fn findings_are_saved_and_old_sidecars_load_as_plain_marks() {
        let old =
            r#"{"shape":{"kind":"arrow","from":[0,0],"to":[1,1]},"colour":[1,2,3],"width":2}"#;
        let plain: Annotation = serde_json::from_str(old).unwrap();
        assert!(!plain.finding);
        assert!(
            serde_json::to_value(&plain)
                .unwrap()
                .get("finding")
                .is_none()
        );
        let region = finding(Shape::Polygon {
            points: vec![[0.0, 0.0], [4.0, 0.0], [4.0, 4.0]],
        });
        let json = serde_json::to_value(&region).unwrap();
        assert_eq!(json["finding"], true);
        assert_eq!(json["shape"]["kind"], "polygon");
        assert_eq!(serde_json::from_value::<Annotation>(json).unwrap(), region);
    }
}
