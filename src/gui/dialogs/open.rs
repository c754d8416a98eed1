//! Opening files: the native file dialogs (on their own thread, so the window keeps drawing, and
//! optional: without one the user is told to type the path), the typed Open field, dropped
//! files, and how a path becomes a model, an image, or the list of images next/previous walk.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use eframe::egui::{self, Key};

use crate::imaging::IMAGE_EXTENSIONS;
use crate::model_request::ModelRequest;

use crate::gui::app::CamviewApp;
use crate::gui::session::folder_images;
use crate::gui::textures::max_texture_side;
use crate::gui::worker::ImageOrigin;

/// File extensions taken as models when a file is dropped or typed: `.tar` for the
/// `model.pth.tar` / `checkpoint.pth.tar` names of many training scripts (CheXNet's among them).
const MODEL_EXTENSIONS: [&str; 5] = ["pth", "pt", "safetensors", "ckpt", "tar"];

fn is_model_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| MODEL_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogPurpose {
    OpenImage,
    OpenModel,
    SaveAs,
}

/// What a native dialog answered, and how long it was open.
struct DialogAnswer {
    purpose: DialogPurpose,
    picked: Option<PathBuf>,
    /// An answer this fast means there is no dialog to show here.
    elapsed: Duration,
}

/// The native file dialogs, and the Open field's text.
pub struct FileDialogs {
    tx: Sender<DialogAnswer>,
    rx: Receiver<DialogAnswer>,
    open: Option<DialogPurpose>,
    /// The Open field's text.
    pub typed_path: String,
}

impl Default for FileDialogs {
    fn default() -> Self {
        let (tx, rx) = channel();
        Self {
            tx,
            rx,
            open: None,
            typed_path: String::new(),
        }
    }
}

impl FileDialogs {
    /// Shows a native dialog on its own thread, unless one is open already.
    pub fn show(
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
                let picked = pick_file(purpose, dir, name);
                let _ = tx.send(DialogAnswer {
                    purpose,
                    picked,
                    elapsed: started.elapsed(),
                });
                ctx.request_repaint();
            });
        if spawned.is_ok() {
            self.open = Some(purpose);
        }
    }
}

/// Runs the native dialog for `purpose` (blocking its thread until it is closed).
fn pick_file(
    purpose: DialogPurpose,
    dir: Option<PathBuf>,
    name: Option<String>,
) -> Option<PathBuf> {
    let mut dialog = rfd::FileDialog::new();
    if let Some(dir) = dir {
        dialog = dialog.set_directory(dir);
    }
    match purpose {
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
    }
}

impl CamviewApp {
    /// Shows the native dialog to open an image or a model, starting in the last folder.
    pub(in crate::gui) fn show_file_dialog(&mut self, ctx: &egui::Context, purpose: DialogPurpose) {
        let dir = self.settings.last_folder.clone();
        self.files.show(ctx, purpose, dir, None);
    }

    /// Acts on what the native dialogs answered.
    pub(in crate::gui) fn receive_dialog_answers(&mut self, ctx: &egui::Context) {
        while let Ok(answer) = self.files.rx.try_recv() {
            self.files.open = None;
            match answer.picked {
                Some(path) => match answer.purpose {
                    DialogPurpose::OpenImage => self.open_image_file(ctx, path),
                    DialogPurpose::OpenModel => self.open_model_file(path),
                    DialogPurpose::SaveAs => {
                        if let Some(d) = &mut self.save_dialog {
                            d.set_path(path.display().to_string());
                        }
                    }
                },
                None if answer.elapsed < Duration::from_millis(300) => {
                    let where_ = if answer.purpose == DialogPurpose::SaveAs {
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
    }

    /// Opens the files dropped on the window.
    pub(in crate::gui) fn open_dropped_files(&mut self, ctx: &egui::Context) {
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

    /// Opens what was dropped, typed or picked from the recent files: models as models, images
    /// as images (several images become the list that next/previous walk).
    pub(in crate::gui) fn open_paths(&mut self, ctx: &egui::Context, paths: Vec<PathBuf>) {
        let (models, images): (Vec<PathBuf>, Vec<PathBuf>) =
            paths.into_iter().partition(|p| is_model_file(p));
        if let Some(model) = models.into_iter().next() {
            self.open_model_file(model);
        }
        self.session.set_playlist(images.clone());
        if let Some(first) = images.into_iter().next() {
            self.open_image_file(ctx, first);
        }
    }

    /// Opens an image file, or the first image of a folder.
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
        self.heat_timing.asked(ImageOrigin::File(path.clone()));
        self.session.open_image_file(path, max_texture_side(ctx));
    }

    fn open_model_file(&mut self, path: PathBuf) {
        self.session.open_model(ModelRequest::file(path));
    }

    /// The Open field: a path typed, then Enter or the Open button. It works where no native
    /// dialog is available.
    pub(in crate::gui) fn open_field_ui(&mut self, ui: &mut egui::Ui) {
        let label = ui.label("Open:");
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut self.files.typed_path)
                    .hint_text("path of an image, folder or model, then Enter")
                    .desired_width(320.0),
            )
            .labelled_by(label.id);
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        if ui.button("Open").clicked() || enter {
            self.open_typed_path(ui.ctx());
        }
    }

    /// Opens the path typed in the Open field.
    fn open_typed_path(&mut self, ctx: &egui::Context) {
        let typed = self
            .files
            .typed_path
            .trim()
            .trim_matches(['"', '\''])
            .to_string();
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
}
