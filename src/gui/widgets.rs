//! Small widgets that know nothing of the session: a section title, a busy badge over a pane, a
//! class row with its probability bar, a percent slider, a spinner with its label.

use eframe::egui::{
    self, Align2, Color32, FontId, Painter, Rect, RichText, Sense, WidgetInfo, pos2, vec2,
};

/// The mark and bar of a finding: the predicted class, or under sigmoid every positive class.
pub const FINDING_COLOUR: Color32 = Color32::from_rgb(255, 170, 40);

/// A small upper-case title over a group of controls.
pub fn section_ui(ui: &mut egui::Ui, title: &str) {
    ui.label(
        RichText::new(title.to_uppercase())
            .small()
            .strong()
            .color(ui.visuals().weak_text_color()),
    );
    ui.add_space(2.0);
}

/// What is running, in the pane's lower left corner (nothing for an empty text).
pub fn paint_busy_badge(painter: &Painter, rect: Rect, text: &str) {
    if text.is_empty() {
        return;
    }
    let font = FontId::proportional(14.0);
    let galley = painter.layout_no_wrap(text.to_string(), font, Color32::WHITE);
    let at = pos2(rect.left() + 10.0, rect.bottom() - 10.0 - galley.size().y);
    let bg = Rect::from_min_size(at, galley.size()).expand2(vec2(8.0, 4.0));
    painter.rect_filled(bg, 4.0, Color32::from_black_alpha(190));
    painter.galley(at, galley, Color32::WHITE);
}

/// A spinner and what it waits for.
pub fn spinner_label_ui(ui: &mut egui::Ui, text: &str) {
    ui.horizontal(|ui| {
        ui.spinner();
        ui.label(text);
    });
}

/// One row of the classes list.
pub struct ClassRow<'a> {
    pub label: &'a str,
    /// The class's probability: its share under softmax, its own probability under sigmoid.
    pub probability: f32,
    /// A finding: the predicted class, or under sigmoid a positive one.
    pub finding: bool,
    /// Under sigmoid, the class's threshold, drawn as a tick on its bar.
    pub threshold: Option<f32>,
    pub selected: bool,
}

/// One class: its name, a bar of its probability, the percentage; a finding marked with a dot
/// and an orange bar.
pub fn class_row_ui(ui: &mut egui::Ui, row: &ClassRow<'_>) -> egui::Response {
    let ClassRow {
        label,
        probability,
        finding,
        threshold,
        selected,
    } = *row;
    let width = ui.available_width();
    let (rect, response) = ui.allocate_exact_size(vec2(width, 24.0), Sense::click());
    response.widget_info(|| {
        WidgetInfo::selected(egui::accesskit::Role::ListBoxOption, true, selected, label)
    });
    ui.ctx().accesskit_node_builder(response.id, |node| {
        node.set_numeric_value(f64::from(probability));
    });
    let visuals = ui.visuals();
    let painter = ui.painter_at(rect);
    if selected {
        painter.rect_filled(rect, 4.0, visuals.selection.bg_fill);
    } else if response.hovered() {
        painter.rect_filled(rect, 4.0, visuals.widgets.hovered.weak_bg_fill);
    }
    let text_colour = if selected {
        visuals.selection.stroke.color
    } else {
        visuals.text_color()
    };
    let inner = rect.shrink2(vec2(6.0, 3.0));
    let star_w = 14.0;
    if finding {
        painter.circle_filled(
            pos2(inner.left() + 4.0, inner.center().y),
            4.0,
            FINDING_COLOUR,
        );
    }
    let pct_w = 52.0;
    let name_w = ((inner.width() - star_w - pct_w) * 0.45).max(40.0);
    let name_rect = Rect::from_min_size(
        pos2(inner.left() + star_w, inner.top()),
        vec2(name_w, inner.height()),
    );
    let galley = painter.layout(
        label.to_string(),
        FontId::proportional(14.0),
        text_colour,
        name_w,
    );
    painter.with_clip_rect(name_rect).galley(
        pos2(
            name_rect.left(),
            name_rect.center().y - galley.size().y / 2.0,
        ),
        galley,
        text_colour,
    );
    let bar = Rect::from_min_max(
        pos2(name_rect.right() + 6.0, inner.center().y - 5.0),
        pos2(inner.right() - pct_w, inner.center().y + 5.0),
    );
    painter.rect_filled(bar, 2.0, visuals.extreme_bg_color);
    let filled = Rect::from_min_size(
        bar.min,
        vec2(bar.width() * probability.clamp(0.0, 1.0), bar.height()),
    );
    let bar_colour = if finding {
        FINDING_COLOUR
    } else {
        Color32::from_rgb(90, 150, 230)
    };
    painter.rect_filled(filled, 2.0, bar_colour);
    if let Some(t) = threshold {
        let x = bar.left() + bar.width() * t.clamp(0.0, 1.0);
        painter.vline(
            x,
            bar.y_range().expand(2.0),
            egui::Stroke::new(1.5, text_colour),
        );
    }
    painter.text(
        pos2(inner.right(), inner.center().y),
        Align2::RIGHT_CENTER,
        format!("{:.1}%", probability * 100.0),
        FontId::proportional(13.0),
        text_colour,
    );
    response
}

/// A labelled 0-100% slider for a 0..1 setting, as one row of a grid.
pub fn percent_slider_ui(ui: &mut egui::Ui, name: &str, value: &mut f32, hover: &str) {
    let label = ui.label(name);
    let mut percent = *value * 100.0;
    if ui
        .add(
            egui::Slider::new(&mut percent, 0.0..=100.0)
                .suffix("%")
                .fixed_decimals(0),
        )
        .labelled_by(label.id)
        .on_hover_text(hover)
        .changed()
    {
        *value = (percent / 100.0).clamp(0.0, 1.0);
    }
    ui.end_row();
}
