//! The model sidecar `<model>.json` (labels, preprocessing, head, activation, thresholds,
//! window), read and then applied to a small model, where its meaning is checked: a sidecar the
//! model accepts is written back and read again (JSON cannot hold every f32 a number in the
//! file may round to, such as infinity: the model refuses those).
#![no_main]
use camview::network::{Classifier, parse_sidecar};

const MODEL: &[u8] = include_bytes!("../../tests/fixtures/models/tiny.pth");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sidecar) = parse_sidecar(text) else {
        return;
    };
    let Ok(model) = Classifier::from_bytes("tiny.pth", MODEL, Some(sidecar.clone())) else {
        return;
    };
    assert_eq!(model.labels.len(), model.output().thresholds.len());
    assert!(model.output().thresholds.iter().all(|t| t.is_finite()));
    let json = serde_json::to_string(&sidecar).expect("a sidecar read is written back");
    assert!(
        parse_sidecar(&json).is_ok(),
        "a sidecar the model took is read again: {json}"
    );
});
