//! The save window, and Save and Copy themselves: both compose the overlay as it is on screen
//! (the engine's full-resolution composition, see `gui::save`) on the worker. The window checks
//! the destination as the engine will, so it can ask before replacing a file.

use std::path::{Path, PathBuf};

use eframe::egui::{self, Id, Key, RichText};

use crate::export::ProvenanceDetail;
use crate::imaging::SourceImage;
use crate::render::OverlayStyle;

use super::open::DialogPurpose;
use crate::gui::app::CamviewApp;
use crate::gui::commands::Command;
use crate::gui::save::{self, Check, ComposeRequest, FORMATS};
use crate::gui::settings::Settings;

/// The save window's state.
pub struct SaveDialog {
    path: String,
    /// The file that exists, once the user asked to save over it.
    confirm: Option<PathBuf>,
    problem: Option<String>,
    /// Put the keyboard in the file name field (when the window opens).
    focus_path: bool,
    /// Add a DICOM source's Study, Series and SOP Instance UIDs to the provenance (off unless
    /// asked for, each time the window opens).
    uids: bool,
}

/// What the user asked of the save window this frame.
#[derive(Default)]
struct SaveWindowAnswer {
    /// Save; `Some(true)` once the user agreed to replace the existing file.
    save: Option<bool>,
    /// Pick the file with the native dialog.
    browse: bool,
    close: bool,
}

impl SaveDialog {
    fn new(path: String) -> Self {
        Self {
            path,
            confirm: None,
            problem: None,
            focus_path: true,
            uids: false,
        }
    }

    /// A new destination: what was said of the old one no longer holds.
    pub fn set_path(&mut self, path: String) {
        self.path = path;
        self.forget_verdict();
    }

    fn forget_verdict(&mut self) {
        self.confirm = None;
        self.problem = None;
    }

    /// The window; `image` and `marks` describe what will be written.
    fn ui(
        &mut self,
        ctx: &egui::Context,
        settings: &mut Settings,
        image: Option<&SourceImage>,
        marks: usize,
    ) -> SaveWindowAnswer {
        let mut answer = SaveWindowAnswer::default();
        egui::Modal::new(Id::unique("camview-save")).show(ctx, |ui| {
            ui.set_width(560.0);
            ui.heading("Save overlay");
            ui.add_space(4.0);
            ui.horizontal(|ui| self.path_row_ui(ui, &mut answer));
            ui.horizontal(|ui| self.format_row_ui(ui));
            ui.checkbox(
                &mut settings.caption,
                "Caption band (image, class, probability, model)",
            );
            ui.checkbox(&mut settings.colour_bar, "Colour bar with the scale");
            self.dicom_ui(ui, image);
            summary_ui(ui, settings, image, marks);
            if let Some(problem) = &self.problem {
                ui.colored_label(ui.visuals().error_fg_color, problem);
            }
            ui.add_space(6.0);
            self.buttons_ui(ui, &mut answer);
            if ui.input(|i| i.key_pressed(Key::Escape)) {
                answer.close = true;
            }
        });
        answer
    }

    /// The file name field (Enter saves) and Browse….
    fn path_row_ui(&mut self, ui: &mut egui::Ui, answer: &mut SaveWindowAnswer) {
        let label = ui.label("File:");
        let field = ui
            .add(egui::TextEdit::singleline(&mut self.path).desired_width(400.0))
            .labelled_by(label.id);
        if self.focus_path {
            field.request_focus();
            self.focus_path = false;
        }
        if field.changed() {
            self.forget_verdict();
        }
        if field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
            answer.save = Some(false);
        }
        if ui.button("Browse…").clicked() {
            answer.browse = true;
        }
    }

    /// The formats, chosen by the file name's extension.
    fn format_row_ui(&mut self, ui: &mut egui::Ui) {
        ui.label("Format:");
        let current = Path::new(&self.path)
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        for format in FORMATS {
            let selected = format.has_extension(&current);
            if ui.radio(selected, format.name).clicked() && !selected {
                self.path = save::with_extension(&self.path, format.extension);
                self.forget_verdict();
            }
        }
    }

    /// For a DICOM source, whether the provenance links back to it; for a DICOM destination,
    /// what it carries.
    fn dicom_ui(&mut self, ui: &mut egui::Ui, image: Option<&SourceImage>) {
        if image.is_some_and(|i| i.dicom.is_some()) {
            ui.checkbox(
                &mut self.uids,
                "Add the Study, Series and SOP Instance UIDs to the provenance (links the \
                 result back to its source)",
            );
        }
        let extension = Path::new(&self.path)
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if save::DICOM.has_extension(&extension) {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "A DICOM Secondary Capture carries the source's patient and study modules, so \
                 that the PACS files it into the same study. The other formats carry no patient \
                 data.",
            );
        }
    }

    /// Save and Cancel, or Replace and Cancel once the file exists.
    fn buttons_ui(&mut self, ui: &mut egui::Ui, answer: &mut SaveWindowAnswer) {
        if let Some(existing) = &self.confirm {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("{} already exists. Replace it?", existing.display()),
            );
            ui.horizontal(|ui| {
                if ui.button("Replace").clicked() {
                    answer.save = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    self.confirm = None;
                }
            });
        } else {
            ui.horizontal(|ui| {
                if ui
                    .add(egui::Button::new(RichText::new("Save").strong()))
                    .clicked()
                {
                    answer.save = Some(false);
                }
                if ui.button("Cancel").clicked() {
                    answer.close = true;
                }
            });
        }
    }

    /// Where the native dialog starts, and the name it suggests.
    fn browse_start(&self) -> (Option<PathBuf>, Option<String>) {
        let path = PathBuf::from(self.path.trim());
        let dir = path.parent().map(Path::to_path_buf);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        (dir, name)
    }
}

/// What the file will hold: its size, the band, the annotations; a warning when the heat map is
/// hidden.
fn summary_ui(ui: &mut egui::Ui, settings: &Settings, image: Option<&SourceImage>, marks: usize) {
    if let Some(image) = image {
        ui.weak(format!(
            "{} × {} pixels{}, {} annotation{}; a JSON sidecar with the provenance is written beside it.",
            image.width(),
            image.height(),
            if settings.caption || settings.colour_bar { " plus the band" } else { "" },
            marks,
            if marks == 1 { "" } else { "s" }
        ));
    }
    if !settings.show_overlay {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "The heat map is hidden ({}): the file will show the image and the annotations only.",
                Command::ToggleOverlay.shortcut_text()
            ),
        );
    }
}

/// The style of a saved or copied overlay: what is on screen, so a hidden heat map is saved as
/// opacity 0 (the image and the annotations).
fn saved_style(settings: &Settings) -> OverlayStyle {
    let mut style = settings.style();
    if !settings.show_overlay {
        style.opacity = 0.0;
    }
    style
}

impl CamviewApp {
    /// Where files about an image that has no file of its own (a demo image) go: the last
    /// folder used, or the working directory.
    pub(in crate::gui) fn fallback_folder(&self) -> PathBuf {
        self.settings
            .last_folder
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Opens the save window on the suggested destination, once there is an overlay. With the
    /// window already open (Ctrl+S pressed again), saves to the path typed there, as its Save
    /// button does, rather than start over and lose what was typed.
    pub(in crate::gui) fn open_save_dialog(&mut self) {
        if self.save_dialog.is_some() {
            self.try_save(false);
            return;
        }
        let (Some(model), Some(image)) = (self.session.model(), self.session.image()) else {
            self.session
                .info("Open an image and a model first: there is no overlay to save yet");
            return;
        };
        if self.session.analysis().is_none() {
            self.session
                .info("Wait for the analysis to finish, then save");
            return;
        }
        let label = model
            .labels
            .get(self.session.class())
            .cloned()
            .unwrap_or_default();
        let fallback = self.fallback_folder();
        let dest = save::default_destination(
            image.origin.path(),
            &image.origin.name(),
            &label,
            self.session.shown_map(),
            &fallback,
        );
        self.annotator.commit_note(self.session.annotations_mut());
        self.save_dialog = Some(SaveDialog::new(dest.display().to_string()));
    }

    pub(in crate::gui) fn save_dialog_ui(&mut self, ctx: &egui::Context) {
        let Some(dialog) = &mut self.save_dialog else {
            return;
        };
        let image = self.session.image().map(|i| &*i.source);
        let marks = self.session.annotations().items.len();
        let answer = dialog.ui(ctx, &mut self.settings, image, marks);
        if answer.browse {
            let (dir, name) = dialog.browse_start();
            self.files.show(ctx, DialogPurpose::SaveAs, dir, name);
        }
        if answer.close {
            self.save_dialog = None;
        } else if let Some(replace) = answer.save {
            self.try_save(replace);
        }
    }

    /// Everything needed to compose the overlay as it is on screen.
    fn overlay_request(&self) -> Option<ComposeRequest> {
        self.session.compose_request(
            saved_style(&self.settings),
            self.settings.caption,
            self.settings.colour_bar,
        )
    }

    /// Starts saving to the dialog's path, unless it needs an answer first.
    fn try_save(&mut self, replace: bool) {
        let request = self.overlay_request();
        let image_file = self
            .session
            .image()
            .and_then(|i| i.origin.path().map(Path::to_path_buf));
        let Some(dialog) = &mut self.save_dialog else {
            return;
        };
        let dest = PathBuf::from(dialog.path.trim());
        match save::check(&dest, image_file.as_deref()) {
            Check::Exists(existing) if !replace => {
                dialog.confirm = Some(existing);
                dialog.problem = None;
                return;
            }
            Check::Refused(problem) => {
                dialog.problem = Some(problem);
                dialog.confirm = None;
                return;
            }
            Check::Ready | Check::Exists(_) => {}
        }
        let Some(mut request) = request else {
            dialog.problem = Some("there is no overlay to save yet".to_string());
            return;
        };
        if dialog.uids {
            request.detail = ProvenanceDetail::Full;
        }
        self.save_dialog = None;
        self.session.save(request, dest, replace);
    }

    pub(in crate::gui) fn copy_overlay(&mut self) {
        match self.overlay_request() {
            Some(request) => self.session.copy(request),
            None => self.session.info("There is no overlay to copy yet"),
        }
    }
}
