//! Every method's map of the class on screen, side by side (the Compare window): computed on
//! the worker one method at a time after the map on screen (Score-CAM last, the slowest), each
//! from the image's forward pass and the layer's activations, and kept in the image's map cache
//! (`ImageMaps`), so a click that makes one the main map shows it at once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::explain::{ClassActivationMap, Classes, MapChoice, Method, Stage};
use crate::gui::worker::{MapPurpose, Work, WorkProgress};

use super::{Session, TaskKind};

/// What the Compare window shows of one method.
pub enum CompareTile<'a> {
    Ready(&'a ClassActivationMap),
    /// Being computed: the fraction done.
    Computing(f32),
    /// Waiting for its turn.
    Waiting,
    Failed(&'a str),
}

/// The Compare window's work in the session.
#[derive(Default)]
pub(super) struct CompareState {
    /// The job in flight: the choice it computes, the class, its progress.
    pending: Option<(MapChoice, usize, Arc<WorkProgress>)>,
    /// Choices that failed for this image (a method the head does not allow), with why.
    failed: HashMap<MapChoice, String>,
}

/// The order the maps are computed in: the method list's, Score-CAM (one forward pass per
/// channel) last.
fn compute_order() -> impl Iterator<Item = Method> {
    let rest = Method::ALL.into_iter().filter(|m| *m != Method::ScoreCam);
    rest.chain([Method::ScoreCam])
}

impl Session {
    /// The choice the Compare window shows for `method`: at the layer on screen (CAM at
    /// norm5, the only layer it has), with the options chosen.
    pub fn compare_choice(&self, method: Method) -> MapChoice {
        let layer = if method == Method::Cam {
            Stage::Norm5
        } else {
            self.layer
        };
        let mut choice = MapChoice::new(method, layer);
        choice.options = self.choice().options;
        choice
    }

    /// `choice`'s map of `class`, if it is computed (with the forward pass or since).
    fn cached_map(&self, choice: &MapChoice, class: usize) -> Option<&ClassActivationMap> {
        let base = self.base.as_ref()?;
        if base.shows(choice) {
            return base.map(class);
        }
        self.maps
            .maps
            .get(choice)?
            .iter()
            .find(|m| m.class == class)
    }

    /// What the Compare window shows of `method` for the class on screen.
    pub fn compare_tile(&self, method: Method) -> CompareTile<'_> {
        let choice = self.compare_choice(method);
        if let Some(map) = self.cached_map(&choice, self.class) {
            return CompareTile::Ready(map);
        }
        if let Some(why) = self.compare.failed.get(&choice) {
            return CompareTile::Failed(why);
        }
        match &self.compare.pending {
            Some((c, class, progress)) if *c == choice && *class == self.class => {
                CompareTile::Computing(progress.fraction())
            }
            _ => CompareTile::Waiting,
        }
    }

    /// Computes the next missing map of the Compare window, unless one is being computed or
    /// the map on screen is still on its way (called every frame while the window is open).
    pub fn want_compare(&mut self) {
        let (Some(model), Some(base)) = (self.model.clone(), self.base.clone()) else {
            return;
        };
        if self.is_busy(TaskKind::Explain)
            || self.is_busy(TaskKind::Analysis)
            || self.is_busy(TaskKind::Image)
        {
            return; // the map on screen first
        }
        let class = self.class;
        if let Some((choice, c, _)) = &self.compare.pending {
            if *c == class
                && self.is_busy(TaskKind::Compare)
                && self.cached_map(choice, class).is_none()
            {
                return;
            }
            self.stop_compare();
        }
        let next = compute_order()
            .map(|m| self.compare_choice(m))
            .find(|choice| {
                self.cached_map(choice, class).is_none()
                    && !self.compare.failed.contains_key(choice)
            });
        let Some(choice) = next else {
            return;
        };
        let progress = Arc::new(WorkProgress::default());
        self.compare.pending = Some((choice, class, Arc::clone(&progress)));
        let work = Work::Explain {
            classifier: model,
            analysis: base,
            choice,
            classes: Classes::Only(vec![class]),
            activations: self.maps.activations.get(&choice.layer).cloned(),
            progress,
            purpose: MapPurpose::Compare,
        };
        let label = format!("Comparing: {} at {}…", choice.method.title(), choice.layer);
        self.submit(TaskKind::Compare, label, work);
    }

    /// Stops the Compare window's job (the window closed, or the image changed).
    pub fn stop_compare(&mut self) {
        if let Some((_, _, progress)) = self.compare.pending.take() {
            progress.cancel();
        }
        self.tasks.remove(&TaskKind::Compare);
    }

    /// Forgets the Compare window's failures (a new image or model).
    pub(super) fn forget_compare(&mut self) {
        self.stop_compare();
        self.compare.failed.clear();
    }

    pub(super) fn take_compared(
        &mut self,
        choice: MapChoice,
        result: Result<crate::explain::ExplainedMaps, String>,
    ) {
        self.compare.pending = None;
        match result {
            Ok(explained) => self.maps.insert(choice, explained),
            Err(e) => {
                self.compare.failed.insert(choice, e);
            }
        }
    }
}
