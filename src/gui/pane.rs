//! The two image panes, side by side with one zoom and pan: the original, and the overlay (the
//! heat map over the image, the annotation tools and their marks). Each shows where the pointer
//! is on the other.

use eframe::egui::{
    self, Align2, Color32, FontId, Painter, Pos2, Rect, Sense, Stroke, StrokeKind, Vec2,
    WidgetInfo, pos2, vec2,
};

use super::annotate::Tool;
use super::app::CamviewApp;
use super::commands::Command;
use super::session::TaskKind;
use super::textures::max_texture_side;
use super::widgets::paint_busy_badge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Original,
    Overlay,
}

/// The image pixel under the pointer, and the pane the pointer is over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointedPixel {
    /// In image pixels (fractional; outside the image when the pointer is beside it).
    pub at: Pos2,
    pub pane: Pane,
}

/// Where the panes are on screen, and what the pointer is over.
#[derive(Debug, Default)]
pub struct Panes {
    original: Option<Rect>,
    overlay: Option<Rect>,
    pub pointed: Option<PointedPixel>,
}

impl Panes {
    /// The panes drawn so far: fitting the image fits it in both.
    pub fn rects(&self) -> Vec<Rect> {
        [self.original, self.overlay]
            .into_iter()
            .flatten()
            .collect()
    }

    /// Records where `pane` is; true if it moved or changed size.
    fn place(&mut self, pane: Pane, rect: Rect) -> bool {
        let slot = match pane {
            Pane::Original => &mut self.original,
            Pane::Overlay => &mut self.overlay,
        };
        let moved = *slot != Some(rect);
        *slot = Some(rect);
        moved
    }
}

/// An annotation colour offered as a swatch.
struct Swatch {
    name: &'static str,
    rgb: [u8; 3],
}

impl Swatch {
    const fn new(name: &'static str, rgb: [u8; 3]) -> Self {
        Self { name, rgb }
    }
}

const SWATCHES: [Swatch; 6] = [
    Swatch::new("white", [255, 255, 255]),
    Swatch::new("yellow", [255, 221, 0]),
    Swatch::new("green", [0, 230, 118]),
    Swatch::new("cyan", [0, 229, 255]),
    Swatch::new("magenta", [255, 64, 255]),
    Swatch::new("black", [0, 0, 0]),
];

impl CamviewApp {
    /// One image pane: the image (and, on the overlay pane, the heat and the annotations) with
    /// the shared zoom and pan.
    pub(super) fn pane_ui(&mut self, ui: &mut egui::Ui, pane: Pane) {
        let ctx = ui.ctx().clone();
        self.pane_header_ui(ui, pane);
        if pane == Pane::Overlay {
            self.tools_ui(ui);
        }
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        let label = match pane {
            Pane::Original => "Original image",
            Pane::Overlay => "Overlay image",
        };
        response.widget_info(|| WidgetInfo::labeled(egui::accesskit::Role::Image, true, label));
        if self.panes.place(pane, rect) && self.view.fit {
            self.fit_view();
            ctx.request_repaint();
        }
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::from_gray(12));

        if !self.textures.has_image() {
            self.paint_empty_pane(&painter, rect, pane);
            return;
        }
        self.view.pixels_per_point = ctx.pixels_per_point();
        let image_rect = self.view.image_rect(rect, self.textures.image_size());
        let on_screen = image_rect.width().max(image_rect.height()) * self.view.pixels_per_point;
        if let Some((texture, uv)) = self.textures.image_for(&ctx, on_screen) {
            painter.image(texture, image_rect, uv, Color32::WHITE);
        }

        match pane {
            Pane::Overlay => {
                self.paint_heat(&painter, image_rect);
                self.annotations_ui(&ctx, &response, &painter, rect);
            }
            Pane::Original => self.pan_and_zoom(&response, rect, true),
        }
        self.track_pointer(&response, rect, pane);
        self.paint_pointer_elsewhere(&painter, rect, pane);
        if pane == Pane::Overlay {
            self.paint_overlay_badges(&painter, rect);
        }
    }

    /// The pane's title: the image's name, or the map, class and probability shown.
    fn pane_header_ui(&self, ui: &mut egui::Ui, pane: Pane) {
        ui.horizontal(|ui| match pane {
            Pane::Original => {
                ui.strong("Original");
                if let Some(image) = self.session.image() {
                    ui.weak(image.origin.name());
                }
            }
            Pane::Overlay => {
                ui.strong("Overlay");
                if let (Some(model), Some(analysis)) =
                    (self.session.model(), self.session.analysis())
                {
                    let c = self.session.class();
                    let shown = self.session.shown_map();
                    let at = if shown.layer == crate::explain::Stage::Norm5 {
                        String::new()
                    } else {
                        format!(" at {}", shown.layer)
                    };
                    ui.weak(format!(
                        "{}{at} of {} ({:.1}%)",
                        shown.method.title(),
                        model.labels.get(c).map_or("?", String::as_str),
                        100.0 * analysis.probabilities.get(c).copied().unwrap_or(0.0)
                    ));
                }
            }
        });
    }

    /// The heat of the analysis on screen, with the opacity as its alpha (none while a new
    /// analysis is computed).
    fn paint_heat(&mut self, painter: &Painter, image_rect: Rect) {
        if !self.settings.show_overlay || self.session.analysis().is_none() {
            return;
        }
        let Some(heat) = self.textures.heat_of(self.session.analysis_generation()) else {
            return;
        };
        let alpha = (self.settings.opacity.clamp(0.0, 1.0) * 255.0).round() as u8;
        painter.image(
            heat.id(),
            image_rect,
            full_uv(),
            Color32::from_white_alpha(alpha),
        );
        if let Some(image) = self.session.image() {
            self.heat_timing.drawn(&image.origin);
        }
    }

    /// The annotation tools on the overlay pane: a primary drag belongs to the tool when it
    /// draws or moves a mark, and pans otherwise; then the marks and the note being typed.
    fn annotations_ui(
        &mut self,
        ctx: &egui::Context,
        response: &egui::Response,
        painter: &Painter,
        rect: Rect,
    ) {
        let used = self.annotator.pointer(
            self.session.annotations_mut(),
            response,
            &self.view,
            rect,
            self.textures.image_size(),
        );
        self.pan_and_zoom(response, rect, !used);
        self.annotator
            .paint(painter, self.session.annotations(), &self.view, rect);
        self.annotator
            .note_editor_ui(ctx, self.session.annotations_mut(), &self.view, rect);
    }

    /// The wheel zooms at the pointer; a drag pans (the primary button only if `may_pan`); a
    /// double click with Select fits the image.
    fn pan_and_zoom(&mut self, response: &egui::Response, rect: Rect, may_pan: bool) {
        let ctx = &response.ctx;
        if let Some(pointer) = response.hover_pos() {
            let (scroll, zoom) = ctx.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            let factor = zoom * (scroll * 0.0025).exp();
            if (factor - 1.0).abs() > 1e-4 {
                self.view.zoom_at(rect, pointer, factor);
                ctx.input_mut(|i| i.smooth_scroll_delta = Vec2::ZERO);
            }
        }
        // The right button windows an image with gray levels, as radiology viewers do, and
        // pans any other.
        let windows = self.session.levels().is_some();
        if windows && response.dragged_by(egui::PointerButton::Secondary) {
            let delta = response.drag_delta();
            self.session
                .drag_window(delta.x, delta.y, max_texture_side(ctx));
        }
        let pan_drag = (may_pan && response.dragged_by(egui::PointerButton::Primary))
            || response.dragged_by(egui::PointerButton::Middle)
            || (!windows && response.dragged_by(egui::PointerButton::Secondary));
        if pan_drag {
            self.view.pan(response.drag_delta());
        }
        if response.double_clicked() && self.annotator.tool == Tool::Select {
            self.fit_view();
        }
    }

    /// Remembers the image pixel under the pointer while it is over `pane`.
    fn track_pointer(&mut self, response: &egui::Response, rect: Rect, pane: Pane) {
        if let Some(pointer) = response.hover_pos() {
            self.panes.pointed = Some(PointedPixel {
                at: self.view.to_image(rect, pointer),
                pane,
            });
        } else if self.panes.pointed.is_some_and(|p| p.pane == pane) {
            self.panes.pointed = None;
        }
    }

    /// A cross where the pointer is on the other pane.
    fn paint_pointer_elsewhere(&self, painter: &Painter, rect: Rect, pane: Pane) {
        let Some(pointed) = self.panes.pointed.filter(|p| p.pane != pane) else {
            return;
        };
        let s = self.view.to_screen(rect, pointed.at);
        let stroke = Stroke::new(1.0, Color32::from_white_alpha(200));
        painter.line_segment([s - vec2(8.0, 0.0), s + vec2(8.0, 0.0)], stroke);
        painter.line_segment([s - vec2(0.0, 8.0), s + vec2(0.0, 8.0)], stroke);
    }

    /// What the overlay is waiting for, and whether the heat map is hidden.
    fn paint_overlay_badges(&self, painter: &Painter, rect: Rect) {
        if self.session.is_busy(TaskKind::Analysis) {
            paint_busy_badge(painter, rect, "Running the network…");
        } else if self.session.is_busy(TaskKind::Explain) {
            // the map of the class on screen: the chosen one (the job computes the other
            // classes': nothing to say here), another method's, or none yet
            let (method, layer) = (self.session.method(), self.session.layer());
            let shown = self
                .session
                .analysis()
                .and_then(|a| a.map(self.session.class()));
            let computing = format!("Computing {} at {layer}…", method.title());
            match shown {
                Some(m) if m.method == method && m.layer == layer => {}
                Some(m) => paint_busy_badge(
                    painter,
                    rect,
                    &format!("{computing} (showing {} at {})", m.method.title(), m.layer),
                ),
                None => paint_busy_badge(painter, rect, &computing),
            }
        }
        if !self.settings.show_overlay {
            let keys = Command::ToggleOverlay.shortcut_text();
            paint_busy_badge(painter, rect, &format!("Heat map hidden ({keys} shows it)"));
        }
    }

    /// The tools, the colours, and Undo, Redo and Delete, over the overlay pane.
    fn tools_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for tool in Tool::ALL {
                let selected = self.annotator.tool == tool;
                if ui
                    .add(egui::Button::selectable(selected, tool.label()))
                    .on_hover_text(tool.hint())
                    .clicked()
                {
                    self.run_command(ui.ctx(), Command::UseTool(tool));
                }
            }
        });
        ui.horizontal(|ui| {
            for swatch in SWATCHES {
                self.swatch_ui(ui, swatch);
            }
            ui.separator();
            let layer = self.session.annotations();
            let (undo, redo, delete) =
                (layer.can_undo(), layer.can_redo(), layer.selected.is_some());
            for (enabled, command) in [
                (undo, Command::Undo),
                (redo, Command::Redo),
                (delete, Command::DeleteMark),
            ] {
                let button = egui::Button::new(command.label());
                self.command_button_ui(ui, enabled, button, command);
            }
            let closed = self.session.annotations().selected_closed().is_some();
            ui.add_enabled_ui(closed, |ui| {
                self.command_checkbox_ui(ui, Command::ToggleFinding);
            });
        });
    }

    /// One colour: choosing it draws in it and recolours the selected mark.
    fn swatch_ui(&mut self, ui: &mut egui::Ui, swatch: Swatch) {
        let Swatch { name, rgb } = swatch;
        let (rect, response) = ui.allocate_exact_size(vec2(16.0, 16.0), Sense::click());
        let selected = self.annotator.colour == rgb;
        response.widget_info(|| {
            WidgetInfo::selected(egui::accesskit::Role::RadioButton, true, selected, name)
        });
        ui.painter()
            .rect_filled(rect, 3.0, Color32::from_rgb(rgb[0], rgb[1], rgb[2]));
        let ring = if selected {
            Stroke::new(2.0, ui.visuals().selection.stroke.color)
        } else {
            Stroke::new(1.0, ui.visuals().weak_text_color())
        };
        ui.painter()
            .rect_stroke(rect, 3.0, ring, StrokeKind::Outside);
        if response.on_hover_text(format!("Draw in {name}")).clicked() {
            self.annotator.colour = rgb;
            self.session.annotations_mut().recolour_selected(rgb);
        }
    }

    /// A pane with no image yet: how to open one, or what is loading.
    fn paint_empty_pane(&self, painter: &Painter, rect: Rect, pane: Pane) {
        let loading =
            self.session.is_busy(TaskKind::Image) || self.session.is_busy(TaskKind::Model);
        let text = if loading {
            String::new()
        } else if pane == Pane::Original {
            let open = Command::OpenImage;
            format!(
                "Drop an image here\nor use {} ({})\nor type its path in the Open field above",
                open.label(),
                open.shortcut_text()
            )
        } else {
            "The heat map of the chosen class\nappears here".to_string()
        };
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            text,
            FontId::proportional(17.0),
            Color32::from_gray(150),
        );
        if loading {
            paint_busy_badge(painter, rect, &self.session.activity().join("  ·  "));
        }
    }
}

/// The whole texture.
fn full_uv() -> Rect {
    Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0))
}
