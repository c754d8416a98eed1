//! The side panel: the model, the classes, the heat map's settings (method, layer, opacity,
//! colormap, threshold, scale), the legend and the values under the pointer, the saving options
//! and the faithfulness panel.

use std::sync::Arc;

use eframe::egui::{self, RichText, Sense, vec2};

use crate::explain::{Method, Normalisation, Stage};
use crate::render::Colormap;

use super::legend::{legend_ui, readout_ui};
use super::map_progress_ui;
use crate::gui::app::CamviewApp;
use crate::gui::commands::Command;
use crate::gui::session::{Session, TaskKind, model_name};
use crate::gui::settings::Settings;
use crate::gui::widgets::{
    ClassRow, FINDING_COLOUR, class_row_ui, percent_slider_ui, section_ui, spinner_label_ui,
};
use crate::network::{Activation, OutputRule};

impl CamviewApp {
    pub(in crate::gui) fn controls_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(4.0);
        section_ui(ui, "Model");
        model_ui(ui, &self.session);
        let open_model = Command::OpenModel;
        self.command_button_ui(ui, true, egui::Button::new(open_model.label()), open_model);

        ui.add_space(8.0);
        section_ui(ui, "Class");
        classes_ui(ui, &mut self.session);

        if self.session.levels().is_some() {
            ui.add_space(8.0);
            section_ui(ui, "Window");
            self.window_ui(ui);
        } else if self.session.frame().1 > 1 {
            // A multi-frame colour file (an ultrasound cine) has frames but no window.
            ui.add_space(8.0);
            section_ui(ui, "Frame");
            self.frame_ui(ui);
        }

        ui.add_space(8.0);
        section_ui(ui, "Heat map");
        egui::Grid::new("display")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                map_choice_ui(ui, &mut self.session);
                style_ui(ui, &mut self.settings);
            });
        self.command_checkbox_ui(ui, Command::ToggleOverlay);
        map_progress_ui(ui, &mut self.session);

        ui.add_space(8.0);
        section_ui(ui, "Legend");
        legend_ui(ui, &self.session, &self.settings);

        ui.add_space(8.0);
        section_ui(ui, "Under the pointer");
        readout_ui(ui, &self.session, &self.settings, self.panes.pointed);

        ui.add_space(8.0);
        section_ui(ui, "Saving");
        ui.checkbox(&mut self.settings.caption, "Caption band under the image");
        ui.checkbox(&mut self.settings.colour_bar, "Colour bar with its scale");

        ui.add_space(8.0);
        section_ui(ui, "Agreement with the findings");
        self.agreement.ui(ui, &self.session);

        ui.add_space(8.0);
        section_ui(ui, "Faithfulness");
        self.faithfulness.ui(ui, &mut self.session);

        ui.add_space(8.0);
        section_ui(ui, "Sanity");
        self.sanity
            .ui(ui, &mut self.session, self.settings.colormap);
    }
}

/// The model's name and shape, or what is happening to it.
fn model_ui(ui: &mut egui::Ui, session: &Session) {
    match session.model() {
        Some(model) => {
            ui.label(RichText::new(model_name(model)).strong());
            let multi_label = match model.output().activation {
                Activation::Softmax => "",
                Activation::Sigmoid => " · multi-label (sigmoid)",
            };
            ui.weak(format!(
                "{} · {} classes{multi_label} · input {} px",
                model.info.architecture,
                model.labels.len(),
                model.preprocessing.input_size
            ));
        }
        None if session.is_busy(TaskKind::Model) => spinner_label_ui(ui, "Loading the model…"),
        None => {
            ui.label("No model loaded.");
        }
    }
}

/// The classes by probability; a click chooses one. Under softmax the predicted class is
/// marked; under sigmoid (a multi-label model) every positive class is, each bar is the
/// class's own probability (they need not sum to 100%) with its threshold as a tick.
fn classes_ui(ui: &mut egui::Ui, session: &mut Session) {
    let (Some(model), Some(analysis)) = (session.model(), session.analysis()) else {
        if session.is_busy(TaskKind::Analysis) {
            spinner_label_ui(ui, "Running the network…");
        } else {
            ui.weak("The classes appear once an image is analysed.");
        }
        return;
    };
    let (model, analysis) = (Arc::clone(model), Arc::clone(analysis));
    let output = model.output();
    let multi_label = analysis.activation == Activation::Sigmoid;
    let mut chosen = None;
    for c in analysis.ranked() {
        let label = model.labels.get(c).cloned().unwrap_or_default();
        let (p, t) = (analysis.probabilities[c], output.threshold(c));
        let row = ClassRow {
            label: &label,
            probability: p,
            finding: if multi_label {
                analysis.is_positive(c)
            } else {
                c == analysis.predicted
            },
            threshold: multi_label.then_some(t),
            selected: c == session.class(),
        };
        let mut response = class_row_ui(ui, &row);
        if multi_label {
            // Also the row's description for screen readers.
            response = response.on_hover_text(if analysis.is_positive(c) {
                format!(
                    "{label}: {:.1}%, positive: at or above its threshold of {}",
                    100.0 * p,
                    percent(t)
                )
            } else {
                format!(
                    "{label}: {:.1}%, below its threshold of {}",
                    100.0 * p,
                    percent(t)
                )
            });
        }
        if response.clicked() {
            chosen = Some(c);
        }
    }
    if let Some(c) = chosen {
        session.select_class(c);
    }
    let keys = format!(
        "{}/{} to change",
        Command::PreviousClass.shortcut_text(),
        Command::NextClass.shortcut_text()
    );
    ui.horizontal(|ui| {
        let (dot, _) = ui.allocate_exact_size(vec2(8.0, 8.0), Sense::hover());
        ui.painter()
            .circle_filled(dot.center(), 4.0, FINDING_COLOUR);
        if multi_label {
            ui.weak(positive_legend(output));
        } else {
            ui.weak(format!("predicted · {keys}"));
        }
    });
    if multi_label {
        ui.weak(format!(
            "Sigmoid: each bar is its class's own probability · {keys}"
        ));
    }
}

/// What the mark of a multi-label model's class means, with its threshold.
fn positive_legend(output: &OutputRule) -> String {
    match output.uniform_threshold() {
        Some(t) => format!("positive: at or above the threshold, {}", percent(t)),
        None => "positive: at or above its own threshold (the tick)".to_string(),
    }
}

/// A threshold as a percentage, with a decimal only when it has one (50%, 62.5%).
fn percent(p: f32) -> String {
    let pct = 100.0 * p;
    if (pct - pct.round()).abs() < 1e-3 {
        format!("{pct:.0}%")
    } else {
        format!("{pct:.1}%")
    }
}

/// The method and layer pickers (and Score-CAM's channels), as rows of the heat map grid.
fn map_choice_ui(ui: &mut egui::Ui, session: &mut Session) {
    let (mut method, mut layer) = (session.method(), session.layer());
    let cam_defined = session.model().is_none_or(|m| m.info.cam_is_exact());
    method_picker_ui(ui, &mut method, cam_defined);
    let stages = session
        .model()
        .map(|m| m.stages())
        .unwrap_or_else(|| vec![Stage::Norm5]);
    layer_picker_ui(ui, &mut layer, stages);
    if method == Method::ScoreCam {
        ui.label("");
        let mut all = session.score_cam_all_channels();
        if ui
            .checkbox(&mut all, "Every channel (slow)")
            .on_hover_text(
                "Score-CAM runs the network once per channel. By default it uses the 64 \
                 most active channels; tick this for the exact map over all of them.",
            )
            .changed()
        {
            session.choose_score_cam_channels(all);
        }
        ui.end_row();
    }
    if (method, layer) != (session.method(), session.layer()) {
        // CAM exists only at norm5: a finer layer switches to Grad-CAM, CAM to norm5.
        if method != session.method() && method == Method::Cam {
            layer = Stage::Norm5;
        } else if layer != session.layer() && method == Method::Cam && layer != Stage::Norm5 {
            method = Method::GradCam;
            session.info("CAM is defined only at features.norm5: showing Grad-CAM at this layer");
        }
        session.choose_map(method, layer);
    }
}

/// `cam_defined`: false for a model whose head is not one linear map, where CAM is offered
/// greyed out with the reason (the engine refuses it too).
fn method_picker_ui(ui: &mut egui::Ui, method: &mut Method, cam_defined: bool) {
    let label = ui.label("Method");
    egui::ComboBox::from_id_salt("method")
        .selected_text(method.title())
        .show_ui(ui, |ui| {
            for m in Method::ALL {
                let enabled = m != Method::Cam || cam_defined;
                ui.add_enabled_ui(enabled, |ui| {
                    ui.selectable_value(method, m, m.title())
                        .on_hover_text(method_help(m))
                        .on_disabled_hover_text(
                            "Not for this model: its head has several linear layers, so \
                             the classifier's weights are not the evidence its decision is \
                             made of. The gradient methods follow it through the head.",
                        );
                });
            }
        })
        .response
        .labelled_by(label.id)
        .on_hover_text(method_help(*method));
    ui.end_row();
}

fn layer_picker_ui(ui: &mut egui::Ui, layer: &mut Stage, stages: Vec<Stage>) {
    let label = ui.label("Layer");
    egui::ComboBox::from_id_salt("layer")
        .selected_text(layer.name())
        .show_ui(ui, |ui| {
            for s in stages {
                ui.selectable_value(layer, s, s.name());
            }
        })
        .response
        .labelled_by(label.id)
        .on_hover_text(
            "The layer whose activations the map weighs. features.norm5 is norm5 after \
             torchvision's final ReLU (what CAM uses); earlier layers give finer maps.",
        );
    ui.end_row();
}

/// Opacity, colormap, threshold and scale, as rows of the heat map grid.
fn style_ui(ui: &mut egui::Ui, settings: &mut Settings) {
    percent_slider_ui(
        ui,
        "Opacity",
        &mut settings.opacity,
        "0% shows the image only, 100% the heat map only",
    );

    let label = ui.label("Colormap");
    egui::ComboBox::from_id_salt("colormap")
        .selected_text(settings.colormap.name())
        .show_ui(ui, |ui| {
            for c in Colormap::ALL {
                ui.selectable_value(&mut settings.colormap, c, c.name());
            }
        })
        .response
        .labelled_by(label.id);
    ui.end_row();

    percent_slider_ui(
        ui,
        "Threshold",
        &mut settings.threshold,
        "Heat below this share of the scale is not drawn",
    );

    ui.label("Scale");
    ui.horizontal(|ui| {
        ui.radio_value(
            &mut settings.normalisation,
            Normalisation::PerMap,
            "Per map",
        )
        .on_hover_text("Each class's map from its own minimum to maximum");
        ui.radio_value(&mut settings.normalisation, Normalisation::Shared, "Shared")
            .on_hover_text("One scale for the maps of all classes: they can be compared");
    });
    ui.end_row();
}

/// One line on what a method does, for its tooltip.
fn method_help(method: Method) -> &'static str {
    match method {
        Method::Cam => "The classifier's weights over the final maps (norm5 only)",
        Method::GradCam => "Channels weighted by their mean gradient",
        Method::GradCamPlusPlus => "Channels weighted by positive higher-order gradients",
        Method::XGradCam => "Gradients weighted by the normalised activations",
        Method::HiResCam => "Gradient times activation, element by element",
        Method::LayerCam => "Positive gradient times activation, element by element",
        Method::ScoreCam => {
            "Channels weighted by the class score of the image masked by them (slow)"
        }
        Method::EigenCam => {
            "First principal component of the activations (the same for every class)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_gives_a_shared_threshold_or_points_at_the_ticks() {
        let shared = OutputRule::new(Activation::Sigmoid, 3);
        assert_eq!(
            positive_legend(&shared),
            "positive: at or above the threshold, 50%"
        );
        let own = OutputRule {
            activation: Activation::Sigmoid,
            thresholds: vec![0.5, 0.625],
        };
        assert_eq!(
            positive_legend(&own),
            "positive: at or above its own threshold (the tick)"
        );
        assert_eq!(percent(0.45), "45%");
        assert_eq!(percent(0.625), "62.5%");
    }
}
