//! The viewer's one state type: the model, the image, the cached analysis, the chosen class, the
//! annotations, and the work in flight. The UI draws it and calls its methods; nothing here
//! waits for slow work, which goes to the worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui::ColorImage;

use crate::explain::faithfulness::{Faithfulness, FaithfulnessOptions};
use crate::explain::{
    Analysis, ClassActivationMap, ExplainedMaps, LayerActivations, MapChoice, Method, Stage,
};
use crate::imaging::SourceImage;
use crate::model_request::ModelRequest;
use crate::network::Classifier;
use crate::render::OverlayStyle;

use super::annotate::AnnotationLayer;
use super::save::ComposeRequest;
use super::worker::{Answer, ImageOrigin, Job, Outcome, Purpose, WorkProgress, Worker};

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
}

/// What a faithfulness result belongs to: the displayed maps (their generation), the class and
/// the number of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaithfulnessKey {
    pub generation: u64,
    pub class: usize,
    pub steps: usize,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub ticket: u64,
    /// What it is doing, for the status line ("Analysing scan.png...").
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeKind {
    Info,
    Error,
}

/// The latest thing to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub text: String,
}

/// The image on screen.
pub struct CurrentImage {
    pub origin: ImageOrigin,
    pub source: Arc<SourceImage>,
}

/// Things the UI must act on after a poll.
#[derive(Default)]
pub struct Arrivals {
    /// A new image to upload as the image texture.
    pub display: Option<ColorImage>,
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
    pub model: Option<Arc<Classifier>>,
    /// The request that gave `model` (to reload it, and for its name).
    pub model_request: Option<ModelRequest>,
    /// The request being loaded.
    pending_model: Option<ModelRequest>,
    pub image: Option<CurrentImage>,
    /// What is on screen: the forward pass's analysis with the maps of the chosen method and
    /// layer once they are computed (until then, those of the method before).
    pub analysis: Option<Arc<Analysis>>,
    /// The forward pass's own analysis (CAM at norm5), the start of every other method.
    base: Option<Arc<Analysis>>,
    pub class: usize,
    /// The method and layer the user chose (the maps on screen may still be the previous ones
    /// while these are computed: `analysis.maps[..].method` says what is drawn).
    pub method: Method,
    pub layer: Stage,
    /// Score-CAM over every channel (exact, slow on large models) instead of the strongest 64.
    pub score_cam_all_channels: bool,
    /// Maps computed for the current image, by method, layer and options: switching back costs
    /// nothing.
    maps: HashMap<MapChoice, Vec<ClassActivationMap>>,
    /// Activations computed for the current image, by layer: a new method at a layer already
    /// seen runs no forward pass up to it.
    activations: HashMap<Stage, Arc<LayerActivations>>,
    /// Progress of the maps being computed.
    pub map_progress: Option<Arc<WorkProgress>>,
    /// The latest faithfulness scores and what they are of.
    pub faithfulness: Option<(FaithfulnessKey, Faithfulness)>,
    /// The faithfulness job in flight.
    pub faithfulness_pending: Option<(FaithfulnessKey, Arc<WorkProgress>)>,
    /// Scores that could not be computed (the error was shown once; not asked again).
    faithfulness_failed: Option<FaithfulnessKey>,
    pub annotations: AnnotationLayer,
    /// Marks of images shown before, so going back to an image brings its marks back.
    stash: HashMap<ImageOrigin, AnnotationLayer>,
    /// Images given on the command line: next/previous walk these when there are several.
    pub playlist: Vec<PathBuf>,
    tasks: HashMap<TaskKind, Task>,
    pub notice: Option<Notice>,
    /// How long the last analysis took.
    pub last_analysis: Option<Duration>,
    /// Counts the analyses received, so the UI can tell a new one from the one it drew.
    pub analysis_generation: u64,
    started: Instant,
}

impl Session {
    pub fn new(worker: Worker) -> Self {
        Self {
            worker,
            model: None,
            model_request: None,
            pending_model: None,
            image: None,
            analysis: None,
            base: None,
            class: 0,
            method: Method::Cam,
            layer: Stage::Norm5,
            score_cam_all_channels: false,
            maps: HashMap::new(),
            activations: HashMap::new(),
            map_progress: None,
            faithfulness: None,
            faithfulness_pending: None,
            faithfulness_failed: None,
            annotations: AnnotationLayer::default(),
            stash: HashMap::new(),
            playlist: Vec::new(),
            tasks: HashMap::new(),
            notice: None,
            last_analysis: None,
            analysis_generation: 0,
            started: Instant::now(),
        }
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
            TaskKind::Analysis,
            TaskKind::Explain,
            TaskKind::Faithfulness,
            TaskKind::Save,
            TaskKind::Clipboard,
        ];
        order
            .iter()
            .filter_map(|k| self.tasks.get(k).map(|t| t.label.clone()))
            .collect()
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            kind: NoticeKind::Info,
            text: text.into(),
        });
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            kind: NoticeKind::Error,
            text: text.into(),
        });
    }

    fn submit(&mut self, kind: TaskKind, label: String, job: impl FnOnce(u64) -> Job) {
        let ticket = self.worker.ticket();
        if self.worker.submit(job(ticket)) {
            self.tasks.insert(kind, Task { ticket, label });
        } else {
            self.error("camview's background worker has stopped; please restart camview");
        }
    }

    /// Starts loading a model; the current one stays until the new one is ready.
    pub fn open_model(&mut self, request: ModelRequest) {
        let label = format!("Loading {}…", request.name());
        self.pending_model = Some(request.clone());
        self.submit(TaskKind::Model, label, |ticket| Job::LoadModel {
            ticket,
            request,
        });
    }

    /// Starts opening an image; the current one stays until the new one is ready.
    pub fn open_image(&mut self, origin: ImageOrigin, max_texture_side: usize) {
        let label = format!("Opening {}…", origin.name());
        self.submit(TaskKind::Image, label, |ticket| Job::OpenImage {
            ticket,
            origin,
            max_texture_side,
        });
    }

    /// Runs the network on the current image with the current model (on the worker).
    fn analyse(&mut self) {
        let (Some(model), Some(image)) = (&self.model, &self.image) else {
            return;
        };
        let (classifier, source) = (Arc::clone(model), Arc::clone(&image.source));
        let label = format!("Analysing {}…", image.origin.name());
        self.submit(TaskKind::Analysis, label, |ticket| Job::Analyse {
            ticket,
            classifier,
            image: source,
        });
    }

    /// Shows `method` at `layer`: at once if its maps are cached (or it is CAM at norm5),
    /// otherwise once the worker has computed them.
    pub fn choose_map(&mut self, method: Method, layer: Stage) {
        self.method = method;
        self.layer = layer;
        self.show_choice();
    }

    /// The map the user chose, with its options.
    fn choice(&self) -> MapChoice {
        let mut choice = MapChoice::new(self.method, self.layer);
        if self.method == Method::ScoreCam && self.score_cam_all_channels {
            choice.options.score_cam_channels = None;
        }
        choice
    }

    fn display(&mut self, analysis: Arc<Analysis>) {
        self.analysis = Some(analysis);
        self.analysis_generation += 1;
    }

    fn stop_maps(&mut self) {
        if let Some(p) = self.map_progress.take() {
            p.cancel();
        }
        self.tasks.remove(&TaskKind::Explain);
    }

    fn show_choice(&mut self) {
        let Some(base) = self.base.clone() else {
            return;
        };
        let choice = self.choice();
        if choice.is_forward_pass_cam() {
            self.stop_maps();
            self.display(base);
            return;
        }
        if let Some(maps) = self.maps.get(&choice) {
            let shown = base.showing(maps.clone());
            self.stop_maps();
            self.display(Arc::new(shown));
            return;
        }
        let Some(model) = self.model.clone() else {
            return;
        };
        self.stop_maps();
        let progress = Arc::new(WorkProgress::default());
        self.map_progress = Some(Arc::clone(&progress));
        let activations = self.activations.get(&choice.layer).cloned();
        let label = format!("Computing {} at {}…", choice.method.title(), choice.layer);
        self.submit(TaskKind::Explain, label, |ticket| Job::Explain {
            ticket,
            classifier: model,
            analysis: base,
            choice,
            activations,
            progress,
        });
    }

    /// Stops computing the chosen maps and goes back to the method on screen.
    pub fn cancel_maps(&mut self) {
        self.stop_maps();
        self.revert_choice();
        self.info("Stopped computing the maps");
    }

    /// The choice becomes what is on screen again.
    fn revert_choice(&mut self) {
        if let Some(map) = self.analysis.as_ref().and_then(|a| a.maps.first()) {
            self.method = map.method;
            self.layer = map.layer;
        }
    }

    fn take_maps(&mut self, choice: MapChoice, result: Result<ExplainedMaps, String>) {
        self.map_progress = None;
        match result {
            Ok(e) => {
                self.activations.insert(choice.layer, e.activations);
                self.maps.insert(choice, e.maps);
                self.show_choice();
            }
            Err(e) => {
                self.revert_choice();
                self.error(e);
            }
        }
    }

    /// Asks for the faithfulness scores of the map on screen, unless they are known or being
    /// computed (called every frame while the panel is open).
    pub fn want_faithfulness(&mut self, steps: usize) {
        let (Some(model), Some(analysis)) = (self.model.clone(), self.analysis.clone()) else {
            return;
        };
        if self.is_busy(TaskKind::Explain) || self.is_busy(TaskKind::Analysis) {
            return; // the map on screen is about to change
        }
        let key = FaithfulnessKey {
            generation: self.analysis_generation,
            class: self.class,
            steps,
        };
        if self.faithfulness.as_ref().is_some_and(|(k, _)| *k == key)
            || self
                .faithfulness_pending
                .as_ref()
                .is_some_and(|(k, _)| *k == key)
        {
            return;
        }
        if let Some((_, p)) = self.faithfulness_pending.take() {
            p.cancel();
        }
        let progress = Arc::new(WorkProgress::default());
        self.faithfulness_pending = Some((key, Arc::clone(&progress)));
        let class = self.class;
        let label = "Scoring the map's faithfulness…".to_string();
        self.submit(TaskKind::Faithfulness, label, |ticket| Job::Faithfulness {
            ticket,
            classifier: model,
            analysis,
            class,
            options: FaithfulnessOptions {
                steps,
                ..FaithfulnessOptions::default()
            },
            progress,
        });
    }

    /// Stops the faithfulness job (the panel was closed).
    pub fn stop_faithfulness(&mut self) {
        if let Some((_, p)) = self.faithfulness_pending.take() {
            p.cancel();
        }
        self.tasks.remove(&TaskKind::Faithfulness);
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
        })
    }

    /// Composes and writes the overlay on the worker.
    pub fn save(&mut self, request: ComposeRequest, dest: PathBuf, replace: bool) {
        let label = format!("Saving {}…", dest.display());
        self.submit(TaskKind::Save, label, |ticket| Job::Compose {
            ticket,
            request: Box::new(request),
            purpose: Purpose::Save { dest, replace },
        });
    }

    /// Composes the overlay for the clipboard on the worker.
    pub fn copy(&mut self, request: ComposeRequest) {
        self.submit(
            TaskKind::Clipboard,
            "Copying the overlay…".to_string(),
            |ticket| Job::Compose {
                ticket,
                request: Box::new(request),
                purpose: Purpose::Clipboard,
            },
        );
    }

    pub fn select_class(&mut self, class: usize) {
        if self.model.as_ref().is_some_and(|m| class < m.labels.len()) {
            self.class = class;
        }
    }

    /// The classes by decreasing probability (the predicted one first).
    pub fn ranked(&self) -> Vec<usize> {
        self.analysis
            .as_ref()
            .map(|a| a.ranked())
            .unwrap_or_default()
    }

    /// Moves the class selection up (-1) or down (+1) the ranked list.
    pub fn step_class(&mut self, step: i32) {
        let ranked = self.ranked();
        if let Some(pos) = ranked.iter().position(|&c| c == self.class) {
            let next = (pos as i64 + i64::from(step)).clamp(0, ranked.len() as i64 - 1) as usize;
            self.class = ranked[next];
        }
    }

    /// Takes the worker's answers; returns what the UI must do.
    pub fn poll(&mut self) -> Arrivals {
        let mut arrivals = Arrivals::default();
        let outcomes = match self.worker.poll() {
            Ok(o) => o,
            Err(e) => {
                if !self.tasks.is_empty() {
                    self.tasks.clear();
                    self.error(e);
                }
                return arrivals;
            }
        };
        for outcome in outcomes {
            self.take(outcome, &mut arrivals);
        }
        arrivals
    }

    fn expects(&mut self, kind: TaskKind, ticket: u64) -> bool {
        if self.tasks.get(&kind).is_some_and(|t| t.ticket == ticket) {
            self.tasks.remove(&kind);
            true
        } else {
            false
        }
    }

    fn take(&mut self, outcome: Outcome, arrivals: &mut Arrivals) {
        let Outcome {
            ticket,
            elapsed,
            result,
        } = outcome;
        match result {
            Answer::Model(result) => {
                if !self.expects(TaskKind::Model, ticket) {
                    return;
                }
                match result {
                    Ok(classifier) => {
                        let request = self.pending_model.take();
                        if let Some(ModelRequest {
                            source: crate::model_request::ModelSource::File { path, .. },
                            ..
                        }) = &request
                        {
                            arrivals.model_file = Some(path.clone());
                        }
                        self.info(format!(
                            "Loaded {}: {}, {} classes",
                            model_name(&classifier),
                            classifier.info.architecture,
                            classifier.labels.len()
                        ));
                        self.model = Some(Arc::new(*classifier));
                        self.model_request = request;
                        self.analysis = None;
                        self.forget_maps();
                        if !self
                            .model
                            .as_ref()
                            .is_some_and(|m| m.stages().contains(&self.layer))
                        {
                            self.layer = Stage::Norm5;
                        }
                        self.class = 0;
                        self.analyse();
                    }
                    Err(e) => {
                        self.pending_model = None;
                        self.error(e);
                    }
                }
            }
            Answer::Image(result) => {
                if !self.expects(TaskKind::Image, ticket) {
                    return;
                }
                match result {
                    Ok(loaded) => {
                        if let Some(old) = self.image.take() {
                            let marks = std::mem::take(&mut self.annotations);
                            self.stash.insert(old.origin, marks);
                        }
                        self.annotations = self.stash.remove(&loaded.origin).unwrap_or_default();
                        if let ImageOrigin::File(p) = &loaded.origin {
                            arrivals.image_file = Some(p.clone());
                        }
                        arrivals.display = Some(loaded.display);
                        self.image = Some(CurrentImage {
                            origin: loaded.origin,
                            source: loaded.source,
                        });
                        self.analysis = None;
                        self.forget_maps();
                        self.tasks.remove(&TaskKind::Analysis);
                        self.analyse();
                        if self.model.is_none() && !self.is_busy(TaskKind::Model) {
                            self.info(
                                "Open a model (Open model…) to see its class activation maps",
                            );
                        }
                    }
                    Err(e) => self.error(e),
                }
            }
            Answer::Analysis(result) => {
                if !self.expects(TaskKind::Analysis, ticket) {
                    return;
                }
                match result {
                    Ok(analysis) => {
                        self.class = analysis.predicted;
                        self.forget_maps();
                        let analysis = Arc::new(analysis);
                        self.base = Some(Arc::clone(&analysis));
                        self.display(analysis);
                        self.last_analysis = Some(elapsed);
                        self.show_choice();
                    }
                    Err(e) => self.error(e),
                }
            }
            Answer::Saved(result) => {
                if !self.expects(TaskKind::Save, ticket) {
                    return;
                }
                match result {
                    Ok((overlay, sidecar)) => {
                        self.info(format!(
                            "Saved {} and {}",
                            overlay.display(),
                            sidecar
                                .file_name()
                                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
                        ));
                        arrivals.saved = Some(overlay);
                    }
                    Err(e) => self.error(e),
                }
            }
            Answer::Maps(choice, result) => {
                if self.expects(TaskKind::Explain, ticket) {
                    self.take_maps(choice, result);
                }
            }
            Answer::Faithfulness(result) => {
                if !self.expects(TaskKind::Faithfulness, ticket) {
                    return;
                }
                let Some((key, _)) = self.faithfulness_pending.take() else {
                    return;
                };
                match result {
                    Ok(scores) => self.faithfulness = Some((key, scores)),
                    Err(e) => {
                        self.faithfulness_failed = Some(key);
                        self.error(e);
                    }
                }
            }
            Answer::Clipboard(result) => {
                if !self.expects(TaskKind::Clipboard, ticket) {
                    return;
                }
                match result {
                    Ok(image) => {
                        self.info(format!(
                            "Copied the overlay ({} x {}) to the clipboard",
                            image.width(),
                            image.height()
                        ));
                        arrivals.clipboard = Some(image);
                    }
                    Err(e) => self.error(e),
                }
            }
        }
    }

    /// Drops everything computed for the image before (maps, activations, scores, work).
    fn forget_maps(&mut self) {
        self.stop_maps();
        self.stop_faithfulness();
        self.base = None;
        self.maps.clear();
        self.activations.clear();
        self.faithfulness = None;
    }

    /// Seconds since the session started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
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
