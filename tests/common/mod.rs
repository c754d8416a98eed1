//! Helpers shared by the viewer's tests (tests/gui.rs, tests/gui_snapshots.rs).
#![allow(clippy::unwrap_used, dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camview::gui::{CamviewApp, Launch, ModelRequest};
use eframe::egui::{self, Event, Modifiers, PointerButton, Pos2};
use egui_kittest::{Harness, HarnessBuilder, TestRenderer};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The viewer launched as `camview --model MODEL IMAGE...` in a window of `size`, settled.
pub fn launch_with(
    model: PathBuf,
    images: Vec<PathBuf>,
    size: [f32; 2],
) -> Harness<'static, CamviewApp> {
    launch_built(builder(size), model, images)
}

/// The viewer with the tiny model on `images`, its textures recorded.
pub fn launch_recorded(
    images: Vec<PathBuf>,
    size: [f32; 2],
) -> (Harness<'static, CamviewApp>, TextureRecorder) {
    let recorder = TextureRecorder::default();
    let builder = builder(size).renderer(recorder.clone());
    let harness = launch_built(builder, fixtures().join("models/tiny.pth"), images);
    (harness, recorder)
}

fn builder(size: [f32; 2]) -> HarnessBuilder<CamviewApp> {
    Harness::builder().with_size(size).with_max_steps(50)
}

fn launch_built(
    builder: HarnessBuilder<CamviewApp>,
    model: PathBuf,
    images: Vec<PathBuf>,
) -> Harness<'static, CamviewApp> {
    let launch = Launch {
        model: ModelRequest::file(model),
        images,
        method: camview::explain::Method::Cam,
        layer: camview::explain::Stage::Norm5,
        started: Instant::now(),
    };
    let mut harness = builder.build_eframe(|cc| CamviewApp::new(cc, launch).unwrap());
    settle(&mut harness);
    harness
}

/// Keeps every full texture egui uploads, so a test can read what the image pane shows.
#[derive(Clone, Default)]
pub struct TextureRecorder(Arc<Mutex<Vec<Arc<egui::ColorImage>>>>);

impl TestRenderer for TextureRecorder {
    fn handle_delta(&mut self, delta: &mut egui::TexturesDelta) {
        for d in delta.set.drain().flat_map(|(_, deltas)| deltas) {
            if let (egui::ImageData::Color(image), None) = (d.image, d.pos) {
                self.0.lock().unwrap().push(image);
            }
        }
    }

    fn render(
        &mut self,
        _ctx: &egui::Context,
        _output: &egui::FullOutput,
    ) -> Result<image::RgbaImage, String> {
        Err("this recorder does not render".to_string())
    }
}

impl TextureRecorder {
    /// The last full texture of `size` uploaded.
    pub fn last_of_size(&self, size: [usize; 2]) -> Option<Arc<egui::ColorImage>> {
        let uploads = self.0.lock().unwrap();
        uploads.iter().rev().find(|i| i.size == size).cloned()
    }

    /// The sizes of every full texture uploaded so far, in order.
    pub fn sizes(&self) -> Vec<[usize; 2]> {
        self.0.lock().unwrap().iter().map(|i| i.size).collect()
    }
}

/// Runs frames until the images next to the one on screen are prepared too (after `settle`).
pub fn settle_prefetch(harness: &mut Harness<'_, CamviewApp>) {
    settle(harness);
    let deadline = Instant::now() + Duration::from_secs(120);
    while harness.state().session.is_prefetching() {
        assert!(
            Instant::now() < deadline,
            "the neighbours are still being prepared"
        );
        std::thread::sleep(Duration::from_millis(5));
        harness.step();
    }
}

/// Runs frames until the worker has nothing left to do, then until the UI is still.
pub fn settle(harness: &mut Harness<'_, CamviewApp>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        harness.step();
        if harness.state().session.is_idle() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the viewer is still busy: {:?}",
            harness.state().session.activity()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run();
}

fn press(harness: &Harness<'_, CamviewApp>, pos: Pos2, pressed: bool) {
    harness.event(Event::PointerButton {
        pos,
        button: PointerButton::Primary,
        pressed,
        modifiers: Modifiers::NONE,
    });
}

pub fn click_at(harness: &Harness<'_, CamviewApp>, pos: Pos2) {
    harness.event(Event::PointerMoved(pos));
    press(harness, pos, true);
    press(harness, pos, false);
}

/// Drags the primary button from `from` to `to` in `steps` moves, one frame each.
pub fn drag(harness: &mut Harness<'_, CamviewApp>, from: Pos2, to: Pos2, steps: u32) {
    harness.event(Event::PointerMoved(from));
    press(harness, from, true);
    harness.step();
    for i in 1..=steps {
        harness.event(Event::PointerMoved(
            from + (to - from) * (i as f32 / steps as f32),
        ));
        harness.step();
    }
    press(harness, to, false);
    harness.run();
}

/// The multi-label fixture's classes on one image, as PyTorch computed them
/// (tests/fixtures/make_multilabel_fixtures.py).
pub struct MultiLabelCase {
    pub labels: Vec<String>,
    pub sigmoid: Vec<f32>,
    pub positives: Vec<usize>,
    /// The classes by decreasing probability.
    pub ranked: Vec<usize>,
}

pub fn multilabel_model() -> PathBuf {
    fixtures().join("models/multilabel/chest5.pth")
}

pub fn multilabel_case(image: &str) -> MultiLabelCase {
    let text = std::fs::read(fixtures().join("models/multilabel/expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let e = &expected["images"][image];
    let sigmoid: Vec<f32> = serde_json::from_value(e["sigmoid"].clone()).unwrap();
    let mut ranked: Vec<usize> = (0..sigmoid.len()).collect();
    ranked.sort_by(|&a, &b| sigmoid[b].total_cmp(&sigmoid[a]));
    MultiLabelCase {
        labels: serde_json::from_value(expected["labels"].clone()).unwrap(),
        positives: serde_json::from_value(e["positives"].clone()).unwrap(),
        sigmoid,
        ranked,
    }
}

/// A file dropped on the window, as the platform hands it to egui.
#[derive(Debug)]
pub struct DroppedPath(pub PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}
