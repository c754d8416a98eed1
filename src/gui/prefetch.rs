//! The `camview-prefetch` thread: while the user looks at an image, the images before and after
//! it in the folder (or the list opened together) are decoded, analysed and explained with the
//! chosen method, so Left and Right show them at once (`Session::open_image` takes them).
//!
//! It runs the worker's own steps (`worker::open_image` with the forward pass, then
//! `explain_maps`), one at a time, and starts each only while the worker has no job of the user's: a request never waits
//! in a queue behind a prefetch. A step already running when the user asks for something runs
//! on beside it (a decode or a forward pass cannot be interrupted; the maps check the cancel flag
//! between batches), and the session cancels the prefetches it no longer wants.
//!
//! A prepared image is tied to what it was made from: the file's identity (size and modification
//! time), the model (which holds the preprocessing), the texture size limit; its maps are kept
//! by `MapChoice` exactly as the session keeps the current image's, so a changed file, model or
//! choice is never shown from here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::explain::{
    Analysis, ClassActivationMap, Classes, ExplainedMaps, LayerActivations, MapChoice, Progress,
    Stage,
};
use crate::network::Classifier;

use super::worker::{self, Answer, ImageOrigin, LoadedImage, Outcome, WorkProgress};

/// The maps computed for one image: by method, layer and options, and the activations by layer
/// (a new method at a layer already seen runs no forward pass up to it).
#[derive(Clone, Default)]
pub struct ImageMaps {
    pub maps: HashMap<MapChoice, Vec<ClassActivationMap>>,
    pub activations: HashMap<Stage, Arc<LayerActivations>>,
}

impl ImageMaps {
    /// Adds maps of some classes to `choice`'s (kept in class order).
    pub fn insert(&mut self, choice: MapChoice, explained: ExplainedMaps) {
        self.activations.insert(choice.layer, explained.activations);
        let cached = self.maps.entry(choice).or_default();
        for map in explained.maps {
            if !cached.iter().any(|m| m.class == map.class) {
                cached.push(map);
            }
        }
        cached.sort_by_key(|m| m.class);
    }

    /// Whether `choice`'s maps are here or come with the forward pass `base`.
    pub fn has(&self, base: &Analysis, choice: &MapChoice) -> bool {
        base.shows(choice) || self.maps.contains_key(choice)
    }
}

/// An image ready to be shown: decoded, its texture levels built, analysed, with its maps.
#[derive(Clone)]
pub struct Prepared {
    pub image: LoadedImage,
    /// The model it was analysed with.
    pub classifier: Arc<Classifier>,
    /// The forward pass.
    pub base: Arc<Analysis>,
    pub maps: ImageMaps,
    /// How long the forward pass took (the status line shows it).
    pub analysis_time: Duration,
}

impl Prepared {
    /// Whether it may be shown as `origin` opened now with `classifier` at `max_texture_side`:
    /// the same model and limit, and the file unchanged since it was read.
    pub fn fits(&self, origin: &ImageOrigin, classifier: &Arc<Classifier>, side: usize) -> bool {
        self.image.origin == *origin
            && Arc::ptr_eq(&self.classifier, classifier)
            && self.image.max_texture_side == side
            && self.image.identity == origin.identity()
    }
}

/// How much the session's caches hold now, and how many jobs it has asked for (read by
/// `Session::cache_sizes`; the soak test, tests/soak.rs, checks each against its bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSizes {
    /// Neighbours kept prepared (at most `session::neighbours::PREPARED_IMAGES`, 2).
    pub prepared: usize,
    /// Neighbours being prepared (at most the two wanted).
    pub prefetching: usize,
    /// Map choices cached for the image on screen (`ImageMaps::maps`).
    pub map_choices: usize,
    /// Layers whose activations are cached for the image on screen.
    pub activations: usize,
    /// The most map choices cached for one prepared neighbour.
    pub prepared_map_choices: usize,
    /// The most layers with activations cached for one prepared neighbour.
    pub prepared_activations: usize,
    /// Images whose marks are kept for when they are shown again (one per image left).
    pub stashed_marks: usize,
    /// Tickets handed out so far (`Worker::tickets_issued`).
    pub tickets: u64,
}

/// What to prepare.
pub struct PrefetchJob {
    pub ticket: u64,
    pub origin: ImageOrigin,
    pub classifier: Arc<Classifier>,
    pub choice: MapChoice,
    pub max_texture_side: usize,
    /// The image already prepared with another choice: only the maps are missing.
    pub have: Option<Box<Prepared>>,
    /// Cancelled when the session no longer wants it.
    pub progress: Arc<WorkProgress>,
}

/// Prepares `job`'s image, each step only once the worker is idle (`user_jobs` is 0).
pub(super) fn run(job: PrefetchJob, user_jobs: &AtomicUsize) -> Outcome {
    let started = Instant::now();
    let name = job.origin.name();
    let ticket = job.ticket;
    let result = worker::guard(&name, || prepare(job, user_jobs)).map(Box::new);
    Outcome {
        ticket,
        elapsed: started.elapsed(),
        result: Answer::Prepared(result),
    }
}

fn prepare(job: PrefetchJob, user_jobs: &AtomicUsize) -> Result<Prepared, String> {
    let PrefetchJob {
        origin,
        classifier,
        choice,
        max_texture_side,
        have,
        progress,
        ..
    } = job;
    let step = || wait_for_idle_worker(user_jobs, &progress);
    let mut prepared = match have {
        Some(prepared) => *prepared,
        None => {
            step()?;
            let model = Some(Arc::clone(&classifier));
            let opened = worker::open_image(origin, 1, max_texture_side, None, model)?;
            let analysed = opened
                .analysis
                .ok_or_else(|| "the image was not analysed".to_string())?;
            Prepared {
                image: opened.image,
                classifier: Arc::clone(&classifier),
                base: Arc::new(analysed.result?),
                maps: ImageMaps::default(),
                analysis_time: analysed.elapsed,
            }
        }
    };
    if !prepared.maps.has(&prepared.base, &choice) {
        step()?;
        let activations = prepared.maps.activations.get(&choice.layer).cloned();
        // the class the image opens on; the others follow once it is shown
        let classes = Classes::Only(vec![prepared.base.predicted]);
        let explained = worker::explain_maps(
            &classifier,
            &prepared.base,
            &choice,
            &classes,
            activations,
            &progress,
        )?;
        prepared.maps.insert(choice, explained);
    }
    Ok(prepared)
}

/// Returns once the worker has no job of the user's, or an error once the prefetch is cancelled.
fn wait_for_idle_worker(user_jobs: &AtomicUsize, progress: &WorkProgress) -> Result<(), String> {
    loop {
        if progress.cancelled() {
            return Err("cancelled".to_string());
        }
        if user_jobs.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
