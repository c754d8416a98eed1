//! The labels file (a name a line, or a JSON array): every name read makes an output file
//! name that stays in its folder.
#![no_main]
use std::path::Path;

use camview::explain::{Method, Stage};
use camview::network::parse_labels;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(labels) = parse_labels(text) else {
        return;
    };
    for label in &labels {
        let out = camview::export::default_overlay_path(
            Path::new("out/scan.png"),
            label,
            Method::GradCam,
            Stage::Norm5,
        );
        assert_eq!(
            out.parent(),
            Some(Path::new("out")),
            "{label:?} gave {}",
            out.display()
        );
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(
            name.is_some_and(|n| !n.contains(['/', '\\', '\0'])),
            "{label:?} gave {}",
            out.display()
        );
    }
});
