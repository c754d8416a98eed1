//! The sanity check of the map on screen (`explain::sanity`): asked for every frame while its
//! panel is open, computed on the worker with progress and Stop, kept with what it tested.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::explain::sanity::{Randomisation, SanityError, SanityReport};
use crate::gui::worker::{Work, WorkProgress};

use super::{Session, TaskKind};

/// What a sanity check tested: the maps on screen (their generation), the class, how the model
/// was randomised and from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SanityKey {
    pub generation: u64,
    pub class: usize,
    pub mode: Randomisation,
    pub seed: u64,
}

/// The sanity check's state in the session.
#[derive(Default)]
pub(super) struct SanityState {
    /// The latest report and what it tested.
    done: Option<(SanityKey, Arc<SanityReport>)>,
    /// The check in flight.
    pending: Option<(SanityKey, Arc<WorkProgress>)>,
    /// A check that failed or was stopped: not asked for again until something changes (or the
    /// user runs it again).
    halted: Option<SanityKey>,
}

impl Session {
    /// The key of a check of the map on screen, if there is one to check (a model, the chosen
    /// maps on screen and no new map on its way).
    fn sanity_key(&self, mode: Randomisation, seed: u64) -> Option<SanityKey> {
        self.model.as_ref()?;
        self.analysis.as_ref()?;
        if self.is_busy(TaskKind::Explain) || self.is_busy(TaskKind::Analysis) {
            return None; // the map on screen is about to change
        }
        Some(SanityKey {
            generation: self.analysis_generation,
            class: self.class,
            mode,
            seed,
        })
    }

    /// Asks for the sanity check of the map on screen, unless it is known, being computed, or
    /// was stopped or failed (called every frame while the panel is open).
    pub fn want_sanity(&mut self, mode: Randomisation, seed: u64) {
        let Some(key) = self.sanity_key(mode, seed) else {
            return;
        };
        let state = &self.sanity;
        if state.done.as_ref().is_some_and(|(k, _)| *k == key)
            || state.pending.as_ref().is_some_and(|(k, _)| *k == key)
            || state.halted == Some(key)
        {
            return;
        }
        self.run_sanity(key);
    }

    /// Runs the check again after it was stopped or failed.
    pub fn rerun_sanity(&mut self, mode: Randomisation, seed: u64) {
        if let Some(key) = self.sanity_key(mode, seed) {
            self.run_sanity(key);
        }
    }

    fn run_sanity(&mut self, key: SanityKey) {
        let (Some(model), Some(image)) = (self.model.clone(), self.image.as_ref()) else {
            return;
        };
        let source = Arc::clone(&image.source);
        self.stop_sanity();
        self.sanity.halted = None;
        let progress = Arc::new(WorkProgress::default());
        self.sanity.pending = Some((key, Arc::clone(&progress)));
        let work = Work::Sanity {
            classifier: model,
            image: source,
            choice: self.choice(),
            class: key.class,
            mode: key.mode,
            seed: key.seed,
            progress,
        };
        let label = "Randomising the model (sanity check)…".to_string();
        self.submit(TaskKind::Sanity, label, work);
    }

    /// Stops the check in flight (Stop, the panel closed, or a new image); a stopped check is
    /// not started again by `want_sanity`.
    pub fn stop_sanity(&mut self) {
        if let Some((key, progress)) = self.sanity.pending.take() {
            progress.cancel();
            self.sanity.halted = Some(key);
        }
        self.tasks.remove(&TaskKind::Sanity);
    }

    /// The latest report and what it tested (perhaps another map or class: compare its key).
    pub fn sanity(&self) -> Option<(SanityKey, &SanityReport)> {
        self.sanity.done.as_ref().map(|(k, r)| (*k, &**r))
    }

    /// Progress of the check in flight, if any.
    pub fn sanity_progress(&self) -> Option<&WorkProgress> {
        self.sanity.pending.as_ref().map(|(_, p)| &**p)
    }

    /// Whether the check of `mode` and `seed` on the map on screen was stopped or failed.
    pub fn sanity_halted(&self, mode: Randomisation, seed: u64) -> bool {
        self.sanity.halted.is_some() && self.sanity.halted == self.sanity_key(mode, seed)
    }

    pub(super) fn take_sanity(&mut self, result: Result<SanityReport, String>) {
        let Some((key, _)) = self.sanity.pending.take() else {
            return;
        };
        match result {
            Ok(report) => self.sanity.done = Some((key, Arc::new(report))),
            Err(e) => {
                self.sanity.halted = Some(key);
                if e != SanityError::Cancelled.to_string() {
                    self.error(e);
                }
            }
        }
    }
}

impl Session {
    /// Writes the image's findings as a mask PNG of the image's size, `masks/<image stem>.png`
    /// beside the image (in `fallback` for an image without a file), the layout
    /// `camview eval --images DIR --masks DIR/masks` reads; replaces the image's earlier mask.
    pub fn export_mask(&mut self, fallback: &Path) {
        let Some(image) = &self.image else {
            return self.info("Open an image and outline a finding first");
        };
        let findings = self.annotations.findings();
        if findings.is_empty() {
            return self.info(
                "No findings on this image: outline one with the Region tool (P), or select a \
                 closed mark and make it a finding (M)",
            );
        }
        let name = image.origin.name();
        let (folder, source) = match image.origin.path() {
            Some(path) => (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                Some(path.to_path_buf()),
            ),
            None => (fallback.to_path_buf(), None),
        };
        let stem = Path::new(&name)
            .file_stem()
            .map_or_else(|| name.clone(), |s| s.to_string_lossy().into_owned());
        let dest: PathBuf = folder.join("masks").join(format!("{stem}.png"));
        let work = Work::SaveMask {
            dest,
            source,
            width: image.source.width(),
            height: image.source.height(),
            findings,
        };
        self.submit(
            TaskKind::Save,
            format!("Writing the findings mask of {name}…"),
            work,
        );
    }

    pub(super) fn take_mask(&mut self, result: Result<PathBuf, String>) {
        match result {
            Ok(path) => self.info(format!("Saved the findings mask to {}", path.display())),
            Err(e) => self.error(e),
        }
    }
}
