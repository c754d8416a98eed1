//! Pictures of the main screen, rendered on the CPU (wgpu on Mesa's software drivers) and
//! compared with `tests/snapshots/*.png` within the tolerance in `kittest.toml`.
//! `UPDATE_SNAPSHOTS=true cargo test --test gui_snapshots` rewrites them; look at them before
//! committing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::PathBuf;

use camview::gui::CamviewApp;
use eframe::egui::{Key, accesskit::Role, vec2};
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};

mod common;
use common::{click_at, drag, fixtures, launch_with};

fn harness(model: PathBuf, images: Vec<PathBuf>) -> Harness<'static, CamviewApp> {
    launch_with(model, images, [1280.0, 760.0])
}

/// Hides what changes from run to run (the network's time) and the pointer, then compares.
fn snapshot(h: &mut Harness<'_, CamviewApp>, name: &str) {
    snapshot_with(h, name, &SnapshotOptions::new());
}

fn snapshot_with(h: &mut Harness<'_, CamviewApp>, name: &str, options: &SnapshotOptions) {
    h.remove_cursor();
    h.run();
    if let Some(timing) = h.query_by_label_contains("network ") {
        let rect = timing.rect();
        h.mask(rect);
    }
    h.snapshot_options(name, options);
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
        8,
    );
    h.get_by_label("Ellipse").click();
    h.run();
    drag(
        &mut h,
        pane.center() + vec2(-10.0, -40.0),
        pane.center() + vec2(90.0, 40.0),
        8,
    );
    h.get_by_label("Note").click();
    h.run();
    let at = pane.center() + vec2(-150.0, -120.0);
    click_at(&h, at);
    h.run();
    h.get_by_label("Note text:").type_text("look here");
    h.key_press(Key::Enter);
    h.run();
    assert_eq!(h.state().session.annotations().items.len(), 3);
    snapshot(&mut h, "main_screen_annotated");
}

#[test]
fn first_run_without_a_model() {
    // A relative path, so the message is the same on every machine.
    let mut h = harness(PathBuf::from("no-such-model.pth"), Vec::new());
    let notice = h.state().session.notice().cloned().unwrap();
    assert!(notice.text.starts_with("no-such-model.pth: "), "{notice:?}");
    snapshot(&mut h, "first_run_without_a_model");
}

#[test]
fn grad_cam_at_a_finer_layer_with_the_faithfulness_curves() {
    // Taller, so the faithfulness panel at the bottom of the controls is in view.
    let mut h = launch_with(
        fixtures().join("models/tiny.pth"),
        vec![fixtures().join("images/large.png")],
        [1280.0, 1000.0],
    );
    h.get_by_label("Method").click();
    h.run();
    h.get_by_label("Grad-CAM").click();
    common::settle(&mut h);
    h.get_by_label("Layer").click();
    h.run();
    h.get_by_label("features.denseblock3").click();
    common::settle(&mut h);
    h.get_by_label("Score the map (deletion, insertion)")
        .click();
    common::settle(&mut h);
    assert!(h.state().session.faithfulness().is_some());
    snapshot(&mut h, "main_screen_gradcam_faithfulness");
}

#[test]
fn the_sanity_panel_shows_the_maps_as_the_model_is_randomised_and_the_curves() {
    // Taller, so the sanity panel at the bottom of the controls is in view.
    let mut h = launch_with(
        fixtures().join("models/tiny.pth"),
        vec![fixtures().join("images/large.png")],
        [1280.0, 1100.0],
    );
    h.get_by_label("Randomise the model (sanity check)").click();
    common::settle(&mut h);
    assert!(h.state().session.sanity().is_some());
    snapshot(&mut h, "main_screen_sanity");
}

#[test]
fn a_finding_outlined_with_the_region_tool_and_the_agreement_panel() {
    let mut h = launch_with(
        fixtures().join("models/tiny.pth"),
        vec![fixtures().join("images/large.png")],
        [1280.0, 1000.0],
    );
    h.key_press(Key::P);
    h.run();
    let c = h.get_by_label("Overlay image").rect().center();
    for (dx, dy) in [
        (-90.0, -70.0),
        (60.0, -80.0),
        (90.0, 40.0),
        (-60.0, 80.0),
        (-90.0, -70.0),
    ] {
        click_at(&h, c + vec2(dx, dy));
        h.run();
    }
    assert_eq!(h.state().session.annotations().findings().len(), 1);
    snapshot(&mut h, "main_screen_agreement");
}

#[test]
fn the_compare_window_with_every_method() {
    let mut h = launch_with(
        fixtures().join("models/tiny.pth"),
        vec![fixtures().join("images/large.png")],
        [1400.0, 1000.0],
    );
    h.key_press(Key::C);
    h.step();
    common::settle(&mut h);
    // The gradient methods' and Eigen-CAM's maps differ in their last bits between CPUs (the
    // gemm crate picks its kernels at run time: AVX2, AVX-512), which moves a few tile pixels
    // one colour step: 1,401 pixels above the threshold on an AVX-512 machine against the
    // picture made on another, 26 of them by more than 10 (one tile is ~25,000 pixels).
    snapshot_with(
        &mut h,
        "compare_window",
        &SnapshotOptions::new().max_failed_pixels(3000),
    );
}

/// The first and last pixel of row `y` within columns `xs` of `colour` (solid fills are
/// exact; the tolerance keeps anti-aliased text from counting).
fn span_of(
    image: &image::RgbaImage,
    y: u32,
    xs: std::ops::Range<u32>,
    colour: [u8; 3],
) -> Option<(u32, u32)> {
    let near = |x: u32| {
        let p = image.get_pixel(x, y).0;
        (0..3).all(|i| p[i].abs_diff(colour[i]) <= 12)
    };
    let mut found = xs.filter(|&x| near(x));
    let first = found.next()?;
    Some((first, found.next_back().unwrap_or(first)))
}

#[test]
fn multi_label_class_list_draws_independent_bars_and_marks_every_positive() {
    const FINDING: [u8; 3] = [255, 170, 40];
    const OTHER: [u8; 3] = [90, 150, 230];
    let case = common::multilabel_case("pal1.bmp");
    let mut h = harness(
        common::multilabel_model(),
        vec![fixtures().join("images/pal1.bmp")],
    );
    h.remove_cursor();
    h.run();
    let rows: Vec<eframe::egui::Rect> = h
        .get_all_by_role(Role::ListBoxOption)
        .map(|n| n.rect())
        .collect();
    let image = h.render().unwrap();
    let scale = image.width() as f32 / 1280.0;
    let px = |v: f32| (v * scale).round() as u32;
    // Each bar's filled length, and whether the row has its dot (left of the name).
    let mut lengths = Vec::new();
    for (rect, &c) in rows.iter().zip(&case.ranked) {
        let positive = case.positives.contains(&c);
        let y = px(rect.center().y);
        let dot = span_of(&image, y, px(rect.left())..px(rect.left() + 16.0), FINDING);
        assert_eq!(dot.is_some(), positive, "{}'s dot", case.labels[c]);
        let bar = px(rect.left() + 20.0)..px(rect.right() - 50.0);
        let (colour, other) = if positive {
            (FINDING, OTHER)
        } else {
            (OTHER, FINDING)
        };
        let (first, last) = span_of(&image, y, bar.clone(), colour)
            .unwrap_or_else(|| panic!("{} has no bar of its colour", case.labels[c]));
        assert!(
            span_of(&image, y, bar, other).is_none(),
            "{}",
            case.labels[c]
        );
        lengths.push((last - first + 1) as f32);
    }
    // Independent bars: each length is its class's own probability times one full width.
    let p: Vec<f32> = case.ranked.iter().map(|&c| case.sigmoid[c]).collect();
    let full = lengths.iter().zip(&p).map(|(l, p)| l * p).sum::<f32>()
        / p.iter().map(|p| p * p).sum::<f32>();
    for ((l, p), &c) in lengths.iter().zip(&p).zip(&case.ranked) {
        assert!(
            (l - full * p).abs() <= 3.0 * scale,
            "{}: bar {l} px for {p} of {full} px (bars {lengths:?})",
            case.labels[c]
        );
    }
    snapshot(&mut h, "main_screen_multilabel");
}
