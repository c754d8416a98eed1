//! The viewer, driven as a person would drive it: through its widgets (egui_kittest finds them by
//! their labels), with assertions on the state, the files written and their pixels. No display
//! or GPU is needed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use camview::explain::Normalisation;
use camview::gui::session::NoticeKind;
use camview::gui::settings::{Settings, parse_settings, parse_stored, remembered};
use camview::gui::{CamviewApp, Command, ImageOrigin, Launch, ModelRequest};
use camview::imaging;
use camview::imaging::levels::default_presets;
use camview::render::annotation::Shape;
use camview::render::{Colormap, Heat, OverlayStyle, blend};
use eframe::egui::{self, Key, Modifiers, accesskit::Role};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

mod common;
use common::{click_at, drag, fixtures, launch_recorded, launch_with, settle, settle_prefetch};

/// Fixture images copied into a fresh folder, so that saved files land beside them.
fn scratch(names: &[&str]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = names
        .iter()
        .map(|name| {
            let dest = dir.path().join(name);
            std::fs::copy(fixtures().join("images").join(name), &dest).unwrap();
            dest
        })
        .collect();
    (dir, paths)
}

/// The viewer launched as `camview --model tiny.pth IMAGE...`, settled.
fn launch(images: &[PathBuf]) -> Harness<'static, CamviewApp> {
    launch_with(
        fixtures().join("models/tiny.pth"),
        images.to_vec(),
        [1280.0, 800.0],
    )
}

fn current_image(harness: &Harness<'_, CamviewApp>) -> PathBuf {
    match &harness.state().session.image().unwrap().origin {
        ImageOrigin::File(p) => p.clone(),
        other => panic!("not a file: {other:?}"),
    }
}

/// The overlay the engine draws for this image and class, without annotations.
fn engine_overlay(
    image: &Path,
    harness: &Harness<'_, CamviewApp>,
    class: usize,
    opacity: f32,
) -> image::RgbImage {
    let source = imaging::open_image(image).unwrap();
    let analysis = harness.state().analysis().unwrap();
    let heat = Heat::of(
        analysis,
        analysis.map(class).unwrap(),
        Normalisation::PerMap,
        source.width(),
        source.height(),
    );
    let style = OverlayStyle {
        opacity,
        colormap: Colormap::Jet,
        threshold: 0.0,
        normalisation: Normalisation::PerMap,
    };
    blend(&source.rgb, &heat, &style)
}

#[test]
fn pick_a_class_set_the_opacity_annotate_and_save() {
    let (dir, images) = scratch(&["large.png"]);
    let scan = &images[0];
    let mut h = launch(&images);

    // Launched on the image: the predicted class is chosen and the window names both files.
    let analysis = h.state().analysis().expect("the image was analysed");
    let predicted = analysis.predicted;
    let other = analysis.ranked()[1];
    assert_eq!(h.state().session.class(), predicted);
    assert!(
        h.state().title().contains("large.png") && h.state().title().contains("tiny.pth"),
        "{}",
        h.state().title()
    );

    let network_ran_once = h.state().session.analysis().cloned().unwrap();

    // Another class, picked by its label.
    h.get_by_label(&format!("class {other}")).click();
    h.run();
    assert_eq!(h.state().session.class(), other);

    // The opacity slider.
    h.get_by_role_and_label(Role::Slider, "Opacity")
        .set_value_accesskit(80.0);
    h.run();
    assert!((h.state().settings.opacity - 0.8).abs() < 1e-4);

    // The overlay off with T, on again with its checkbox.
    h.key_press(Key::T);
    h.run();
    assert!(!h.state().settings.show_overlay);
    h.get_by_label("Show the heat map (T)").click();
    h.run();
    assert!(h.state().settings.show_overlay);

    // None of this ran the network again.
    assert!(Arc::ptr_eq(
        &network_ran_once,
        h.state().session.analysis().unwrap()
    ));

    // A text note placed on the overlay.
    h.get_by_label("Note").click();
    h.run();
    let pane = h.get_by_label("Overlay image").rect();
    click_at(&h, pane.center());
    h.run();
    h.get_by_label("Note text:").type_text("lesion here");
    h.key_press(Key::Enter);
    h.run();
    let marks = &h.state().session.annotations().items;
    assert_eq!(marks.len(), 1, "the note was not placed");
    assert!(matches!(&marks[0].shape, Shape::Note { text, .. } if text == "lesion here"));
    let [x0, y0, x1, y1] = marks[0].bounds();

    // Save with the defaults: `<image>_cam_<class>.png` beside the image.
    h.get_by_label("Save overlay…").click();
    h.run();
    assert!(h.state().save_dialog_open());
    h.get_by_label("Save").click();
    settle(&mut h);
    let saved = dir.path().join(format!("large_cam_class_{other}.png"));
    assert!(saved.is_file(), "nothing at {}", saved.display());
    let notice = h.state().session.notice().cloned().unwrap();
    assert!(
        notice.text.contains(&saved.display().to_string()),
        "{notice:?}"
    );
    h.get_by_label_contains("Saved ");

    // The file: the image's size, the engine's overlay at 80% except where the note is, and
    // the note's white ink there.
    let written = image::open(&saved).unwrap().to_rgb8();
    let source = imaging::open_image(scan).unwrap();
    assert_eq!(written.dimensions(), source.rgb.dimensions());
    let expected = engine_overlay(scan, &h, other, 0.8);
    let near_note = |x: u32, y: u32| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        fx > x0 - 4.0 && fx < x1 + 4.0 && fy > y0 - 4.0 && fy < y1 + 4.0
    };
    let (mut changed, mut white) = (0, 0);
    for (x, y, p) in written.enumerate_pixels() {
        if near_note(x, y) {
            changed += usize::from(p != expected.get_pixel(x, y));
            white += usize::from(p.0.iter().all(|&v| v > 200));
        } else {
            assert_eq!(
                p,
                expected.get_pixel(x, y),
                "pixel {x},{y} away from the note"
            );
        }
    }
    assert!(
        changed > 50 && white > 5,
        "the note is not in the saved file ({changed} pixels changed, {white} white)"
    );

    // The sidecar holds the provenance and the note as data.
    let sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("large_cam_class_{other}.png.json")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["class"]["index"], other);
    assert!((sidecar["opacity"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    assert_eq!(sidecar["annotations"][0]["shape"]["text"], "lesion here");
    assert_eq!(sidecar["image"]["file"], scan.display().to_string());

    // Saving again asks before replacing; the pixels follow the new opacity.
    h.get_by_role_and_label(Role::Slider, "Opacity")
        .set_value_accesskit(20.0);
    h.run();
    h.get_by_label("Save overlay…").click();
    h.run();
    h.get_by_label("Save").click();
    h.run();
    h.get_by_label_contains("already exists. Replace it?");
    assert_eq!(
        image::open(&saved).unwrap().to_rgb8(),
        written,
        "replaced without asking"
    );
    h.get_by_label("Replace").click();
    settle(&mut h);
    let rewritten = image::open(&saved).unwrap().to_rgb8();
    let expected = engine_overlay(scan, &h, other, 0.2);
    let mut moved = 0;
    for (x, y, p) in rewritten.enumerate_pixels() {
        if !near_note(x, y) {
            assert_eq!(p, expected.get_pixel(x, y), "pixel {x},{y} at 20%");
            if p != written.get_pixel(x, y) {
                moved += 1;
            }
        }
    }
    let total = (written.width() * written.height()) as usize;
    assert!(
        moved > total / 2,
        "only {moved} of {total} pixels changed with the opacity"
    );
    // The source image is untouched.
    assert_eq!(
        std::fs::read(scan).unwrap(),
        std::fs::read(fixtures().join("images/large.png")).unwrap()
    );
}

#[test]
fn a_corrupt_file_dropped_on_the_window_shows_its_error_and_keeps_the_image() {
    let (dir, images) = scratch(&["large.png"]);
    let mut h = launch(&images);
    let class = h.state().session.class();
    let broken = dir.path().join("broken.png");
    let mut bytes = std::fs::read(&images[0]).unwrap();
    bytes.truncate(200);
    std::fs::write(&broken, bytes).unwrap();

    h.input_mut()
        .dropped_files
        .push(Arc::new(common::DroppedPath(broken.clone())));
    settle(&mut h);

    let notice = h
        .state()
        .session
        .notice()
        .cloned()
        .expect("an error is shown");
    assert!(
        notice.text.starts_with(&broken.display().to_string()),
        "{notice:?}"
    );
    h.get_by_label_contains("broken.png");
    assert_eq!(current_image(&h), images[0]);
    assert!(h.state().analysis().is_some());
    assert_eq!(h.state().session.class(), class);
    assert!(h.state().title().contains("large.png"));
}

/// Types `path` in the Open field (replacing what it holds), presses Enter and waits for the
/// work it starts.
fn open_typed(h: &mut Harness<'_, CamviewApp>, path: &Path) {
    h.get_by_label("Open:").focus();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("Open:")
        .type_text(&path.display().to_string());
    h.run();
    h.key_press(Key::Enter);
    settle(h);
}

#[test]
fn a_bad_checkpoint_typed_in_the_open_field_keeps_the_model() {
    let (dir, images) = scratch(&["rgb24.bmp"]);
    let mut h = launch(&images);
    let bad = dir.path().join("half.pth");
    let bytes = std::fs::read(fixtures().join("models/tiny.pth")).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();

    open_typed(&mut h, &bad);

    let notice = h.state().session.notice().cloned().unwrap();
    assert!(
        notice.text.starts_with(&bad.display().to_string()),
        "{notice:?}"
    );
    h.get_by_label_contains("half.pth");
    let model = h.state().session.model().unwrap();
    assert!(model.info.file.ends_with("tiny.pth"));
    assert!(h.state().analysis().is_some());

    // A good one replaces the model, and the image is analysed again with it.
    open_typed(&mut h, &fixtures().join("models/tiny3.pth"));
    assert!(
        h.state().title().contains("tiny3.pth"),
        "{}",
        h.state().title()
    );
    assert_eq!(h.state().analysis().unwrap().probabilities.len(), 2);
    h.get_by_label("class 1");
    assert!(h.query_by_label("class 2").is_none());

    // CheXNet's model.pth.tar is a model too, read with its sidecar: sigmoid findings.
    open_typed(&mut h, &fixtures().join("models/clinical/chexnet.pth.tar"));
    let model = h.state().session.model().unwrap();
    assert!(
        model.info.file.ends_with("chexnet.pth.tar"),
        "{}",
        model.info.file
    );
    assert_eq!(h.state().analysis().unwrap().probabilities.len(), 4);
    h.get_by_label("Effusion");
}

#[test]
fn keys_walk_the_folder_and_the_classes() {
    let (_dir, images) = scratch(&["gray8.png", "large.png", "rgb24.bmp"]);
    let mut h = launch(&images[1..2]);
    assert_eq!(current_image(&h), images[1]);

    // Down moves to the next class by probability, Up back.
    let ranked = h.state().analysis().unwrap().ranked();
    assert_eq!(h.state().session.class(), ranked[0]);
    h.key_press(Key::ArrowDown);
    h.run();
    assert_eq!(h.state().session.class(), ranked[1]);
    h.key_press(Key::ArrowUp);
    h.run();
    assert_eq!(h.state().session.class(), ranked[0]);

    // Right: the next image of the folder; Left: the one before (Page Up and Down step the
    // frames of a multi-frame file).
    h.key_press(Key::ArrowRight);
    settle(&mut h);
    assert_eq!(current_image(&h), images[2]);
    assert!(h.state().title().contains("rgb24.bmp"));
    h.key_press(Key::ArrowLeft);
    settle(&mut h);
    assert_eq!(current_image(&h), images[1]);
    h.key_press(Key::ArrowLeft);
    settle(&mut h);
    assert_eq!(current_image(&h), images[0]);
    assert!(h.state().analysis().is_some());
}

/// A damaged file in the folder is reported and stepped over: Right from it goes on to the next
/// image, not back to the damaged one (found by tests/soak.rs).
#[test]
fn right_walks_on_past_a_damaged_file() {
    let (dir, images) = scratch(&["gray8.png", "rgb24.bmp"]);
    let damaged = dir.path().join("m_damaged.png");
    std::fs::write(&damaged, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    // In name order: gray8.png, m_damaged.png, rgb24.bmp.
    let mut h = launch(&images[..1]);
    settle(&mut h);
    assert_eq!(current_image(&h), images[0]);
    h.key_press(Key::ArrowRight);
    settle(&mut h);
    let notice = h.state().session.notice().map(|n| n.text.clone());
    assert!(
        notice
            .as_deref()
            .is_some_and(|t| t.starts_with(&damaged.display().to_string())),
        "{notice:?}"
    );
    assert_eq!(
        current_image(&h),
        images[0],
        "the good image stays on screen"
    );
    h.key_press(Key::ArrowRight);
    settle(&mut h);
    assert_eq!(current_image(&h), images[1]);
    // Back again: Left from rgb24.bmp is the damaged file, then gray8.png.
    h.key_press(Key::ArrowLeft);
    settle(&mut h);
    assert_eq!(current_image(&h), images[1]);
    h.key_press(Key::ArrowLeft);
    settle(&mut h);
    assert_eq!(current_image(&h), images[0]);
}

/// No job of the user's is waiting or running: what is on screen came from memory.
fn no_work_in_flight(h: &Harness<'_, CamviewApp>) -> bool {
    use camview::gui::TaskKind;
    let session = &h.state().session;
    [TaskKind::Image, TaskKind::Analysis, TaskKind::Explain]
        .iter()
        .all(|&k| !session.is_busy(k))
}

/// The forward pass of `image` run here, with the model the viewer has loaded.
fn fresh_logits(h: &Harness<'_, CamviewApp>, image: &Path) -> Vec<f32> {
    let model = Arc::clone(h.state().session.model().unwrap());
    let source = imaging::open_image(image).unwrap();
    camview::explain::analyse(&model, &source, &model.preprocessing)
        .unwrap()
        .logits
}

#[test]
fn right_shows_the_next_image_prepared_in_the_background_without_running_the_network() {
    let (_dir, images) = scratch(&["gray8.png", "large.png", "rgb24.bmp"]);
    let mut h = launch(&images[1..2]);
    settle_prefetch(&mut h);
    // The previous and the next image are prepared; nothing else.
    let mut prepared: Vec<ImageOrigin> = h
        .state()
        .session
        .prepared_images()
        .into_iter()
        .cloned()
        .collect();
    prepared.sort_by_key(|o| o.name());
    assert_eq!(
        prepared,
        [
            ImageOrigin::File(images[0].clone()),
            ImageOrigin::File(images[2].clone())
        ]
    );

    // Right: the next image and its analysis in the frame that handles the key, no job queued.
    h.key_press(Key::ArrowRight);
    h.step();
    assert_eq!(current_image(&h), images[2]);
    assert!(no_work_in_flight(&h), "{:?}", h.state().session.activity());
    let analysis = h.state().analysis().expect("the prepared analysis");
    assert_eq!(analysis.logits, fresh_logits(&h, &images[2]));
    assert_eq!(h.state().session.class(), analysis.predicted);
    assert!(h.state().title().contains("rgb24.bmp"));

    // The image left behind stays prepared: Left shows it at once too.
    assert!(h.state().session.prepared_images().len() <= 2);
    h.key_press(Key::ArrowLeft);
    h.step();
    assert_eq!(current_image(&h), images[1]);
    assert!(no_work_in_flight(&h), "{:?}", h.state().session.activity());
    assert_eq!(
        h.state().analysis().unwrap().logits,
        fresh_logits(&h, &images[1])
    );
}

#[test]
fn a_prepared_image_is_not_shown_with_another_choice_of_map_nor_after_its_file_changed() {
    use camview::explain::{Method, Stage};
    use camview::gui::TaskKind;
    let (_dir, images) = scratch(&["gray8.png", "large.png", "rgb24.bmp"]);
    let mut h = launch(&images[1..2]);
    settle_prefetch(&mut h);

    // Grad-CAM chosen, then Right before the neighbours were prepared again: the next image's
    // forward pass is reused, its Grad-CAM maps are computed (the prepared ones are CAM's).
    h.state_mut()
        .session
        .choose_map(Method::GradCam, Stage::Norm5);
    h.key_press(Key::ArrowRight);
    h.step();
    assert_eq!(current_image(&h), images[2]);
    assert!(!h.state().session.is_busy(TaskKind::Analysis));
    // (The tiny model's Grad-CAM may be done within that frame already.)
    let session = &h.state().session;
    assert!(
        session.is_busy(TaskKind::Explain) || session.shown_map().method == Method::GradCam,
        "the prepared CAM is shown for Grad-CAM, and no job computes it"
    );
    settle_prefetch(&mut h);
    assert_eq!(h.state().session.shown_map().method, Method::GradCam);

    // Once they are prepared again with Grad-CAM, Right shows its map of the class it opens on
    // at once (the folder wraps): no decode, no forward pass; the other classes' maps may be
    // computing in the background (whether that job is done within the frame is a race).
    h.key_press(Key::ArrowRight);
    h.step();
    assert_eq!(current_image(&h), images[0]);
    let session = &h.state().session;
    assert!(
        !session.is_busy(TaskKind::Image) && !session.is_busy(TaskKind::Analysis),
        "{:?}",
        session.activity()
    );
    assert_eq!(session.shown_map().method, Method::GradCam);
    let shown = h.state().analysis().expect("the prepared analysis");
    assert!(
        shown.map(session.class()).is_some(),
        "no map of the class on screen"
    );
    if session.is_busy(TaskKind::Explain) {
        assert_eq!(
            session.activity(),
            ["Computing Grad-CAM at features.norm5 for the other classes…"]
        );
    }
    settle_prefetch(&mut h);
    let shown = h.state().analysis().unwrap();
    let classes = shown.logits.len();
    assert!((0..classes).all(|c| shown.map(c).is_some()));

    // The next file replaced by another image after it was prepared: it is read again.
    std::fs::copy(fixtures().join("images/tall.png"), &images[1]).unwrap();
    h.key_press(Key::ArrowRight);
    h.step();
    assert!(
        h.state().session.is_busy(TaskKind::Image),
        "the old file was shown"
    );
    settle(&mut h);
    assert_eq!(current_image(&h), images[1]);
    let tall = imaging::open_image(&fixtures().join("images/tall.png")).unwrap();
    let source = &h.state().session.image().unwrap().source;
    assert_eq!(
        (source.width(), source.height()),
        (tall.width(), tall.height())
    );
    assert_eq!(
        h.state().analysis().unwrap().logits,
        fresh_logits(&h, &images[1])
    );
}

#[test]
fn a_large_image_zoomed_out_is_drawn_from_the_pyramid_level_just_above_its_size_on_screen() {
    // 2000 x 1500, each 4 x 4 block one gray: its box-filtered levels are known exactly.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocks.png");
    let gray = |bx: u32, by: u32| ((bx * 7 + by * 13) % 256) as u8;
    image::GrayImage::from_fn(2000, 1500, |x, y| image::Luma([gray(x / 4, y / 4)]))
        .save(&path)
        .unwrap();
    let (mut h, textures) = launch_recorded(vec![path], [1280.0, 800.0]);
    let level_of = |h: &Harness<'_, CamviewApp>| {
        // The longer side on screen, and the smallest level at least that long.
        let on_screen = 2000.0 * h.state().view.scale();
        [2000, 1000, 500, 250, 125]
            .into_iter()
            .rev()
            .find(|&side| side as f32 >= on_screen)
            .unwrap_or(2000)
    };

    // Fitted in a pane about 480 pixels wide: the 500 x 375 level, and the full image never
    // went to the GPU.
    assert_eq!(level_of(&h), 500);
    let level = textures
        .last_of_size([500, 375])
        .expect("the 500 x 375 level");
    assert!(
        textures.last_of_size([2000, 1500]).is_none(),
        "the full image was uploaded: {:?}",
        textures.sizes()
    );
    for (x, y) in [(0, 0), (123, 45), (499, 374)] {
        assert_eq!(
            level.pixels[y * 500 + x].r(),
            gray(x as u32, y as u32),
            "({x}, {y})"
        );
    }

    // At 0.3 (600 pixels on screen): the 1000 x 750 level, each texel a 2 x 2 block's gray.
    h.state_mut().view.zoom = 0.3;
    h.state_mut().view.fit = false;
    h.run();
    assert_eq!(level_of(&h), 1000);
    let level = textures
        .last_of_size([1000, 750])
        .expect("the 1000 x 750 level");
    for (x, y) in [(0, 0), (301, 77), (999, 749)] {
        let expected = gray(x as u32 / 2, y as u32 / 2);
        assert_eq!(level.pixels[y * 1000 + x].r(), expected, "({x}, {y})");
    }

    // Actual pixels: the image itself.
    let ctx = h.ctx.clone();
    h.state_mut().run_command(&ctx, Command::ActualPixels);
    h.run();
    let full = textures.last_of_size([2000, 1500]).expect("the full image");
    assert_eq!(
        full.pixels[1234 * 2000 + 1999].r(),
        gray(1999 / 4, 1234 / 4)
    );
}

#[test]
fn annotations_undo_redo_and_delete_and_stay_with_their_image() {
    let (_dir, images) = scratch(&["large.png", "rgb24.bmp"]);
    let mut h = launch(&images);
    let pane = h.get_by_label("Overlay image").rect();

    // An arrow dragged across the overlay.
    h.get_by_label("Arrow").click();
    h.run();
    let (from, to) = (pane.center() - egui::vec2(60.0, 0.0), pane.center());
    drag(&mut h, from, to, 6);
    assert_eq!(h.state().session.annotations().items.len(), 1);
    assert!(matches!(
        h.state().session.annotations().items[0].shape,
        Shape::Arrow { .. }
    ));

    // Undo, redo, delete (the new mark is selected).
    h.get_by_label("Undo").click();
    h.run();
    assert!(h.state().session.annotations().items.is_empty());
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    h.run();
    assert_eq!(h.state().session.annotations().items.len(), 1);
    h.get_by_label("Select").click();
    h.run();
    click_at(&h, from + (to - from) * 0.5);
    h.run();
    assert_eq!(h.state().session.annotations().selected, Some(0));
    h.key_press(Key::Delete);
    h.run();
    assert!(h.state().session.annotations().items.is_empty());
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run();
    assert_eq!(h.state().session.annotations().items.len(), 1);

    // Another image has its own marks; coming back brings these back.
    h.key_press(Key::ArrowRight);
    settle(&mut h);
    assert!(h.state().session.annotations().items.is_empty());
    h.key_press(Key::ArrowLeft);
    settle(&mut h);
    assert_eq!(current_image(&h), images[0]);
    assert_eq!(h.state().session.annotations().items.len(), 1);
    // The image left without marks keeps nothing: only marked images are remembered.
    assert_eq!(h.state().session.cache_sizes().stashed_marks, 0);
}

#[test]
fn the_save_window_refuses_the_source_and_a_missing_folder() {
    let (dir, images) = scratch(&["rgb24.bmp"]);
    let mut h = launch(&images);
    h.get_by_label("Save overlay…").click();
    h.run();
    let field = h.get_by_label("File:");
    field.focus();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("File:")
        .type_text(&images[0].display().to_string());
    h.run();
    h.get_by_label("Save").click();
    h.run();
    h.get_by_label_contains("refusing to write over the source image");
    assert!(h.state().save_dialog_open());

    let elsewhere = dir.path().join("no/such/folder/out.png");
    let field = h.get_by_label("File:");
    field.focus();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("File:")
        .type_text(&elsewhere.display().to_string());
    h.run();
    h.get_by_label("Save").click();
    h.run();
    h.get_by_label_contains("does not exist");
    assert!(!elsewhere.exists());

    // A folder that was there when its path was typed and was removed before Save.
    let vanishing = dir.path().join("vanishing");
    std::fs::create_dir(&vanishing).unwrap();
    let inside = vanishing.join("out.png");
    let field = h.get_by_label("File:");
    field.focus();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("File:")
        .type_text(&inside.display().to_string());
    h.run();
    std::fs::remove_dir(&vanishing).unwrap();
    h.get_by_label("Save").click();
    h.run();
    h.get_by_label_contains(&format!(
        "{}: cannot write: the folder {} does not exist",
        inside.display(),
        vanishing.display()
    ));
    assert!(!vanishing.exists(), "nothing made the folder again");
    h.get_by_label("Cancel").click();
    h.run();
    assert!(!h.state().save_dialog_open());
    assert_eq!(
        std::fs::read(&images[0]).unwrap(),
        std::fs::read(fixtures().join("images/rgb24.bmp")).unwrap()
    );
}

#[test]
fn ctrl_s_in_the_open_save_window_saves_to_the_typed_path() {
    let (dir, images) = scratch(&["rgb24.bmp"]);
    let mut h = launch(&images);
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run();
    assert!(h.state().save_dialog_open());
    let typed = dir.path().join("typed.png");
    h.get_by_label("File:").focus();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("File:")
        .type_text(&typed.display().to_string());
    h.run();
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    settle(&mut h);
    assert!(typed.is_file(), "nothing at the typed path");
    assert!(!h.state().save_dialog_open());
}

/// eframe's storage, in memory.
#[derive(Default)]
struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

#[test]
fn damaged_settings_give_the_defaults_and_say_so_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.ron");
    let mut custom = Settings {
        opacity: 0.75,
        caption: true,
        ..Settings::default()
    };
    custom.remember_image(Path::new("/data/scan.png"));
    let text = ron::to_string(&custom).unwrap();
    let stored = MemoryStorage([(eframe::APP_KEY.to_string(), text.clone())].into());
    // Read by eframe: used as they are, with no message.
    assert_eq!(
        remembered(Some(&stored), Some(&file)),
        (custom.clone(), None)
    );
    // A file eframe could not parse (it keeps nothing of it): cut short by a kill while
    // it was written, or not RON at all.
    let whole = format!("{{ {:?}: {:?} }}", eframe::APP_KEY, text);
    assert_eq!(parse_stored(whole.as_bytes()), Ok(Some(custom)));
    let empty = MemoryStorage::default();
    for damaged in [
        &whole.as_bytes()[..whole.len() / 2],
        b"",
        b"\xff\xfe garbage",
    ] {
        std::fs::write(&file, damaged).unwrap();
        let (settings, message) = remembered(Some(&empty), Some(&file));
        assert_eq!(settings, Settings::default());
        let message = message.unwrap();
        assert!(
            message.starts_with(&format!(
                "camview's settings in {} could not be read (",
                file.display()
            )) && message.ends_with("); the defaults are used"),
            "{message}"
        );
    }
    // Our value damaged inside a good file, and numbers out of range.
    let bad = MemoryStorage([(eframe::APP_KEY.to_string(), "(opacity: \"x\")".to_string())].into());
    assert!(remembered(Some(&bad), Some(&file)).1.is_some());
    let wild = parse_settings("(opacity: 7.0, threshold: -1.0, window_presets: [])").unwrap();
    assert_eq!((wild.opacity, wild.threshold), (1.0, 0.0));
    assert_eq!(wild.window_presets, default_presets());
    // No file yet (a first start), or no storage at all (tests): the defaults, no message.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        remembered(Some(&empty), Some(&file)),
        (Settings::default(), None)
    );
    assert_eq!(remembered(None, Some(&file)), (Settings::default(), None));
}

#[test]
fn settings_are_remembered_between_runs() {
    let (dir, images) = scratch(&["rgb24.bmp"]);
    let mut h = launch(&images);
    h.get_by_role_and_label(Role::Slider, "Opacity")
        .set_value_accesskit(70.0);
    h.get_by_label("Colormap").click();
    h.run();
    h.get_by_label("turbo").click();
    h.run();
    h.key_press(Key::T);
    h.run();
    let mut storage = MemoryStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);
    let storage: &'static MemoryStorage = Box::leak(Box::new(storage));

    let next = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| {
            cc.storage = Some(storage);
            // A model that never loads, so this run remembers nothing new.
            let launch = Launch {
                model: ModelRequest::file(PathBuf::from("no-such-model.pth")),
                started: Instant::now(),
                ..Launch::demo()
            };
            CamviewApp::new(cc, launch).unwrap()
        });
    let s = &next.state().settings;
    assert!((s.opacity - 0.7).abs() < 1e-4);
    assert_eq!(s.colormap, Colormap::Turbo);
    assert!(!s.show_overlay);
    let folder = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(s.last_folder.as_deref(), Some(folder.as_path()));
    assert_eq!(s.recent_images, [folder.join("rgb24.bmp")]);
    assert_eq!(
        s.recent_models,
        [std::fs::canonicalize(fixtures().join("models/tiny.pth")).unwrap()]
    );
}

#[test]
fn with_no_arguments_the_demo_model_opens_on_a_demo_image() {
    let mut h = Harness::builder()
        .with_size([1280.0, 800.0])
        .with_max_steps(50)
        .build_eframe(|cc| CamviewApp::new(cc, Launch::demo()).unwrap());
    settle(&mut h);
    let analysis = h
        .state()
        .analysis()
        .expect("the demo image was not analysed");
    assert_eq!(analysis.probabilities.len(), 2);
    assert!(
        h.state().first_heat_map().is_some(),
        "no heat map on screen"
    );
    let model = h.state().session.model().expect("no model");
    assert_eq!(model.info.file, camview::demo::DEMO_MODEL_NAME);
    assert_eq!(model.labels, ["normal", "lesion"]);
    assert!(
        h.state().title().contains("demo_lesion_1.bmp"),
        "{}",
        h.state().title()
    );
}

/// Clicks Copy and returns the image the viewer puts on the clipboard: the overlay is composed
/// on the worker and copied on the frame its answer arrives.
fn copy(h: &mut Harness<'_, CamviewApp>) -> egui::ColorImage {
    h.get_by_label("Copy").click();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        h.step();
        let copied = h
            .output()
            .platform_output
            .commands
            .iter()
            .find_map(|c| match c {
                egui::OutputCommand::CopyImage(image) => Some(image.clone()),
                _ => None,
            });
        if let Some(image) = copied {
            return image;
        }
        assert!(Instant::now() < deadline, "nothing was copied");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn copy_puts_the_composed_overlay_on_the_clipboard() {
    let (_dir, images) = scratch(&["large.png"]);
    let mut h = launch(&images);
    let copied = copy(&mut h);
    assert_eq!(copied.size, [300, 260]);
    let notice = h.state().session.notice().cloned().unwrap();
    assert!(notice.text.starts_with("Copied the overlay"), "{notice:?}");
}

/// Errors stay in the red band until dismissed: a second error does not hide the first, and an
/// info that comes after them (here a copy finishing) goes to the status line.
#[test]
fn errors_stay_until_dismissed_and_an_info_does_not_hide_them() {
    let (dir, images) = scratch(&["large.png"]);
    let mut h = launch(&images);
    let missing = dir.path().join("missing.png");
    open_typed(&mut h, &missing);
    let broken = dir.path().join("broken.png");
    let bytes = std::fs::read(&images[0]).unwrap();
    std::fs::write(&broken, &bytes[..200]).unwrap();
    h.input_mut()
        .dropped_files
        .push(Arc::new(common::DroppedPath(broken.clone())));
    settle(&mut h);
    let errors: Vec<String> = h
        .state()
        .session
        .errors()
        .iter()
        .map(|n| n.text.clone())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        format!("{}: no such file or folder", missing.display())
    );
    assert!(
        errors[1].starts_with(&broken.display().to_string()),
        "{errors:?}"
    );

    copy(&mut h);
    settle(&mut h);
    let notice = h.state().session.notice().cloned().unwrap();
    assert_eq!(notice.text, errors[1]);
    // One line each in the red band, the newest first.
    h.get_by_label(&format!("{}\n{}", errors[1], errors[0]));
    h.get_by_label_contains("Copied the overlay");

    h.get_by_label("Dismiss").click();
    h.run();
    for error in &errors {
        assert!(
            h.query_by_label_contains(error).is_none(),
            "{error} still shown"
        );
    }
    let notice = h.state().session.notice().cloned().unwrap();
    assert_eq!(notice.kind, NoticeKind::Info);
    assert!(notice.text.starts_with("Copied the overlay"), "{notice:?}");
}

#[test]
fn without_a_display_the_viewer_says_what_works_instead_and_logs_it() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camview"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .env("XDG_STATE_HOME", state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no display") && err.contains("predict"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "said once: {err}");
    // Started from a menu, nobody reads stderr: the log file in the state folder has it.
    let log = std::fs::read_to_string(state.path().join("camview/camview.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains(&format!(
            " INFO camview::log-file: camview {} started: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );
    assert!(
        lines[1].contains(" ERROR camview::log-file: the viewer could not start: no display to open the viewer window on"),
        "{log}"
    );
}

#[test]
fn the_caption_band_and_colour_bar_add_rows_below_the_overlay() {
    use camview::gui::save::ComposeRequest;
    let (_dir, images) = scratch(&["rgb24.bmp"]);
    let h = launch(&images);
    let session = &h.state().session;
    let plain = session
        .compose_request(OverlayStyle::default(), false, false)
        .unwrap();
    let banded = ComposeRequest {
        caption: true,
        colour_bar: true,
        ..plain.clone()
    };
    let (a, provenance) = plain.overlay().compose().unwrap();
    let (b, _) = banded.overlay().compose().unwrap();
    assert_eq!(a.dimensions(), (70, 52));
    assert_eq!(b.width(), 70);
    assert!(b.height() > 52);
    for (x, y, p) in a.enumerate_pixels() {
        assert_eq!(p, b.get_pixel(x, y));
    }
    assert_eq!(provenance.image.file, images[0].display().to_string());
}

#[test]
fn with_the_heat_map_hidden_the_saved_file_is_the_image() {
    let (dir, images) = scratch(&["rgb24.bmp"]);
    let mut h = launch(&images);
    h.key_press(Key::T);
    h.run();
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run();
    h.get_by_label_contains("The heat map is hidden");
    h.get_by_label("Save").click();
    settle(&mut h);
    let class = h.state().session.class();
    let saved = dir.path().join(format!("rgb24_cam_class_{class}.png"));
    let written = image::open(&saved).unwrap().to_rgb8();
    assert_eq!(written, imaging::open_image(&images[0]).unwrap().rgb);
    let sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.json", saved.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["opacity"], 0.0);
}

#[test]
fn method_and_layer_pickers_reuse_the_forward_pass_and_faithfulness_plots_the_curves() {
    use camview::explain::{Method, Stage};
    use camview::gui::session::ScoredMap;
    let (_dir, images) = scratch(&["large.png"]);
    let mut h = launch(&images);
    let forward = h.state().session.last_analysis();
    let cam = h.state().analysis().unwrap().clone();
    assert_eq!(cam.maps[0].method, Method::Cam);

    // Grad-CAM from the method picker: computed on the worker, from the same forward pass.
    h.get_by_label("Method").click();
    h.run();
    h.get_by_label("Grad-CAM").click();
    settle(&mut h);
    let shown = h.state().analysis().unwrap().clone();
    assert_eq!(shown.maps[0].method, Method::GradCam);
    assert_eq!(shown.maps[0].layer, Stage::Norm5);
    assert_eq!(shown.logits, cam.logits);
    assert_eq!(
        h.state().session.last_analysis(),
        forward,
        "the network ran again"
    );
    assert!(h.query_by_label("Grad-CAM value").is_some(), "legend");

    // A finer layer from the layer picker: the map has that layer's resolution (224 / 8).
    h.get_by_label("Layer").click();
    h.run();
    h.get_by_label("features.denseblock2").click();
    settle(&mut h);
    let fine = h.state().analysis().unwrap().clone();
    assert_eq!(fine.maps[0].layer, Stage::DenseBlock(2));
    assert_eq!((fine.maps[0].width, fine.maps[0].height), (28, 28));

    // CAM exists only at norm5: picking it moves the layer there, at once (no work).
    h.get_by_label("Method").click();
    h.run();
    h.get_by_label("CAM").click();
    h.run();
    assert_eq!(h.state().session.layer(), Stage::Norm5);
    assert!(!h.state().session.is_busy(camview::gui::TaskKind::Explain));
    assert_eq!(h.state().analysis().unwrap().maps[0].method, Method::Cam);

    // Back to Grad-CAM at denseblock2: cached, shown within the frame.
    h.get_by_label("Method").click();
    h.run();
    h.get_by_label("Grad-CAM").click();
    h.run();
    h.get_by_label("Layer").click();
    h.run();
    h.get_by_label("features.denseblock2").click();
    h.run();
    assert!(!h.state().session.is_busy(camview::gui::TaskKind::Explain));
    assert_eq!(
        h.state().analysis().unwrap().maps[0].values,
        fine.maps[0].values
    );

    // Another class recomposes from the cache too.
    let other = fine.ranked()[1];
    h.get_by_label(&format!("class {other}")).click();
    h.run();
    assert_eq!(h.state().session.class(), other);
    assert!(h.state().session.is_idle());

    // The faithfulness panel: both curves and their AUCs for this map and class.
    h.get_by_label("Score the map (deletion, insertion)")
        .click();
    settle(&mut h);
    let ScoredMap { key, scores } = h.state().session.faithfulness().cloned().expect("scores");
    assert_eq!(key.class, other);
    assert_eq!(key.generation, h.state().session.analysis_generation());
    assert_eq!(scores.deletion.probabilities.len(), key.steps + 1);
    assert!(h.query_by_label("Deletion AUC").is_some());
    let shown_auc = format!("{:.3}", scores.insertion.auc);
    assert!(
        h.query_by_label(&shown_auc).is_some(),
        "insertion AUC {shown_auc} not shown"
    );
}

/// The sanity panel runs the model randomisation test of the map on screen on the worker: the
/// report is of this map and class, with a step per module of the model, shown as a strip and
/// curves; the same seed gives the same report as the library; Stop halts it until asked again.
#[test]
fn the_sanity_panel_randomises_the_model_in_the_background_and_stops() {
    use camview::explain::sanity::{Randomisation, sanity_check};
    use camview::explain::{MapChoice, Method, NoProgress, Stage};
    use camview::gui::TaskKind;
    let (_dir, images) = scratch(&["large.png"]);
    // tall enough for the whole panel at the bottom of the controls
    let model = fixtures().join("models/tiny.pth");
    let mut h = launch_with(model, images.clone(), [1280.0, 1300.0]);
    h.get_by_label("Randomise the model (sanity check)").click();
    h.step();
    settle(&mut h);
    let session = &h.state().session;
    let (key, report) = session.sanity().expect("a report");
    assert_eq!(key.generation, session.analysis_generation());
    assert_eq!(
        (key.class, key.mode, key.seed),
        (session.class(), Randomisation::Cascading, 0)
    );
    let model = session.model().unwrap();
    assert_eq!(report.steps.len(), model.modules().len());
    let source = &session.image().unwrap().source;
    let expected = sanity_check(
        model,
        source,
        &MapChoice::new(Method::Cam, Stage::Norm5),
        key.class,
        Randomisation::Cascading,
        0,
        &NoProgress,
    )
    .unwrap();
    for (shown, fresh) in report.steps.iter().zip(&expected.steps) {
        assert_eq!(shown.map.values, fresh.map.values);
        assert_eq!(shown.similarity, fresh.similarity);
    }
    // the strip and the curves
    for label in ["trained", "head", "norm5", "conv0"] {
        assert!(
            h.query_by_label(label).is_some(),
            "{label} not in the strip"
        );
    }
    assert!(h.query_by_label("Seed").is_some());

    // One module at a time: another report; then Stop straight after asking halts it.
    h.get_by_label("One at a time").click();
    h.step();
    settle(&mut h);
    let (key, _) = h.state().session.sanity().unwrap();
    assert_eq!(key.mode, Randomisation::Independent);
    // (the panel closed: it asks for its own mode and seed every frame)
    h.get_by_label("Randomise the model (sanity check)").click();
    h.run();
    assert!(
        h.query_by_label("Seed").is_none(),
        "the panel is still open"
    );
    h.state_mut()
        .session
        .want_sanity(Randomisation::Cascading, 9);
    assert!(h.state().session.is_busy(TaskKind::Sanity));
    h.state_mut().session.stop_sanity();
    assert!(!h.state().session.is_busy(TaskKind::Sanity));
    h.state_mut()
        .session
        .want_sanity(Randomisation::Cascading, 9);
    assert!(
        !h.state().session.is_busy(TaskKind::Sanity),
        "started again"
    );
    assert!(h.state().session.sanity_halted(Randomisation::Cascading, 9));
    h.state_mut()
        .session
        .rerun_sanity(Randomisation::Cascading, 9);
    assert!(h.state().session.is_busy(TaskKind::Sanity));
    settle(&mut h);
    assert_eq!(
        h.state().session.sanity().unwrap().0.seed,
        9,
        "{:?}",
        h.state().session.notice()
    );
}

/// A clinician outlines a finding with the Region tool; the Agreement panel scores the map on
/// screen against it (the library's numbers, on the image's own grid); the finding exported as
/// a mask (Ctrl+M) is the finding's pixels, and `camview eval --masks` on it gives the panel's
/// pointing game and IoU. Another class updates the scores with no network pass.
#[test]
fn a_region_drawn_as_a_finding_is_scored_and_exported_as_a_mask_eval_reads() {
    use camview::explain::agreement::{Agreement, Threshold};
    use camview::render::annotation::region_mask;
    let (dir, images) = scratch(&["large.png"]);
    let model = fixtures().join("models/tiny.pth");
    let mut h = launch_with(model.clone(), images.clone(), [1280.0, 1100.0]);
    assert!(h.query_by_label_contains("Outline a finding").is_some());

    // P, then four corners and the first one again
    h.key_press(Key::P);
    h.run();
    let c = h.get_by_label("Overlay image").rect().center();
    let corners = [
        c + egui::vec2(-70.0, -50.0),
        c + egui::vec2(40.0, -60.0),
        c + egui::vec2(60.0, 30.0),
        c + egui::vec2(-50.0, 50.0),
        c + egui::vec2(-70.0, -50.0),
    ];
    for p in corners {
        click_at(&h, p);
        h.run();
    }
    let marks = h.state().session.annotations().items.clone();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(marks[0].finding);
    let Shape::Polygon { points } = &marks[0].shape else {
        panic!("not a polygon: {:?}", marks[0].shape)
    };
    assert_eq!(points.len(), 4);

    // the panel's scores are the library's on the image's grid
    let expected = |h: &Harness<'_, CamviewApp>| {
        let session = &h.state().session;
        let analysis = session.analysis().unwrap();
        let map = analysis.map(session.class()).unwrap();
        let source = &session.image().unwrap().source;
        let (w, hh) = (source.width(), source.height());
        let values = map.upsample(&map.values, w, hh);
        let mask = region_mask(&session.annotations().findings(), w, hh);
        (
            Agreement::of(&values, &mask, Threshold::Fraction(0.2)),
            Agreement::of(&values, &mask, Threshold::Otsu),
            mask,
        )
    };
    let (at_20, at_otsu, mask) = expected(&h);
    assert!(mask.iter().any(|&m| m) && !mask.iter().all(|&m| m));
    for text in [format!("{:.3}", at_20.iou), format!("{:.3}", at_otsu.dice)] {
        assert!(h.query_by_label(&text).is_some(), "{text} not shown");
    }
    let pointing = if at_20.pointing { "hit" } else { "miss" };
    assert!(h.query_by_label(pointing).is_some());

    // another class: new scores within the frame, no job
    let forward = h.state().session.last_analysis();
    let other = h.state().analysis().unwrap().ranked()[1];
    h.get_by_label(&format!("class {other}")).click();
    h.run();
    assert!(h.state().session.is_idle());
    assert_eq!(
        h.state().session.last_analysis(),
        forward,
        "the network ran"
    );
    let (other_20, _, _) = expected(&h);
    assert!(h.query_by_label(&format!("{:.3}", other_20.iou)).is_some());

    // Ctrl+M writes masks/large.png beside the image: the finding's pixels
    h.key_press_modifiers(Modifiers::COMMAND, Key::M);
    h.step();
    settle(&mut h);
    let written = dir.path().join("masks/large.png");
    let png = image::open(&written).unwrap().to_luma8();
    let read: Vec<bool> = png.pixels().map(|p| p.0[0] > 127).collect();
    assert_eq!(read, mask);
    assert!(
        h.state()
            .session
            .notice()
            .unwrap()
            .text
            .contains("masks/large.png")
    );

    // eval on the folder with that mask: the panel's pointing game and IoU at 20% (class shown)
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camview"))
        .args(["eval", "--json", "--steps", "0", "--bootstrap", "0"])
        .args(["--model", model.to_str().unwrap()])
        .args(["--images", dir.path().to_str().unwrap()])
        .args(["--masks", dir.path().join("masks").to_str().unwrap()])
        .args(["--positive-class", &other.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["positives"], 1);
    assert_eq!(
        report["pointing_game"].as_f64().unwrap(),
        f64::from(u8::from(other_20.pointing))
    );
    let iou = report["mean_iou_at_20"].as_f64().unwrap();
    assert!(
        (iou - f64::from(other_20.iou)).abs() < 1e-6,
        "{iou} against {}",
        other_20.iou
    );
}

/// The Compare window (C) computes every method's map of the class on screen in the background,
/// each equal to the library's map by that method; the correlations show; a click on a tile
/// makes that method the main map at once (from the cache).
#[test]
fn the_compare_window_shows_every_method_and_a_click_makes_one_the_main_map() {
    use camview::explain::{self, Classes, Method, NoProgress};
    use camview::gui::session::CompareTile;
    let (_dir, images) = scratch(&["large.png"]);
    let model = fixtures().join("models/tiny.pth");
    let mut h = launch_with(model, images.clone(), [1400.0, 1000.0]);
    h.key_press(Key::C);
    h.step();
    settle(&mut h);
    assert!(h.state().compare_window_open());
    let session = &h.state().session;
    let class = session.class();
    let classifier = session.model().unwrap();
    let source = &session.image().unwrap().source;
    for method in Method::ALL {
        let CompareTile::Ready(map) = session.compare_tile(method) else {
            panic!("{method} is not ready");
        };
        let choice = session.compare_choice(method);
        let fresh = explain::explain_image(
            classifier,
            source,
            &choice,
            &Classes::Only(vec![class]),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(map.values, fresh.map(class).unwrap().values, "{method}");
        assert_eq!((map.method, map.class), (method, class));
    }
    assert!(
        h.query_by_label("Rank correlation (Spearman) of the maps")
            .is_some()
    );
    // the diagonal at least (at norm5 CAM, Grad-CAM, XGrad-CAM and HiResCAM rank alike)
    assert!(h.query_all_by_label("1.00").count() >= Method::ALL.len());

    h.get_by_label("Grad-CAM tile").click();
    h.step();
    let session = &h.state().session;
    assert_eq!(session.shown_map().method, Method::GradCam);
    assert!(!session.is_busy(camview::gui::TaskKind::Analysis));
    settle(&mut h);
    h.key_press(Key::C);
    h.run();
    assert!(!h.state().compare_window_open());
}

/// The one analysis path: for every method (CAM at norm5, the others at a layer that is not the
/// default), `camview render`, `camview batch`, and the viewer's Save and Copy give the same
/// pixels, and render, batch and Save the same sidecar, which names the method and layer that
/// were drawn. (`batch` once drew plain CAM under a Grad-CAM name.)
#[test]
fn render_batch_and_the_viewer_agree_for_every_method_at_a_non_default_layer() {
    use camview::explain::{Method, Stage};
    let (dir, images) = scratch(&["large.png"]);
    let scan = &images[0];
    let model = fixtures().join("models/tiny.pth");
    let (render_dir, batch_dir) = (dir.path().join("render"), dir.path().join("batch"));
    std::fs::create_dir_all(&render_dir).unwrap();
    let mut cam_pixels = None;
    for method in Method::ALL {
        let layer = if method == Method::Cam {
            Stage::Norm5
        } else {
            Stage::DenseBlock(2)
        };
        let what = format!("{method} at {layer}");
        let run = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_camview"))
                .args(args)
                .args(["--model", model.to_str().unwrap()])
                .args(["--method", method.name(), "--layer", &layer.name()])
                .args(["--caption", "--colorbar"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{what}: {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };

        // The viewer, launched on this method and layer; Save with its suggested name (beside
        // the image) and the caption band and colour bar ticked, then Copy.
        let mut h = Harness::builder()
            .with_size([1280.0, 800.0])
            .with_max_steps(50)
            .build_eframe(|cc| {
                let launch = Launch {
                    model: ModelRequest::file(model.clone()),
                    images: images.clone(),
                    method,
                    layer,
                    started: Instant::now(),
                };
                CamviewApp::new(cc, launch).unwrap()
            });
        settle(&mut h);
        let drawn = &h.state().analysis().unwrap().maps[0];
        assert_eq!((drawn.method, drawn.layer), (method, layer), "{what}");
        h.get_by_label("Save overlay…").click();
        h.run();
        h.get_by_label("Caption band (image, class, probability, model)")
            .click();
        h.get_by_label("Colour bar with the scale").click();
        h.run();
        h.get_by_label("Save").click();
        settle(&mut h);
        let saved = h.state().session.notice().cloned().unwrap();
        assert!(saved.text.starts_with("Saved "), "{what}: {saved:?}");
        let session = &h.state().session;
        let label = &session.model().unwrap().labels[session.class()];
        let viewer_file = camview::export::default_overlay_path(scan, label, method, layer);
        assert!(
            viewer_file.is_file(),
            "{what}: no {}",
            viewer_file.display()
        );
        let file_name = viewer_file.file_name().unwrap().to_owned();
        let copied = copy(&mut h);

        // The command line, on the same files.
        let out = render_dir.join(&file_name);
        run(&[
            "render",
            scan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        run(&[
            "batch",
            "--out",
            batch_dir.to_str().unwrap(),
            "--force",
            scan.to_str().unwrap(),
        ]);

        let pixels = |p: &Path| image::open(p).unwrap().to_rgb8();
        let sidecar = |p: &Path| -> serde_json::Value {
            let text = std::fs::read_to_string(camview::export::sidecar_path(p)).unwrap();
            serde_json::from_str(&text).unwrap()
        };
        let viewer = pixels(&viewer_file);
        let viewer_sidecar = sidecar(&viewer_file);
        assert_eq!(viewer_sidecar["method"], method.name(), "{what}");
        assert_eq!(viewer_sidecar["layer"], layer.name(), "{what}");
        for other in [&out, &batch_dir.join(&file_name)] {
            assert!(other.is_file(), "{what}: no {}", other.display());
            assert!(
                pixels(other) == viewer,
                "{what}: {} differs from the viewer's Save",
                other.display()
            );
            assert_eq!(
                sidecar(other),
                viewer_sidecar,
                "{what}: {}",
                other.display()
            );
        }
        let copied_rgb: Vec<u8> = copied
            .pixels
            .iter()
            .flat_map(|p| [p.r(), p.g(), p.b()])
            .collect();
        assert_eq!(
            copied.size,
            [viewer.width() as usize, viewer.height() as usize],
            "{what}"
        );
        assert!(
            copied_rgb == viewer.as_raw().as_slice(),
            "{what}: Copy differs"
        );
        // Each method draws its own map, not CAM's.
        match method {
            Method::Cam => cam_pixels = Some(viewer),
            _ => assert!(
                cam_pixels.as_ref() != Some(&viewer),
                "{what}: the overlay is CAM's"
            ),
        }
    }
}

/// A mark pushed onto the current image's layer (and so selected), as a tool would.
fn add_mark(h: &mut Harness<'_, CamviewApp>) {
    h.state_mut()
        .session
        .annotations_mut()
        .push(camview::render::Annotation {
            shape: Shape::Note {
                at: [10.0, 10.0],
                text: "mark".into(),
                size: 12.0,
            },
            colour: [255, 255, 255],
            width: 1.5,
            finding: false,
        });
}

/// Adds a selected ellipse, a finding or not.
fn add_closed_mark(h: &mut Harness<'_, CamviewApp>, finding: bool) {
    h.state_mut()
        .session
        .annotations_mut()
        .push(camview::render::Annotation {
            shape: Shape::Ellipse {
                centre: [20.0, 20.0],
                radii: [8.0, 6.0],
            },
            colour: [255, 255, 255],
            width: 1.5,
            finding,
        });
}

/// Presses `shortcut` in a viewer on `images[1]` (a folder of three) after setting up what
/// `command` changes, and checks that it changed as the command says. The `match` has no
/// catch-all arm: a new command does not compile here until its keys are tested.
fn key_does_what_its_command_does(
    images: &[PathBuf],
    command: Command,
    shortcut: egui::KeyboardShortcut,
) {
    use camview::gui::annotate::Tool;
    let what = format!(
        "{:?} pressed as {}",
        command,
        camview::gui::commands::shortcut_text(&shortcut)
    );
    // The window and frame commands act on a multi-frame DICOM file (gray levels, 3 frames).
    let on_gray_levels = matches!(
        command,
        Command::PreviousFrame
            | Command::NextFrame
            | Command::WindowPreset(_)
            | Command::ResetWindow
            | Command::InvertWindow
    );
    let mut h = if on_gray_levels {
        launch(&[fixtures().join("dicom/multiframe.dcm")])
    } else {
        launch(&images[1..2])
    };
    let ranked = h.state().analysis().unwrap().ranked();
    let fitted_zoom = h.state().view.zoom;
    // The state the command changes, set up so that the change shows.
    match command {
        Command::PreviousClass => h.state_mut().session.select_class(ranked[1]),
        Command::ActualPixels | Command::ToggleOverlay | Command::NextClass => {}
        Command::ToggleCompare => {}
        Command::PreviousImage | Command::NextImage | Command::SaveOverlay => {}
        Command::CopyOverlay | Command::Quit | Command::ToggleKeys => {}
        Command::Fit => h.state_mut().view.actual_pixels(),
        Command::NextFrame | Command::WindowPreset(_) | Command::InvertWindow => {}
        Command::PreviousFrame => {
            h.state_mut().session.open_frame(3, 4096);
            settle(&mut h);
        }
        Command::ResetWindow => {
            let lung = camview::imaging::Window::linear(-600.0, 1500.0);
            h.state_mut().session.set_window(lung, 4096);
        }
        Command::UseTool(tool) => {
            h.state_mut().annotator.tool = if tool == Tool::Draw {
                Tool::Select
            } else {
                Tool::Draw
            }
        }
        Command::DeleteMark | Command::Undo => add_mark(&mut h),
        Command::ToggleFinding => add_closed_mark(&mut h, false),
        Command::ExportMask => add_closed_mark(&mut h, true),
        Command::Deselect => {
            add_mark(&mut h);
            h.state_mut().annotator.tool = Tool::Arrow;
        }
        Command::Redo => {
            add_mark(&mut h);
            h.state_mut().session.annotations_mut().undo();
        }
        // The system's file dialog would open (on a desktop, a real one): its keys are checked
        // by the key handler's own test (`every_shortcut_runs_its_command_and_no_other`).
        Command::OpenImage => return,
        Command::OpenModel => unreachable!("Open model has no keys"),
    }
    if command == Command::Quit {
        // One frame with the key down, so that its output holds the command (`step` runs a
        // frame per queued event).
        h.event(egui::Event::Key {
            key: shortcut.logical_key,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: shortcut.modifiers,
        });
        h.step();
        let closing = h
            .output()
            .viewport_output
            .values()
            .any(|v| v.commands.contains(&egui::ViewportCommand::Close));
        assert!(closing, "{what}: the window was not asked to close");
        return;
    }
    h.key_press_modifiers(shortcut.modifiers, shortcut.logical_key);
    settle(&mut h);
    let app = h.state();
    let marks = app.session.annotations();
    match command {
        Command::PreviousClass => assert_eq!(app.session.class(), ranked[0], "{what}"),
        Command::NextClass => assert_eq!(app.session.class(), ranked[1], "{what}"),
        Command::PreviousImage => assert_eq!(current_image(&h), images[0], "{what}"),
        Command::NextImage => assert_eq!(current_image(&h), images[2], "{what}"),
        Command::Fit => {
            assert!(app.view.fit, "{what}");
            assert!((app.view.zoom - fitted_zoom).abs() < 1e-4, "{what}");
        }
        Command::ActualPixels => {
            assert_eq!(app.view.scale(), 1.0, "{what}");
            assert!(!app.view.fit, "{what}");
        }
        Command::ToggleOverlay => assert!(!app.settings.show_overlay, "{what}"),
        Command::ToggleCompare => assert!(app.compare_window_open(), "{what}"),
        Command::PreviousFrame => assert_eq!(app.session.frame(), (2, 3), "{what}"),
        Command::NextFrame => assert_eq!(app.session.frame(), (2, 3), "{what}"),
        Command::WindowPreset(i) => {
            let preset = &app.settings.window_presets[usize::from(i)];
            assert_eq!(app.session.shown_window(), Some(preset.window()), "{what}");
        }
        Command::ResetWindow => assert_eq!(app.session.display_window(), None, "{what}"),
        Command::InvertWindow => assert!(app.session.display_inverted(), "{what}"),
        Command::UseTool(tool) => assert_eq!(app.annotator.tool, tool, "{what}"),
        Command::DeleteMark | Command::Undo => assert!(marks.items.is_empty(), "{what}"),
        Command::Deselect => {
            assert_eq!(marks.selected, None, "{what}");
            assert_eq!(app.annotator.tool, Tool::Select, "{what}");
        }
        Command::Redo => assert_eq!(marks.items.len(), 1, "{what}"),
        Command::ToggleFinding => assert!(marks.items[0].finding, "{what}"),
        Command::ExportMask => {
            let stem = images[1].file_stem().unwrap().to_string_lossy();
            let mask = images[1]
                .with_file_name("masks")
                .join(format!("{stem}.png"));
            assert!(mask.is_file(), "{what}: no {}", mask.display());
        }
        Command::SaveOverlay => assert!(app.save_dialog_open(), "{what}"),
        Command::CopyOverlay => {
            let notice = app.session.notice().cloned().unwrap();
            assert!(
                notice.text.starts_with("Copied the overlay"),
                "{what}: {notice:?}"
            );
        }
        Command::ToggleKeys => assert!(app.keys_window_open(), "{what}"),
        Command::OpenImage | Command::OpenModel | Command::Quit => unreachable!(),
    }
}

/// Every key of the command table, pressed in the real viewer, does what its command does.
#[test]
fn every_key_of_the_command_table_does_what_its_command_does() {
    let (_dir, images) = scratch(&["gray8.png", "large.png", "rgb24.bmp"]);
    for command in Command::ALL {
        for &shortcut in command.shortcuts() {
            key_does_what_its_command_does(&images, command, shortcut);
        }
    }
}

/// The plain keys belong to a text field while one is typed in: only the Ctrl commands run.
#[test]
fn while_typing_only_the_ctrl_commands_run() {
    let (_dir, images) = scratch(&["large.png"]);
    let mut h = launch(&images);
    h.get_by_label("Open:").focus();
    h.run();
    h.key_press(Key::T);
    h.key_press(Key::F1);
    h.run();
    assert!(h.state().settings.show_overlay, "T toggled the heat map");
    assert!(!h.state().keys_window_open(), "F1 opened the keys window");
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run();
    assert!(
        h.state().save_dialog_open(),
        "Ctrl+S did not open the save window"
    );
}

/// The keys window (F1) lists every command that has keys, with all its keys and what it does.
#[test]
fn the_keys_window_lists_every_command_and_its_keys() {
    use camview::gui::dialogs::keys::listed_commands;
    let (_dir, images) = scratch(&["large.png"]);
    let mut h = launch(&images);
    h.key_press(Key::F1);
    h.run();
    let window = h.get_by_role_and_label(Role::Window, "Keyboard shortcuts");
    for command in listed_commands() {
        let keys = command.shortcut_text();
        for shortcut in command.shortcuts() {
            let text = camview::gui::commands::shortcut_text(shortcut);
            assert!(
                keys.split(" / ").any(|k| k == text),
                "{command:?}: {text} not in {keys}"
            );
        }
        assert!(
            window.query_by_label(&keys).is_some(),
            "{command:?}: the keys window does not list {keys}"
        );
        assert!(
            window.query_by_label(command.description()).is_some(),
            "{command:?}: the keys window does not say what it does"
        );
    }
    let unlisted: Vec<Command> = Command::ALL
        .into_iter()
        .filter(|c| !listed_commands().any(|l| l == *c))
        .collect();
    assert_eq!(
        unlisted,
        [Command::OpenModel],
        "only a command without keys is left out"
    );
    h.key_press(Key::F1);
    h.run();
    assert!(
        h.query_by_label("Keyboard shortcuts").is_none(),
        "F1 again closes it"
    );
}

/// The README's keys table (section "Viewer") is the command table: every command with keys,
/// in its order, with its keys and what it does.
#[test]
fn the_readme_keys_table_is_the_command_table() {
    use camview::gui::dialogs::keys::listed_commands;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let viewer = readme
        .split("\n## ")
        .find(|s| s.starts_with("Viewer\n"))
        .expect("README.md has no section \"Viewer\"");
    let rows: Vec<&str> = viewer
        .lines()
        .skip_while(|l| !l.starts_with("| key | does |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let expected: Vec<String> = listed_commands()
        .map(|c| format!("| {} | {} |", c.shortcut_text(), c.description()))
        .collect();
    for command in listed_commands() {
        for shortcut in command.shortcuts() {
            let text = camview::gui::commands::shortcut_text(shortcut);
            assert!(
                rows.iter().any(|r| r
                    .split('|')
                    .nth(1)
                    .is_some_and(|keys| keys.split('/').any(|k| k.trim() == text))),
                "README.md's keys table does not list {text} ({command:?})"
            );
        }
    }
    assert_eq!(
        rows,
        expected,
        "README.md's keys table differs from the command table; it should read:\n{}",
        expected.join("\n")
    );
}

#[test]
fn a_multi_label_models_classes_are_independent_sorted_and_every_positive_one_is_marked() {
    let case = common::multilabel_case("pal1.bmp");
    let h = launch_with(
        common::multilabel_model(),
        vec![fixtures().join("images/pal1.bmp")],
        [1280.0, 800.0],
    );
    let rows: Vec<(String, f32, Option<String>)> = h
        .get_all_by_role(Role::ListBoxOption)
        .map(|n| {
            let node = n.accesskit_node();
            let value = node
                .numeric_value()
                .expect("a class row without its probability");
            (node.label().unwrap(), value as f32, node.description())
        })
        .collect();
    // Every class, the most probable first.
    let labels: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let ranked: Vec<&str> = case
        .ranked
        .iter()
        .map(|&c| case.labels[c].as_str())
        .collect();
    assert_eq!(labels, ranked);
    // Each bar is its class's own probability (PyTorch's sigmoid): together far above 100%.
    for (row, &c) in rows.iter().zip(&case.ranked) {
        assert!(
            (row.1 - case.sigmoid[c]).abs() < 1e-6,
            "{row:?}: {}",
            case.sigmoid[c]
        );
    }
    let total: f32 = rows.iter().map(|r| r.1).sum();
    assert!(total > 1.5, "{total}");
    // Every positive class is said to be (here three), and no other.
    let marked: Vec<&str> = (rows.iter())
        .filter(|r| r.2.as_deref().unwrap().contains(", positive: "))
        .map(|r| r.0.as_str())
        .collect();
    let positives: Vec<&str> = (case.ranked.iter().filter(|c| case.positives.contains(c)))
        .map(|&c| case.labels[c].as_str())
        .collect();
    assert_eq!(marked, positives);
    assert_eq!(marked.len(), 3);
    let cardiomegaly = rows.iter().find(|r| r.0 == "Cardiomegaly").unwrap();
    let said = format!(
        "Cardiomegaly: {:.1}%, positive: at or above its threshold of 45%",
        100.0 * case.sigmoid[1]
    );
    assert_eq!(cardiomegaly.2.as_deref(), Some(said.as_str()));
    // The legend says what the marks and the bars mean; the model says it is multi-label.
    h.get_by_label_contains("positive: at or above its own threshold (the tick)");
    h.get_by_label_contains("Sigmoid: each bar is its class's own probability");
    h.get_by_label_contains("5 classes · multi-label (sigmoid)");
    assert_eq!(h.state().session.class(), case.ranked[0]);
    assert!(h.query_by_label_contains("predicted").is_none());
}

#[test]
fn a_softmax_models_class_list_is_one_distribution_with_the_predicted_class_first() {
    let (_dir, images) = scratch(&["rgb24.bmp"]);
    let h = launch(&images);
    let analysis = h.state().analysis().unwrap();
    let rows: Vec<(String, f64)> = h
        .get_all_by_role(Role::ListBoxOption)
        .map(|n| {
            let node = n.accesskit_node();
            (node.label().unwrap(), node.numeric_value().unwrap())
        })
        .collect();
    assert_eq!(rows[0].0, format!("class {}", analysis.predicted));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    assert!((total - 1.0).abs() < 1e-5, "{rows:?}");
    h.get_by_label_contains("predicted · ");
    assert!(h.query_by_label_contains("sigmoid").is_none());
    assert!(h.query_by_label_contains("positive").is_none());
}
