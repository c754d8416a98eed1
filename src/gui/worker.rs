//! The slow work (reading a model, decoding an image, running the network, composing and writing
//! an overlay) runs on one named thread, `camview-worker`, in the order it was asked for. Results
//! come back over a channel, and the worker wakes the UI (`request_repaint`) after each.
//!
//! Every job carries a ticket; the session keeps the ticket of the latest request of each kind
//! and ignores an answer whose ticket it no longer expects, so a slow answer to an old request
//! never replaces a newer one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use eframe::egui::ColorImage;

use crate::explain::faithfulness::{self, Faithfulness, FaithfulnessOptions};
use crate::explain::{self, Analysis, Classes, ExplainedMaps, LayerActivations, MapChoice};
use crate::imaging::levels::DisplayWindow;
use crate::imaging::{self, SourceImage};
use crate::model_request::ModelRequest;
use crate::network::Classifier;

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

    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::File(p) => Some(p),
            Self::Demo { .. } => None,
        }
    }
}

/// A decoded image with the copy the screen shows (shrunk only if the GPU cannot hold it).
pub struct LoadedImage {
    pub origin: ImageOrigin,
    pub source: Arc<SourceImage>,
    pub display: ColorImage,
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
    },
    /// The faithfulness scores of one class's map.
    Faithfulness {
        classifier: Arc<Classifier>,
        analysis: Arc<Analysis>,
        class: usize,
        options: FaithfulnessOptions,
        progress: Arc<WorkProgress>,
    },
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
    Image(Result<LoadedImage, String>),
    /// The image texture through a new display window.
    Display(Result<ColorImage, String>),
    Analysis(Result<Analysis, String>),
    Saved(Result<SavedFiles, String>),
    Clipboard(Result<ColorImage, String>),
    Maps {
        choice: MapChoice,
        result: Result<ExplainedMaps, String>,
    },
    Faithfulness(Result<Faithfulness, String>),
}

pub struct Worker {
    jobs: Sender<Job>,
    outcomes: Receiver<Outcome>,
    next_ticket: u64,
}

impl Worker {
    /// Starts the thread; `wake` is called after each answer (the UI's `request_repaint`).
    pub fn spawn(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (jobs, job_rx) = channel::<Job>();
        let (outcome_tx, outcomes) = channel();
        std::thread::Builder::new()
            .name("camview-worker".into())
            .spawn(move || {
                while let Ok(job) = job_rx.recv() {
                    let outcome = run_job(job);
                    if outcome_tx.send(outcome).is_err() {
                        break;
                    }
                    wake();
                }
            })?;
        Ok(Self {
            jobs,
            outcomes,
            next_ticket: 1,
        })
    }

    /// A fresh ticket for the next job.
    pub fn ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// Queues a job; false if the worker has stopped.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
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
        } => Answer::Image(guard(&origin.name(), || {
            open_image(origin.clone(), frame, max_texture_side, display.as_ref())
        })),
        Work::RenderDisplay {
            image,
            display,
            max_texture_side,
        } => Answer::Display(guard(&image.name, || {
            Ok(display_texture(&image, display.as_ref(), max_texture_side))
        })),
        Work::Analyse { classifier, image } => analyse(&classifier, &image),
        Work::Compose { request, purpose } => compose(&request, purpose),
        Work::Explain {
            classifier,
            analysis,
            choice,
            classes,
            activations,
            progress,
        } => explain_maps(
            &classifier,
            &analysis,
            choice,
            &classes,
            activations,
            &progress,
        ),
        Work::Faithfulness {
            classifier,
            analysis,
            class,
            options,
            progress,
        } => score_faithfulness(&classifier, &analysis, class, &options, &progress),
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

fn analyse(classifier: &Classifier, image: &SourceImage) -> Answer {
    Answer::Analysis(guard(&image.name, || {
        explain::analyse(classifier, image, &classifier.preprocessing).map_err(|e| e.to_string())
    }))
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

fn explain_maps(
    classifier: &Classifier,
    analysis: &Analysis,
    choice: MapChoice,
    classes: &Classes,
    activations: Option<Arc<LayerActivations>>,
    progress: &WorkProgress,
) -> Answer {
    let result = guard(choice.method.title(), || {
        explain::methods::explain_maps(
            classifier,
            analysis,
            &choice,
            classes,
            activations,
            progress,
        )
        .map_err(|e| e.to_string())
    });
    Answer::Maps { choice, result }
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

fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(format!(
            "{what}: camview hit an internal error (see the terminal for details)"
        ))
    })
}

fn open_image(
    origin: ImageOrigin,
    frame: u32,
    max_texture_side: usize,
    display: Option<&DisplayWindow>,
) -> Result<LoadedImage, String> {
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
    let display = display_texture(&source, display, max_texture_side);
    Ok(LoadedImage {
        origin,
        source: Arc::new(source),
        display,
    })
}

/// The image through `display` as a texture (what `SourceImage::displayed` shows, which is
/// also the base of a saved overlay).
pub fn display_texture(
    image: &SourceImage,
    display: Option<&DisplayWindow>,
    max_side: usize,
) -> ColorImage {
    display_copy(&image.displayed(display), max_side)
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
