//! The eframe app: one `Session` drawn by the panels, the panes and the dialogs, and what each
//! command does. The drawing lives beside it: `panels/` (menu, toolbar, status, side controls),
//! `pane.rs` (the two image panes), `dialogs/` (save, keys, file dialogs, drop preview).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui::{self, vec2};

use crate::explain::{Analysis, Method, Stage};
use crate::model_request::{ModelRequest, ModelSource};

use super::annotate::{Annotator, Tool};
use super::commands::Command;
use super::dialogs::open::{DialogPurpose, FileDialogs};
use super::dialogs::save::SaveDialog;
use super::dialogs::{drop_preview_ui, keys_window_ui};
use super::pane::{Pane, Panes};
use super::panels::status::{error_band_ui, status_ui};
use super::panels::{AgreementPanel, ComparePanel, FaithfulnessPanel, SanityPanel};
use super::session::{Session, model_name};
use super::settings::{self, Settings};
use super::textures::{Textures, max_texture_side};
use super::view::View;
use super::worker::{ImageOrigin, Worker};

/// What to open at start.
#[derive(Debug, Clone)]
pub struct Launch {
    pub model: ModelRequest,
    pub images: Vec<PathBuf>,
    /// The method and layer to show first (`camview --method gradcam --layer ...`).
    pub method: Method,
    pub layer: Stage,
    /// When the process started, to report the time to the first heat map.
    pub started: Instant,
}

impl Launch {
    /// The demo model and the first demo image.
    pub fn demo() -> Self {
        Self {
            model: ModelRequest::demo(),
            images: Vec::new(),
            method: Method::Cam,
            layer: Stage::Norm5,
            started: Instant::now(),
        }
    }
}

/// When heat maps reach the screen (`CAMVIEW_TIMING=1` prints it): the first one after launch
/// (the screenshot script waits for that line), and each image's after it was asked for (at
/// launch, once the window is up, with Left or Right, or a file opened).
pub(super) struct HeatTiming {
    started: Instant,
    at: Option<Duration>,
    /// The image asked for, and when.
    asked: Option<(ImageOrigin, Instant)>,
    log: bool,
}

impl HeatTiming {
    /// The user asked for `image`.
    pub(super) fn asked(&mut self, image: ImageOrigin) {
        self.asked = Some((image, Instant::now()));
    }

    /// The heat map of `image` was drawn.
    pub(super) fn drawn(&mut self, image: &ImageOrigin) {
        let ms = |t: Duration| t.as_secs_f64() * 1000.0;
        if self.at.is_none() {
            let t = self.started.elapsed();
            self.at = Some(t);
            if self.log {
                log::info!("first heat map on screen {:.0} ms after launch", ms(t));
            }
        }
        if let Some((_, asked)) = self.asked.take_if(|(asked, _)| asked == image)
            && self.log
        {
            log::info!(
                "heat map of {} on screen {:.0} ms after it was asked for",
                image.name(),
                ms(asked.elapsed())
            );
        }
    }
}

pub struct CamviewApp {
    pub session: Session,
    pub settings: Settings,
    pub view: View,
    pub annotator: Annotator,
    pub(super) textures: Textures,
    /// The native file dialogs, and the Open field's text.
    pub(super) files: FileDialogs,
    pub(super) save_dialog: Option<SaveDialog>,
    /// The launch request, started on the first frame (when the GPU's limits are known).
    launch: Option<Launch>,
    pub(super) heat_timing: HeatTiming,
    title: String,
    pub(super) panes: Panes,
    show_keys: bool,
    pub(super) faithfulness: FaithfulnessPanel,
    pub(super) sanity: SanityPanel,
    pub(super) agreement: AgreementPanel,
    pub(super) compare: ComparePanel,
    /// Why the remembered settings could not be used, for the red band once launched.
    settings_warning: Option<String>,
}

impl CamviewApp {
    /// Builds the app and starts loading the model (the image follows on the first frame).
    pub fn new(cc: &eframe::CreationContext<'_>, launch: Launch) -> std::io::Result<Self> {
        let file = eframe::storage_dir(super::APP_ID).map(|d| d.join("app.ron"));
        let (settings, damaged) = settings::remembered(cc.storage, file.as_deref());
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn(move || ctx.request_repaint())?;
        let mut session = Session::new(worker);
        session.open_model(launch.model.clone());
        session.set_playlist(launch.images.clone());
        // Shown once the forward pass is done (the layer is checked against the model then).
        session.choose_map(launch.method, launch.layer);
        // With the GPU's limit known now, the image is opened at once; otherwise (no wgpu, as
        // in tests) on the first frame.
        let max_side = cc
            .wgpu_render_state
            .as_ref()
            .map(|rs| (rs.device.limits().max_texture_dimension_2d as usize).min(8192));
        let mut app = Self {
            annotator: Annotator::new(settings.annotation_colour),
            settings,
            session,
            view: View::default(),
            textures: Textures::default(),
            files: FileDialogs::default(),
            save_dialog: None,
            heat_timing: HeatTiming {
                started: launch.started,
                at: None,
                asked: None,
                log: std::env::var_os("CAMVIEW_TIMING").is_some(),
            },
            launch: Some(launch),
            title: String::new(),
            panes: Panes::default(),
            show_keys: false,
            faithfulness: FaithfulnessPanel::default(),
            sanity: SanityPanel::default(),
            agreement: AgreementPanel::default(),
            compare: ComparePanel::default(),
            settings_warning: None,
        };
        if let Some(message) = &damaged {
            log::warn!("{message}");
        }
        app.settings_warning = damaged;
        if let Some(side) = max_side {
            app.start_launch(side);
        }
        Ok(app)
    }

    /// The settings as they are now (for tests and storage).
    pub fn current_settings(&self) -> Settings {
        let mut s = self.settings.clone();
        s.annotation_colour = self.annotator.colour;
        s
    }

    /// How long it took from launch to the first heat map drawn.
    pub fn first_heat_map(&self) -> Option<Duration> {
        self.heat_timing.at
    }

    /// Is the save window open?
    pub fn save_dialog_open(&self) -> bool {
        self.save_dialog.is_some()
    }

    /// Is the keys window (F1) open?
    pub fn keys_window_open(&self) -> bool {
        self.show_keys
    }

    /// Whether the Compare window is open.
    pub fn compare_window_open(&self) -> bool {
        self.compare.open
    }

    /// The window title as it was last set.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The analysis on screen, if any.
    pub fn analysis(&self) -> Option<&Analysis> {
        self.session.analysis().map(|a| &**a)
    }

    fn start_launch(&mut self, side: usize) {
        let Some(launch) = self.launch.take() else {
            return;
        };
        let first = if let Some(first) = launch.images.first() {
            ImageOrigin::File(first.clone())
        } else if matches!(launch.model.source, ModelSource::Demo)
            && let Some((name, _)) = super::demo_images().first()
        {
            ImageOrigin::Demo {
                index: 0,
                name: (*name).to_string(),
            }
        } else {
            return;
        };
        self.heat_timing.asked(first.clone());
        self.session.open_image(first, side);
    }

    /// Takes what arrived from outside the widgets: the worker's answers, the file dialogs'
    /// answers, dropped files.
    fn receive(&mut self, ctx: &egui::Context) {
        let arrivals = self.session.poll();
        if let Some(display) = arrivals.display
            && let Some(image) = self.session.image()
        {
            let size = vec2(image.source.width() as f32, image.source.height() as f32);
            self.textures.set_image(display, size);
            self.fit_view();
        }
        if let Some(display) = arrivals.redisplay {
            self.textures.replace_image(display);
        }
        if let Some(image) = arrivals.clipboard {
            ctx.copy_image(image);
        }
        if let Some(path) = arrivals.saved
            && let Some(dir) = path.parent()
        {
            self.settings.last_folder = Some(dir.to_path_buf());
        }
        if let Some(path) = arrivals.model_file {
            self.settings.remember_model(&path);
        }
        if let Some(path) = arrivals.image_file {
            self.settings.remember_image(&path);
        }
        self.receive_dialog_answers(ctx);
        self.open_dropped_files(ctx);
    }

    /// Runs the commands whose keys were pressed. Only those that work while typing run while a
    /// text field has the keyboard or the save window is open: the other keys belong to the
    /// text.
    fn handle_keys(&mut self, ctx: &egui::Context) {
        for command in Command::take_pressed(ctx, Command::works_while_typing) {
            self.run_command(ctx, command);
        }
        if ctx.text_edit_focused() || self.save_dialog.is_some() {
            return;
        }
        for command in Command::take_pressed(ctx, |c| !c.works_while_typing()) {
            self.run_command(ctx, command);
        }
    }

    /// Does what `command` asks, whether it came from a key, a menu or a button.
    pub fn run_command(&mut self, ctx: &egui::Context, command: Command) {
        match command {
            Command::PreviousClass => self.session.step_class(-1),
            Command::NextClass => self.session.step_class(1),
            Command::PreviousImage => self.go(ctx, -1),
            Command::NextImage => self.go(ctx, 1),
            Command::Fit => self.fit_view(),
            Command::ActualPixels => self.view.actual_pixels(),
            Command::ToggleOverlay => self.settings.show_overlay = !self.settings.show_overlay,
            Command::ToggleCompare => {
                self.compare.open = !self.compare.open;
                if !self.compare.open {
                    self.session.stop_compare();
                }
            }
            Command::PreviousFrame => self.session.step_frame(-1, max_texture_side(ctx)),
            Command::NextFrame => self.session.step_frame(1, max_texture_side(ctx)),
            Command::WindowPreset(index) => self.apply_preset(ctx, usize::from(index)),
            Command::ResetWindow => self.session.reset_window(None, max_texture_side(ctx)),
            Command::InvertWindow => self.session.toggle_invert(max_texture_side(ctx)),
            Command::UseTool(tool) => {
                if tool != Tool::Region {
                    self.annotator.drop_region();
                }
                self.annotator.tool = tool;
            }
            Command::ToggleFinding => {
                let layer = self.session.annotations_mut();
                match layer.selected_closed().map(|a| a.finding) {
                    Some(finding) => layer.set_selected_finding(!finding),
                    None => self.session.info(
                        "Select a closed mark (an ellipse, a region, a closed stroke) to make it a finding",
                    ),
                }
            }
            Command::DeleteMark => {
                self.session.annotations_mut().delete_selected();
            }
            Command::Deselect => {
                self.session.annotations_mut().selected = None;
                self.annotator.drop_region();
                self.annotator.tool = Tool::Select;
            }
            Command::Undo => {
                self.session.annotations_mut().undo();
            }
            Command::Redo => {
                self.session.annotations_mut().redo();
            }
            Command::OpenImage => self.show_file_dialog(ctx, DialogPurpose::OpenImage),
            Command::OpenModel => self.show_file_dialog(ctx, DialogPurpose::OpenModel),
            Command::SaveOverlay => self.open_save_dialog(),
            Command::CopyOverlay => self.copy_overlay(),
            Command::ExportMask => {
                let fallback = self.fallback_folder();
                self.session.export_mask(&fallback);
            }
            Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            Command::ToggleKeys => self.show_keys = !self.show_keys,
        }
    }

    /// For a command that switches something on and off, whether it is on (it is then shown
    /// as a checkbox).
    pub(super) fn switched_on(&self, command: Command) -> Option<bool> {
        match command {
            Command::ToggleOverlay => Some(self.settings.show_overlay),
            Command::ToggleCompare => Some(self.compare.open),
            Command::InvertWindow => Some(self.session.display_inverted()),
            Command::ToggleFinding => Some(
                self.session
                    .annotations()
                    .selected_closed()
                    .is_some_and(|a| a.finding),
            ),
            _ => None,
        }
    }

    /// Shows the image through the settings' preset at `index`.
    fn apply_preset(&mut self, ctx: &egui::Context, index: usize) {
        let Some(image) = self.session.image() else {
            return;
        };
        if image.source.levels.is_none() {
            let name = image.origin.name();
            return self.session.info(format!(
                "{name} has no gray levels to window (it is an 8-bit or colour image)"
            ));
        }
        match self.settings.window_presets.get(index) {
            Some(preset) => {
                let window = preset.window();
                self.session.set_window(window, max_texture_side(ctx));
            }
            None => self.session.info(format!(
                "There is no window preset {} (the list is in the settings)",
                index + 1
            )),
        }
    }

    /// Goes `step` images forward (or back) in the list or the folder.
    fn go(&mut self, ctx: &egui::Context, step: i64) {
        match self.session.neighbour(step) {
            Some(origin) => {
                self.annotator.commit_note(self.session.annotations_mut());
                self.heat_timing.asked(origin.clone());
                self.session.open_image(origin, max_texture_side(ctx));
            }
            None if self.session.image().is_some() => {
                self.session.info("There is no other image in this folder");
            }
            None => {}
        }
    }

    pub(super) fn fit_view(&mut self) {
        self.view
            .fit(&self.panes.rects(), self.textures.image_size());
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let mut parts = vec!["camview".to_string()];
        if let Some(image) = self.session.image() {
            parts.push(image.origin.name());
            let (frame, frames) = self.session.frame();
            if frames > 1 {
                parts.push(format!("frame {frame}/{frames}"));
            }
        }
        if let Some(model) = self.session.model() {
            parts.push(model_name(model));
        }
        let title = parts.join(" — ");
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}

impl eframe::App for CamviewApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.start_launch(max_texture_side(&ctx));
        // Keys first: an image they open that was prepared in the background arrives with the
        // answers taken next, so it is drawn in this frame.
        self.handle_keys(&ctx);
        self.receive(&ctx);
        // Shown once the launch has settled, so that the model's "Loaded" does not replace it;
        // the damaged file is replaced at once, so the message is shown once.
        if self.session.is_idle()
            && let Some(message) = self.settings_warning.take()
        {
            self.session.error(message);
            if let Some(storage) = frame.storage_mut() {
                eframe::set_value(storage, eframe::APP_KEY, &self.current_settings());
                storage.flush();
            }
        }
        self.textures
            .update_heat(&ctx, &self.session, self.settings.style());

        egui::Panel::top("camview-menu").show(ui, |ui| self.menu_bar_ui(ui));
        egui::Panel::top("camview-toolbar").show(ui, |ui| {
            ui.add_space(2.0);
            self.toolbar_ui(ui);
            ui.add_space(2.0);
        });
        error_band_ui(ui, &mut self.session);
        egui::Panel::bottom("camview-status").show(ui, |ui| status_ui(ui, &self.session));
        egui::Panel::left("camview-controls")
            .resizable(true)
            .default_size(300.0)
            .min_size(240.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls_ui(ui));
            });
        let half = (ui.available_width() / 2.0).max(200.0);
        egui::Panel::right("camview-overlay")
            .resizable(true)
            .default_size(half)
            .min_size(200.0)
            .show(ui, |ui| self.pane_ui(ui, Pane::Overlay));
        egui::CentralPanel::default().show(ui, |ui| self.pane_ui(ui, Pane::Original));

        self.compare.window_ui(
            &ctx,
            &mut self.session,
            &mut self.textures,
            self.settings.style(),
        );
        self.save_dialog_ui(&ctx);
        keys_window_ui(&ctx, &mut self.show_keys);
        drop_preview_ui(&ctx);
        self.update_title(&ctx);
        if !self.session.is_idle() {
            // Keep the spinner turning; the worker also wakes us when it answers.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.current_settings());
    }
}
