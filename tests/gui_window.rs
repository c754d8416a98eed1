//! The display window of images with gray levels in the viewer (DICOM, 16-bit PNG): right-drag,
//! presets, Save through the window, frames of a multi-frame file, the gray level readout and
//! the walk through a DICOM series. Checked against the fixtures' own files
//! (tests/fixtures/make_dicom_fixtures.py), never against the viewer's own numbers alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::PathBuf;
use std::sync::Arc;

use camview::gui::save::ComposeRequest;
use camview::gui::session::NoticeKind;
use camview::gui::{CamviewApp, ImageOrigin};
use camview::imaging::levels::{Voi, Window};
use camview::render::OverlayStyle;
use eframe::egui::{self, Event, Key, Modifiers, PointerButton, Pos2, pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

mod common;
use common::{fixtures, launch_recorded, launch_with, settle};

fn dicom(name: &str) -> PathBuf {
    fixtures().join("dicom").join(name)
}

fn launch(image: PathBuf) -> Harness<'static, CamviewApp> {
    launch_with(
        fixtures().join("models/tiny.pth"),
        vec![image],
        [1280.0, 800.0],
    )
}

/// A right-button drag on the original pane, one frame per move.
fn right_drag(h: &mut Harness<'_, CamviewApp>, by: egui::Vec2) {
    let from = h.get_by_label("Original image").rect().center();
    let button = |h: &Harness<'_, CamviewApp>, pos: Pos2, pressed| {
        h.event(Event::PointerButton {
            pos,
            button: PointerButton::Secondary,
            pressed,
            modifiers: Modifiers::NONE,
        });
    };
    h.event(Event::PointerMoved(from));
    button(h, from, true);
    h.step();
    for i in 1..=6 {
        h.event(Event::PointerMoved(from + by * (i as f32 / 6.0)));
        h.step();
    }
    button(h, from + by, false);
    h.run();
}

fn grey_of(image: &image::RgbImage) -> Vec<u8> {
    image.pixels().map(|p| p.0[0]).collect()
}

#[test]
fn a_right_drag_windows_the_displayed_image_and_leaves_the_analysis_alone() {
    let (mut h, textures) = launch_recorded(vec![dicom("ct_explicit_le.dcm")], [1280.0, 800.0]);
    let app = h.state();
    let analysis = Arc::clone(app.session.analysis().expect("the CT was analysed"));
    let generation = app.session.analysis_generation();
    let source = Arc::clone(&app.session.image().unwrap().source);
    let before = app.session.shown_window().unwrap();
    assert_eq!(
        before,
        Window::linear(-600.0, 1500.0),
        "the file's first window"
    );

    let size = [source.width() as usize, source.height() as usize];
    let first = textures.last_of_size(size).expect("the image texture");
    right_drag(&mut h, egui::vec2(-120.0, 60.0));
    let texture = textures.last_of_size(size).unwrap();
    assert!(
        !Arc::ptr_eq(&first, &texture),
        "no new texture was uploaded"
    );
    let app = h.state();
    let after = app.session.shown_window().unwrap();
    assert!(
        after.width < before.width,
        "dragging left narrows: {after:?}"
    );
    assert!(
        after.center > before.center,
        "dragging down raises the level: {after:?}"
    );

    // The texture is the image through the new window, and differs from the file's.
    let levels = source.levels.as_ref().unwrap();
    let expected = grey_of(&levels.render_rgb(&Voi::Window(after), false));
    let shown: Vec<u8> = texture.pixels.iter().map(|c| c.r()).collect();
    assert_eq!(
        shown, expected,
        "the texture is not the image through {after}"
    );
    assert_ne!(
        shown,
        grey_of(&source.rgb),
        "the texture still shows the file's window"
    );

    // The network did not run again: the same analysis and maps, value for value.
    settle(&mut h);
    let app = h.state();
    assert_eq!(app.session.analysis_generation(), generation);
    let now = app.session.analysis().unwrap();
    assert!(Arc::ptr_eq(now, &analysis), "the analysis was replaced");
    for (a, b) in now.maps.iter().zip(&analysis.maps) {
        assert_eq!(a.values, b.values, "a map's values changed");
    }
}

/// What Save would compose now, at opacity 0 (the overlay is then the base image).
fn clear_request(h: &Harness<'_, CamviewApp>) -> ComposeRequest {
    let clear = OverlayStyle {
        opacity: 0.0,
        ..OverlayStyle::default()
    };
    h.state()
        .session
        .compose_request(clear, false, false)
        .unwrap()
}

#[test]
fn a_preset_key_windows_the_display_and_the_saved_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let scan = dir.path().join("ct.dcm");
    std::fs::copy(dicom("ct_explicit_le.dcm"), &scan).unwrap();
    let mut h = launch(scan.clone());
    let file_window = clear_request(&h);
    let (file_composed, _) = file_window.overlay().compose().unwrap();

    // 1: lung, C -600 / W 1500 (the first default preset).
    h.key_press(Key::Num1);
    h.run();
    let lung = Window::linear(-600.0, 1500.0);
    assert_eq!(h.state().session.shown_window(), Some(lung));
    let request = clear_request(&h);
    assert_eq!(
        request.display.as_ref().map(|d| &d.voi),
        Some(&Voi::Window(lung))
    );
    let levels = Arc::clone(request.image.levels.as_ref().unwrap());
    let (composed, _) = request.overlay().compose().unwrap();
    assert_eq!(
        composed,
        levels.render_rgb(&Voi::Window(lung), false),
        "at opacity 0 the saved overlay is the image through the lung window"
    );

    // 2: mediastinum, C 50 / W 350: the saved overlay and its sidecar follow the display.
    h.key_press(Key::Num2);
    h.run();
    let request = clear_request(&h);
    let (composed, _) = request.overlay().compose().unwrap();
    assert_ne!(
        composed, file_composed,
        "the overlay ignores the display window"
    );
    let dest = dir.path().join("ct_mediastinum.png");
    h.state_mut().session.save(request, dest.clone(), false);
    settle(&mut h);
    let sidecar = dir.path().join("ct_mediastinum.png.json");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sidecar).unwrap()).unwrap();
    let text = sidecar.to_string();
    let mediastinum = Window::linear(50.0, 350.0).to_string();
    assert!(
        text.contains(&format!("\"display_window\":\"{mediastinum}\"")),
        "the sidecar does not name the mediastinum window ({mediastinum}): {text}"
    );
    assert!(text.contains("network_window"), "{text}");

    // The status line names both: the network saw the file's window, the screen shows 2's.
    let status = format!(
        "network saw {} (the file's) · shown {mediastinum}",
        Window::linear(-600.0, 1500.0)
    );
    assert!(h.query_by_label(&status).is_some(), "no {status:?}");
}

#[test]
fn a_preset_key_says_why_it_does_nothing() {
    let mut h = launch(fixtures().join("images/gray8.png"));
    h.key_press(Key::Num1);
    h.run();
    assert_eq!(
        h.state().session.notice().map(|n| n.text.as_str()),
        Some("gray8.png has no gray levels to window (it is an 8-bit or colour image)")
    );

    let mut h = launch(dicom("ct_explicit_le.dcm"));
    h.state_mut().settings.window_presets.truncate(2);
    h.key_press(Key::Num3);
    h.run();
    assert_eq!(
        h.state().session.notice().map(|n| n.text.as_str()),
        Some("There is no window preset 3 (the list is in the settings)")
    );
    assert_eq!(h.state().session.display_window(), None);
}

#[test]
fn page_down_opens_the_next_frame_keeping_the_chosen_window() {
    let mut h = launch(dicom("multiframe.dcm"));
    assert!(
        h.state().title().contains("frame 1/3"),
        "{}",
        h.state().title()
    );
    let first = Arc::clone(&h.state().session.image().unwrap().source);
    let generation = h.state().session.analysis_generation();
    h.key_press(Key::Num6);
    h.run();
    let chosen = h.state().session.display_window().cloned();
    assert!(chosen.is_some());

    h.key_press(Key::PageDown);
    settle(&mut h);
    let app = h.state();
    assert!(app.title().contains("frame 2/3"), "{}", app.title());
    let second = &app.session.image().unwrap().source;
    assert_eq!(second.dicom.as_ref().unwrap().frame, 2);
    assert_ne!(second.rgb, first.rgb, "frame 2 has the pixels of frame 1");
    assert!(
        app.session.analysis_generation() > generation,
        "frame 2 was not analysed"
    );
    assert_eq!(
        app.session.display_window().cloned(),
        chosen,
        "the window was dropped"
    );

    // Page Up goes back; at the first frame it stays.
    h.key_press(Key::PageUp);
    settle(&mut h);
    h.key_press(Key::PageUp);
    settle(&mut h);
    assert_eq!(h.state().session.frame(), (1, 3));
}

#[test]
fn another_image_starts_at_its_files_window() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ct_explicit_le.dcm", "ct_slope.dcm"] {
        std::fs::copy(dicom(name), dir.path().join(name)).unwrap();
    }
    let mut h = launch(dir.path().join("ct_explicit_le.dcm"));
    h.key_press(Key::Num5);
    h.run();
    assert!(h.state().session.display_window().is_some());
    h.key_press(Key::ArrowRight);
    settle(&mut h);
    assert!(h.state().title().contains("ct_slope.dcm"));
    assert_eq!(h.state().session.display_window(), None);
}

#[test]
fn the_readout_gives_the_stored_and_hounsfield_values_under_the_pointer() {
    let stored: Vec<i32> = npy(&dicom("ct_explicit_le.stored.npy"));
    let hu: Vec<f64> = npy(&dicom("ct_explicit_le.modality.npy"));
    let mut h = launch(dicom("ct_explicit_le.dcm"));
    let pane = h.get_by_label("Original image").rect();
    // A pixel of lung in the fixture (not the clipped centre).
    for (x, y) in [(20u32, 30u32), (70, 20), (50, 60)] {
        let at = h
            .state()
            .view
            .to_screen(pane, pos2(x as f32 + 0.5, y as f32 + 0.5));
        h.event(Event::PointerMoved(at));
        h.run();
        let i = y as usize * 96 + x as usize;
        let text = format!("stored {}, {:.0} HU", stored[i], hu[i]);
        assert!(
            h.query_by_label(&text).is_some(),
            "the readout at ({x}, {y}) does not read {text:?}"
        );
    }
}

#[test]
fn right_and_left_walk_a_dicom_series_in_instance_number_order() {
    let series = dicom("series");
    let mut h = launch(series.join("d.dcm"));
    let mut seen = vec![current_name(&h)];
    for _ in 0..4 {
        h.key_press(Key::ArrowRight);
        settle(&mut h);
        assert!(
            h.state().analysis().is_some(),
            "{} was not analysed",
            current_name(&h)
        );
        assert!(h.state().session.levels().is_some(), "{}", current_name(&h));
        seen.push(current_name(&h));
    }
    assert_eq!(seen, ["d.dcm", "c.dcm", "b.dcm", "z0005", "a.dcm"]);
}

fn current_name(h: &Harness<'_, CamviewApp>) -> String {
    match &h.state().session.image().unwrap().origin {
        ImageOrigin::File(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
        other => panic!("not a file: {other:?}"),
    }
}

/// A fixture's array, flattened (candle reads the .npy files numpy wrote).
fn npy<T: candle_core::WithDType>(path: &std::path::Path) -> Vec<T> {
    let t = candle_core::Tensor::read_npy(path).unwrap();
    t.flatten_all()
        .unwrap()
        .to_dtype(T::DTYPE)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn the_presets_are_edited_in_the_side_panel_and_the_keys_follow() {
    let mut h = launch(dicom("ct_explicit_le.dcm"));
    h.get_by_label("Edit the presets").click();
    h.run();
    h.get_by_label("Add a preset").click();
    h.run();
    assert_eq!(h.state().settings.window_presets.len(), 8);
    // Removing the first (lung) makes mediastinum preset 1.
    h.get_all_by_label("Remove").next().unwrap().click();
    h.run();
    let presets = &h.state().settings.window_presets;
    assert_eq!(presets[0].name, "mediastinum");
    h.key_press(Key::Num1);
    h.run();
    assert_eq!(
        h.state().session.shown_window(),
        Some(Window::linear(50.0, 350.0))
    );
    h.get_by_label("Restore the defaults").click();
    h.run();
    assert_eq!(
        h.state().settings.window_presets,
        camview::imaging::levels::default_presets()
    );
}

#[test]
fn view_window_lists_the_presets_and_the_frame_slider_picks_a_frame() {
    let mut h = launch(dicom("multiframe.dcm"));
    h.get_by_label("View").click();
    h.run();
    h.get_by_label("Window").click();
    h.run();
    h.get_by_label_contains("stroke (C 40 / W 40)").click();
    h.run();
    assert_eq!(
        h.state().session.shown_window(),
        Some(Window::linear(40.0, 40.0))
    );

    h.get_by_role_and_label(egui::accesskit::Role::Slider, "frame of 3")
        .set_value_accesskit(3.0);
    settle(&mut h);
    assert_eq!(h.state().session.frame(), (3, 3));
    assert!(
        h.state().title().contains("frame 3/3"),
        "{}",
        h.state().title()
    );
    assert_eq!(
        h.state().session.shown_window(),
        Some(Window::linear(40.0, 40.0)),
        "the chosen window was dropped with the frame"
    );
}

/// The save window offers DICOM (a Secondary Capture in the source's study, said in the window)
/// and, for a DICOM source, the UIDs in the provenance, off until ticked.
#[test]
fn the_save_window_writes_a_secondary_capture_and_links_back_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let scan = dir.path().join("study.dcm");
    std::fs::copy(dicom("ct_privacy.dcm"), &scan).unwrap();
    let mut h = launch(scan.clone());
    h.get_by_label("Save overlay…").click();
    h.run();
    assert!(
        h.query_by_label_contains("patient and study modules")
            .is_none()
    );
    h.get_by_label("DICOM").click();
    h.run();
    h.get_by_label_contains("patient and study modules");
    h.get_by_label_contains("Add the Study, Series and SOP Instance UIDs")
        .click();
    h.run();
    let settings = &h.state().settings;
    let expected =
        h.state()
            .session
            .compose_request(settings.style(), settings.caption, settings.colour_bar);
    h.get_by_label("Save").click();
    settle(&mut h);
    let saved = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "dcm") && *p != scan)
        .expect("no .dcm written");
    let reread = camview::imaging::open_image(&saved).unwrap();
    assert_eq!(reread.dicom.as_ref().unwrap().photometric, "RGB");
    let (composed, _) = expected.unwrap().overlay().compose().unwrap();
    assert_eq!(
        reread.rgb, composed,
        "the Secondary Capture holds the overlay"
    );
    let sidecar = std::fs::read_to_string(format!("{}.json", saved.display())).unwrap();
    let record: serde_json::Value = serde_json::from_str(&sidecar).unwrap();
    assert!(
        record["image"]["uids"]["study_instance_uid"]
            .as_str()
            .is_some_and(|u| u.len() > 10),
        "{sidecar}"
    );
}

/// A DICOM file the viewer cannot show: one message in the error band naming the file and the
/// problem, for each kind of bad file.
#[test]
fn bad_dicom_files_are_named_in_the_error_band() {
    for (file, problem) in [
        (
            "no_pixels_sr.dcm",
            "has no pixel data (it is a Basic Text SR",
        ),
        ("ct_jpegls.dcm", "JPEG-LS Lossless Image Compression"),
        ("short_pixel_data.dcm", "the pixel data holds 7680 bytes"),
        (
            "broken_truncated.dcm",
            "the DICOM data set is damaged or cut short",
        ),
    ] {
        let h = launch(dicom(file));
        let notice = h
            .state()
            .session
            .notice()
            .cloned()
            .expect("an error is shown");
        assert!(matches!(notice.kind, NoticeKind::Error), "{notice:?}");
        assert!(
            notice.text.starts_with(&dicom(file).display().to_string())
                && notice.text.contains(problem),
            "{notice:?}"
        );
        h.get_by_label_contains(problem);
    }
}

/// A multi-frame colour file (an ultrasound cine) has no window but has frames: the slider and
/// Page Down step them.
#[test]
fn a_colour_cine_has_a_frame_slider_without_a_window() {
    let mut h = launch(dicom("rgb_2frames.dcm"));
    assert!(h.query_by_label("Reset to the file's window").is_none());
    assert!(h.query_all_by_label_contains("frame of 2").next().is_some());
    let first = h.state().session.image().unwrap().source.rgb.clone();
    h.key_press(Key::PageDown);
    settle(&mut h);
    assert!(
        h.state().title().contains("frame 2/2"),
        "{}",
        h.state().title()
    );
    let second = &h.state().session.image().unwrap().source.rgb;
    assert_eq!(*second, image::imageops::flip_vertical(&first));
}
