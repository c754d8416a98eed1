//! Annotating the overlay: the marks of the current image with undo/redo and a selection, the
//! tools that draw them with the mouse, and their drawing on screen (with the same geometry the
//! saved overlay burns in, see `render::annotation`).

use eframe::egui::{
    self, Align2, Color32, CursorIcon, FontId, Id, Key, Order, Painter, PointerButton, Pos2, Rect,
    Response, Stroke, StrokeKind, Vec2, pos2,
};

use crate::render::annotation::{Annotation, HALO, HALO_ALPHA, Point, Shape};

use super::view::View;

/// What a primary drag or click on the overlay does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tool {
    /// Select and move marks; dragging elsewhere pans.
    #[default]
    Select,
    Note,
    Arrow,
    Ellipse,
    Draw,
    /// A polygon outlining a finding, corner by corner.
    Region,
}

impl Tool {
    pub const ALL: [Tool; 6] = [
        Tool::Select,
        Tool::Note,
        Tool::Arrow,
        Tool::Ellipse,
        Tool::Draw,
        Tool::Region,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Select => "Select",
            Self::Note => "Note",
            Self::Arrow => "Arrow",
            Self::Ellipse => "Ellipse",
            Self::Draw => "Draw",
            Self::Region => "Region",
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            Self::Select => {
                "Click a mark to select it, drag it to move it (Delete removes it); drag elsewhere to pan"
            }
            Self::Note => "Click on the overlay where the note goes, type it, press Enter",
            Self::Arrow => "Drag from the tail to the point of the arrow",
            Self::Ellipse => "Drag across the area to circle",
            Self::Draw => "Drag to draw freehand",
            Self::Region => {
                "Click the corners of a finding's region; click the first corner again (or \
                 double-click, or press Enter) to close it; Escape drops it"
            }
        }
    }
}

/// How many changes of one image's marks can be undone: each step keeps a copy of the marks,
/// so an unbounded history would grow with the session.
pub const UNDO_LIMIT: usize = 100;

/// The marks of one image, with undo/redo (the last [`UNDO_LIMIT`] changes).
#[derive(Debug, Clone, Default)]
pub struct AnnotationLayer {
    pub items: Vec<Annotation>,
    pub selected: Option<usize>,
    undo: Vec<Vec<Annotation>>,
    redo: Vec<Vec<Annotation>>,
}

impl AnnotationLayer {
    /// Remembers the marks as they are, before a change.
    pub fn checkpoint(&mut self) {
        if self.undo.len() == UNDO_LIMIT {
            self.undo.remove(0);
        }
        self.undo.push(self.items.clone());
        self.redo.clear();
    }

    /// No marks and no history: nothing worth keeping.
    pub fn is_pristine(&self) -> bool {
        self.items.is_empty() && self.undo.is_empty() && self.redo.is_empty()
    }

    /// How many changes can be undone now.
    pub fn undo_depth(&self) -> usize {
        self.undo.len()
    }

    /// Adds a mark and selects it.
    pub fn push(&mut self, a: Annotation) {
        self.checkpoint();
        self.items.push(a);
        self.selected = Some(self.items.len() - 1);
    }

    pub fn delete_selected(&mut self) -> bool {
        match self.selected.take() {
            Some(i) if i < self.items.len() => {
                self.checkpoint();
                self.items.remove(i);
                true
            }
            _ => false,
        }
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn undo(&mut self) -> bool {
        match self.undo.pop() {
            Some(previous) => {
                self.redo.push(std::mem::replace(&mut self.items, previous));
                self.selected = None;
                true
            }
            None => false,
        }
    }

    pub fn redo(&mut self) -> bool {
        match self.redo.pop() {
            Some(next) => {
                self.undo.push(std::mem::replace(&mut self.items, next));
                self.selected = None;
                true
            }
            None => false,
        }
    }

    /// The topmost mark within `tolerance` image pixels of `p`.
    pub fn hit(&self, p: Point, tolerance: f32) -> Option<usize> {
        self.items
            .iter()
            .enumerate()
            .rev()
            .map(|(i, a)| (i, a.distance(p)))
            .filter(|&(_, d)| d <= tolerance)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// The selected mark, if it is closed (it can be a finding).
    pub fn selected_closed(&self) -> Option<&Annotation> {
        self.selected
            .and_then(|i| self.items.get(i))
            .filter(|a| a.outline().is_some())
    }

    /// Flags the selected closed mark as a finding, or not.
    pub fn set_selected_finding(&mut self, finding: bool) {
        if let Some(i) = self.selected
            && self
                .items
                .get(i)
                .is_some_and(|a| a.outline().is_some() && a.finding != finding)
        {
            self.checkpoint();
            self.items[i].finding = finding;
        }
    }

    /// The marks flagged as findings.
    pub fn findings(&self) -> Vec<Annotation> {
        self.items.iter().filter(|a| a.finding).cloned().collect()
    }

    /// Recolours the selected mark.
    pub fn recolour_selected(&mut self, colour: [u8; 3]) {
        if let Some(i) = self.selected
            && self.items.get(i).is_some_and(|a| a.colour != colour)
        {
            self.checkpoint();
            self.items[i].colour = colour;
        }
    }
}

/// A note being typed, placed at `at`.
#[derive(Debug, Clone)]
pub struct NoteDraft {
    pub at: Point,
    pub text: String,
    /// Text height in image pixels.
    pub size: f32,
    focused_once: bool,
}

#[derive(Debug, Clone, Default)]
enum Gesture {
    #[default]
    Idle,
    Drawing(Annotation),
    Moving {
        index: usize,
        last: Point,
    },
}

/// The annotation tools' state.
#[derive(Debug, Clone)]
pub struct Annotator {
    pub tool: Tool,
    pub colour: [u8; 3],
    gesture: Gesture,
    pub note: Option<NoteDraft>,
    /// The corners of the region being outlined (the Region tool), in image pixels.
    region: Vec<Point>,
    /// Where the pointer is on the image (the region's next side follows it).
    hover: Option<Point>,
}

/// Line width and note height as they look on screen, in screen points.
const LINE_POINTS: f32 = 3.0;
const NOTE_POINTS: f32 = 18.0;
/// ...but never thinner or smaller than this in the saved file (image pixels), so marks made
/// on a small image zoomed in stay legible in the file.
const MIN_LINE_PIXELS: f32 = 1.5;
const MIN_NOTE_PIXELS: f32 = 10.0;
/// How close (in screen points) a click must be to select a mark.
const PICK_POINTS: f32 = 6.0;

/// How the overlay pane maps screen points to image pixels this frame.
struct PaneGeometry<'a> {
    view: &'a View,
    pane: Rect,
    image_size: Vec2,
}

impl PaneGeometry<'_> {
    /// The image pixel at screen point `p`. Marks stay on the image: a point beyond its edge
    /// is taken at the edge.
    fn to_image(&self, p: Pos2) -> Point {
        let p = self.view.to_image(self.pane, p);
        [
            p.x.clamp(0.0, self.image_size.x),
            p.y.clamp(0.0, self.image_size.y),
        ]
    }

    fn on_image(&self, p: Pos2) -> bool {
        Rect::from_min_size(Pos2::ZERO, self.image_size).contains(self.view.to_image(self.pane, p))
    }

    fn zoom(&self) -> f32 {
        self.view.zoom.max(1e-6)
    }

    /// How close (in image pixels) a click must be to a mark to pick it.
    fn pick_tolerance(&self) -> f32 {
        PICK_POINTS / self.zoom()
    }

    /// The width of a new line, in image pixels.
    fn line_width(&self) -> f32 {
        (LINE_POINTS / self.zoom()).max(MIN_LINE_PIXELS)
    }
}

fn pos(p: Point) -> Pos2 {
    pos2(p[0], p[1])
}

fn colour32([r, g, b]: [u8; 3]) -> Color32 {
    Color32::from_rgb(r, g, b)
}

impl Annotator {
    pub fn new(colour: [u8; 3]) -> Self {
        Self {
            tool: Tool::Select,
            colour,
            gesture: Gesture::Idle,
            note: None,
            region: Vec::new(),
            hover: None,
        }
    }

    /// Handles the pointer on the overlay pane. Returns true when a primary drag belongs to the
    /// tool (so the pane must not pan with it).
    pub fn pointer(
        &mut self,
        layer: &mut AnnotationLayer,
        response: &Response,
        view: &View,
        pane: Rect,
        image_size: Vec2,
    ) -> bool {
        let ctx = response.ctx.clone();
        let at = PaneGeometry {
            view,
            pane,
            image_size,
        };
        let press = ctx.input(|i| i.pointer.press_origin());
        let current = response.interact_pointer_pos().or(response.hover_pos());
        if let Some(hover) = response.hover_pos() {
            ctx.set_cursor_icon(self.cursor(layer, &at, hover));
            self.hover = Some(at.to_image(hover));
        } else {
            self.hover = None;
        }
        if self.tool == Tool::Region
            && self.region.len() >= 3
            && ctx.input(|i| i.key_pressed(Key::Enter))
        {
            self.close_region(layer, at.line_width());
        }
        if response.clicked_by(PointerButton::Primary)
            && let Some(clicked) = current
        {
            self.click(layer, &at, clicked);
            return false;
        }
        if response.drag_started_by(PointerButton::Primary) {
            let start = at.to_image(press.or(current).unwrap_or(pane.center()));
            let now = current.map_or(start, |p| at.to_image(p));
            self.gesture = self.start_gesture(layer, &at, start, now);
        }
        if response.dragged_by(PointerButton::Primary)
            && let Some(now) = current.map(|p| at.to_image(p))
        {
            self.continue_gesture(layer, &at, press.map(|p| at.to_image(p)), now);
        }
        let ours = !matches!(self.gesture, Gesture::Idle);
        if response.drag_stopped() || !response.is_pointer_button_down_on() {
            self.finish_gesture(layer, at.zoom());
        }
        ours
    }

    /// The pointer's shape over the pane: what a press would do there.
    fn cursor(&self, layer: &AnnotationLayer, at: &PaneGeometry<'_>, hover: Pos2) -> CursorIcon {
        match self.tool {
            Tool::Select if layer.hit(at.to_image(hover), at.pick_tolerance()).is_some() => {
                CursorIcon::Move
            }
            Tool::Select => CursorIcon::Grab,
            Tool::Note => CursorIcon::Text,
            _ => CursorIcon::Crosshair,
        }
    }

    /// A click: selects a mark, places a note (on the image only) or a dot of ink.
    fn click(&mut self, layer: &mut AnnotationLayer, at: &PaneGeometry<'_>, clicked: Pos2) {
        let p = at.to_image(clicked);
        match self.tool {
            Tool::Select => layer.selected = layer.hit(p, at.pick_tolerance()),
            Tool::Note if !at.on_image(clicked) => {}
            Tool::Note => {
                self.commit_note(layer);
                self.note = Some(NoteDraft {
                    at: p,
                    text: String::new(),
                    size: (NOTE_POINTS / at.zoom()).max(MIN_NOTE_PIXELS),
                    focused_once: false,
                });
            }
            Tool::Draw => layer.push(Annotation {
                shape: Shape::Freehand { points: vec![p] },
                colour: self.colour,
                width: at.line_width(),
                finding: false,
            }),
            Tool::Region => self.add_corner(layer, at, p),
            Tool::Arrow | Tool::Ellipse => {}
        }
    }

    /// A corner of the region being outlined; a click on its first corner (with three or more)
    /// or on its last one (a double click) closes it.
    fn add_corner(&mut self, layer: &mut AnnotationLayer, at: &PaneGeometry<'_>, p: Point) {
        let near = |q: &Point| (q[0] - p[0]).hypot(q[1] - p[1]) <= at.pick_tolerance();
        let closes = self.region.len() >= 3
            && (self.region.first().is_some_and(near) || self.region.last().is_some_and(near));
        if closes {
            self.close_region(layer, at.line_width());
        } else if !self.region.last().is_some_and(near) {
            self.region.push(p);
        }
    }

    /// Closes the region being outlined into a finding (with three corners or more); drops it
    /// otherwise.
    pub fn close_region(&mut self, layer: &mut AnnotationLayer, width: f32) {
        let points = std::mem::take(&mut self.region);
        if points.len() >= 3 {
            layer.push(Annotation {
                shape: Shape::Polygon { points },
                colour: self.colour,
                width,
                finding: true,
            });
        }
    }

    /// Drops the region being outlined (Escape, another tool).
    pub fn drop_region(&mut self) {
        self.region.clear();
    }

    /// Whether a region is being outlined.
    pub fn outlining(&self) -> bool {
        !self.region.is_empty()
    }

    /// A primary drag begins at `start` (now at `now`): it moves the mark under it (Select) or
    /// starts drawing one.
    fn start_gesture(
        &self,
        layer: &mut AnnotationLayer,
        at: &PaneGeometry<'_>,
        start: Point,
        now: Point,
    ) -> Gesture {
        let drawing = |shape| {
            Gesture::Drawing(Annotation {
                shape,
                colour: self.colour,
                width: at.line_width(),
                finding: false,
            })
        };
        match self.tool {
            Tool::Select => match layer.hit(start, at.pick_tolerance()) {
                Some(index) => {
                    layer.selected = Some(index);
                    layer.checkpoint();
                    Gesture::Moving { index, last: start }
                }
                None => Gesture::Idle,
            },
            Tool::Note | Tool::Region => Gesture::Idle,
            Tool::Arrow => drawing(Shape::Arrow {
                from: start,
                to: now,
            }),
            Tool::Ellipse => drawing(ellipse_between(start, now)),
            Tool::Draw => drawing(Shape::Freehand {
                points: vec![start, now],
            }),
        }
    }

    /// The drag goes on to `now`: the mark moves, or the one drawn follows (an ellipse spans
    /// from where the press was).
    fn continue_gesture(
        &mut self,
        layer: &mut AnnotationLayer,
        at: &PaneGeometry<'_>,
        press: Option<Point>,
        now: Point,
    ) {
        match &mut self.gesture {
            Gesture::Idle => {}
            Gesture::Moving { index, last } => {
                if let Some(a) = layer.items.get_mut(*index) {
                    a.translate(now[0] - last[0], now[1] - last[1]);
                }
                *last = now;
            }
            Gesture::Drawing(a) => match &mut a.shape {
                Shape::Arrow { to, .. } => *to = now,
                Shape::Ellipse { .. } => {
                    if let Some(start) = press {
                        a.shape = ellipse_between(start, now);
                    }
                }
                Shape::Freehand { points } | Shape::Polygon { points } => {
                    let far_enough = points
                        .last()
                        .is_none_or(|l| (l[0] - now[0]).hypot(l[1] - now[1]) * at.zoom() >= 1.5);
                    if far_enough {
                        points.push(now);
                    }
                }
                Shape::Note { .. } => {}
            },
        }
    }

    /// The drag is over: the mark drawn is kept unless it was a slip of the mouse.
    fn finish_gesture(&mut self, layer: &mut AnnotationLayer, zoom: f32) {
        if let Gesture::Drawing(a) = std::mem::take(&mut self.gesture) {
            let [x0, y0, x1, y1] = a.bounds();
            // Keep marks at least a few screen points big.
            if ((x1 - x0).max(y1 - y0) - a.width) * zoom >= 4.0 {
                layer.push(a);
            }
        }
    }

    /// The note being typed, in a small box where it will go. Enter places it, Escape drops it.
    pub fn note_editor_ui(
        &mut self,
        ctx: &egui::Context,
        layer: &mut AnnotationLayer,
        view: &View,
        pane: Rect,
    ) {
        let Some(draft) = &mut self.note else { return };
        let at = view.to_screen(pane, pos(draft.at));
        let mut commit = false;
        let mut cancel = false;
        egui::Area::new(Id::unique("camview-note-editor"))
            .order(Order::Foreground)
            .fixed_pos(at)
            .show(ctx, |ui| {
                egui::Frame::popup(ui.style()).show(ui, |ui| {
                    ui.horizontal(|ui| {
                        let label = ui.label("Note text:");
                        let edit = ui
                            .add(
                                egui::TextEdit::singleline(&mut draft.text)
                                    .hint_text("type, then Enter")
                                    .desired_width(200.0),
                            )
                            .labelled_by(label.id);
                        if !draft.focused_once {
                            edit.request_focus();
                            draft.focused_once = true;
                        }
                        let (enter, escape) =
                            ui.input(|i| (i.key_pressed(Key::Enter), i.key_pressed(Key::Escape)));
                        if edit.lost_focus() {
                            if escape {
                                cancel = true;
                            } else if enter || !draft.text.trim().is_empty() {
                                commit = true;
                            }
                        }
                        if ui.button("Place").clicked() {
                            commit = true;
                        }
                        if ui.button("Cancel").clicked() {
                            cancel = true;
                        }
                    });
                });
            });
        if cancel {
            self.note = None;
        } else if commit {
            self.commit_note(layer);
        }
    }

    /// Places the note being typed, if it has any text.
    pub fn commit_note(&mut self, layer: &mut AnnotationLayer) {
        if let Some(draft) = self.note.take() {
            let text = draft.text.trim().to_string();
            if !text.is_empty() {
                layer.push(Annotation {
                    shape: Shape::Note {
                        at: draft.at,
                        text,
                        size: draft.size,
                    },
                    colour: self.colour,
                    width: draft.size / 8.0,
                    finding: false,
                });
            }
        }
    }

    /// Draws the marks (and the one being drawn) over the overlay pane.
    pub fn paint(&self, painter: &Painter, layer: &AnnotationLayer, view: &View, pane: Rect) {
        for (i, a) in layer.items.iter().enumerate() {
            paint_annotation(painter, a, view, pane);
            if layer.selected == Some(i) {
                let [x0, y0, x1, y1] = a.bounds();
                let r = Rect::from_min_max(
                    view.to_screen(pane, pos2(x0, y0)),
                    view.to_screen(pane, pos2(x1, y1)),
                )
                .expand(3.0);
                painter.rect_stroke(
                    r,
                    2.0,
                    Stroke::new(1.5, Color32::from_rgb(90, 170, 255)),
                    StrokeKind::Outside,
                );
            }
        }
        if let Gesture::Drawing(a) = &self.gesture {
            paint_annotation(painter, a, view, pane);
        }
        if !self.region.is_empty() {
            let colour = colour32(self.colour);
            let mut points: Vec<Pos2> = self
                .region
                .iter()
                .map(|p| view.to_screen(pane, pos(*p)))
                .collect();
            for &corner in &points {
                painter.circle_filled(corner, 3.5, colour);
            }
            if let Some(hover) = self.hover {
                points.push(view.to_screen(pane, pos(hover)));
            }
            painter.add(egui::Shape::line(points, Stroke::new(LINE_POINTS, colour)));
        }
    }
}

fn ellipse_between(a: Point, b: Point) -> Shape {
    Shape::Ellipse {
        centre: [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0],
        radii: [(b[0] - a[0]).abs() / 2.0, (b[1] - a[1]).abs() / 2.0],
    }
}

/// Joins segments that follow one another into polylines, so thick lines get proper joints.
fn chains(segments: &[(Point, Point)]) -> Vec<Vec<Point>> {
    let mut out: Vec<Vec<Point>> = Vec::new();
    for &(a, b) in segments {
        match out.last_mut() {
            Some(chain) if chain.last() == Some(&a) => chain.push(b),
            _ => out.push(vec![a, b]),
        }
    }
    out
}

/// One mark on screen: a dark outline, then its colour, as `render::annotation::burn_in` does.
pub fn paint_annotation(painter: &Painter, a: &Annotation, view: &View, pane: Rect) {
    let zoom = view.zoom;
    let halo =
        Color32::from_rgba_unmultiplied(HALO[0], HALO[1], HALO[2], (HALO_ALPHA * 255.0) as u8);
    match &a.shape {
        Shape::Note { at, text, size } => {
            let font =
                FontId::monospace((size * zoom * crate::render::text::note_em_ratio()).max(1.0));
            let p = view.to_screen(pane, pos(*at));
            let offset = (size / 16.0).max(1.0) * zoom;
            for d in [
                Vec2::new(-offset, 0.0),
                Vec2::new(offset, 0.0),
                Vec2::new(0.0, -offset),
                Vec2::new(0.0, offset),
            ] {
                painter.text(p + d, Align2::LEFT_TOP, text, font.clone(), Color32::BLACK);
            }
            painter.text(p, Align2::LEFT_TOP, text, font, colour32(a.colour));
        }
        _ => {
            let lines = chains(&a.segments());
            let halo_width = (a.width + 2.0 * (a.width / 3.0).max(1.0)) * zoom;
            for (colour, width) in [(halo, halo_width), (colour32(a.colour), a.width * zoom)] {
                for chain in &lines {
                    let points: Vec<Pos2> = chain
                        .iter()
                        .map(|p| view.to_screen(pane, pos(*p)))
                        .collect();
                    if points.len() == 2 && points[0] == points[1] {
                        painter.circle_filled(points[0], width / 2.0, colour);
                    } else {
                        painter.add(egui::Shape::line(points, Stroke::new(width, colour)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(x: f32) -> Annotation {
        Annotation {
            shape: Shape::Note {
                at: [x, 0.0],
                text: "x".into(),
                size: 10.0,
            },
            colour: [1, 2, 3],
            width: 1.0,
            finding: false,
        }
    }

    #[test]
    fn undo_and_redo_walk_the_history() {
        let mut layer = AnnotationLayer::default();
        layer.push(note(0.0));
        layer.push(note(50.0));
        assert_eq!(layer.items.len(), 2);
        assert_eq!(layer.selected, Some(1));
        assert!(layer.delete_selected());
        assert_eq!(layer.items.len(), 1);
        assert!(layer.undo());
        assert_eq!(layer.items.len(), 2);
        assert!(layer.undo());
        assert!(layer.undo());
        assert!(layer.items.is_empty());
        assert!(!layer.undo());
        assert!(layer.redo());
        assert_eq!(layer.items.len(), 1);
        layer.push(note(9.0));
        assert!(!layer.can_redo(), "a new mark ends the redo history");
    }

    #[test]
    fn the_history_keeps_the_last_changes_only() {
        let mut layer = AnnotationLayer::default();
        for i in 0..UNDO_LIMIT + 20 {
            layer.push(note(i as f32));
        }
        assert_eq!(layer.undo_depth(), UNDO_LIMIT);
        while layer.undo() {}
        assert_eq!(
            layer.items.len(),
            20,
            "the oldest 20 changes are kept as they were"
        );
    }

    #[test]
    fn picking_takes_the_nearest_mark() {
        let mut layer = AnnotationLayer::default();
        layer.push(note(0.0));
        layer.push(note(100.0));
        assert_eq!(layer.hit([101.0, 5.0], 2.0), Some(1));
        assert_eq!(layer.hit([2.0, 5.0], 2.0), Some(0));
        assert_eq!(layer.hit([60.0, 50.0], 2.0), None);
    }

    #[test]
    fn arrows_become_two_polylines() {
        let segments = crate::render::annotation::arrow_segments([0.0, 0.0], [10.0, 0.0], 1.0);
        let c = chains(&segments);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].len(), 3);
    }
}
