//! Pictures of the main screen, rendered on the CPU (wgpu on Mesa's software drivers) and
//! compared with `tests/snapshots/*.png` within the tolerance in `kittest.toml`.
//! `UPDATE_SNAPSHOTS=true cargo test --test gui_snapshots` rewrites them; look at them before
//! committing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use camview::gui::{CamviewApp, Launch, ModelRequest};
use eframe::egui::{Event, Key, Modifiers, PointerButton, Pos2, accesskit::Role, vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn harness(model: PathBuf, images: Vec<PathBuf>) -> Harness<'static, CamviewApp> {
    let launch = Launch {
        model: ModelRequest::file(model),
        images,
        started: Instant::now(),
    };
    let mut h = Harness::builder()
        .with_size([1280.0, 760.0])
        .with_max_steps(50)
        .build_eframe(|cc| CamviewApp::new(cc, launch).unwrap());
    settle(&mut h);
    h
}

fn settle(h: &mut Harness<'_, CamviewApp>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !h.state().session.is_idle() {
        h.step();
        assert!(Instant::now() < deadline, "the viewer is still busy");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run();
}

/// Hides what changes from run to run (the network's time) and the pointer, then compares.
fn snapshot(h: &mut Harness<'_, CamviewApp>, name: &str) {
    h.remove_cursor();
    h.run();
    if let Some(timing) = h.query_by_label_contains("network ") {
        let rect = timing.rect();
        h.mask(rect);
    }
    h.snapshot(name);
}

fn drag(h: &mut Harness<'_, CamviewApp>, from: Pos2, to: Pos2) {
    h.event(Event::PointerMoved(from));
    h.event(Event::PointerButton {
        pos: from,
        button: PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    for i in 1..=8 {
        h.event(Event::PointerMoved(from + (to - from) * (i as f32 / 8.0)));
        h.step();
    }
    h.event(Event::PointerButton {
        pos: to,
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.run();
}

#[test]
fn main_screen() {
    let mut h = harness(
        fixtures().join("models/tiny.pth"),
        vec![fixtures().join("images/large.png")],
    );
    snapshot(&mut h, "main_screen");
}

#[test]
fn main_screen_with_settings_and_annotations() {
    let mut h = harness(
        fixtures().join("models/tiny.pth"),
        vec![fixtures().join("images/large.png")],
    );
    h.get_by_label("class 0").click();
    h.get_by_role_and_label(Role::Slider, "Opacity")
        .set_value_accesskit(65.0);
    h.get_by_role_and_label(Role::Slider, "Threshold")
        .set_value_accesskit(30.0);
    h.get_by_label("Shared").click();
    h.run();
    h.get_by_label("Colormap").click();
    h.run();
    h.get_by_label("viridis").click();
    h.run();

    let pane = h.get_by_label("Overlay image").rect();
    h.get_by_label("yellow").click();
    h.get_by_label("Arrow").click();
    h.run();
    drag(
        &mut h,
        pane.center() + vec2(-120.0, -90.0),
        pane.center() + vec2(-20.0, -10.0),
    );
    h.get_by_label("Ellipse").click();
    h.run();
    drag(
        &mut h,
        pane.center() + vec2(-10.0, -40.0),
        pane.center() + vec2(90.0, 40.0),
    );
    h.get_by_label("Note").click();
    h.run();
    let at = pane.center() + vec2(-150.0, -120.0);
    h.event(Event::PointerMoved(at));
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos: at,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
    }
    h.run();
    h.get_by_label("Note text:").type_text("look here");
    h.key_press(Key::Enter);
    h.run();
    assert_eq!(h.state().session.annotations.items.len(), 3);
    snapshot(&mut h, "main_screen_annotated");
}

#[test]
fn first_run_without_a_model() {
    // A relative path, so the message is the same on every machine.
    let mut h = harness(PathBuf::from("no-such-model.pth"), Vec::new());
    let notice = h.state().session.notice.clone().unwrap();
    assert!(notice.text.starts_with("no-such-model.pth: "), "{notice:?}");
    snapshot(&mut h, "first_run_without_a_model");
}
