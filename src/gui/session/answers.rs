//! Taking the worker's answers: each is dropped unless its ticket is the one the session waits
//! for (the user moved on), then taken by the method for its kind.

use std::sync::Arc;
use std::time::Duration;

use eframe::egui::ColorImage;

use crate::explain::faithfulness::Faithfulness;
use crate::explain::{Analysis, ExplainedMaps, MapChoice, Method, Stage};
use crate::model_request::{ModelRequest, ModelSource};
use crate::network::{Activation, Classifier};

use super::{Arrivals, CurrentImage, ScoredMap, Session, TaskKind, model_name};
use crate::gui::save::SavedFiles;
use crate::gui::worker::{Analysed, Answer, ImageOrigin, LoadedImage, MapPurpose, Opened, Outcome};

impl Session {
    /// Takes the worker's answers; returns what the UI must do (with what arrived since the last
    /// poll without the worker: a prepared image, a texture rendered in the frame).
    pub fn poll(&mut self) -> Arrivals {
        match self.worker.poll() {
            Ok(outcomes) => {
                for outcome in outcomes {
                    self.take(outcome);
                }
            }
            Err(e) => {
                if !self.tasks.is_empty() {
                    self.tasks.clear();
                    self.error(e);
                }
            }
        }
        std::mem::take(&mut self.arrived)
    }

    /// Whether `ticket` answers the latest request of `kind`; if so, that request is done.
    fn expects(&mut self, kind: TaskKind, ticket: u64) -> bool {
        if self.tasks.get(&kind).is_some_and(|t| t.ticket == ticket) {
            self.tasks.remove(&kind);
            true
        } else {
            false
        }
    }

    fn take(&mut self, outcome: Outcome) {
        let Outcome {
            ticket,
            elapsed,
            result,
        } = outcome;
        let kind = match &result {
            Answer::Model(_) => TaskKind::Model,
            Answer::Image(_) => TaskKind::Image,
            Answer::Display(_) => TaskKind::Render,
            Answer::Analysis(_) => TaskKind::Analysis,
            Answer::Saved(_) => TaskKind::Save,
            Answer::Clipboard(_) => TaskKind::Clipboard,
            Answer::Maps {
                purpose: MapPurpose::Shown,
                ..
            } => TaskKind::Explain,
            Answer::Maps {
                purpose: MapPurpose::Compare,
                ..
            } => TaskKind::Compare,
            Answer::Faithfulness(_) => TaskKind::Faithfulness,
            Answer::Sanity(_) => TaskKind::Sanity,
            Answer::MaskSaved(_) => TaskKind::Save,
            Answer::Prepared(_) => {
                if let Answer::Prepared(result) = result {
                    self.take_prepared(ticket, result);
                }
                return;
            }
        };
        if !self.expects(kind, ticket) {
            return;
        }
        match result {
            Answer::Model(result) => self.take_model(result),
            Answer::Image(result) => self.take_image(result),
            Answer::Display(result) => {
                match result {
                    Ok(texture) => self.arrived.redisplay = Some(texture),
                    Err(e) => self.error(e),
                }
                if let Some(side) = self.render_again.take() {
                    self.render_on_worker(side);
                }
            }
            Answer::Analysis(result) => self.take_analysis(result, elapsed),
            Answer::Saved(result) => self.take_saved(result),
            Answer::Clipboard(result) => self.take_clipboard(result),
            Answer::Maps {
                choice,
                result,
                purpose: MapPurpose::Shown,
            } => self.take_maps(choice, result),
            Answer::Maps {
                choice,
                result,
                purpose: MapPurpose::Compare,
            } => self.take_compared(choice, result),
            Answer::Faithfulness(result) => self.take_faithfulness(result),
            Answer::Sanity(result) => self.take_sanity(result),
            Answer::MaskSaved(result) => self.take_mask(result),
            Answer::Prepared(_) => {}
        }
    }

    /// A new model: the image is analysed again with it, at the chosen layer if it has one.
    fn take_model(&mut self, result: Result<Box<Classifier>, String>) {
        let classifier = match result {
            Ok(classifier) => classifier,
            Err(e) => {
                self.pending_model = None;
                self.error(e);
                self.open_image_after_model();
                return;
            }
        };
        if let Some(ModelRequest {
            source: ModelSource::File { path, .. },
            ..
        }) = self.pending_model.take()
        {
            self.arrived.model_file = Some(path);
        }
        let mut notes: Vec<String> = classifier.info.other_networks_note().into_iter().collect();
        if self.method == Method::Cam && !classifier.info.cam_is_exact() {
            self.method = Method::GradCam;
            notes.push("CAM is not defined for its head: showing Grad-CAM".to_string());
        }
        self.info(format!(
            "Loaded {}: {}, {} classes{}{}",
            model_name(&classifier),
            classifier.info.architecture,
            classifier.labels.len(),
            match classifier.output().activation {
                Activation::Softmax => "",
                Activation::Sigmoid => ", multi-label (sigmoid)",
            },
            notes.iter().map(|n| format!(". {n}")).collect::<String>()
        ));
        if !classifier.stages().contains(&self.layer) {
            self.layer = Stage::Norm5;
        }
        self.model = Some(Arc::new(*classifier));
        self.forget_prepared();
        self.analysis = None;
        self.forget_maps();
        self.class = 0;
        if self.image_after_model.is_some() {
            self.open_image_after_model();
        } else {
            self.analyse();
        }
    }

    /// Opens the image asked for while the first model loaded, if there is one.
    fn open_image_after_model(&mut self) {
        if let Some((origin, side)) = self.image_after_model.take() {
            self.open_image(origin, side);
        }
    }

    /// A new image, with its forward pass if it was run with the model on screen (otherwise
    /// that runs now).
    fn take_image(&mut self, result: Result<Opened, String>) {
        let opening = self.opening.take();
        let Opened { image, analysis } = match result {
            Ok(opened) => opened,
            Err(e) => {
                self.failed_open = opening;
                return self.error(e);
            }
        };
        self.install_image(image);
        match analysis {
            Some(Analysed {
                classifier,
                result,
                elapsed,
            }) if self
                .model
                .as_ref()
                .is_some_and(|m| Arc::ptr_eq(m, &classifier)) =>
            {
                self.take_analysis(result, elapsed);
            }
            _ => self.analyse(),
        }
        if self.model.is_none() && !self.is_busy(TaskKind::Model) {
            self.info("Open a model (Open model…) to see its class activation maps");
        }
    }

    /// Puts a new image on screen, without its analysis: the marks of the one before are kept
    /// for when it comes back, and so is the one before itself, prepared (`stash_prepared`).
    pub(super) fn install_image(&mut self, loaded: LoadedImage) {
        self.failed_open = None;
        // Another frame of the same file keeps the window the user chose (the worker rendered
        // it through that); another image starts at its file's.
        let same_file = self
            .image
            .as_ref()
            .is_some_and(|i| i.origin == loaded.origin);
        if !same_file {
            self.display = None;
        }
        self.arrived.redisplay = None;
        self.render_again = None;
        self.tasks.remove(&TaskKind::Render);
        self.stash_prepared(&loaded.origin);
        if let Some(old) = self.image.take() {
            let marks = std::mem::take(&mut self.annotations);
            // Only images with marks (or their history) are kept: the stash grows with the
            // user's work, not with the images walked past.
            if !marks.is_pristine() {
                self.stash.insert(old.origin, marks);
            }
        }
        self.annotations = self.stash.remove(&loaded.origin).unwrap_or_default();
        if let ImageOrigin::File(p) = &loaded.origin {
            self.arrived.image_file = Some(p.clone());
        }
        self.arrived.display = Some(loaded.display.clone());
        self.image = Some(CurrentImage {
            origin: loaded.origin,
            source: loaded.source,
            identity: loaded.identity,
            max_texture_side: loaded.max_texture_side,
            opened_display: loaded.display,
        });
        self.analysis = None;
        self.forget_maps();
        self.tasks.remove(&TaskKind::Analysis);
    }

    /// The forward pass: its CAM is shown at once, then the chosen method if it is another.
    fn take_analysis(&mut self, result: Result<Analysis, String>, elapsed: Duration) {
        let analysis = match result {
            Ok(analysis) => analysis,
            Err(e) => return self.error(e),
        };
        self.forget_maps();
        self.adopt_analysis(Arc::new(analysis), elapsed);
        self.show_choice();
    }

    /// `analysis` becomes the forward pass of the image on screen, with its predicted class.
    pub(super) fn adopt_analysis(&mut self, analysis: Arc<Analysis>, elapsed: Duration) {
        self.class = analysis.predicted;
        self.base = Some(Arc::clone(&analysis));
        self.display(analysis);
        self.last_analysis = Some(elapsed);
    }

    fn take_saved(&mut self, result: Result<SavedFiles, String>) {
        match result {
            Ok(SavedFiles { overlay, sidecar }) => {
                self.info(format!(
                    "Saved {} and {}",
                    overlay.display(),
                    sidecar
                        .file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
                ));
                self.arrived.saved = Some(overlay);
            }
            Err(e) => self.error(e),
        }
    }

    fn take_clipboard(&mut self, result: Result<ColorImage, String>) {
        match result {
            Ok(image) => {
                self.info(format!(
                    "Copied the overlay ({} x {}) to the clipboard",
                    image.width(),
                    image.height()
                ));
                self.arrived.clipboard = Some(image);
            }
            Err(e) => self.error(e),
        }
    }

    /// A method's maps of some classes: added to the cache, and shown if they are still the
    /// choice (which asks for the other classes' next).
    fn take_maps(&mut self, choice: MapChoice, result: Result<ExplainedMaps, String>) {
        self.map_progress = None;
        self.map_job = None;
        match result {
            Ok(e) => {
                self.maps.insert(choice, e);
                self.show_choice();
            }
            Err(e) => {
                self.revert_choice();
                self.error(e);
                // Back on the maps on screen: the class on screen may be among those the job
                // this one stopped was computing (not again if that is what failed).
                if self.choice() != choice {
                    self.show_choice();
                }
            }
        }
    }

    fn take_faithfulness(&mut self, result: Result<Faithfulness, String>) {
        let Some(pending) = self.faithfulness_pending.take() else {
            return;
        };
        match result {
            Ok(scores) => {
                self.faithfulness = Some(ScoredMap {
                    key: pending.key,
                    scores,
                })
            }
            Err(e) => {
                self.faithfulness_failed = Some(pending.key);
                self.error(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::gui::worker::Worker;
    use crate::model_request::ModelRequest;

    fn settle(session: &mut Session) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !session.is_idle() {
            session.poll();
            assert!(Instant::now() < deadline, "{:?}", session.activity());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Found by tests/soak.rs: a class changed while the other classes' maps were on their way,
    /// then a choice that fails, left the class on screen without its map.
    /// A session with the tiny model on `image` of the fixtures, settled.
    fn opened(image: &str) -> Session {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut session = Session::new(Worker::spawn(|| {}).unwrap());
        session.open_model(ModelRequest::file(fixtures.join("models/tiny.pth")));
        settle(&mut session);
        session.open_image_file(fixtures.join("images").join(image), 4096);
        settle(&mut session);
        session
    }

    /// Polls until the analysis on screen is `method`'s (at most a minute).
    fn wait_for_method(session: &mut Session, method: Method) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while session
            .analysis()
            .is_none_or(|a| a.maps[0].method != method)
        {
            session.poll();
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_failed_choice_brings_back_the_map_of_the_class_on_screen() {
        let mut session = opened("gray8.png");
        let shown = session.class();
        session.choose_map(Method::GradCam, Stage::Transition(1));
        wait_for_method(&mut session, Method::GradCam);
        // Its map is in the job for the other classes, which the next choice stops; CAM is not
        // defined at this layer, so that choice fails.
        let other = (shown + 1) % session.model().unwrap().labels.len();
        session.select_class(other);
        session.choose_map(Method::Cam, Stage::Transition(1));
        settle(&mut session);
        let analysis = session.analysis().unwrap();
        assert!(
            analysis.map(other).is_some(),
            "no map of the class on screen"
        );
        assert_eq!(analysis.map(other).unwrap().method, Method::GradCam);
    }

    #[test]
    fn a_faithfulness_failure_is_shown_once_and_not_asked_for_again() {
        let mut session = opened("rgb24.bmp");
        session.want_faithfulness(4);
        assert!(session.is_busy(TaskKind::Faithfulness));

        // The worker answers with an error, as a failed forward pass would.
        session.tasks.remove(&TaskKind::Faithfulness);
        session.take_faithfulness(Err("rgb24.bmp: the network failed".into()));
        assert_eq!(
            session.notice().map(|n| n.text.as_str()),
            Some("rgb24.bmp: the network failed")
        );
        // The panel asks again on the next frame: the same scores are not computed again.
        session.want_faithfulness(4);
        assert!(!session.is_busy(TaskKind::Faithfulness), "asked again");
        // Other scores (another number of steps) are another question.
        session.want_faithfulness(5);
        assert!(session.is_busy(TaskKind::Faithfulness));
    }

    #[test]
    fn the_class_on_screen_is_computed_first_and_the_others_after_it() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut session = Session::new(Worker::spawn(|| {}).unwrap());
        session.open_model(ModelRequest::file(
            fixtures.join("models/multilabel/chest5.pth"),
        ));
        settle(&mut session);
        session.open_image_file(fixtures.join("images/gray8.png"), 4096);
        settle(&mut session);
        let shown = session.class();
        session.choose_map(Method::GradCam, Stage::DenseBlock(2));
        // one job for the class on screen alone
        assert_eq!(
            session.map_job,
            Some((session.choice(), vec![shown])),
            "{:?}",
            session.map_job
        );
        // its answer is shown at once, and the other classes are asked for next
        wait_for_method(&mut session, Method::GradCam);
        let first = Arc::clone(session.analysis().unwrap());
        assert_eq!(
            first.maps.iter().map(|m| m.class).collect::<Vec<_>>(),
            [shown]
        );
        let others: Vec<usize> = (0..5).filter(|&c| c != shown).collect();
        assert_eq!(session.map_job, Some((session.choice(), others)));
        settle(&mut session);
        let all = Arc::clone(session.analysis().unwrap());
        assert_eq!(all.maps.len(), 5);
        assert!(all.maps.iter().all(|m| m.method == Method::GradCam));
        assert_eq!(all.map(shown), first.map(shown));
        // switching class now needs no job
        session.select_class((shown + 1) % 5);
        assert!(session.map_job.is_none() && session.is_idle());
        // another method: the class on screen first again
        session.choose_map(Method::HiResCam, Stage::DenseBlock(2));
        assert_eq!(
            session.map_job,
            Some((session.choice(), vec![(shown + 1) % 5]))
        );
        settle(&mut session);
    }
}
