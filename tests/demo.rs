//! `demo-data`, `train` and `eval` through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn camview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_camview"))
        .args(args)
        .output()
        .unwrap()
}

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny.pth")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `camview demo-data --out DIR --count N --seed S`.
fn demo_data(out: &Path, count: u32, seed: u32) -> Output {
    camview(&[
        "demo-data",
        "--out",
        out.to_str().unwrap(),
        "--count",
        &count.to_string(),
        "--seed",
        &seed.to_string(),
    ])
}

#[test]
fn demo_data_then_eval_on_the_folder_and_on_the_fly_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&demo_data(&data, 6, 5));
    assert!(data.join("labels.csv").exists());
    assert!(data.join("scan_00005.bmp").exists());
    let model = tiny_model();
    let from_folder = camview(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--images",
        data.to_str().unwrap(),
        "--masks",
        data.join("masks").to_str().unwrap(),
        "--json",
    ]);
    ok(&from_folder);
    let generated = camview(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--synthetic",
        "6",
        "--seed",
        "5",
        "--json",
    ]);
    ok(&generated);
    let a: serde_json::Value = serde_json::from_slice(&from_folder.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&generated.stdout).unwrap();
    // The BMPs on disk are the generated scans, so every score is the same.
    for key in [
        "images",
        "positives",
        "accuracy",
        "roc_auc",
        "pointing_game",
        "mean_iou_at_20",
        "energy_inside_mask",
        "mask_share",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert_eq!(a["images"], 6);
    // The faithfulness columns, over the positive scans.
    let f = &a["faithfulness"];
    assert_eq!(f, &b["faithfulness"]);
    assert_eq!(f["images"], a["positives"]);
    for key in ["deletion_auc", "insertion_auc"] {
        let v = f[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert!(f["average_drop"].as_f64().unwrap() >= 0.0);
    for key in [
        "accuracy",
        "pointing_game",
        "mean_iou_at_20",
        "energy_inside_mask",
        "mask_share",
    ] {
        let v = a[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    // Writing the same data again without --force changes nothing and fails clearly.
    let again = demo_data(&data, 6, 5);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

/// `camview eval --json` of the tiny model on a demo-data folder, with `extra` arguments.
fn eval_folder(data: &Path, masks: &Path, extra: &[&str]) -> serde_json::Value {
    let model = tiny_model();
    let mut args = vec![
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--images",
        data.to_str().unwrap(),
        "--masks",
        masks.to_str().unwrap(),
        "--steps",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = camview(&args);
    ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn number(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn eval_intervals_follow_the_seed_and_hold_the_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&demo_data(&data, 12, 5));
    let masks = data.join("masks");
    let seeded = |seed: &str| {
        eval_folder(
            &data,
            &masks,
            &["--bootstrap", "300", "--bootstrap-seed", seed],
        )
    };
    let a = seeded("3");
    assert!(a["positives"].as_u64().unwrap() > 0 && a["positives"].as_u64().unwrap() < 12);
    let intervals = &a["intervals"];
    assert_eq!(intervals["resamples"], 300);
    assert_eq!(intervals["seed"], 3);
    assert_eq!(intervals["confidence"], 0.95);
    for (key, field) in [
        ("pointing_game", "pointing_game"),
        ("mean_iou", "mean_iou"),
        ("roc_auc", "roc_auc"),
    ] {
        let i = &intervals[key];
        let (value, low, high) = (number(i, "value"), number(i, "low"), number(i, "high"));
        assert!(low <= value && value <= high, "{key}: {i}");
        assert!(
            (0.0..=1.0).contains(&low) && (0.0..=1.0).contains(&high),
            "{key}: {i}"
        );
        assert!(
            (value - number(&a, field)).abs() < 1e-6,
            "{key}: {i} against {a}"
        );
    }
    // The same seed, the same intervals; another seed, other resamples.
    assert_eq!(a["intervals"], seeded("3")["intervals"]);
    assert_ne!(a["intervals"], seeded("4")["intervals"]);
    // --bootstrap 0: no intervals
    let none = eval_folder(&data, &masks, &["--bootstrap", "0"]);
    assert!(none["intervals"].is_null(), "{none}");
}

#[test]
fn eval_threshold_and_min_probability_change_what_is_hot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&demo_data(&data, 8, 5));
    let masks = data.join("masks");
    let at_20 = eval_folder(&data, &masks, &["--bootstrap", "0"]);
    assert_eq!(at_20["threshold"], serde_json::json!({"fraction": 0.2}));
    assert_eq!(at_20["mean_iou"], at_20["mean_iou_at_20"]);
    let dice = number(&at_20, "mean_dice");
    assert!(dice >= number(&at_20, "mean_iou") && dice <= 1.0, "{at_20}");
    let otsu = eval_folder(&data, &masks, &["--bootstrap", "0", "--threshold", "otsu"]);
    assert_eq!(otsu["threshold"], "otsu");
    assert_ne!(
        otsu["mean_iou"], at_20["mean_iou"],
        "Otsu cut where 20% did"
    );
    // the 20% column is still the 20% one, and nothing else moved
    for key in [
        "mean_iou_at_20",
        "pointing_game",
        "energy_inside_mask",
        "mask_share",
        "roc_auc",
    ] {
        assert_eq!(otsu[key], at_20[key], "{key}");
    }
    // No image reaches a probability above 1: every lesion scan is an empty map.
    let none = eval_folder(
        &data,
        &masks,
        &["--bootstrap", "0", "--min-probability", "1.01"],
    );
    assert_eq!(none["below_min_probability"], none["positives"]);
    for key in [
        "pointing_game",
        "mean_iou",
        "mean_dice",
        "mean_iou_at_20",
        "energy_inside_mask",
    ] {
        assert_eq!(none[key], 0.0, "{key}");
    }
    assert_eq!(none["mask_share"], at_20["mask_share"]);
    assert_eq!(
        none["roc_auc"], at_20["roc_auc"],
        "classification is not localisation"
    );
    let bad = camview(&["eval", "--synthetic", "2", "--threshold", "1.5"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'otsu'"));
}

#[test]
fn masks_written_by_camview_score_as_the_originals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&demo_data(&data, 8, 5));
    let originals = data.join("masks");
    let rewritten = dir.path().join("rewritten");
    std::fs::create_dir(&rewritten).unwrap();
    let mut lesions = 0;
    for entry in std::fs::read_dir(&originals).unwrap() {
        let path = entry.unwrap().path();
        let known = image::open(&path).unwrap().to_luma8();
        let bits: Vec<bool> = known.pixels().map(|p| p.0[0] > 127).collect();
        lesions += usize::from(bits.contains(&true));
        let dest = rewritten.join(path.file_name().unwrap());
        let (w, h) = known.dimensions();
        camview::export::write_mask_png(&dest, w, h, &bits, false).unwrap();
    }
    assert!(lesions > 0);
    let a = eval_folder(&data, &originals, &["--bootstrap", "50"]);
    let b = eval_folder(&data, &rewritten, &["--bootstrap", "50"]);
    assert_eq!(a["positives"], lesions);
    let seconds = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(seconds(a), seconds(b));
}

#[test]
fn train_writes_a_model_the_loader_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let o = camview(&[
        "train",
        "--synthetic",
        "12",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--input-size",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let log: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(log["epochs"].as_array().unwrap().len(), 1);
    // The model and its sidecar load through the same path as users' checkpoints.
    let predict = camview(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--json",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/images/gray8.png")
            .to_str()
            .unwrap(),
    ]);
    ok(&predict);
    let v: serde_json::Value = serde_json::from_slice(&predict.stdout).unwrap();
    assert_eq!(v["labels"], serde_json::json!(["normal", "lesion"]));
    assert_eq!(
        v["model"]["architecture"],
        "densenet (growth 12, blocks 3-4, init 24, bn_size 4)"
    );
}

#[test]
fn train_takes_the_architecture_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--synthetic",
            "8",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--input-size",
            "48",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        camview(&args)
    };
    let bad = train(&["--blocks", "2,0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--blocks"));
    assert!(!out.exists());
    ok(&train(&["--blocks", "2", "--growth", "8"]));
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/gray8.png");
    let predict = camview(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--json",
        image.to_str().unwrap(),
    ]);
    ok(&predict);
    let v: serde_json::Value = serde_json::from_slice(&predict.stdout).unwrap();
    assert_eq!(
        v["model"]["architecture"],
        "densenet (growth 8, blocks 2, init 24, bn_size 4)"
    );
}

#[test]
fn train_on_a_folder_uses_its_masks_with_a_mask_weight() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&demo_data(&data, 16, 2));
    let out = dir.path().join("m.safetensors");
    let train = |weight: &str| {
        camview(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--input-size",
            "48",
            "--mask-weight",
            weight,
            "--force",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let bad = train("-1");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mask-weight"));
    let o = train("1");
    ok(&o);
    let log: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(log["config"]["mask_weight"], 1.0);
    // The masks are read: one that is missing stops the training and is named.
    let first_mask = data.join("masks").join("scan_00000.png");
    std::fs::remove_file(&first_mask).unwrap();
    let missing = train("1");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("scan_00000.png"));
    // Without the term the masks are not needed; with it, a labels.csv must have the column.
    ok(&train("0"));
    std::fs::write(data.join("labels.csv"), "image,label\nscan_00001.bmp,0\n").unwrap();
    let no_column = train("1");
    assert!(!no_column.status.success());
    assert!(String::from_utf8_lossy(&no_column.stderr).contains("'mask' column"));
}

/// Faithfulness on a real (small) DenseNet where the answer is known: the demo model was trained
/// to find lesions, so on an unseen lesion scan a map that covers exactly the lesion must score
/// better than its inverse on every measure.
#[test]
fn a_map_of_the_lesion_is_more_faithful_than_its_inverse() {
    use camview::explain::faithfulness::{FaithfulnessOptions, faithfulness};
    use camview::explain::{self, ClassActivationMap, Method, NoProgress, Stage};
    let classifier = camview::demo::demo_classifier().unwrap();
    let generator = camview::training::synth::ScanGenerator::new(1000);
    let scan = (0..50)
        .map(|i| generator.scan(i))
        .find(|s| s.positive)
        .unwrap();
    let rgb = image::DynamicImage::ImageLuma8(scan.image.clone()).to_rgb8();
    let source = camview::imaging::SourceImage::from_rgb("scan", rgb, "synthetic");
    let a = explain::analyse(&classifier, &source, &classifier.preprocessing).unwrap();
    let lesion = 1;
    // The mask's share of each cell of a 16 x 16 grid over the image.
    let (w, h) = scan.mask.dimensions();
    let n = 16;
    let mut cells = vec![0f32; n * n];
    for (x, y, p) in scan.mask.enumerate_pixels() {
        if p.0[0] > 127 {
            let (cx, cy) = (x as usize * n / w as usize, y as usize * n / h as usize);
            cells[cy * n + cx] += 1.0;
        }
    }
    let map = |values: Vec<f32>| ClassActivationMap {
        transposed: false,
        score_cam_most_active: None,
        class: lesion,
        method: Method::Cam,
        layer: Stage::Norm5,
        width: n,
        height: n,
        values,
        region: a.region,
    };
    let options = FaithfulnessOptions {
        steps: 16,
        ..Default::default()
    };
    let inverse: Vec<f32> = cells.iter().map(|v| -v).collect();
    let good = faithfulness(&classifier, &a.input, &map(cells), &options, &NoProgress).unwrap();
    let bad = faithfulness(&classifier, &a.input, &map(inverse), &options, &NoProgress).unwrap();
    assert!(
        good.deletion.auc < bad.deletion.auc,
        "deletion AUC: lesion map {}, inverse {}",
        good.deletion.auc,
        bad.deletion.auc
    );
    assert!(
        good.insertion.auc > bad.insertion.auc,
        "insertion AUC: lesion map {}, inverse {}",
        good.insertion.auc,
        bad.insertion.auc
    );
    assert!(
        good.drop_percent <= bad.drop_percent,
        "average drop: lesion map {}, inverse {}",
        good.drop_percent,
        bad.drop_percent
    );
}
