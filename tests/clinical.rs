//! The checkpoints clinicians are given, end to end (tests/fixtures/make_clinical_fixtures.py):
//! a CheXNet-style legacy file and a whole-module CheXNet pickle with their sidecars (sigmoid
//! findings, Resize(256) + centre crop 224), and MONAI's MedNIST network (1 channel, 64 px,
//! min-max intensity, MONAI's transposed images). Each opens with the sidecar alone, and
//! gives PyTorch's (or MONAI's) logits, probabilities and maps.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::{Path, PathBuf};
use std::process::Command;

use camview::explain::{self, Analysis, Method, Stage};
use camview::imaging::{self, Geometry};
use camview::model_request::ModelRequest;
use camview::network::{Activation, Classifier};

/// Logits and maps, as everywhere in the parity tests.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(model: &str) -> Classifier {
    ModelRequest::file(fixtures().join("models/clinical").join(model))
        .load()
        .unwrap_or_else(|e| panic!("{model}: {e}"))
}

#[derive(serde::Deserialize)]
struct Expected {
    logits: Vec<f32>,
    probabilities: Vec<f32>,
    /// `[classes][h][w]`, in the image's orientation.
    cams: Vec<Vec<Vec<f32>>>,
}

fn expected(tag: &str) -> Expected {
    let path = fixtures().join(format!("expected/clinical/{tag}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn analyse(classifier: &Classifier, image: &Path) -> Analysis {
    let source = imaging::open_image(image).unwrap();
    explain::analyse(classifier, &source, &classifier.preprocessing).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The logits, probabilities and CAMs of `a` are PyTorch's.
fn assert_matches(a: &Analysis, tag: &str) {
    let e = expected(tag);
    let err = max_abs_diff(&a.logits, &e.logits);
    assert!(err <= TOLERANCE, "{tag}: logits differ by {err}");
    let err = max_abs_diff(&a.probabilities, &e.probabilities);
    assert!(err <= 1e-6, "{tag}: probabilities differ by {err}");
    for (map, theirs) in a.maps.iter().zip(&e.cams) {
        assert_eq!(map.method, Method::Cam);
        assert_eq!(
            (map.height, map.width),
            (theirs.len(), theirs[0].len()),
            "{tag}"
        );
        let theirs: Vec<f32> = theirs.iter().flatten().copied().collect();
        let err = max_abs_diff(&map.values, &theirs);
        assert!(
            err <= TOLERANCE,
            "{tag}: CAM of class {} differs by {err}",
            map.class
        );
    }
}

#[test]
fn a_chexnet_style_legacy_file_opens_with_its_sidecar_and_gives_pytorch_s_findings() {
    for model in ["chexnet.pth.tar", "chexnet_module.pth"] {
        let classifier = load(model);
        assert_eq!(classifier.output().activation, Activation::Sigmoid);
        assert_eq!(classifier.info.prefix, "densenet121.", "{model}");
        assert_eq!(classifier.preprocessing.geometry, Geometry::CentreCrop);
        assert_eq!(classifier.labels[2], "Effusion");
        let stem = model.split('.').next().unwrap();
        for image in ["large.png", "tall.png"] {
            let a = analyse(&classifier, &fixtures().join("images").join(image));
            assert_matches(&a, &format!("{stem}.{}", image.replace('.', "_")));
            let positives: Vec<usize> = (0..a.probabilities.len())
                .filter(|&c| a.probabilities[c] >= 0.5)
                .collect();
            assert_eq!(a.positives, positives, "{model} {image}");
        }
    }
}

#[test]
fn monai_s_mednist_network_gives_monai_s_logits_on_monai_s_transposed_images() {
    let classifier = load("mednist.pth");
    assert_eq!(classifier.config().in_channels, 1);
    assert!(classifier.preprocessing.transpose);
    for image in ["mednist_large.png", "mednist_tall.png"] {
        let a = analyse(&classifier, &fixtures().join("models/clinical").join(image));
        assert_matches(&a, &format!("mednist.{}", image.replace('.', "_")));
    }
}

#[test]
fn every_method_runs_on_the_clinical_models() {
    for model in ["chexnet.pth.tar", "mednist.pth"] {
        let classifier = load(model);
        let image = fixtures().join("images/large.png");
        let source = imaging::open_image(&image).unwrap();
        for method in Method::ALL {
            let layer = if method == Method::Cam {
                Stage::Norm5
            } else {
                Stage::DenseBlock(2)
            };
            let choice = explain::MapChoice::new(method, layer);
            let a = explain::explain_image(
                &classifier,
                &source,
                &choice,
                &explain::Classes::All,
                &explain::NoProgress,
            )
            .unwrap_or_else(|e| panic!("{model} {method}: {e}"));
            assert!(
                a.maps
                    .iter()
                    .all(|m| m.method == method && m.values.iter().all(|v| v.is_finite())),
                "{model} {method}"
            );
        }
    }
}

#[test]
fn predict_json_says_how_a_chexnet_file_was_read() {
    let out = Command::new(env!("CARGO_BIN_EXE_camview"))
        .args(["predict", "--json", "--model"])
        .arg(fixtures().join("models/clinical/chexnet.pth.tar"))
        .arg(fixtures().join("images/large.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["activation"], "sigmoid");
    assert_eq!(v["model"]["prefix"], "densenet121.");
    assert_eq!(v["preprocessing"]["geometry"], "crop");
    assert_eq!(v["preprocessing"]["input_size"], 224);
    let e = expected("chexnet.large_png");
    let positives: Vec<usize> = (0..e.probabilities.len())
        .filter(|&c| e.probabilities[c] >= 0.5)
        .collect();
    let reported: Vec<usize> = v["positives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(reported, positives);
}
