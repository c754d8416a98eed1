//! The slow work (reading a model, decoding an image, running the network, composing and writing
//! an overlay) runs on one named thread, `camview-worker`, in the order it was asked for. Results
//! come back over a channel, and the worker wakes the UI (`request_repaint`) after each.
//!
//! Every job carries a ticket; the session keeps the ticket of the latest request of each kind
//! and ignores an answer whose ticket it no longer expects, so a slow answer to an old request
//! never replaces a newer one.
//!
//! A second thread, `camview-prefetch` (`prefetch`), prepares the images next to the one on
//! screen. It has its own queue, so what the user asks for never waits behind it, and it starts
//! each of its steps only while this worker has nothing to do.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use eframe::egui::ColorImage;

use crate::explain::faithfulness::{self, Faithfulness, FaithfulnessOptions};
use crate::explain::sanity::{Randomisation, SanityReport, sanity_check};
use crate::explain::{self, Analysis, Classes, ExplainedMaps, LayerActivations, MapChoice};
use crate::export::save_mask_png;
use crate::imaging::levels::DisplayWindow;
use crate::imaging::{self, SourceImage};
use crate::model_request::ModelRequest;
use crate::network::Classifier;
use crate::render::annotation::{Annotation, region_mask};

use super::prefetch::{self, PrefetchJob, Prepared};
use super::pyramid::Pyramid;
use super::save::{self, ComposeRequest, SavedFiles};

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageOrigin {
    File(PathBuf),
    /// One of the demo images built into camview, by its index in `demo_images()`.
    Demo {
        index: usize,
        name: String,
    },
}

impl ImageOrigin {
    /// The file name, for titles and messages.
    pub fn name(&self) -> String {
        match self {
            Self::File(p) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
            Self::Demo { name, .. } => name.clone(),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::File(p) => Some(p),
            Self::Demo { .. } => None,
        }
    }

    /// What the file is now (`None` for a demo image, which cannot change, or a file that
    /// cannot be read).
    pub fn identity(&self) -> Option<FileIdentity> {
        let meta = std::fs::metadata(self.path()?).ok()?;
        Some(FileIdentity {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// A file's size and modification time: a prepared image is shown only while its file still
/// has the identity it had when it was read (a changed file is read again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

/// A decoded image with the copy the screen shows (shrunk only if the GPU cannot hold it), as a
/// pyramid of levels.
#[derive(Clone)]
pub struct LoadedImage {
    pub origin: ImageOrigin,
    /// The file's identity just before it was read.
    pub identity: Option<FileIdentity>,
    /// The largest texture side it was made for.
    pub max_texture_side: usize,
    pub source: Arc<SourceImage>,
    pub display: Pyramid,
}

/// An image opened on the worker, with its forward pass when a model came with the request.
pub struct Opened {
    pub image: LoadedImage,
    pub analysis: Option<Analysed>,
}

/// A forward pass, the model that ran it and how long it took.
pub struct Analysed {
    pub classifier: Arc<Classifier>,
    pub result: Result<Analysis, String>,
    pub elapsed: Duration,
}

/// What a composed overlay is for.
#[derive(Debug, Clone)]
pub enum Purpose {
    /// Write it (and its sidecar) to `dest`; `replace` once the user agreed to replace a file.
    Save {
        dest: PathBuf,
        replace: bool,
    },
    Clipboard,
}

/// A piece of slow work and the ticket its answer will carry.
pub struct Job {
    pub ticket: u64,
    pub work: Work,
}

pub enum Work {
    LoadModel(ModelRequest),
    OpenImage {
        origin: ImageOrigin,
        /// The frame to open (from 1; only DICOM files have more than one).
        frame: u32,
        /// The largest texture the GPU takes.
        max_texture_side: usize,
        /// The window to show it through (`None`: the file's own).
        display: Option<DisplayWindow>,
        /// The model to analyse it with, beside building its texture (`None`: no model yet).
        classifier: Option<Arc<Classifier>>,
    },
    /// The image shown through another display window (large images: small ones are rendered
    /// in the frame).
    RenderDisplay {
        image: Arc<SourceImage>,
        display: Option<DisplayWindow>,
        max_texture_side: usize,
    },
    Analyse {
        classifier: Arc<Classifier>,
        image: Arc<SourceImage>,
    },
    Compose {
        request: Box<ComposeRequest>,
        purpose: Purpose,
    },
    /// The maps of `classes` by a method at a layer, from the forward pass's analysis (and
    /// the layer's activations when a previous job computed them).
    Explain {
        classifier: Arc<Classifier>,
        analysis: Arc<Analysis>,
        choice: MapChoice,
        classes: Classes,
        activations: Option<Arc<LayerActivations>>,
        progress: Arc<WorkProgress>,
        purpose: MapPurpose,
    },
    /// The faithfulness scores of one class's map.
    Faithfulness {
        classifier: Arc<Classifier>,
        analysis: Arc<Analysis>,
        class: usize,
        options: FaithfulnessOptions,
        progress: Arc<WorkProgress>,
    },
    /// The findings of an image as a mask PNG (`dest`'s folder is made if missing; never over
    /// `source`, the image).
    SaveMask {
        dest: PathBuf,
        source: Option<PathBuf>,
        width: u32,
        height: u32,
        findings: Vec<Annotation>,
    },
    /// The model randomisation test of one class's map by `choice`.
    Sanity {
        classifier: Arc<Classifier>,
        image: Arc<SourceImage>,
        choice: MapChoice,
        class: usize,
        mode: Randomisation,
        seed: u64,
        progress: Arc<WorkProgress>,
    },
}

/// What a map job is for: the maps on screen, or the Compare window (answered apart, so
/// neither replaces the other's job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapPurpose {
    Shown,
    Compare,
}

/// Progress of a long job, shared with the UI, which can also cancel it.
#[derive(Debug, Default)]
pub struct WorkProgress {
    done: AtomicUsize,
    total: AtomicUsize,
    cancel: AtomicBool,
}

impl WorkProgress {
    /// Done as a fraction, 0 before the job reported anything.
    pub fn fraction(&self) -> f32 {
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            0.0
        } else {
            self.done.load(Ordering::Relaxed) as f32 / total as f32
        }
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl explain::Progress for WorkProgress {
    fn report(&self, done: usize, total: usize) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// The answer to a job, with how long it took.
pub struct Outcome {
    pub ticket: u64,
    pub elapsed: Duration,
    pub result: Answer,
}

pub enum Answer {
    Model(Result<Box<Classifier>, String>),
    Image(Result<Opened, String>),
    /// The image texture through a new display window.
    Display(Result<Pyramid, String>),
    Analysis(Result<Analysis, String>),
    Saved(Result<SavedFiles, String>),
    Clipboard(Result<ColorImage, String>),
    Maps {
        choice: MapChoice,
        result: Result<ExplainedMaps, String>,
        purpose: MapPurpose,
    },
    Faithfulness(Result<Faithfulness, String>),
    Sanity(Result<SanityReport, String>),
    MaskSaved(Result<PathBuf, String>),
    /// A neighbour prepared by the prefetch thread (its errors are the user's only once they
    /// open it themselves).
    Prepared(Result<Box<Prepared>, String>),
}

pub struct Worker {
    jobs: Sender<Job>,
    prefetch_jobs: Sender<PrefetchJob>,
    outcomes: Receiver<Outcome>,
    /// Jobs submitted and not answered yet: the prefetch thread waits while there are any.
    pending: Arc<AtomicUsize>,
    next_ticket: u64,
}

impl Worker {
    /// Starts the threads; `wake` is called after each answer (the UI's `request_repaint`).
    pub fn spawn(wake: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let (jobs, job_rx) = channel::<Job>();
        let (prefetch_jobs, prefetch_rx) = channel::<PrefetchJob>();
        let (outcome_tx, outcomes) = channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(wake);
        let (answers, done, wake_ui) =
            (outcome_tx.clone(), Arc::clone(&pending), Arc::clone(&wake));
        std::thread::Builder::new()
            .name("camview-worker".into())
            .spawn(move || {
                while let Ok(job) = job_rx.recv() {
                    let outcome = run_job(job);
                    done.fetch_sub(1, Ordering::SeqCst);
                    if answers.send(outcome).is_err() {
                        break;
                    }
                    wake_ui();
                }
            })?;
        let busy = Arc::clone(&pending);
        std::thread::Builder::new()
            .name("camview-prefetch".into())
            .spawn(move || {
                while let Ok(job) = prefetch_rx.recv() {
                    let outcome = prefetch::run(job, &busy);
                    if outcome_tx.send(outcome).is_err() {
                        break;
                    }
                    wake();
                }
            })?;
        Ok(Self {
            jobs,
            prefetch_jobs,
            outcomes,
            pending,
            next_ticket: 1,
        })
    }

    /// How many tickets were handed out so far: one per job and per prefetch submitted.
    pub fn tickets_issued(&self) -> u64 {
        self.next_ticket - 1
    }

    /// A fresh ticket for the next job.
    pub fn ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// Queues a job; false if the worker has stopped.
    pub fn submit(&self, job: Job) -> bool {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let sent = self.jobs.send(job).is_ok();
        if !sent {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        sent
    }

    /// Queues a job for the prefetch thread; false if it has stopped.
    pub fn prefetch(&self, job: PrefetchJob) -> bool {
        self.prefetch_jobs.send(job).is_ok()
    }

    /// The answers that arrived since the last call; `Err` once the worker has stopped.
    pub fn poll(&self) -> Result<Vec<Outcome>, String> {
        let mut out = Vec::new();
        loop {
            match self.outcomes.try_recv() {
                Ok(o) => out.push(o),
                Err(TryRecvError::Empty) => return Ok(out),
                Err(TryRecvError::Disconnected) if out.is_empty() => {
                    return Err("the background worker stopped".to_string());
                }
                Err(TryRecvError::Disconnected) => return Ok(out),
            }
        }
    }
}

/// Runs one job; each kind turns a panic into an error message so the viewer keeps running.
fn run_job(job: Job) -> Outcome {
    let started = Instant::now();
    let result = match job.work {
        Work::LoadModel(request) => load_model(&request),
        Work::OpenImage {
            origin,
            frame,
            max_texture_side,
            display,
            classifier,
        } => Answer::Image(guard(&origin.name(), || {
            let display = display.as_ref();
            open_image(origin.clone(), frame, max_texture_side, display, classifier)
        })),
        Work::RenderDisplay {
            image,
            display,
            max_texture_side,
        } => Answer::Display(guard(&image.name, || {
            Ok(display_texture(&image, display.as_ref(), max_texture_side))
        })),
        Work::Analyse { classifier, image } => {
            Answer::Analysis(guard(&image.name, || analyse(&classifier, &image)))
        }
        Work::Compose { request, purpose } => compose(&request, purpose),
        Work::Explain {
            classifier,
            analysis,
            choice,
            classes,
            activations,
            progress,
            purpose,
        } => {
            let result = guard(choice.method.title(), || {
                explain_maps(
                    &classifier,
                    &analysis,
                    &choice,
                    &classes,
                    activations,
                    &progress,
                )
            });
            Answer::Maps {
                choice,
                result,
                purpose,
            }
        }
        Work::Faithfulness {
            classifier,
            analysis,
            class,
            options,
            progress,
        } => score_faithfulness(&classifier, &analysis, class, &options, &progress),
        Work::SaveMask {
            dest,
            source,
            width,
            height,
            findings,
        } => Answer::MaskSaved(guard(&dest.display().to_string(), || {
            save_mask(&dest, source.as_deref(), width, height, &findings)
        })),
        Work::Sanity {
            classifier,
            image,
            choice,
            class,
            mode,
            seed,
            progress,
        } => Answer::Sanity(guard("the sanity check", || {
            sanity_check(&classifier, &image, &choice, class, mode, seed, &*progress)
                .map_err(|e| e.to_string())
        })),
    };
    Outcome {
        ticket: job.ticket,
        elapsed: started.elapsed(),
        result,
    }
}

fn load_model(request: &ModelRequest) -> Answer {
    Answer::Model(guard(&request.name(), || {
        request.load().map(Box::new).map_err(|e| e.to_string())
    }))
}

/// The forward pass (CAM at norm5 comes with it).
fn analyse(classifier: &Classifier, image: &SourceImage) -> Result<Analysis, String> {
    explain::analyse(classifier, image, &classifier.preprocessing).map_err(|e| e.to_string())
}

/// Composes the overlay with the engine, then writes it or hands it over for the clipboard.
fn compose(request: &ComposeRequest, purpose: Purpose) -> Answer {
    match purpose {
        Purpose::Save { dest, replace } => {
            Answer::Saved(guard(&dest.display().to_string(), || {
                save::save(request, &dest, replace)
            }))
        }
        Purpose::Clipboard => Answer::Clipboard(guard("the overlay", || {
            let (img, _) = request.overlay().compose().map_err(|e| e.to_string())?;
            Ok(ColorImage::from_rgb(
                [img.width() as usize, img.height() as usize],
                img.as_raw(),
            ))
        })),
    }
}

/// Every class's map for `choice`: the viewer's one call into `explain::methods` (the user's
/// jobs and the prefetch thread both come here).
pub(super) fn explain_maps(
    classifier: &Classifier,
    analysis: &Analysis,
    choice: &MapChoice,
    classes: &Classes,
    activations: Option<Arc<LayerActivations>>,
    progress: &WorkProgress,
) -> Result<ExplainedMaps, String> {
    explain::methods::explain_maps(classifier, analysis, choice, classes, activations, progress)
        .map_err(|e| e.to_string())
}

/// Writes the findings' mask to `dest`, making its folder.
fn save_mask(
    dest: &Path,
    source: Option<&Path>,
    width: u32,
    height: u32,
    findings: &[Annotation],
) -> Result<PathBuf, String> {
    if let Some(folder) = dest.parent() {
        std::fs::create_dir_all(folder).map_err(|e| {
            format!(
                "{}: cannot make the folder: {}",
                folder.display(),
                crate::describe_io_error(&e)
            )
        })?;
    }
    let mask = region_mask(findings, width, height);
    let sources: Vec<&Path> = source.into_iter().collect();
    save_mask_png(dest, width, height, &mask, true, &sources).map_err(|e| e.to_string())?;
    Ok(dest.to_path_buf())
}

fn score_faithfulness(
    classifier: &Classifier,
    analysis: &Analysis,
    class: usize,
    options: &FaithfulnessOptions,
    progress: &WorkProgress,
) -> Answer {
    Answer::Faithfulness(guard("faithfulness", || {
        let map = analysis
            .map(class)
            .ok_or_else(|| format!("the map of class {class} has not been computed"))?;
        faithfulness::faithfulness(classifier, &analysis.input, map, options, progress)
            .map_err(|e| e.to_string())
    }))
}

pub(super) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(format!(
            "{what}: camview hit an internal error (see the terminal for details)"
        ))
    })
}

/// Decodes an image, runs `classifier`'s forward pass on it and builds its texture levels, in
/// one job: the image and its heat map arrive together, with no round trip through the UI.
pub(super) fn open_image(
    origin: ImageOrigin,
    frame: u32,
    max_texture_side: usize,
    display: Option<&DisplayWindow>,
    classifier: Option<Arc<Classifier>>,
) -> Result<Opened, String> {
    let identity = origin.identity();
    let source = match &origin {
        ImageOrigin::File(path) => imaging::open_image_frame(path, frame),
        ImageOrigin::Demo { index, name } => {
            let images = super::demo_images();
            match images.get(*index) {
                Some((_, bytes)) => imaging::decode_image(name, bytes),
                None => return Err(format!("{name}: no such demo image")),
            }
        }
    }
    .map_err(|e| e.to_string())?;
    // One after the other: run side by side (on rayon or on a thread of their own), the
    // forward pass took 1.5-4 times as long in the viewer (both allocate hundreds of MB of fresh
    // memory at once) and the heat map came later, not sooner.
    let analysis = classifier.map(|classifier| {
        let started = Instant::now();
        let result = analyse(&classifier, &source);
        Analysed {
            classifier,
            result,
            elapsed: started.elapsed(),
        }
    });
    let display = display_texture(&source, display, max_texture_side);
    Ok(Opened {
        image: LoadedImage {
            origin,
            identity,
            max_texture_side,
            source: Arc::new(source),
            display,
        },
        analysis,
    })
}

/// The image through `display` as the screen draws it (what `SourceImage::displayed` shows,
/// which is also the base of a saved overlay), with its smaller levels.
pub fn display_texture(
    image: &SourceImage,
    display: Option<&DisplayWindow>,
    max_side: usize,
) -> Pyramid {
    Pyramid::build(display_copy(&image.displayed(display), max_side))
}

/// The image as a texture: itself, or shrunk to what the GPU can hold.
fn display_copy(rgb: &image::RgbImage, max_side: usize) -> ColorImage {
    let (w, h) = rgb.dimensions();
    let max_side = max_side.max(64) as u32;
    if w <= max_side && h <= max_side {
        return ColorImage::from_rgb([w as usize, h as usize], rgb.as_raw());
    }
    let s = f64::from(max_side) / f64::from(w.max(h));
    let (nw, nh) = (
        ((f64::from(w) * s).round() as u32).max(1),
        ((f64::from(h) * s).round() as u32).max(1),
    );
    let small = image::imageops::resize(rgb, nw, nh, image::imageops::FilterType::Triangle);
    ColorImage::from_rgb([nw as usize, nh as usize], small.as_raw())
}
