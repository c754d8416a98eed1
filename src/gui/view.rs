//! One zoom and pan shared by the original and the overlay panes: the same image point sits at
//! the centre of both, at the same scale.

use eframe::egui::{Pos2, Rect, Vec2, pos2};

/// The smallest and largest zoom, in physical pixels per image pixel.
const MIN_ZOOM: f32 = 0.01;
const MAX_ZOOM: f32 = 64.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Screen points per image pixel.
    pub zoom: f32,
    /// The image point (in image pixels) at the centre of each pane.
    pub centre: Pos2,
    /// Keep the whole image in view as the window changes size (until the user zooms or pans).
    pub fit: bool,
    /// Physical pixels per screen point.
    pub pixels_per_point: f32,
}

impl Default for View {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            centre: Pos2::ZERO,
            fit: true,
            pixels_per_point: 1.0,
        }
    }
}

impl View {
    /// Where image point `p` is drawn in `pane`. The image's corner is snapped to the physical
    /// pixel grid so that at 1:1 and above every image pixel covers whole screen pixels.
    pub fn to_screen(&self, pane: Rect, p: Pos2) -> Pos2 {
        self.origin(pane) + p.to_vec2() * self.zoom
    }

    /// The image point drawn at screen position `s` of `pane`.
    pub fn to_image(&self, pane: Rect, s: Pos2) -> Pos2 {
        ((s - self.origin(pane)) / self.zoom).to_pos2()
    }

    fn origin(&self, pane: Rect) -> Pos2 {
        let o = pane.center() - self.centre.to_vec2() * self.zoom;
        let ppp = self.pixels_per_point.max(0.1);
        pos2((o.x * ppp).round() / ppp, (o.y * ppp).round() / ppp)
    }

    /// The screen rectangle of a `size` image in `pane`.
    pub fn image_rect(&self, pane: Rect, size: Vec2) -> Rect {
        Rect::from_min_max(
            self.to_screen(pane, Pos2::ZERO),
            self.to_screen(pane, size.to_pos2()),
        )
    }

    /// Physical pixels per image pixel (1 = real pixels).
    pub fn scale(&self) -> f32 {
        self.zoom * self.pixels_per_point
    }

    /// Fits a `size` image in every pane (centred), and keeps fitting it.
    pub fn fit(&mut self, panes: &[Rect], size: Vec2) {
        let mut zoom = f32::INFINITY;
        for pane in panes {
            let z = (pane.width() / size.x.max(1.0)).min(pane.height() / size.y.max(1.0));
            zoom = zoom.min(z);
        }
        if zoom.is_finite() && zoom > 0.0 {
            self.zoom = zoom;
        }
        self.centre = (size / 2.0).to_pos2();
        self.fit = true;
    }

    /// Real pixels (one image pixel per screen pixel), keeping the point at the centre.
    pub fn actual_pixels(&mut self) {
        self.zoom = 1.0 / self.pixels_per_point.max(0.1);
        self.fit = false;
    }

    /// Zooms by `factor` keeping the image point under `anchor` where it is.
    pub fn zoom_at(&mut self, pane: Rect, anchor: Pos2, factor: f32) {
        let before = self.to_image(pane, anchor);
        let ppp = self.pixels_per_point.max(0.1);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM / ppp, MAX_ZOOM / ppp);
        // Choose the centre so that `before` is drawn at `anchor` again.
        self.centre = before - (anchor - pane.center()) / self.zoom;
        self.fit = false;
    }

    /// Moves the image by `delta` screen points.
    pub fn pan(&mut self, delta: Vec2) {
        self.centre -= delta / self.zoom;
        self.fit = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::egui::vec2;

    #[test]
    fn zooming_keeps_the_point_under_the_cursor() {
        let pane = Rect::from_min_size(pos2(100.0, 50.0), vec2(400.0, 300.0));
        let mut view = View::default();
        view.fit(&[pane], vec2(800.0, 600.0));
        assert_eq!(view.zoom, 0.5);
        let cursor = pos2(180.0, 90.0);
        let under = view.to_image(pane, cursor);
        view.zoom_at(pane, cursor, 3.0);
        assert!(!view.fit);
        let again = view.to_image(pane, cursor);
        assert!(
            (under - again).length() < 2.0 / view.zoom,
            "{under:?} {again:?}"
        );
        view.actual_pixels();
        assert_eq!(view.scale(), 1.0);
    }

    #[test]
    fn both_panes_fit_and_show_the_same_point() {
        let left = Rect::from_min_size(pos2(0.0, 0.0), vec2(300.0, 500.0));
        let right = Rect::from_min_size(pos2(300.0, 0.0), vec2(500.0, 200.0));
        let mut view = View::default();
        view.fit(&[left, right], vec2(100.0, 100.0));
        assert_eq!(view.zoom, 2.0);
        let a = view.to_image(left, left.center());
        let b = view.to_image(right, right.center());
        assert_eq!(a, b);
        view.pan(vec2(10.0, 0.0));
        assert_eq!(view.to_image(left, left.center()), a - vec2(5.0, 0.0));
    }
}
