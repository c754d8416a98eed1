//! The map on screen: the method and layer chosen, the maps cached for the current image, the
//! job computing the ones not cached yet, and the faithfulness scores of what is shown.

use std::sync::Arc;

use crate::explain::faithfulness::FaithfulnessOptions;
use crate::explain::{Analysis, MapChoice, Method, Stage};

use super::{FaithfulnessKey, ImageMaps, PendingScores, Session, TaskKind};
use crate::gui::worker::{Work, WorkProgress};

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
        if let Some(maps) = self.maps.maps.get(&choice) {
            let shown = base.showing(maps.clone());
            self.stop_map_job();
            self.display(Arc::new(shown));
            self.prefetch_neighbours();
            return;
        }
        let Some(model) = self.model.clone() else {
            return;
        };
        self.stop_map_job();
        let progress = Arc::new(WorkProgress::default());
        self.map_progress = Some(Arc::clone(&progress));
        let activations = self.maps.activations.get(&choice.layer).cloned();
        let label = format!("Computing {} at {}…", choice.method.title(), choice.layer);
        self.submit(
            TaskKind::Explain,
            label,
            Work::Explain {
                classifier: model,
                analysis: base,
                choice,
                activations,
                progress,
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
        self.base = None;
        self.maps = ImageMaps::default();
        self.faithfulness = None;
    }
}
