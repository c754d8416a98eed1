//! The images before and after the one on screen, prepared in the background (`gui::prefetch`)
//! once its chosen maps are shown, so Left and Right show theirs at once.
//!
//! At most `PREPARED_IMAGES` are kept besides the one on screen: the previous and the next.
//! The image the user leaves is kept prepared too (it is the new image's neighbour), so walking
//! back costs nothing either. For an 8000 x 8000 image each costs about 0.55 GB (the decoded
//! RGB, 192 MB, and the texture levels, 256 MB + a third).

use std::sync::Arc;

use crate::explain::MapChoice;
use crate::gui::prefetch::{CacheSizes, PrefetchJob, Prepared};
use crate::gui::worker::{ImageOrigin, LoadedImage, WorkProgress};

use super::{Session, TaskKind};

/// How many images are kept prepared besides the one on screen.
pub const PREPARED_IMAGES: usize = 2;

/// A neighbour being prepared.
pub(super) struct Prefetching {
    ticket: u64,
    origin: ImageOrigin,
    choice: MapChoice,
    progress: Arc<WorkProgress>,
}

impl Session {
    /// Whether neighbours are being prepared.
    pub fn is_prefetching(&self) -> bool {
        !self.prefetching.is_empty()
    }

    /// The images kept prepared, oldest first.
    pub fn prepared_images(&self) -> Vec<&ImageOrigin> {
        self.prepared.iter().map(|p| &p.image.origin).collect()
    }

    /// How much the caches hold now (the soak test checks their bounds).
    pub fn cache_sizes(&self) -> CacheSizes {
        let most = |f: fn(&Prepared) -> usize| self.prepared.iter().map(f).max().unwrap_or(0);
        CacheSizes {
            prepared: self.prepared.len(),
            prefetching: self.prefetching.len(),
            map_choices: self.maps.maps.len(),
            activations: self.maps.activations.len(),
            prepared_map_choices: most(|p| p.maps.maps.len()),
            prepared_activations: most(|p| p.maps.activations.len()),
            stashed_marks: self.stash.len(),
            tickets: self.worker.tickets_issued(),
        }
    }

    /// Prepares the next and previous images with the chosen map, unless they are ready or
    /// being prepared; forgets the prepared images that are no longer neighbours and stops the
    /// preparations no longer wanted. Called when the chosen maps of the image are on screen.
    pub(super) fn prefetch_neighbours(&mut self) {
        let (Some(model), Some(image)) = (self.model.clone(), self.image.as_ref()) else {
            return;
        };
        if self.is_busy(TaskKind::Image) || self.is_busy(TaskKind::Model) {
            return; // what is on screen is about to change
        }
        let (current, side) = (image.origin.clone(), image.max_texture_side);
        let choice = self.choice();
        let mut wanted: Vec<ImageOrigin> = self
            .neighbours(&[1, -1])
            .into_iter()
            .flatten()
            .filter(|o| *o != current)
            .collect();
        wanted.dedup(); // of two images, the next is the previous
        self.prepared.retain(|p| wanted.contains(&p.image.origin));
        self.cancel_prefetches(|p| !wanted.contains(&p.origin) || p.choice != choice);
        for origin in wanted {
            if self.prefetching.iter().any(|p| p.origin == origin) {
                continue;
            }
            let have = self
                .prepared
                .iter()
                .find(|p| p.fits(&origin, &model, side))
                .cloned();
            if have.as_ref().is_some_and(|p| p.maps.has(&p.base, &choice)) {
                continue;
            }
            let progress = Arc::new(WorkProgress::default());
            let ticket = self.worker.ticket();
            let job = PrefetchJob {
                ticket,
                origin: origin.clone(),
                classifier: Arc::clone(&model),
                choice,
                max_texture_side: side,
                have: have.map(Box::new),
                progress: Arc::clone(&progress),
            };
            if self.worker.prefetch(job) {
                self.prefetching.push(Prefetching {
                    ticket,
                    origin,
                    choice,
                    progress,
                });
            }
        }
    }

    /// A neighbour prepared: kept if it is still wanted. A failure is not the user's concern
    /// until they open that image themselves (the worker then reports it).
    pub(super) fn take_prepared(&mut self, ticket: u64, result: Result<Box<Prepared>, String>) {
        let Some(i) = self.prefetching.iter().position(|p| p.ticket == ticket) else {
            return;
        };
        self.prefetching.remove(i);
        if let Ok(prepared) = result {
            self.keep_prepared(*prepared);
        }
    }

    fn keep_prepared(&mut self, prepared: Prepared) {
        self.prepared
            .retain(|p| p.image.origin != prepared.image.origin);
        self.prepared.push(prepared);
        while self.prepared.len() > PREPARED_IMAGES {
            self.prepared.remove(0);
        }
    }

    /// Shows `origin` from the prepared images if it is there and still fits (same file, model
    /// and texture size limit): the image, its forward pass and its maps at once, and the chosen
    /// maps computed now if they were not among them. False if it must be opened on the worker.
    pub(super) fn show_prepared(&mut self, origin: &ImageOrigin, max_texture_side: usize) -> bool {
        // The user asks for it now: a preparation in flight would only repeat the worker's job.
        self.cancel_prefetches(|p| p.origin == *origin);
        let Some(model) = self.model.clone() else {
            return false;
        };
        let Some(i) = self.prepared.iter().position(|p| p.image.origin == *origin) else {
            return false;
        };
        let prepared = self.prepared.remove(i);
        if !prepared.fits(origin, &model, max_texture_side) {
            return false;
        }
        // It answers the latest request for an image: one still in flight is superseded.
        self.tasks.remove(&TaskKind::Image);
        self.install_image(prepared.image);
        self.maps = prepared.maps;
        self.adopt_analysis(prepared.base, prepared.analysis_time);
        self.show_choice();
        true
    }

    /// Keeps the image on screen prepared as it is replaced by `incoming`: its texture through
    /// the file's window, its forward pass and maps. Not a frame of a multi-frame file other than
    /// the first, nor an image shown through a window of the user's (opening shows the file's).
    pub(super) fn stash_prepared(&mut self, incoming: &ImageOrigin) {
        let (Some(image), Some(base), Some(model)) = (&self.image, &self.base, &self.model) else {
            return;
        };
        if image.origin == *incoming || self.display.is_some() || self.frame().0 != 1 {
            return;
        }
        let prepared = Prepared {
            image: LoadedImage {
                origin: image.origin.clone(),
                identity: image.identity,
                max_texture_side: image.max_texture_side,
                source: Arc::clone(&image.source),
                display: image.opened_display.clone(),
            },
            classifier: Arc::clone(model),
            base: Arc::clone(base),
            maps: std::mem::take(&mut self.maps),
            analysis_time: self.last_analysis.unwrap_or_default(),
        };
        self.keep_prepared(prepared);
    }

    /// Forgets every prepared image and stops the preparations (a new model).
    pub(super) fn forget_prepared(&mut self) {
        self.cancel_prefetches(|_| true);
        self.prepared.clear();
    }

    fn cancel_prefetches(&mut self, which: impl Fn(&Prefetching) -> bool) {
        self.prefetching.retain(|p| {
            let cancel = which(p);
            if cancel {
                p.progress.cancel();
            }
            !cancel
        });
    }
}
