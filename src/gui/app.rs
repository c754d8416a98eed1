//! The eframe app: panels, panes, controls and keys over one `Session`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use eframe::egui::{
    self, Align, Align2, Color32, ColorImage, FontId, Id, Key, KeyboardShortcut, Layout, Mesh,
    Modifiers, Pos2, Rect, RichText, Sense, Stroke, StrokeKind, TextureHandle, TextureOptions,
    Vec2, WidgetInfo, pos2, vec2,
};

use crate::explain::faithfulness::{DEFAULT_STEPS, Faithfulness};
use crate::explain::{Analysis, Method, Normalisation, Stage};
use crate::model_request::ModelSource;
use crate::render::Colormap;

use super::annotate::{Annotator, Tool};
use super::heat::{SCREEN_HEAT_MAX_SIDE, ScreenHeat, map_value_at};
use super::save::{self, Check, FORMATS};
use super::session::{NoticeKind, Session, TaskKind, model_name};
use super::settings::Settings;
use super::view::View;
use super::worker::{ImageOrigin, Worker};
use crate::model_request::ModelRequest;

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

/// File extensions taken as models when a file is dropped or typed.
const MODEL_EXTENSIONS: [&str; 4] = ["pth", "pt", "safetensors", "ckpt"];
use crate::imaging::IMAGE_EXTENSIONS;

/// Annotation colours offered as swatches.
const SWATCHES: [(&str, [u8; 3]); 6] = [
    ("white", [255, 255, 255]),
    ("yellow", [255, 221, 0]),
    ("green", [0, 230, 118]),
    ("cyan", [0, 229, 255]),
    ("magenta", [255, 64, 255]),
    ("black", [0, 0, 0]),
];

fn is_model_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| MODEL_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
}

/// The images of a folder, sorted (not recursive).
fn folder_images(dir: &Path) -> Vec<PathBuf> {
    crate::imaging::image_files(dir).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialogPurpose {
    OpenImage,
    OpenModel,
    SaveAs,
}

/// Native file dialogs run on their own thread so the window keeps drawing.
struct FileDialogs {
    tx: Sender<(DialogPurpose, Option<PathBuf>, Duration)>,
    rx: Receiver<(DialogPurpose, Option<PathBuf>, Duration)>,
    open: Option<DialogPurpose>,
}

impl FileDialogs {
    fn new() -> Self {
        let (tx, rx) = channel();
        Self { tx, rx, open: None }
    }

    fn show(
        &mut self,
        ctx: &egui::Context,
        purpose: DialogPurpose,
        dir: Option<PathBuf>,
        name: Option<String>,
    ) {
        if self.open.is_some() {
            return;
        }
        let tx = self.tx.clone();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("camview-file-dialog".into())
            .spawn(move || {
                let started = Instant::now();
                let mut dialog = rfd::FileDialog::new();
                if let Some(dir) = dir {
                    dialog = dialog.set_directory(dir);
                }
                let picked = match purpose {
                    DialogPurpose::OpenImage => dialog
                        .set_title("Open an image")
                        .add_filter("Images", &IMAGE_EXTENSIONS)
                        .add_filter("All files", &["*"])
                        .pick_file(),
                    DialogPurpose::OpenModel => dialog
                        .set_title("Open a DenseNet checkpoint")
                        .add_filter("Checkpoints", &MODEL_EXTENSIONS)
                        .add_filter("All files", &["*"])
                        .pick_file(),
                    DialogPurpose::SaveAs => {
                        if let Some(name) = name {
                            dialog = dialog.set_file_name(name);
                        }
                        dialog
                            .set_title("Save the overlay")
                            .add_filter("PNG", &["png"])
                            .add_filter("BMP", &["bmp"])
                            .add_filter("JPEG", &["jpg", "jpeg"])
                            .add_filter("TIFF", &["tif", "tiff"])
                            .save_file()
                    }
                };
                let _ = tx.send((purpose, picked, started.elapsed()));
                ctx.request_repaint();
            });
        if spawned.is_ok() {
            self.open = Some(purpose);
        }
    }
}

/// The save window's state.
struct SaveDialog {
    path: String,
    /// The file that exists, once the user asked to save over it.
    confirm: Option<PathBuf>,
    problem: Option<String>,
    focus_path: bool,
}

/// Identifies what the heat texture shows, to rebuild it only when that changes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HeatKey {
    /// `Session::analysis_generation`.
    analysis: u64,
    class: usize,
    normalisation: Normalisation,
    colormap: Colormap,
    threshold: f32,
}

#[derive(Default)]
struct Textures {
    image: Option<TextureHandle>,
    /// The image's size in image pixels (the texture may be smaller for huge images).
    image_size: Vec2,
    heat: Option<TextureHandle>,
    heat_key: Option<HeatKey>,
    /// The normalised heat, kept while only the colormap or threshold change.
    values: Option<((u64, usize, Normalisation), ScreenHeat)>,
}

/// Which pane a pointer is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pane {
    Original,
    Overlay,
}

pub struct CamviewApp {
    pub session: Session,
    pub settings: Settings,
    pub view: View,
    pub annotator: Annotator,
    textures: Textures,
    /// The "Open" field's text.
    pub path_field: String,
    save_dialog: Option<SaveDialog>,
    dialogs: FileDialogs,
    /// The launch request, started on the first frame (when the GPU's limits are known).
    launch: Option<Launch>,
    started: Instant,
    first_heat: Option<Duration>,
    title: String,
    /// The image pixel under the pointer, and the pane it is in.
    hover: Option<(Pos2, Pane)>,
    pane_rects: [Option<Rect>; 2],
    show_keys: bool,
    timing_log: bool,
    /// The faithfulness panel is open (its scores are computed while it is).
    pub show_faithfulness: bool,
    /// The faithfulness panel was just opened: scroll its scores into view once they show.
    reveal_faithfulness: bool,
    pub faithfulness_steps: usize,
}

impl CamviewApp {
    /// Builds the app and starts loading the model (the image follows on the first frame).
    pub fn new(cc: &eframe::CreationContext<'_>, launch: Launch) -> std::io::Result<Self> {
        let settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn(move || ctx.request_repaint())?;
        let mut session = Session::new(worker);
        session.open_model(launch.model.clone());
        if launch.images.len() > 1 {
            session.playlist = launch.images.clone();
        }
        // Shown once the forward pass is done (the layer is checked against the model then).
        session.method = launch.method;
        session.layer = launch.layer;
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
            path_field: String::new(),
            save_dialog: None,
            dialogs: FileDialogs::new(),
            started: launch.started,
            launch: Some(launch),
            first_heat: None,
            title: String::new(),
            hover: None,
            pane_rects: [None, None],
            show_keys: false,
            timing_log: std::env::var_os("CAMVIEW_TIMING").is_some(),
            show_faithfulness: false,
            reveal_faithfulness: false,
            faithfulness_steps: DEFAULT_STEPS,
        };
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
        self.first_heat
    }

    /// Is the save window open?
    pub fn save_dialog_open(&self) -> bool {
        self.save_dialog.is_some()
    }

    fn max_texture_side(ctx: &egui::Context) -> usize {
        ctx.input(|i| i.max_texture_side).min(8192)
    }

    fn start_launch(&mut self, side: usize) {
        let Some(launch) = self.launch.take() else {
            return;
        };
        if let Some(first) = launch.images.first() {
            self.session
                .open_image(ImageOrigin::File(first.clone()), side);
        } else if matches!(launch.model.source, ModelSource::Demo)
            && let Some((name, _)) = super::demo_images().first()
        {
            self.session.open_image(
                ImageOrigin::Demo {
                    index: 0,
                    name: (*name).to_string(),
                },
                side,
            );
        }
    }

    // ----------------------------------------------------------------------------------------
    // Input from outside the widgets: the worker, file dialogs, dropped files, keys.

    fn receive(&mut self, ctx: &egui::Context) {
        let arrivals = self.session.poll();
        if let Some(display) = arrivals.display {
            self.set_image_texture(ctx, display);
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
        while let Ok((purpose, picked, elapsed)) = self.dialogs.rx.try_recv() {
            self.dialogs.open = None;
            match picked {
                Some(path) => match purpose {
                    DialogPurpose::OpenImage => self.open_image_file(ctx, path),
                    DialogPurpose::OpenModel => self.open_model_file(path),
                    DialogPurpose::SaveAs => {
                        if let Some(d) = &mut self.save_dialog {
                            d.path = path.display().to_string();
                            d.confirm = None;
                            d.problem = None;
                        }
                    }
                },
                // An answer this fast means there is no dialog to show here.
                None if elapsed < Duration::from_millis(300) => {
                    let where_ = if purpose == DialogPurpose::SaveAs {
                        "in the file name field"
                    } else {
                        "in the Open field at the top (or drop the file on the window)"
                    };
                    self.session.info(format!(
                        "No file dialog is available here: type the path {where_}"
                    ));
                }
                None => {}
            }
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if !dropped.is_empty() {
            self.open_paths(ctx, dropped);
        }
    }

    /// Opens what was dropped or typed: models as models, images as images (several images
    /// become the list that next/previous walk).
    fn open_paths(&mut self, ctx: &egui::Context, paths: Vec<PathBuf>) {
        let (models, images): (Vec<PathBuf>, Vec<PathBuf>) =
            paths.into_iter().partition(|p| is_model_file(p));
        if let Some(model) = models.into_iter().next() {
            self.open_model_file(model);
        }
        if images.len() > 1 {
            self.session.playlist = images.clone();
        }
        if let Some(first) = images.into_iter().next() {
            self.open_image_file(ctx, first);
        }
    }

    fn open_image_file(&mut self, ctx: &egui::Context, path: PathBuf) {
        let path = if path.is_dir() {
            match folder_images(&path).into_iter().next() {
                Some(first) => first,
                None => {
                    self.session
                        .error(format!("{}: no images in this folder", path.display()));
                    return;
                }
            }
        } else {
            path
        };
        if self.session.playlist.len() > 1 && !self.session.playlist.contains(&path) {
            self.session.playlist.clear();
        }
        self.session
            .open_image(ImageOrigin::File(path), Self::max_texture_side(ctx));
    }

    fn open_model_file(&mut self, path: PathBuf) {
        self.session.open_model(ModelRequest::file(path));
    }

    /// Opens the path typed in the Open field.
    fn open_typed_path(&mut self, ctx: &egui::Context) {
        let typed = self.path_field.trim().trim_matches(['"', '\'']).to_string();
        if typed.is_empty() {
            self.session
                .info("Type the path of an image or a model in the Open field, then press Enter");
            return;
        }
        let path = match typed.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME").map_or_else(
                || PathBuf::from(&typed),
                |home| PathBuf::from(home).join(rest),
            ),
            None => PathBuf::from(&typed),
        };
        if !path.exists() {
            self.session
                .error(format!("{}: no such file or folder", path.display()));
            return;
        }
        self.open_paths(ctx, vec![path]);
    }

    /// The image `step` places after (or before) the current one: in the command line's list,
    /// in the current image's folder, or among the demo images.
    fn neighbour(&self, step: i64) -> Option<ImageOrigin> {
        let current = &self.session.image.as_ref()?.origin;
        let wrap =
            |i: usize, n: usize| -> usize { (i as i64 + step).rem_euclid(n as i64) as usize };
        match current {
            ImageOrigin::File(path) => {
                let list = if self.session.playlist.len() > 1 {
                    self.session.playlist.clone()
                } else {
                    path.parent().map(folder_images).unwrap_or_default()
                };
                let same = |p: &PathBuf| {
                    p == path || std::fs::canonicalize(p).ok() == std::fs::canonicalize(path).ok()
                };
                let i = list.iter().position(same)?;
                (list.len() > 1).then(|| ImageOrigin::File(list[wrap(i, list.len())].clone()))
            }
            ImageOrigin::Demo { index, .. } => {
                let demos = super::demo_images();
                if demos.len() < 2 {
                    return None;
                }
                let i = wrap(*index, demos.len());
                Some(ImageOrigin::Demo {
                    index: i,
                    name: demos[i].0.to_string(),
                })
            }
        }
    }

    fn go(&mut self, ctx: &egui::Context, step: i64) {
        match self.neighbour(step) {
            Some(origin) => {
                self.annotator.commit_note(&mut self.session.annotations);
                self.session.open_image(origin, Self::max_texture_side(ctx));
            }
            None if self.session.image.is_some() => {
                self.session.info("There is no other image in this folder");
            }
            None => {}
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context) {
        let shortcut = |m: Modifiers, k: Key| KeyboardShortcut::new(m, k);
        let pressed = |s: KeyboardShortcut| ctx.input_mut(|i| i.consume_shortcut(&s));
        if pressed(shortcut(Modifiers::COMMAND, Key::S)) {
            self.open_save_dialog();
        }
        if pressed(shortcut(Modifiers::COMMAND, Key::O)) {
            self.dialogs.show(
                ctx,
                DialogPurpose::OpenImage,
                self.settings.last_folder.clone(),
                None,
            );
        }
        if pressed(shortcut(Modifiers::COMMAND | Modifiers::SHIFT, Key::C)) {
            self.copy_overlay();
        }
        if pressed(shortcut(Modifiers::COMMAND, Key::Q)) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        // The keys below belong to a text field while one is being typed in.
        if ctx.text_edit_focused() || self.save_dialog.is_some() {
            return;
        }
        if pressed(shortcut(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z))
            || pressed(shortcut(Modifiers::COMMAND, Key::Y))
        {
            self.session.annotations.redo();
        }
        if pressed(shortcut(Modifiers::COMMAND, Key::Z)) {
            self.session.annotations.undo();
        }
        let key = |k: Key| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, k));
        if key(Key::T) {
            self.settings.show_overlay = !self.settings.show_overlay;
        }
        if key(Key::ArrowUp) {
            self.session.step_class(-1);
        }
        if key(Key::ArrowDown) {
            self.session.step_class(1);
        }
        if key(Key::ArrowRight) || key(Key::PageDown) {
            self.go(ctx, 1);
        }
        if key(Key::ArrowLeft) || key(Key::PageUp) {
            self.go(ctx, -1);
        }
        if key(Key::F) || key(Key::R) || key(Key::Num0) || key(Key::Home) {
            self.fit_view();
        }
        if key(Key::Num1) {
            self.view.actual_pixels();
        }
        if key(Key::Delete) || key(Key::Backspace) {
            self.session.annotations.delete_selected();
        }
        if key(Key::Escape) {
            self.session.annotations.selected = None;
            self.annotator.tool = Tool::Select;
        }
        for (k, tool) in [
            (Key::V, Tool::Select),
            (Key::N, Tool::Note),
            (Key::A, Tool::Arrow),
            (Key::E, Tool::Ellipse),
            (Key::D, Tool::Draw),
        ] {
            if key(k) {
                self.annotator.tool = tool;
            }
        }
        if key(Key::F1) {
            self.show_keys = !self.show_keys;
        }
    }

    fn fit_view(&mut self) {
        let panes: Vec<Rect> = self.pane_rects.iter().flatten().copied().collect();
        self.view.fit(&panes, self.textures.image_size);
    }

    // ----------------------------------------------------------------------------------------
    // Textures.

    fn set_image_texture(&mut self, ctx: &egui::Context, display: ColorImage) {
        let size = self
            .session
            .image
            .as_ref()
            .map_or(vec2(display.width() as f32, display.height() as f32), |i| {
                vec2(i.source.width() as f32, i.source.height() as f32)
            });
        let options = image_texture_options();
        match &mut self.textures.image {
            Some(t) => t.set(display, options),
            None => self.textures.image = Some(ctx.load_texture("camview-image", display, options)),
        }
        if self.textures.image_size != size {
            self.view.fit = true;
        }
        self.textures.image_size = size;
        self.textures.heat_key = None;
        self.textures.values = None;
        self.fit_view();
    }

    /// Rebuilds the heat texture when the class, normalisation, colormap or threshold changed
    /// (never for the opacity: that is the texture's alpha when drawn).
    fn update_heat_texture(&mut self, ctx: &egui::Context) {
        let (Some(analysis), Some(image)) = (&self.session.analysis, &self.session.image) else {
            return;
        };
        let style = self.settings.style();
        let key = HeatKey {
            analysis: self.session.analysis_generation,
            class: self.session.class,
            normalisation: style.normalisation,
            colormap: style.colormap,
            threshold: style.threshold,
        };
        if self.textures.heat_key == Some(key) {
            return;
        }
        let values_key = (key.analysis, key.class, key.normalisation);
        if self.textures.values.as_ref().map(|v| v.0) != Some(values_key) {
            let heat = ScreenHeat::of(
                analysis,
                key.class,
                key.normalisation,
                image.source.width(),
                image.source.height(),
                SCREEN_HEAT_MAX_SIDE.min(Self::max_texture_side(ctx) as u32),
            );
            self.textures.values = Some((values_key, heat));
        }
        let Some((_, heat)) = &self.textures.values else {
            return;
        };
        let texture = heat.colour(&style.colormap.lut(), style.threshold);
        // At the image's own size the heat is drawn texel for pixel, as the saved file has it.
        let options = if heat.width == image.source.width() && heat.height == image.source.height()
        {
            image_texture_options()
        } else {
            TextureOptions::LINEAR
        };
        match &mut self.textures.heat {
            Some(t) => t.set(texture, options),
            None => self.textures.heat = Some(ctx.load_texture("camview-heat", texture, options)),
        }
        self.textures.heat_key = Some(key);
    }

    // ----------------------------------------------------------------------------------------
    // Saving and copying.

    fn open_save_dialog(&mut self) {
        let (Some(model), Some(image)) = (&self.session.model, &self.session.image) else {
            self.session
                .info("Open an image and a model first: there is no overlay to save yet");
            return;
        };
        if self.session.analysis.is_none() {
            self.session
                .info("Wait for the analysis to finish, then save");
            return;
        }
        self.annotator.commit_note(&mut self.session.annotations);
        let label = model
            .labels
            .get(self.session.class)
            .cloned()
            .unwrap_or_default();
        let fallback = self
            .settings
            .last_folder
            .clone()
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."));
        let dest = save::default_destination(
            image.origin.path(),
            &image.origin.name(),
            &label,
            analysis_map_choice(self.session.analysis.as_deref()),
            &fallback,
        );
        self.save_dialog = Some(SaveDialog {
            path: dest.display().to_string(),
            confirm: None,
            problem: None,
            focus_path: true,
        });
    }

    fn copy_overlay(&mut self) {
        match self.session.compose_request(
            saved_style(&self.settings),
            self.settings.caption,
            self.settings.colour_bar,
        ) {
            Some(request) => self.session.copy(request),
            None => self.session.info("There is no overlay to copy yet"),
        }
    }

    /// Starts saving to the dialog's path, unless it needs an answer first.
    fn try_save(&mut self, replace: bool) {
        let Some(dialog) = &mut self.save_dialog else {
            return;
        };
        let dest = PathBuf::from(dialog.path.trim());
        let image_file = self
            .session
            .image
            .as_ref()
            .and_then(|i| i.origin.path().map(Path::to_path_buf));
        let verdict = save::check(&dest, image_file.as_deref());
        match verdict {
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
        let Some(request) = self.session.compose_request(
            saved_style(&self.settings),
            self.settings.caption,
            self.settings.colour_bar,
        ) else {
            dialog.problem = Some("there is no overlay to save yet".to_string());
            return;
        };
        self.save_dialog = None;
        self.session.save(request, dest, replace);
    }

    // ----------------------------------------------------------------------------------------
    // Drawing.

    fn menu_bar_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .add(egui::Button::new("Open image…").shortcut_text("Ctrl+O"))
                    .clicked()
                {
                    self.dialogs.show(
                        &ctx,
                        DialogPurpose::OpenImage,
                        self.settings.last_folder.clone(),
                        None,
                    );
                    ui.close();
                }
                if ui.button("Open model…").clicked() {
                    self.dialogs.show(
                        &ctx,
                        DialogPurpose::OpenModel,
                        self.settings.last_folder.clone(),
                        None,
                    );
                    ui.close();
                }
                ui.menu_button("Open recent", |ui| {
                    if self.settings.recent_images.is_empty()
                        && self.settings.recent_models.is_empty()
                    {
                        ui.weak("Nothing opened yet");
                    }
                    let mut chosen = None;
                    for path in &self.settings.recent_images {
                        if ui.button(path.display().to_string()).clicked() {
                            chosen = Some(path.clone());
                        }
                    }
                    if !self.settings.recent_models.is_empty() {
                        ui.separator();
                        ui.weak("Models");
                        for path in &self.settings.recent_models {
                            if ui.button(path.display().to_string()).clicked() {
                                chosen = Some(path.clone());
                            }
                        }
                    }
                    if let Some(path) = chosen {
                        self.open_paths(&ctx, vec![path]);
                        ui.close();
                    }
                });
                ui.separator();
                if ui
                    .add(egui::Button::new("Save overlay…").shortcut_text("Ctrl+S"))
                    .clicked()
                {
                    self.open_save_dialog();
                    ui.close();
                }
                if ui
                    .add(egui::Button::new("Copy overlay").shortcut_text("Ctrl+Shift+C"))
                    .clicked()
                {
                    self.copy_overlay();
                    ui.close();
                }
                ui.separator();
                if ui
                    .add(egui::Button::new("Quit").shortcut_text("Ctrl+Q"))
                    .clicked()
                {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                if ui
                    .add(egui::Button::new("Fit").shortcut_text("F"))
                    .clicked()
                {
                    self.fit_view();
                    ui.close();
                }
                if ui
                    .add(egui::Button::new("Actual pixels (1:1)").shortcut_text("1"))
                    .clicked()
                {
                    self.view.actual_pixels();
                    ui.close();
                }
                ui.checkbox(&mut self.settings.show_overlay, "Show the heat map (T)");
                self.map_progress_ui(ui);

                ui.add_space(8.0);
                section(ui, "Faithfulness");
                self.faithfulness_ui(ui);
                ui.separator();
                if ui
                    .add(egui::Button::new("Previous image").shortcut_text("Left / Page Up"))
                    .clicked()
                {
                    self.go(&ctx, -1);
                    ui.close();
                }
                if ui
                    .add(egui::Button::new("Next image").shortcut_text("Right / Page Down"))
                    .clicked()
                {
                    self.go(&ctx, 1);
                    ui.close();
                }
            });
            ui.menu_button("Help", |ui| {
                if ui
                    .add(egui::Button::new("Keyboard shortcuts").shortcut_text("F1"))
                    .clicked()
                {
                    self.show_keys = true;
                    ui.close();
                }
                ui.weak(format!("camview {}", env!("CARGO_PKG_VERSION")));
            });
        });
    }

    fn toolbar_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        ui.horizontal(|ui| {
            if ui.button("Open image…").clicked() {
                self.dialogs.show(
                    &ctx,
                    DialogPurpose::OpenImage,
                    self.settings.last_folder.clone(),
                    None,
                );
            }
            let label = ui.label("Open:");
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut self.path_field)
                        .hint_text("path of an image, folder or model, then Enter")
                        .desired_width(320.0),
                )
                .labelled_by(label.id);
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            if ui.button("Open").clicked() || enter {
                self.open_typed_path(&ctx);
            }
            ui.separator();
            let has_image = self.session.image.is_some();
            if ui
                .add_enabled(has_image, egui::Button::new("Previous"))
                .on_hover_text("Previous image in the folder (Left or Page Up)")
                .clicked()
            {
                self.go(&ctx, -1);
            }
            if ui
                .add_enabled(has_image, egui::Button::new("Next"))
                .on_hover_text("Next image in the folder (Right or Page Down)")
                .clicked()
            {
                self.go(&ctx, 1);
            }
            ui.separator();
            if ui
                .add_enabled(has_image, egui::Button::new("Fit"))
                .on_hover_text("Fit the image in view (F)")
                .clicked()
            {
                self.fit_view();
            }
            if ui
                .add_enabled(has_image, egui::Button::new("1:1"))
                .on_hover_text("Actual pixels: one image pixel per screen pixel (1)")
                .clicked()
            {
                self.view.actual_pixels();
            }
            if has_image {
                ui.weak(format!("{:.0}%", self.view.scale() * 100.0));
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let ready = self.session.analysis.is_some();
                if ui
                    .add_enabled(ready, egui::Button::new("Copy"))
                    .on_hover_text(
                        "Copy the overlay (as it would be saved) to the clipboard (Ctrl+Shift+C)",
                    )
                    .clicked()
                {
                    self.copy_overlay();
                }
                if ui
                    .add_enabled(
                        ready,
                        egui::Button::new(RichText::new("Save overlay…").strong()),
                    )
                    .on_hover_text("Save the overlay with its annotations and provenance (Ctrl+S)")
                    .clicked()
                {
                    self.open_save_dialog();
                }
            });
        });
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let activity = self.session.activity();
            if !activity.is_empty() {
                ui.spinner();
                ui.label(activity.join("  ·  "));
            } else if let Some(notice) = self
                .session
                .notice
                .as_ref()
                .filter(|n| n.kind == NoticeKind::Info)
            {
                ui.label(&notice.text);
            } else {
                ui.weak("Ready");
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                if let Some(image) = &self.session.image {
                    ui.weak(format!(
                        "{} × {} px · {}",
                        image.source.width(),
                        image.source.height(),
                        image.source.format
                    ));
                }
                if let Some(t) = self.session.last_analysis {
                    ui.weak(format!("network {:.0} ms", t.as_secs_f64() * 1000.0));
                }
            });
        });
    }

    /// The latest error, across the window under the toolbar, until dismissed or replaced.
    fn error_banner_ui(&mut self, ui: &mut egui::Ui) {
        let Some(text) = self
            .session
            .notice
            .as_ref()
            .filter(|n| n.kind == NoticeKind::Error)
            .map(|n| n.text.clone())
        else {
            return;
        };
        egui::Panel::top("camview-error")
            .frame(
                egui::Frame::new()
                    .fill(Color32::from_rgb(120, 28, 28))
                    .inner_margin(egui::Margin::symmetric(10, 6)),
            )
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                        if ui.button("Dismiss").clicked() {
                            self.session.notice = None;
                        }
                        ui.with_layout(Layout::left_to_right(Align::Center), |ui| {
                            ui.add(
                                egui::Label::new(
                                    RichText::new(text)
                                        .color(Color32::from_rgb(255, 228, 228))
                                        .strong(),
                                )
                                .wrap(),
                            );
                        });
                    });
                });
            });
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        ui.add_space(4.0);
        section(ui, "Model");
        match &self.session.model {
            Some(model) => {
                ui.label(RichText::new(model_name(model)).strong());
                ui.weak(format!(
                    "{} · {} classes · input {} px",
                    model.info.architecture,
                    model.labels.len(),
                    model.preprocessing.input_size
                ));
            }
            None if self.session.is_busy(TaskKind::Model) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Loading the model…");
                });
            }
            None => {
                ui.label("No model loaded.");
            }
        }
        if ui
            .button("Open model…")
            .on_hover_text("A DenseNet checkpoint: .pth, .pt or .safetensors")
            .clicked()
        {
            self.dialogs.show(
                &ctx,
                DialogPurpose::OpenModel,
                self.settings.last_folder.clone(),
                None,
            );
        }

        ui.add_space(8.0);
        section(ui, "Class");
        self.classes_ui(ui);

        ui.add_space(8.0);
        section(ui, "Heat map");
        egui::Grid::new("display")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                self.map_choice_ui(ui);
                percent_slider_ui(
                    ui,
                    "Opacity",
                    &mut self.settings.opacity,
                    "0% shows the image only, 100% the heat map only",
                );

                let label = ui.label("Colormap");
                egui::ComboBox::from_id_salt("colormap")
                    .selected_text(self.settings.colormap.name())
                    .show_ui(ui, |ui| {
                        for c in Colormap::ALL {
                            ui.selectable_value(&mut self.settings.colormap, c, c.name());
                        }
                    })
                    .response
                    .labelled_by(label.id);
                ui.end_row();

                percent_slider_ui(
                    ui,
                    "Threshold",
                    &mut self.settings.threshold,
                    "Heat below this share of the scale is not drawn",
                );

                ui.label("Scale");
                ui.horizontal(|ui| {
                    ui.radio_value(
                        &mut self.settings.normalisation,
                        Normalisation::PerMap,
                        "Per map",
                    )
                    .on_hover_text("Each class's map from its own minimum to maximum");
                    ui.radio_value(
                        &mut self.settings.normalisation,
                        Normalisation::Shared,
                        "Shared",
                    )
                    .on_hover_text("One scale for the maps of all classes: they can be compared");
                });
                ui.end_row();
            });
        ui.checkbox(&mut self.settings.show_overlay, "Show the heat map (T)");
        self.map_progress_ui(ui);

        ui.add_space(8.0);
        section(ui, "Legend");
        self.legend_ui(ui);

        ui.add_space(8.0);
        section(ui, "Under the pointer");
        self.readout_ui(ui);

        ui.add_space(8.0);
        section(ui, "Saving");
        ui.checkbox(&mut self.settings.caption, "Caption band under the image");
        ui.checkbox(&mut self.settings.colour_bar, "Colour bar with its scale");

        ui.add_space(8.0);
        section(ui, "Faithfulness");
        self.faithfulness_ui(ui);
    }

    /// The method and layer pickers, as two rows of the heat map grid.
    fn map_choice_ui(&mut self, ui: &mut egui::Ui) {
        let (mut method, mut layer) = (self.session.method, self.session.layer);
        let label = ui.label("Method");
        egui::ComboBox::from_id_salt("method")
            .selected_text(method.title())
            .show_ui(ui, |ui| {
                for m in Method::ALL {
                    ui.selectable_value(&mut method, m, m.title())
                        .on_hover_text(method_help(m));
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text(method_help(method));
        ui.end_row();

        let stages = self
            .session
            .model
            .as_ref()
            .map(|m| m.stages())
            .unwrap_or_else(|| vec![Stage::Norm5]);
        let label = ui.label("Layer");
        egui::ComboBox::from_id_salt("layer")
            .selected_text(layer.name())
            .show_ui(ui, |ui| {
                for s in stages {
                    ui.selectable_value(&mut layer, s, s.name());
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text(
                "The layer whose activations the map weighs. features.norm5 is norm5 after \
                 torchvision's final ReLU (what CAM uses); earlier layers give finer maps.",
            );
        ui.end_row();

        let mut recompute = false;
        if method == Method::ScoreCam {
            ui.label("");
            recompute = ui
                .checkbox(
                    &mut self.session.score_cam_all_channels,
                    "Every channel (slow)",
                )
                .on_hover_text(
                    "Score-CAM runs the network once per channel. By default it uses the 64 \
                     most active channels; tick this for the exact map over all of them.",
                )
                .changed();
            ui.end_row();
        }

        if (method, layer) != (self.session.method, self.session.layer) || recompute {
            // CAM exists only at norm5: a finer layer switches to Grad-CAM, CAM to norm5.
            if method != self.session.method && method == Method::Cam {
                layer = Stage::Norm5;
            } else if layer != self.session.layer && method == Method::Cam && layer != Stage::Norm5
            {
                method = Method::GradCam;
                self.session
                    .info("CAM is defined only at features.norm5: showing Grad-CAM at this layer");
            }
            self.session.choose_map(method, layer);
        }
    }

    /// A progress bar and a Stop button while a method's maps are computed.
    fn map_progress_ui(&mut self, ui: &mut egui::Ui) {
        let Some(progress) = self.session.map_progress.clone() else {
            return;
        };
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(progress.fraction())
                    .desired_width(160.0)
                    .text(format!(
                        "{} {:.0}%",
                        self.session.method.title(),
                        100.0 * progress.fraction()
                    )),
            );
            if ui
                .button("Stop")
                .on_hover_text("Stop computing these maps")
                .clicked()
            {
                self.session.cancel_maps();
            }
        });
    }

    /// Deletion and insertion curves with their AUCs, Average Drop and confidence change of
    /// the map on screen, computed on the worker while the panel is open.
    fn faithfulness_ui(&mut self, ui: &mut egui::Ui) {
        let was_open = self.show_faithfulness;
        ui.checkbox(
            &mut self.show_faithfulness,
            "Score the map (deletion, insertion)",
        )
        .on_hover_text(
            "Removes (deletion) or restores (insertion) pixels in the map's order and \
                 follows the class probability: a faithful map makes it fall fast and rise fast.",
        );
        if !self.show_faithfulness {
            if was_open {
                self.session.stop_faithfulness();
            }
            return;
        }
        if !was_open {
            self.reveal_faithfulness = true;
        }
        ui.horizontal(|ui| {
            let label = ui.label("Steps");
            ui.add(egui::DragValue::new(&mut self.faithfulness_steps).range(2..=200))
                .labelled_by(label.id);
        });
        self.session.want_faithfulness(self.faithfulness_steps);
        if let Some((_, progress)) = &self.session.faithfulness_pending {
            ui.add(
                egui::ProgressBar::new(progress.fraction())
                    .desired_width(200.0)
                    .show_percentage(),
            );
        }
        let current = self.session.faithfulness.as_ref().filter(|(k, _)| {
            k.generation == self.session.analysis_generation && k.class == self.session.class
        });
        let Some((_, scores)) = current else {
            if self.session.faithfulness_pending.is_none() {
                ui.weak("Waiting for the map…");
            }
            return;
        };
        faithfulness_plot_ui(ui, scores);
        let grid = egui::Grid::new("faithfulness-scores")
            .num_columns(2)
            .spacing([8.0, 2.0])
            .show(ui, |ui| {
                ui.label("Deletion AUC");
                ui.label(format!("{:.3}", scores.deletion.auc))
                    .on_hover_text("Lower is better");
                ui.end_row();
                ui.label("Insertion AUC");
                ui.label(format!("{:.3}", scores.insertion.auc))
                    .on_hover_text("Higher is better");
                ui.end_row();
                ui.label("Drop");
                ui.label(format!("{:.1}%", scores.drop_percent))
                    .on_hover_text(
                        "Fall of the class probability when the image is multiplied by the map \
                     (Average Drop's term; lower is better)",
                    );
                ui.end_row();
                ui.label("Confidence");
                ui.label(if scores.increase {
                    "increased"
                } else {
                    "not increased"
                })
                .on_hover_text("Increase in Confidence's term for this image");
                ui.end_row();
            });
        // The side panel is often taller than the window: bring the new plot into view.
        if std::mem::take(&mut self.reveal_faithfulness) {
            grid.response.scroll_to_me(Some(Align::Max));
        }
    }

    fn classes_ui(&mut self, ui: &mut egui::Ui) {
        let (Some(model), Some(analysis)) = (&self.session.model, &self.session.analysis) else {
            if self.session.is_busy(TaskKind::Analysis) {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Running the network…");
                });
            } else {
                ui.weak("The classes appear once an image is analysed.");
            }
            return;
        };
        let (model, analysis) = (Arc::clone(model), Arc::clone(analysis));
        let mut chosen = None;
        for c in analysis.ranked() {
            let label = model.labels.get(c).cloned().unwrap_or_default();
            let response = class_row_ui(
                ui,
                &label,
                analysis.probabilities[c],
                c == analysis.predicted,
                c == self.session.class,
            );
            if response.clicked() {
                chosen = Some(c);
            }
        }
        if let Some(c) = chosen {
            self.session.select_class(c);
        }
        ui.horizontal(|ui| {
            let (dot, _) = ui.allocate_exact_size(vec2(8.0, 8.0), Sense::hover());
            ui.painter()
                .circle_filled(dot.center(), 4.0, PREDICTED_COLOUR);
            ui.weak("predicted · Up/Down to change");
        });
    }

    fn legend_ui(&self, ui: &mut egui::Ui) {
        let style = self.settings.style();
        let range = self
            .session
            .analysis
            .as_ref()
            .map(|a| a.range(self.session.class, style.normalisation));
        let width = ui.available_width().min(260.0);
        let (rect, _) = ui.allocate_exact_size(vec2(width, 16.0), Sense::hover());
        let lut = style.colormap.lut();
        let mut mesh = Mesh::default();
        let n = lut.len();
        for (i, c) in lut.iter().enumerate() {
            let x0 = rect.left() + rect.width() * i as f32 / n as f32;
            let x1 = rect.left() + rect.width() * (i + 1) as f32 / n as f32;
            mesh.add_colored_rect(
                Rect::from_min_max(pos2(x0, rect.top()), pos2(x1, rect.bottom())),
                Color32::from_rgb(c[0], c[1], c[2]),
            );
        }
        ui.painter().add(mesh);
        if style.threshold > 0.0 {
            let cut = rect.left() + rect.width() * style.threshold;
            let hidden = Rect::from_min_max(rect.left_top(), pos2(cut, rect.bottom()));
            ui.painter()
                .rect_filled(hidden, 0.0, Color32::from_black_alpha(170));
            ui.painter().line_segment(
                [pos2(cut, rect.top() - 2.0), pos2(cut, rect.bottom() + 2.0)],
                Stroke::new(1.5, ui.visuals().strong_text_color()),
            );
        }
        ui.painter().rect_stroke(
            rect,
            0.0,
            Stroke::new(1.0, ui.visuals().weak_text_color()),
            StrokeKind::Outside,
        );
        ui.horizontal(|ui| {
            ui.set_width(width);
            match range {
                Some((lo, hi)) => {
                    ui.label(legend_number(lo, hi - lo));
                    ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                        ui.label(legend_number(hi, hi - lo));
                        let (method, _) = analysis_map_choice(self.session.analysis.as_deref());
                        ui.centered_and_justified(|ui| {
                            ui.weak(format!("{} value", method.title()))
                        });
                    });
                }
                None => {
                    ui.weak("low");
                    ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                        ui.weak("high");
                    });
                }
            }
        });
        if style.threshold > 0.0 {
            ui.weak(format!(
                "Below {:.0}% of the scale: not drawn",
                style.threshold * 100.0
            ));
        }
    }

    fn readout_ui(&self, ui: &mut egui::Ui) {
        let Some(image) = &self.session.image else {
            ui.weak("—");
            return;
        };
        let Some((p, _)) = self.hover else {
            ui.weak("Point at the image to read its values");
            return;
        };
        let (x, y) = (p.x.floor(), p.y.floor());
        if x < 0.0
            || y < 0.0
            || x >= image.source.width() as f32
            || y >= image.source.height() as f32
        {
            ui.weak("Point at the image to read its values");
            return;
        }
        let (x, y) = (x as u32, y as u32);
        let [r, g, b] = image.source.rgb.get_pixel(x, y).0;
        egui::Grid::new("readout").num_columns(2).show(ui, |ui| {
            ui.label("Pixel");
            ui.label(format!("x {x}, y {y}"));
            ui.end_row();
            ui.label("Value");
            ui.label(if r == g && g == b {
                format!("{r}")
            } else {
                format!("RGB {r} {g} {b}")
            });
            ui.end_row();
            if let Some(analysis) = &self.session.analysis {
                ui.label(analysis_map_choice(Some(analysis)).0.title());
                match map_value_at(analysis, self.session.class, x, y) {
                    Some(v) => {
                        let (lo, hi) =
                            analysis.range(self.session.class, self.settings.normalisation);
                        let share = if hi > lo {
                            ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
                        } else {
                            0.0
                        };
                        ui.label(format!("{v:.3}  ({:.0}% of the scale)", share * 100.0));
                    }
                    None => {
                        ui.weak("outside what the network saw");
                    }
                }
                ui.end_row();
            }
        });
    }

    /// One image pane: the image (and, on the overlay pane, the heat and the annotations) with
    /// the shared zoom and pan.
    fn pane_ui(&mut self, ui: &mut egui::Ui, pane: Pane) {
        let ctx = ui.ctx().clone();
        // The pane's header.
        ui.horizontal(|ui| match pane {
            Pane::Original => {
                ui.strong("Original");
                if let Some(image) = &self.session.image {
                    ui.weak(image.origin.name());
                }
            }
            Pane::Overlay => {
                ui.strong("Overlay");
                if let (Some(model), Some(analysis)) = (&self.session.model, &self.session.analysis)
                {
                    let c = self.session.class;
                    let (method, layer) = analysis_map_choice(Some(analysis));
                    let at = if layer == Stage::Norm5 {
                        String::new()
                    } else {
                        format!(" at {layer}")
                    };
                    ui.weak(format!(
                        "{}{at} of {} ({:.1}%)",
                        method.title(),
                        model.labels.get(c).map_or("?", String::as_str),
                        100.0 * analysis.probabilities.get(c).copied().unwrap_or(0.0)
                    ));
                }
            }
        });
        if pane == Pane::Overlay {
            self.tools_ui(ui);
        }
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        let label = match pane {
            Pane::Original => "Original image",
            Pane::Overlay => "Overlay image",
        };
        response.widget_info(|| WidgetInfo::labeled(egui::accesskit::Role::Image, true, label));
        let index = pane as usize;
        if self.pane_rects[index] != Some(rect) {
            self.pane_rects[index] = Some(rect);
            if self.view.fit {
                self.fit_view();
                ctx.request_repaint();
            }
        }
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::from_gray(12));

        let Some(texture) = &self.textures.image else {
            self.empty_pane_ui(&painter, rect, pane);
            return;
        };
        self.view.pixels_per_point = ctx.pixels_per_point();
        let image_rect = self.view.image_rect(rect, self.textures.image_size);
        let uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        painter.image(texture.id(), image_rect, uv, Color32::WHITE);

        if pane == Pane::Overlay {
            // The heat of the analysis on screen only (none while a new one is computed).
            let current = self
                .textures
                .heat_key
                .is_some_and(|k| k.analysis == self.session.analysis_generation)
                && self.session.analysis.is_some();
            if self.settings.show_overlay
                && current
                && let Some(heat) = &self.textures.heat
            {
                let alpha = (self.settings.opacity.clamp(0.0, 1.0) * 255.0).round() as u8;
                painter.image(heat.id(), image_rect, uv, Color32::from_white_alpha(alpha));
                if self.first_heat.is_none() {
                    let t = self.started.elapsed();
                    self.first_heat = Some(t);
                    if self.timing_log {
                        eprintln!(
                            "camview: first heat map on screen {:.0} ms after launch",
                            t.as_secs_f64() * 1000.0
                        );
                    }
                }
            }
            let used = self.annotator.pointer(
                &mut self.session.annotations,
                &response,
                &self.view,
                rect,
                self.textures.image_size,
            );
            self.pan_and_zoom(&response, rect, !used);
            self.annotator
                .paint(&painter, &self.session.annotations, &self.view, rect);
            self.annotator
                .note_editor_ui(&ctx, &mut self.session.annotations, &self.view, rect);
        } else {
            self.pan_and_zoom(&response, rect, true);
        }

        if let Some(pointer) = response.hover_pos() {
            self.hover = Some((self.view.to_image(rect, pointer), pane));
        } else if self.hover.is_some_and(|(_, p)| p == pane) {
            self.hover = None;
        }
        // Where the pointer is on the other pane.
        if let Some((p, over)) = self.hover
            && over != pane
        {
            let s = self.view.to_screen(rect, p);
            let stroke = Stroke::new(1.0, Color32::from_white_alpha(200));
            painter.line_segment([s - vec2(8.0, 0.0), s + vec2(8.0, 0.0)], stroke);
            painter.line_segment([s - vec2(0.0, 8.0), s + vec2(0.0, 8.0)], stroke);
        }
        if pane == Pane::Overlay && self.session.is_busy(TaskKind::Analysis) {
            busy_badge(&painter, rect, "Running the network…");
        } else if pane == Pane::Overlay && self.session.is_busy(TaskKind::Explain) {
            let (shown, layer) = analysis_map_choice(self.session.analysis.as_deref());
            busy_badge(
                &painter,
                rect,
                &format!(
                    "Computing {} at {}… (showing {} at {layer})",
                    self.session.method.title(),
                    self.session.layer,
                    shown.title()
                ),
            );
        }
        if pane == Pane::Overlay && !self.settings.show_overlay {
            busy_badge(&painter, rect, "Heat map hidden (T shows it)");
        }
    }

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
        let pan_drag = (may_pan && response.dragged_by(egui::PointerButton::Primary))
            || response.dragged_by(egui::PointerButton::Middle)
            || response.dragged_by(egui::PointerButton::Secondary);
        if pan_drag {
            self.view.pan(response.drag_delta());
        }
        if response.double_clicked() && self.annotator.tool == Tool::Select {
            self.fit_view();
        }
    }

    fn tools_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for tool in Tool::ALL {
                let selected = self.annotator.tool == tool;
                if ui
                    .add(egui::Button::selectable(selected, tool.label()))
                    .on_hover_text(tool.hint())
                    .clicked()
                {
                    self.annotator.tool = tool;
                }
            }
        });
        ui.horizontal(|ui| {
            for (name, rgb) in SWATCHES {
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
                    self.session.annotations.recolour_selected(rgb);
                }
            }
            ui.separator();
            let layer = &mut self.session.annotations;
            if ui
                .add_enabled(layer.can_undo(), egui::Button::new("Undo"))
                .on_hover_text("Ctrl+Z")
                .clicked()
            {
                layer.undo();
            }
            if ui
                .add_enabled(layer.can_redo(), egui::Button::new("Redo"))
                .on_hover_text("Ctrl+Shift+Z")
                .clicked()
            {
                layer.redo();
            }
            if ui
                .add_enabled(layer.selected.is_some(), egui::Button::new("Delete"))
                .on_hover_text("Delete the selected mark (Delete)")
                .clicked()
            {
                layer.delete_selected();
            }
        });
    }

    fn empty_pane_ui(&self, painter: &egui::Painter, rect: Rect, pane: Pane) {
        let text = if self.session.is_busy(TaskKind::Image) || self.session.is_busy(TaskKind::Model)
        {
            String::new()
        } else if pane == Pane::Original {
            "Drop an image here\nor use Open image… (Ctrl+O)\nor type its path in the Open field above".to_string()
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
        if self.session.is_busy(TaskKind::Image) || self.session.is_busy(TaskKind::Model) {
            busy_badge(painter, rect, &self.session.activity().join("  ·  "));
        }
    }

    fn save_dialog_ui(&mut self, ctx: &egui::Context) {
        let Some(dialog) = &mut self.save_dialog else {
            return;
        };
        let mut close = false;
        let mut save = None;
        let mut browse = false;
        let image = self.session.image.as_ref();
        let size = image.map(|i| (i.source.width(), i.source.height()));
        let marks = self.session.annotations.items.len();
        egui::Modal::new(Id::unique("camview-save")).show(ctx, |ui| {
            ui.set_width(560.0);
            ui.heading("Save overlay");
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                let label = ui.label("File:");
                let field = ui
                    .add(egui::TextEdit::singleline(&mut dialog.path).desired_width(400.0))
                    .labelled_by(label.id);
                if dialog.focus_path {
                    field.request_focus();
                    dialog.focus_path = false;
                }
                if field.changed() {
                    dialog.confirm = None;
                    dialog.problem = None;
                }
                if field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
                    save = Some(false);
                }
                if ui.button("Browse…").clicked() {
                    browse = true;
                }
            });
            ui.horizontal(|ui| {
                ui.label("Format:");
                let current = Path::new(&dialog.path)
                    .extension()
                    .map(|e| e.to_string_lossy().to_lowercase())
                    .unwrap_or_default();
                for (name, ext) in FORMATS {
                    let selected = current == ext
                        || (ext == "jpg" && current == "jpeg")
                        || (ext == "tif" && current == "tiff");
                    if ui.radio(selected, name).clicked() && !selected {
                        dialog.path = save::with_extension(&dialog.path, ext);
                        dialog.confirm = None;
                        dialog.problem = None;
                    }
                }
            });
            ui.checkbox(&mut self.settings.caption, "Caption band (image, class, probability, model)");
            ui.checkbox(&mut self.settings.colour_bar, "Colour bar with the scale");
            if let Some((w, h)) = size {
                ui.weak(format!(
                    "{w} × {h} pixels{}, {} annotation{}; a JSON sidecar with the provenance is written beside it.",
                    if self.settings.caption || self.settings.colour_bar { " plus the band" } else { "" },
                    marks,
                    if marks == 1 { "" } else { "s" }
                ));
            }
            if !self.settings.show_overlay {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "The heat map is hidden (T): the file will show the image and the annotations only.",
                );
            }
            if let Some(problem) = &dialog.problem {
                ui.colored_label(ui.visuals().error_fg_color, problem);
            }
            ui.add_space(6.0);
            if let Some(existing) = &dialog.confirm {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} already exists. Replace it?", existing.display()),
                );
                ui.horizontal(|ui| {
                    if ui.button("Replace").clicked() {
                        save = Some(true);
                    }
                    if ui.button("Cancel").clicked() {
                        dialog.confirm = None;
                    }
                });
            } else {
                ui.horizontal(|ui| {
                    if ui.add(egui::Button::new(RichText::new("Save").strong())).clicked() {
                        save = Some(false);
                    }
                    if ui.button("Cancel").clicked() {
                        close = true;
                    }
                });
            }
            if ui.input(|i| i.key_pressed(Key::Escape)) {
                close = true;
            }
        });
        if browse {
            let path = PathBuf::from(dialog.path.trim());
            let dir = path.parent().map(Path::to_path_buf);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            self.dialogs.show(ctx, DialogPurpose::SaveAs, dir, name);
        }
        if close {
            self.save_dialog = None;
        } else if let Some(replace) = save {
            self.try_save(replace);
        }
    }

    fn keys_window_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_keys;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                egui::Grid::new("keys")
                    .num_columns(2)
                    .striped(true)
                    .show(ui, |ui| {
                        for (keys, what) in [
                            ("Up / Down", "previous / next class"),
                            (
                                "Left / Right, Page Up / Down",
                                "previous / next image in the folder",
                            ),
                            ("T", "show or hide the heat map"),
                            ("Mouse wheel", "zoom at the pointer"),
                            ("Drag", "pan (with Select; right or middle drag always)"),
                            ("F, Home, 0", "fit the image"),
                            ("1", "actual pixels (1:1)"),
                            ("V N A E D", "select, note, arrow, ellipse, draw"),
                            ("Delete", "delete the selected mark"),
                            ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo"),
                            ("Ctrl+O", "open an image"),
                            ("Ctrl+S", "save the overlay"),
                            ("Ctrl+Shift+C", "copy the overlay"),
                        ] {
                            ui.strong(keys);
                            ui.label(what);
                            ui.end_row();
                        }
                    });
            });
        self.show_keys = open;
    }

    fn drop_preview_ui(&self, ctx: &egui::Context) {
        let hovered: Vec<String> = ctx.input(|i| {
            i.raw
                .hovered_files
                .iter()
                .map(|f| {
                    f.path
                        .as_ref()
                        .and_then(|p| p.file_name())
                        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned())
                })
                .collect()
        });
        if hovered.is_empty() {
            return;
        }
        let painter = ctx.layer_painter(egui::LayerId::new(
            egui::Order::Foreground,
            Id::unique("camview-drop"),
        ));
        let screen = ctx.content_rect();
        painter.rect_filled(screen, 0.0, Color32::from_black_alpha(180));
        painter.text(
            screen.center(),
            Align2::CENTER_CENTER,
            format!("Drop to open {}", hovered.join(", ")),
            FontId::proportional(24.0),
            Color32::WHITE,
        );
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let mut parts = vec!["camview".to_string()];
        if let Some(image) = &self.session.image {
            parts.push(image.origin.name());
        }
        if let Some(model) = &self.session.model {
            parts.push(model_name(model));
        }
        let title = parts.join(" — ");
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    /// The window title as it was last set.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The analysis on screen, if any.
    pub fn analysis(&self) -> Option<&Analysis> {
        self.session.analysis.as_deref()
    }
}

/// The style of a saved or copied overlay: what is on screen, so a hidden heat map is saved as
/// opacity 0 (the image and the annotations).
fn saved_style(settings: &Settings) -> crate::render::OverlayStyle {
    let mut style = settings.style();
    if !settings.show_overlay {
        style.opacity = 0.0;
    }
    style
}

/// The predicted class's mark and bar.
const PREDICTED_COLOUR: Color32 = Color32::from_rgb(255, 170, 40);

fn image_texture_options() -> TextureOptions {
    TextureOptions {
        magnification: egui::TextureFilter::Nearest,
        minification: egui::TextureFilter::Linear,
        ..TextureOptions::LINEAR
    }
}

fn section(ui: &mut egui::Ui, title: &str) {
    ui.label(
        RichText::new(title.to_uppercase())
            .small()
            .strong()
            .color(ui.visuals().weak_text_color()),
    );
    ui.add_space(2.0);
}

fn busy_badge(painter: &egui::Painter, rect: Rect, text: &str) {
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

/// One class: its name, a bar of its probability, the percentage; the predicted class starred.
fn class_row_ui(
    ui: &mut egui::Ui,
    label: &str,
    probability: f32,
    predicted: bool,
    selected: bool,
) -> egui::Response {
    let width = ui.available_width();
    let (rect, response) = ui.allocate_exact_size(vec2(width, 24.0), Sense::click());
    response.widget_info(|| {
        WidgetInfo::selected(egui::accesskit::Role::ListBoxOption, true, selected, label)
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
    if predicted {
        painter.circle_filled(
            pos2(inner.left() + 4.0, inner.center().y),
            4.0,
            PREDICTED_COLOUR,
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
    let bar_colour = if predicted {
        PREDICTED_COLOUR
    } else {
        Color32::from_rgb(90, 150, 230)
    };
    painter.rect_filled(filled, 2.0, bar_colour);
    painter.text(
        pos2(inner.right(), inner.center().y),
        Align2::RIGHT_CENTER,
        format!("{:.1}%", probability * 100.0),
        FontId::proportional(13.0),
        text_colour,
    );
    response
}

impl eframe::App for CamviewApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.start_launch(Self::max_texture_side(&ctx));
        self.receive(&ctx);
        self.keyboard(&ctx);
        self.update_heat_texture(&ctx);

        egui::Panel::top("camview-menu").show(ui, |ui| self.menu_bar_ui(ui));
        egui::Panel::top("camview-toolbar").show(ui, |ui| {
            ui.add_space(2.0);
            self.toolbar_ui(ui);
            ui.add_space(2.0);
        });
        self.error_banner_ui(ui);
        egui::Panel::bottom("camview-status").show(ui, |ui| self.status_ui(ui));
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

        self.save_dialog_ui(&ctx);
        self.keys_window_ui(&ctx);
        self.drop_preview_ui(&ctx);
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

/// A legend end with enough decimals to tell the ends apart (the gradient methods' maps can
/// span 0.04 where CAM's spans 10).
fn legend_number(v: f32, span: f32) -> String {
    let decimals = if span > 0.0 {
        (2 - span.log10().floor() as i32).clamp(0, 6) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

/// The method and layer of the maps on screen (what a saved overlay shows).
fn analysis_map_choice(analysis: Option<&Analysis>) -> (Method, Stage) {
    analysis
        .and_then(|a| a.maps.first())
        .map_or((Method::Cam, Stage::Norm5), |m| (m.method, m.layer))
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

/// The deletion and insertion curves: class probability against the fraction of pixels.
fn faithfulness_plot_ui(ui: &mut egui::Ui, scores: &Faithfulness) {
    use egui_plot::{Legend, Line, Plot};
    let points = |c: &crate::explain::faithfulness::Curve| -> Vec<[f64; 2]> {
        c.fractions
            .iter()
            .zip(&c.probabilities)
            .map(|(&x, &y)| [f64::from(x), f64::from(y)])
            .collect()
    };
    Plot::new("faithfulness-curves")
        .height(150.0)
        .legend(Legend::default())
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label("fraction of pixels")
        .show(ui, |plot| {
            plot.line(
                Line::new(
                    format!("Deletion (AUC {:.3})", scores.deletion.auc),
                    points(&scores.deletion),
                )
                .color(Color32::from_rgb(220, 80, 60)),
            );
            plot.line(
                Line::new(
                    format!("Insertion (AUC {:.3})", scores.insertion.auc),
                    points(&scores.insertion),
                )
                .color(Color32::from_rgb(60, 140, 220)),
            );
        });
}

/// A labelled 0-100% slider for a 0..1 setting, as one row of a grid.
fn percent_slider_ui(ui: &mut egui::Ui, name: &str, value: &mut f32, hover: &str) {
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
