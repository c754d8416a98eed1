//! The viewer's one state type: the model, the image, the cached analysis, the chosen class, the
//! annotations, and the work in flight. The UI reads it through its accessors and changes it only
//! through its methods, so what belongs together (a method and its layer, a job and its ticket,
//! an image and its marks) changes together; nothing here waits for slow work, which goes to the
//! worker.
//!
//! - this file: the state, what the UI reads, and the requests it makes;
//! - `maps`: the method and layer on screen, the maps cached for them, the faithfulness scores;
//! - `answers`: taking the worker's answers, one method per kind;
//! - `window`: the display window of an image with gray levels, and its frames;
//! - `neighbours`: the images before and after the current one, prepared in the background.

mod answers;
mod compare;
mod maps;
mod neighbours;
mod trust;
pub use compare::CompareTile;
pub use trust::SanityKey;
mod window;

use crate::export::ProvenanceDetail;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eframe::egui::ColorImage;

use crate::explain::faithfulness::Faithfulness;
use crate::explain::{Analysis, MapChoice, Method, Stage};
use crate::imaging::SourceImage;
use crate::model_request::ModelRequest;
use crate::network::Classifier;
use crate::render::OverlayStyle;

use super::annotate::AnnotationLayer;
use super::prefetch::{ImageMaps, Prepared};
use super::pyramid::Pyramid;
use super::save::ComposeRequest;
use super::worker::{FileIdentity, ImageOrigin, Job, Purpose, Work, WorkProgress, Worker};
use neighbours::Prefetching;

/// The kinds of work in flight; a new request of a kind replaces the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Model,
    Image,
    Analysis,
    Save,
    Clipboard,
    /// A method's maps (Grad-CAM and the rest).
    Explain,
    Faithfulness,
    /// The model randomisation test of the map on screen.
    Sanity,
    /// A map of the Compare window.
    Compare,
    /// The image texture through a new display window (large images).
    Render,
}

/// What a faithfulness result belongs to: the displayed maps (their generation), the class and
/// the number of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaithfulnessKey {
    pub generation: u64,
    pub class: usize,
    pub steps: usize,
}

/// Faithfulness scores and the map they score.
#[derive(Debug, Clone)]
pub struct ScoredMap {
    pub key: FaithfulnessKey,
    pub scores: Faithfulness,
}

/// The faithfulness job in flight: what it scores and its progress.
#[derive(Debug, Clone)]
struct PendingScores {
    key: FaithfulnessKey,
    progress: Arc<WorkProgress>,
}

#[derive(Debug, Clone)]
struct Task {
    ticket: u64,
    /// What it is doing, for the status line ("Analysing scan.png...").
    label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeKind {
    Info,
    Error,
}

/// The errors the red band shows at most; older ones give way.
pub const ERRORS_SHOWN: usize = 4;

/// A thing to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub text: String,
}

/// The image on screen.
pub struct CurrentImage {
    pub origin: ImageOrigin,
    pub source: Arc<SourceImage>,
    /// The file's identity when it was read.
    identity: Option<FileIdentity>,
    /// The largest texture side it was opened for.
    max_texture_side: usize,
    /// The texture levels it was opened with (kept to prepare it again when the user moves on).
    opened_display: Pyramid,
}

/// The method and layer of the maps on screen (what a saved overlay shows), which may differ
/// from the chosen ones while those are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShownMap {
    pub method: Method,
    pub layer: Stage,
}

/// Things the UI must act on after a poll.
#[derive(Default)]
pub struct Arrivals {
    /// A new image to upload as the image texture.
    pub display: Option<Pyramid>,
    /// The same image through another display window: the texture changes, the view and the
    /// heat map stay.
    pub redisplay: Option<Pyramid>,
    /// A composed overlay for the clipboard.
    pub clipboard: Option<ColorImage>,
    /// An overlay was saved here.
    pub saved: Option<PathBuf>,
    /// A model file was loaded.
    pub model_file: Option<PathBuf>,
    /// An image file was opened.
    pub image_file: Option<PathBuf>,
}

pub struct Session {
    worker: Worker,
    model: Option<Arc<Classifier>>,
    /// The request being loaded.
    pending_model: Option<ModelRequest>,
    /// An image asked for while the first model loads, opened once it is there.
    image_after_model: Option<(ImageOrigin, usize)>,
    image: Option<CurrentImage>,
    /// What is on screen: the forward pass's analysis with the maps of the chosen method and
    /// layer once they are computed (until then, those of the method before).
    analysis: Option<Arc<Analysis>>,
    /// The forward pass's own analysis (CAM at norm5), the start of every other method.
    base: Option<Arc<Analysis>>,
    class: usize,
    /// The method and layer the user chose (the maps on screen may still be the previous ones
    /// while these are computed: `analysis.maps[..].method` says what is drawn).
    method: Method,
    layer: Stage,
    /// Score-CAM over every channel (exact, slow on large models) instead of the strongest 64.
    score_cam_all_channels: bool,
    /// Maps computed for the current image, by method, layer and options (switching back costs
    /// nothing; the class on screen is computed first, the others after it), and its
    /// activations by layer.
    maps: ImageMaps,
    /// What the running map job computes: the choice and the classes.
    map_job: Option<(MapChoice, Vec<usize>)>,
    /// Progress of the maps being computed.
    map_progress: Option<Arc<WorkProgress>>,
    /// The latest faithfulness scores and what they are of.
    faithfulness: Option<ScoredMap>,
    faithfulness_pending: Option<PendingScores>,
    /// Scores that could not be computed: the error was shown once and they are not asked
    /// for again (the panel asks every frame).
    faithfulness_failed: Option<FaithfulnessKey>,
    sanity: trust::SanityState,
    compare: compare::CompareState,
    annotations: AnnotationLayer,
    /// Marks of images shown before, so going back to an image brings its marks back.
    stash: HashMap<ImageOrigin, AnnotationLayer>,
    /// The image being opened on the worker, and the last one that could not be opened (next
    /// and previous step from it: `neighbour`).
    opening: Option<ImageOrigin>,
    failed_open: Option<ImageOrigin>,
    /// Images opened together (on the command line, dropped): next/previous walk these.
    playlist: Vec<PathBuf>,
    /// The neighbours of the image on screen, prepared in the background: at most
    /// `neighbours::PREPARED_IMAGES` (the previous and the next image).
    prepared: Vec<Prepared>,
    /// The neighbours being prepared.
    prefetching: Vec<Prefetching>,
    tasks: HashMap<TaskKind, Task>,
    /// The errors on show (the red band), oldest first: kept until dismissed, at most
    /// `ERRORS_SHOWN`. Neither an info that comes after them (a copy finishing, say) nor a
    /// newer error hides them: two jobs can fail in one frame.
    errors: Vec<Notice>,
    /// The latest info (the status line).
    info: Option<Notice>,
    /// How long the last analysis took.
    last_analysis: Option<Duration>,
    /// Counts the analyses received, so the UI can tell a new one from the one it drew.
    analysis_generation: u64,
    /// The display window the user chose for the image (`None`: the file's own).
    display: Option<crate::imaging::DisplayWindow>,
    /// What arrived since the last poll (answers taken, a prepared image shown, the image
    /// rendered in the frame through a new display window), for the UI to act on.
    arrived: Arrivals,
    /// The display window changed while the worker rendered the one before: render again (with
    /// this texture size limit) when it is done.
    render_again: Option<usize>,
}

impl Session {
    pub fn new(worker: Worker) -> Self {
        Self {
            worker,
            model: None,
            pending_model: None,
            image_after_model: None,
            image: None,
            analysis: None,
            base: None,
            class: 0,
            method: Method::Cam,
            layer: Stage::Norm5,
            score_cam_all_channels: false,
            maps: ImageMaps::default(),
            map_job: None,
            map_progress: None,
            faithfulness: None,
            faithfulness_pending: None,
            faithfulness_failed: None,
            sanity: trust::SanityState::default(),
            compare: compare::CompareState::default(),
            annotations: AnnotationLayer::default(),
            stash: HashMap::new(),
            opening: None,
            failed_open: None,
            playlist: Vec::new(),
            prepared: Vec::new(),
            prefetching: Vec::new(),
            tasks: HashMap::new(),
            errors: Vec::new(),
            info: None,
            last_analysis: None,
            analysis_generation: 0,
            display: None,
            arrived: Arrivals::default(),
            render_again: None,
        }
    }

    // What the UI reads.

    pub fn model(&self) -> Option<&Arc<Classifier>> {
        self.model.as_ref()
    }

    pub fn image(&self) -> Option<&CurrentImage> {
        self.image.as_ref()
    }

    /// The analysis on screen: the forward pass's, with the maps on screen.
    pub fn analysis(&self) -> Option<&Arc<Analysis>> {
        self.analysis.as_ref()
    }

    /// The chosen class.
    pub fn class(&self) -> usize {
        self.class
    }

    /// The chosen method (its maps may still be computing: see `shown_map`).
    pub fn method(&self) -> Method {
        self.method
    }

    /// The chosen layer.
    pub fn layer(&self) -> Stage {
        self.layer
    }

    pub fn score_cam_all_channels(&self) -> bool {
        self.score_cam_all_channels
    }

    /// The method and layer of the maps on screen; CAM at norm5 before there are any.
    pub fn shown_map(&self) -> ShownMap {
        self.analysis.as_ref().and_then(|a| a.maps.first()).map_or(
            ShownMap {
                method: Method::Cam,
                layer: Stage::Norm5,
            },
            |m| ShownMap {
                method: m.method,
                layer: m.layer,
            },
        )
    }

    /// Progress of the maps being computed, if any.
    pub fn map_progress(&self) -> Option<&WorkProgress> {
        self.map_progress.as_deref()
    }

    /// The latest faithfulness scores (perhaps of another map or class: see their key).
    pub fn faithfulness(&self) -> Option<&ScoredMap> {
        self.faithfulness.as_ref()
    }

    /// Progress of the faithfulness scores being computed, if any.
    pub fn faithfulness_progress(&self) -> Option<&WorkProgress> {
        self.faithfulness_pending.as_ref().map(|p| &*p.progress)
    }

    /// The marks of the image on screen.
    pub fn annotations(&self) -> &AnnotationLayer {
        &self.annotations
    }

    /// The marks of the image on screen, to change them (the layer keeps its own undo history).
    pub fn annotations_mut(&mut self) -> &mut AnnotationLayer {
        &mut self.annotations
    }

    /// The latest error on show, or else the latest info.
    pub fn notice(&self) -> Option<&Notice> {
        self.errors.last().or(self.info.as_ref())
    }

    /// The errors on show, oldest first.
    pub fn errors(&self) -> &[Notice] {
        &self.errors
    }

    /// The latest info, shown in the status line even while an error is on show.
    pub fn latest_info(&self) -> Option<&Notice> {
        self.info.as_ref()
    }

    /// How long the last forward pass took.
    pub fn last_analysis(&self) -> Option<Duration> {
        self.last_analysis
    }

    /// Counts the analyses shown, so the UI can tell a new one from the one it drew.
    pub fn analysis_generation(&self) -> u64 {
        self.analysis_generation
    }

    /// No work in flight.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn is_busy(&self, kind: TaskKind) -> bool {
        self.tasks.contains_key(&kind)
    }

    /// What is running, for the status line.
    pub fn activity(&self) -> Vec<String> {
        let order = [
            TaskKind::Model,
            TaskKind::Image,
            TaskKind::Render,
            TaskKind::Analysis,
            TaskKind::Explain,
            TaskKind::Faithfulness,
            TaskKind::Sanity,
            TaskKind::Compare,
            TaskKind::Save,
            TaskKind::Clipboard,
        ];
        order
            .iter()
            .filter_map(|k| self.tasks.get(k).map(|t| t.label.clone()))
            .collect()
    }

    /// The classes by decreasing probability (the predicted one first).
    pub fn ranked(&self) -> Vec<usize> {
        self.analysis
            .as_ref()
            .map(|a| a.ranked())
            .unwrap_or_default()
    }

    // Notices.

    pub fn info(&mut self, text: impl Into<String>) {
        self.info = Some(Notice {
            kind: NoticeKind::Info,
            text: text.into(),
        });
    }

    /// Shows an error beside those on show (the same text again moves to the end); the oldest
    /// goes beyond `ERRORS_SHOWN`.
    pub fn error(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.errors.retain(|n| n.text != text);
        if self.errors.len() == ERRORS_SHOWN {
            self.errors.remove(0);
        }
        self.errors.push(Notice {
            kind: NoticeKind::Error,
            text,
        });
    }

    /// The user closed the errors (the error band's Dismiss).
    pub fn dismiss_notice(&mut self) {
        self.errors.clear();
    }

    // Requests.

    fn submit(&mut self, kind: TaskKind, label: String, work: Work) {
        let ticket = self.worker.ticket();
        if self.worker.submit(Job { ticket, work }) {
            self.tasks.insert(kind, Task { ticket, label });
        } else {
            self.error("camview's background worker has stopped; please restart camview");
        }
    }

    /// Starts loading a model; the current one stays until the new one is ready.
    pub fn open_model(&mut self, request: ModelRequest) {
        let label = format!("Loading {}…", request.name());
        self.pending_model = Some(request.clone());
        self.submit(TaskKind::Model, label, Work::LoadModel(request));
    }

    /// Opens an image: at once if it was prepared in the background (and its file, the model
    /// and the texture size are still what it was prepared with), otherwise on the worker (the
    /// current one stays until the new one is ready). While the first model loads (at launch),
    /// the request waits for it, so that the image is analysed while its texture is built: the
    /// worker would load the model first anyway.
    pub fn open_image(&mut self, origin: ImageOrigin, max_texture_side: usize) {
        if self.show_prepared(&origin, max_texture_side) {
            return;
        }
        if self.model.is_none() && self.pending_model.is_some() {
            self.image_after_model = Some((origin, max_texture_side));
            return;
        }
        let label = format!("Opening {}…", origin.name());
        self.opening = Some(origin.clone());
        self.submit(
            TaskKind::Image,
            label,
            Work::OpenImage {
                origin,
                frame: 1,
                max_texture_side,
                display: None,
                classifier: self.model.clone(),
            },
        );
    }

    /// Opens an image file; one outside the images opened together ends that list.
    pub fn open_image_file(&mut self, path: PathBuf, max_texture_side: usize) {
        if self.playlist.len() > 1 && !self.playlist.contains(&path) {
            self.playlist.clear();
        }
        self.open_image(ImageOrigin::File(path), max_texture_side);
    }

    /// Images opened together: next and previous walk these rather than the folder. A single
    /// image is no list (its folder is walked).
    pub fn set_playlist(&mut self, images: Vec<PathBuf>) {
        if images.len() > 1 {
            self.playlist = images;
        }
    }

    /// The image `step` places after (or before) the current one: in the list opened together,
    /// in the current image's folder, or among the demo images.
    /// After a file that could not be opened, the step is taken from that file (while it is
    /// still in the list), so that one damaged file does not stop a walk through a folder.
    pub fn neighbour(&self, step: i64) -> Option<ImageOrigin> {
        let from_failed = self.failed_open.as_ref().and_then(|failed| {
            self.image.as_ref()?;
            self.neighbours_of(failed, &[step]).pop().flatten()
        });
        from_failed.or_else(|| self.neighbours(&[step]).pop().flatten())
    }

    /// The images each of `steps` places after (or before) the current one, from one listing of
    /// the folder.
    fn neighbours(&self, steps: &[i64]) -> Vec<Option<ImageOrigin>> {
        match self.image.as_ref() {
            Some(image) => self.neighbours_of(&image.origin, steps),
            None => vec![None; steps.len()],
        }
    }

    /// The images each of `steps` places after (or before) `current`.
    fn neighbours_of(&self, current: &ImageOrigin, steps: &[i64]) -> Vec<Option<ImageOrigin>> {
        let wrap = |i: usize, n: usize, step: i64| (i as i64 + step).rem_euclid(n as i64) as usize;
        match current {
            ImageOrigin::File(path) => {
                let list = if self.playlist.len() > 1 {
                    self.playlist.clone()
                } else {
                    path.parent().map(folder_images).unwrap_or_default()
                };
                let same = |p: &PathBuf| {
                    p == path || std::fs::canonicalize(p).ok() == std::fs::canonicalize(path).ok()
                };
                let at = list.iter().position(same).filter(|_| list.len() > 1);
                steps
                    .iter()
                    .map(|&step| {
                        at.map(|i| ImageOrigin::File(list[wrap(i, list.len(), step)].clone()))
                    })
                    .collect()
            }
            ImageOrigin::Demo { index, .. } => {
                let demos = super::demo_images();
                steps
                    .iter()
                    .map(|&step| {
                        (demos.len() > 1).then(|| {
                            let i = wrap(*index, demos.len(), step);
                            ImageOrigin::Demo {
                                index: i,
                                name: demos[i].0.to_string(),
                            }
                        })
                    })
                    .collect()
            }
        }
    }

    /// Runs the network on the current image with the current model (on the worker).
    fn analyse(&mut self) {
        let (Some(model), Some(image)) = (&self.model, &self.image) else {
            return;
        };
        let (classifier, source) = (Arc::clone(model), Arc::clone(&image.source));
        let label = format!("Analysing {}…", image.origin.name());
        self.submit(
            TaskKind::Analysis,
            label,
            Work::Analyse {
                classifier,
                image: source,
            },
        );
    }

    /// Everything needed to compose the overlay as it is now, if there is one.
    pub fn compose_request(
        &self,
        style: OverlayStyle,
        caption: bool,
        colour_bar: bool,
    ) -> Option<ComposeRequest> {
        let (model, image, analysis) = (
            self.model.as_ref()?,
            self.image.as_ref()?,
            self.analysis.as_ref()?,
        );
        Some(ComposeRequest {
            image: Arc::clone(&image.source),
            image_file: image.origin.path().map(Path::to_path_buf),
            classifier: Arc::clone(model),
            analysis: Arc::clone(analysis),
            class: self.class,
            style,
            annotations: self.annotations.items.clone(),
            caption,
            colour_bar,
            display: self.display.clone(),
            detail: ProvenanceDetail::Minimal,
        })
    }

    /// Composes and writes the overlay on the worker.
    pub fn save(&mut self, request: ComposeRequest, dest: PathBuf, replace: bool) {
        let label = format!("Saving {}…", dest.display());
        let purpose = Purpose::Save { dest, replace };
        self.compose(TaskKind::Save, label, request, purpose);
    }

    /// Composes the overlay for the clipboard on the worker.
    pub fn copy(&mut self, request: ComposeRequest) {
        let label = "Copying the overlay…".to_string();
        self.compose(TaskKind::Clipboard, label, request, Purpose::Clipboard);
    }

    fn compose(
        &mut self,
        kind: TaskKind,
        label: String,
        request: ComposeRequest,
        purpose: Purpose,
    ) {
        let request = Box::new(request);
        self.submit(kind, label, Work::Compose { request, purpose });
    }

    /// Shows `class`: its map at once when computed, otherwise it is computed first.
    pub fn select_class(&mut self, class: usize) {
        if self.model.as_ref().is_some_and(|m| class < m.labels.len()) && class != self.class {
            self.class = class;
            self.show_choice();
        }
    }

    /// Moves the class selection up (-1) or down (+1) the ranked list.
    pub fn step_class(&mut self, step: i32) {
        let ranked = self.ranked();
        if let Some(pos) = ranked.iter().position(|&c| c == self.class) {
            let next = (pos as i64 + i64::from(step)).clamp(0, ranked.len() as i64 - 1) as usize;
            self.select_class(ranked[next]);
        }
    }
}

/// The images of a folder, sorted (not recursive).
pub fn folder_images(dir: &Path) -> Vec<PathBuf> {
    crate::imaging::image_files(dir).unwrap_or_default()
}

/// The model's file name, or "demo model".
pub fn model_name(classifier: &Classifier) -> String {
    let file = &classifier.info.file;
    if let Some(name) = file.strip_prefix("embedded:") {
        return format!("demo model ({name})");
    }
    Path::new(file)
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned())
}
