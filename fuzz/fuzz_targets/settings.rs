//! The viewer's settings file (eframe's `app.ron`, camview's settings inside it): anything
//! read has every number in its range.
#![no_main]
use camview::gui::settings::{RECENT_LIMIT, parse_stored};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(Some(s)) = parse_stored(data) else {
        return;
    };
    assert!((0.0..=1.0).contains(&s.opacity), "opacity {}", s.opacity);
    assert!(
        (0.0..=1.0).contains(&s.threshold),
        "threshold {}",
        s.threshold
    );
    assert!(s.recent_images.len() <= RECENT_LIMIT && s.recent_models.len() <= RECENT_LIMIT);
    assert!(!s.window_presets.is_empty());
    for p in &s.window_presets {
        assert!(
            p.center.is_finite() && p.width.is_finite() && p.width > 0.0,
            "{p:?}"
        );
    }
});
