//! The map on screen: the method and layer chosen, the maps cached for the current image, the
//! job computing the ones not cached yet, and the faithfulness scores of what is shown.

use std::sync::Arc;

use crate::explain::faithfulness::FaithfulnessOptions;
use crate::explain::{Analysis, Classes, MapChoice, Method, Stage};

use super::{FaithfulnessKey, ImageMaps, PendingScores, Session, TaskKind};
use crate::gui::worker::{MapPurpose, Work, WorkProgress};

impl Session {
    /// Shows `method` at `layer`: at once if its maps are cached (or came with the forward pass),
    /// otherwise once the worker has computed them. Before the first analysis (at launch) it
    /// only records the choice, which the analysis then shows.
    pub fn choose_map(&mut self, method: Method, layer: Stage) {
        self.method = method;
        self.layer = layer;
        self.show_choice();
    }

    /// Score-CAM over every channel (exact, slow) or the strongest 64; shown as `choose_map`.
    pub fn choose_score_cam_channels(&mut self, all: bool) {
        self.score_cam_all_channels = all;
        self.show_choice();
    }

    /// The map the user chose, with its options.
    pub(super) fn choice(&self) -> MapChoice {
        let mut choice = MapChoice::new(self.method, self.layer);
        if self.method == Method::ScoreCam && self.score_cam_all_channels {
            choice.options.score_cam_channels = None;
        }
        choice
    }

    pub(super) fn display(&mut self, analysis: Arc<Analysis>) {
        self.analysis = Some(analysis);
        self.analysis_generation += 1;
    }

    /// Stops the job computing maps, if one runs (another choice replaces it).
    fn stop_map_job(&mut self) {
        if let Some(p) = self.map_progress.take() {
            p.cancel();
        }
        self.map_job = None;
        self.tasks.remove(&TaskKind::Explain);
    }

    /// Stops computing the chosen maps (the user's Stop): the choice goes back to the maps on
    /// screen.
    pub fn stop_maps(&mut self) {
        self.stop_map_job();
        self.revert_choice();
        self.info("Stopped computing the maps");
    }

    /// The choice becomes what is on screen again.
    pub(super) fn revert_choice(&mut self) {
        if let Some(map) = self.analysis.as_ref().and_then(|a| a.maps.first()) {
            self.method = map.method;
            self.layer = map.layer;
        }
    }

    /// Shows the chosen maps: at once for the classes computed, the class on screen first
    /// when it is not (the gradient methods cost a backward pass per class), then the other
    /// classes in the background so that switching class is instant once they are in.
    pub(super) fn show_choice(&mut self) {
        let Some(base) = self.base.clone() else {
            return;
        };
        let choice = self.choice();
        if base.shows(&choice) {
            self.stop_map_job();
            self.display(base);
            self.prefetch_neighbours();
            return;
        }
        let cached = self.maps.maps.get(&choice);
        let has_class = cached.is_some_and(|maps| maps.iter().any(|m| m.class == self.class));
        let missing: Vec<usize> = (0..base.logits.len())
            .filter(|&c| !cached.is_some_and(|maps| maps.iter().any(|m| m.class == c)))
            .collect();
        if has_class {
            let maps = &self.maps.maps[&choice];
            if self.analysis.as_ref().map(|a| &a.maps) != Some(maps) {
                let shown = base.showing(maps.clone());
                self.display(Arc::new(shown));
            }
            if missing.is_empty() {
                self.stop_map_job();
                self.prefetch_neighbours();
            } else if self.map_job.as_ref().map(|(c, _)| c) != Some(&choice) {
                self.start_map_job(base, choice, missing);
            }
            return;
        }
        let computing_it = self
            .map_job
            .as_ref()
            .is_some_and(|(c, classes)| *c == choice && classes.contains(&self.class));
        if !computing_it {
            self.start_map_job(base, choice, vec![self.class]);
        }
    }

    /// Computes `choice`'s maps of `classes` in the background (replacing any map job).
    fn start_map_job(&mut self, base: Arc<Analysis>, choice: MapChoice, classes: Vec<usize>) {
        let Some(model) = self.model.clone() else {
            return;
        };
        self.stop_map_job();
        let progress = Arc::new(WorkProgress::default());
        self.map_progress = Some(Arc::clone(&progress));
        let activations = self.maps.activations.get(&choice.layer).cloned();
        let label = if classes == [self.class] {
            format!("Computing {} at {}…", choice.method.title(), choice.layer)
        } else {
            format!(
                "Computing {} at {} for the other classes…",
                choice.method.title(),
                choice.layer
            )
        };
        self.map_job = Some((choice, classes.clone()));
        self.submit(
            TaskKind::Explain,
            label,
            Work::Explain {
                classifier: model,
                analysis: base,
                choice,
                classes: Classes::Only(classes),
                activations,
                progress,
                purpose: MapPurpose::Shown,
            },
        );
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
        if self.faithfulness.as_ref().is_some_and(|s| s.key == key)
            || self.faithfulness_failed == Some(key)
            || self
                .faithfulness_pending
                .as_ref()
                .is_some_and(|p| p.key == key)
        {
            return;
        }
        self.stop_faithfulness();
        let progress = Arc::new(WorkProgress::default());
        self.faithfulness_pending = Some(PendingScores {
            key,
            progress: Arc::clone(&progress),
        });
        let class = self.class;
        let label = "Scoring the map's faithfulness…".to_string();
        self.submit(
            TaskKind::Faithfulness,
            label,
            Work::Faithfulness {
                classifier: model,
                analysis,
                class,
                options: FaithfulnessOptions {
                    steps,
                    ..FaithfulnessOptions::default()
                },
                progress,
            },
        );
    }

    /// Stops the faithfulness job (the panel was closed, or the map it scores is gone).
    pub fn stop_faithfulness(&mut self) {
        if let Some(pending) = self.faithfulness_pending.take() {
            pending.progress.cancel();
        }
        self.tasks.remove(&TaskKind::Faithfulness);
    }

    /// Drops everything computed for the image before (maps, activations, scores, work).
    pub(super) fn forget_maps(&mut self) {
        self.stop_map_job();
        self.stop_faithfulness();
        self.stop_sanity();
        self.forget_compare();
        self.base = None;
        self.maps = ImageMaps::default();
        self.faithfulness = None;
    }
}
