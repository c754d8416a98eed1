//! The command line's contract, driven through the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Tensor;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model() -> String {
    fixtures().join("models/tiny.pth").display().to_string()
}

fn image(name: &str) -> PathBuf {
    fixtures().join("images").join(name)
}

fn camview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_camview"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A copy of a fixture image in a fresh folder, so outputs land beside it.
fn scratch(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(name);
    std::fs::copy(image(name), &dest).unwrap();
    (dir, dest)
}

#[test]
fn predict_json_is_one_object_per_image() {
    let o = camview(&[
        "predict",
        "--model",
        &model(),
        "--json",
        image("rgb24.bmp").to_str().unwrap(),
        image("gray8.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["width"], 70);
    assert_eq!(v["height"], 52);
    assert_eq!(
        v["labels"],
        serde_json::json!(["class 0", "class 1", "class 2"])
    );
    assert_eq!(v["model"]["num_classes"], 3);
    assert_eq!(v["model"]["sha256"].as_str().unwrap().len(), 64);
    let logits: Vec<f32> = serde_json::from_value(v["logits"].clone()).unwrap();
    let torch: Vec<f32> = Tensor::read_npy(fixtures().join("expected/rgb24_bmp.logits.npy"))
        .unwrap()
        .to_vec1()
        .unwrap();
    for (a, b) in logits.iter().zip(&torch) {
        assert!((a - b).abs() < 1e-4, "{logits:?} vs {torch:?}");
    }
    let probs: Vec<f32> = serde_json::from_value(v["probabilities"].clone()).unwrap();
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let predicted = v["predicted"].as_u64().unwrap() as usize;
    assert!(probs.iter().all(|p| *p <= probs[predicted]));
}

#[test]
fn predict_json_reports_the_preprocessing_it_used() {
    let scan = image("gray8.png");
    let preprocessing = |model: &Path, extra: &[&str]| {
        let mut args = vec!["predict", "--model", model.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        args.push(scan.to_str().unwrap());
        let o = camview(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        v["preprocessing"].clone()
    };
    let channels = fixtures().join("models/channels");
    assert_eq!(
        preprocessing(&channels.join("gray.pth"), &["--input-size", "96"]),
        serde_json::json!({"channels": 1, "input_size": 96, "geometry": "stretch",
                           "mean": [0.5], "std": [0.25], "intensity": "unit"})
    );
    assert_eq!(
        preprocessing(&channels.join("rgb_minmax.pth"), &["--geometry", "crop"]),
        serde_json::json!({"channels": 3, "input_size": 64, "geometry": "crop",
                           "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3],
                           "intensity": "minmax"})
    );
    // no sidecar: torchvision's ImageNet evaluation transform
    assert_eq!(
        preprocessing(&fixtures().join("models/tiny.pth"), &[]),
        serde_json::json!({"channels": 3, "input_size": 224, "geometry": "stretch",
                           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                           "intensity": "unit"})
    );
}

#[test]
fn predict_takes_folders_like_batch() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["rgb24.bmp", "gray8.png"] {
        std::fs::copy(image(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let o = camview(&[
        "predict",
        "--model",
        &model(),
        "--json",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("gray8.png") && lines[1].contains("rgb24.bmp"),
        "{text}"
    );
    let empty = tempfile::tempdir().unwrap();
    let o = camview(&[
        "predict",
        "--model",
        &model(),
        empty.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no images found"), "{}", stderr(&o));
}

#[test]
fn predict_text_lists_classes_and_labels_file_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "normal\nlesion\nartefact\n").unwrap();
    let o = camview(&[
        "predict",
        "--model",
        &model(),
        "--labels",
        labels.to_str().unwrap(),
        image("rgb24.bmp").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("{}: ", image("rgb24.bmp").display())),
        "{out}"
    );
    for label in ["normal", "lesion", "artefact"] {
        assert!(out.contains(label), "{out}");
    }
}

#[test]
fn render_writes_overlay_sidecar_and_raw_map_without_touching_the_source() {
    let (dir, src) = scratch("rgb24.bmp");
    let before = std::fs::read(&src).unwrap();
    let raw = dir.path().join("raw.npy");
    let o = camview(&[
        "render",
        "--model",
        &model(),
        src.to_str().unwrap(),
        "--class",
        "2",
        "--raw-cam",
        raw.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let overlay = dir.path().join("rgb24_cam_class_2.png");
    let img = image::open(&overlay).unwrap();
    assert_eq!((img.width(), img.height()), (70, 52));
    let sidecar: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("rgb24_cam_class_2.png.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["class"]["index"], 2);
    assert_eq!(sidecar["method"], "cam");
    assert_eq!(sidecar["colormap"], "jet");
    assert!((sidecar["opacity"].as_f64().unwrap() - 0.4).abs() < 1e-6);
    assert_eq!(sidecar["camview_version"], env!("CARGO_PKG_VERSION"));
    // How the image became the network's input is recorded, not left to guess.
    assert_eq!(sidecar["preprocessing"]["input_size"], 224);
    assert_eq!(sidecar["preprocessing"]["geometry"], "stretch");
    assert_eq!(
        sidecar["preprocessing"]["mean"].as_array().unwrap().len(),
        3
    );
    let printed: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(printed["overlay"], overlay.display().to_string());
    // The raw map is class 2's, at the network's 7x7 resolution, as PyTorch computes it.
    let ours = Tensor::read_npy(&raw).unwrap();
    assert_eq!(ours.dims(), &[7, 7]);
    let torch = Tensor::read_npy(fixtures().join("expected/rgb24_bmp.cams.npy"))
        .unwrap()
        .get(2)
        .unwrap();
    let err: f32 = (ours - torch)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(err < 1e-4, "raw map differs by {err}");
    // PNG text chunks carry the provenance.
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&overlay).unwrap(),
    ));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    let chunk = info
        .utf8_text
        .iter()
        .find(|t| t.keyword == "camview")
        .expect("no camview text chunk");
    let embedded: serde_json::Value = serde_json::from_str(&chunk.get_text().unwrap()).unwrap();
    assert_eq!(embedded, sidecar);
    assert_eq!(
        std::fs::read(&src).unwrap(),
        before,
        "the source image changed"
    );
}

#[test]
fn opacity_moves_the_pixels_and_existing_files_need_force() {
    let (dir, src) = scratch("gray8.png");
    let out = dir.path().join("o.bmp");
    let render = |opacity: &str, force: bool| {
        let mut args = vec![
            "render",
            "--model",
            &model(),
            src.to_str().unwrap(),
            "--opacity",
            opacity,
            "--out",
            out.to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if force {
            args.push("--force".into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        camview(&refs)
    };
    assert!(render("0", false).status.success());
    let zero = image::open(&out).unwrap().to_rgb8();
    assert_eq!(
        zero,
        image::open(&src).unwrap().to_rgb8(),
        "opacity 0 must show the image unchanged"
    );
    let o = render("0.8", false);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "camview: {}: already exists (use --force to replace it)",
            out.display()
        )
    );
    assert!(render("0.8", true).status.success());
    let strong = image::open(&out).unwrap().to_rgb8();
    let changed = zero
        .pixels()
        .zip(strong.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > (zero.len() / 3) / 2,
        "only {changed} pixels changed with opacity"
    );
}

#[test]
fn caption_band_adds_rows_below_the_image() {
    let (dir, src) = scratch("large.png");
    let out = dir.path().join("c.png");
    let o = camview(&[
        "render",
        "--model",
        &model(),
        src.to_str().unwrap(),
        "--caption",
        "--colorbar",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&out).unwrap();
    assert_eq!(img.width(), 300);
    assert!(img.height() > 260);
}

#[test]
fn failures_are_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.bmp");
    std::fs::write(&corrupt, b"BM this is not really a bitmap").unwrap();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "predict".into(),
                "--model".into(),
                model(),
                corrupt.display().to_string(),
            ],
            format!("{}: ", corrupt.display()),
        ),
        (
            vec![
                "predict".into(),
                "--model".into(),
                "/nonexistent/m.pth".into(),
                image("rgb24.bmp").display().to_string(),
            ],
            "/nonexistent/m.pth: cannot read the model: no such file or folder".into(),
        ),
        (
            vec![
                "predict".into(),
                "--labels".into(),
                "l.txt".into(),
                image("rgb24.bmp").display().to_string(),
            ],
            "--labels needs --model".into(),
        ),
        (
            vec![
                "render".into(),
                "--model".into(),
                model(),
                image("rgb24.bmp").display().to_string(),
                "--class".into(),
                "tumour".into(),
            ],
            "unknown class 'tumour'".into(),
        ),
        (
            vec![
                "predict".into(),
                "--model".into(),
                fixtures()
                    .join("models/resnet_like.pth")
                    .display()
                    .to_string(),
                image("rgb24.bmp").display().to_string(),
            ],
            "not a DenseNet checkpoint".into(),
        ),
        (
            vec![
                "predict".into(),
                "--model".into(),
                fixtures()
                    .join("models/channels/two_channels.pth")
                    .display()
                    .to_string(),
                image("rgb24.bmp").display().to_string(),
            ],
            "two_channels.pth: the network takes 2 input channels".into(),
        ),
        // Found by fuzzing: a palette of 49 bytes made the png crate panic.
        (
            vec![
                "predict".into(),
                "--model".into(),
                model(),
                image("damaged/palette_49_bytes.png").display().to_string(),
            ],
            "palette_49_bytes.png: the PNG image is damaged or unsupported: its palette (PLTE) \
             holds 49 bytes, not 1 to 256 RGB entries"
                .into(),
        ),
    ];
    for (args, expected) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = camview(&refs);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("camview: ") && err.contains(&expected),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn batch_processes_a_folder_skips_bad_files_and_reports_them() {
    let input = tempfile::tempdir().unwrap();
    for name in ["rgb24.bmp", "gray8.png", "photo.jpg"] {
        std::fs::copy(image(name), input.path().join(name)).unwrap();
    }
    std::fs::write(
        input.path().join("broken.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    std::fs::write(
        input.path().join("notes.txt"),
        b"ignored: not an image extension",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = camview(&[
        "batch",
        "--model",
        &model(),
        "--out",
        out.path().to_str().unwrap(),
        input.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.png"), "{}", stderr(&o));
    let mut reader = csv::Reader::from_path(out.path().join("predictions.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    let ok: Vec<&csv::StringRecord> = rows.iter().filter(|r| &r[1] == "ok").collect();
    assert_eq!(ok.len(), 3);
    for row in ok {
        let overlay = Path::new(&row[7]);
        assert!(overlay.exists(), "{overlay:?}");
        assert!(overlay.with_extension("png.json").exists());
    }
    let bad = rows.iter().find(|r| &r[1] == "error").unwrap();
    assert!(bad[0].ends_with("broken.png"));
}

#[test]
fn unwritable_destinations_are_reported_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    // A file standing where a folder should be.
    let blocker = dir.path().join("not_a_folder");
    std::fs::write(&blocker, b"x").unwrap();
    let out = blocker.join("overlay.png");
    let o = camview(&[
        "render",
        "--model",
        &model(),
        image("rgb24.bmp").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("camview: {}: cannot write: ", out.display())),
        "{err}"
    );
    let o = camview(&[
        "batch",
        "--model",
        &model(),
        "--out",
        blocker.to_str().unwrap(),
        image("rgb24.bmp").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot create the output folder"),
        "{}",
        stderr(&o)
    );
    // An unknown extension writes nothing at all.
    let o = camview(&[
        "render",
        "--model",
        &model(),
        image("rgb24.bmp").to_str().unwrap(),
        "--out",
        dir.path().join("o.gif").to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("unknown output format 'gif'"),
        "{}",
        stderr(&o)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("not_a_folder")]);
}

#[test]
fn render_never_writes_over_its_source_even_with_force() {
    let (_dir, src) = scratch("rgb24.bmp");
    let before = std::fs::read(&src).unwrap();
    let o = camview(&[
        "render",
        "--model",
        &model(),
        src.to_str().unwrap(),
        "--out",
        src.to_str().unwrap(),
        "--force",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refusing to write over the source image"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&src).unwrap(), before);
}

#[test]
fn without_a_model_the_embedded_demo_model_is_used() {
    let o = camview(&["predict", "--json", image("gray8.png").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["labels"], serde_json::json!(["normal", "lesion"]));
    assert_eq!(v["model"]["file"], "embedded:camview-demo");
}

#[test]
fn method_and_layer_reach_the_raw_map_the_name_and_the_sidecar() {
    let (dir, img) = scratch("rgb24.bmp");
    let raw = dir.path().join("raw.npy");
    let o = camview(&[
        "render",
        "--model",
        &model(),
        "--method",
        "gradcam++",
        "--layer",
        "features.denseblock2",
        "--raw-cam",
        raw.to_str().unwrap(),
        "--json",
        img.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["method"], "gradcam++");
    assert_eq!(v["layer"], "features.denseblock2");
    let overlay = PathBuf::from(v["overlay"].as_str().unwrap());
    let name = overlay.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("rgb24_gradcam++-denseblock2_"), "{name}");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(v["sidecar"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(sidecar["method"], "gradcam++");
    assert_eq!(sidecar["layer"], "features.denseblock2");
    // At the layer's resolution (224 / 8 = 28 at denseblock2), after the method's ReLU.
    let map = Tensor::read_npy(&raw).unwrap();
    assert_eq!(map.dims(), [28, 28]);
    let min: f32 = map.min_all().unwrap().to_scalar().unwrap();
    assert!(min >= 0.0, "negative values after the ReLU: {min}");
}

#[test]
fn every_method_name_is_accepted_and_bad_layers_are_explained() {
    let (_dir, img) = scratch("gray8.png");
    for method in [
        "cam",
        "gradcam",
        "gradcam++",
        "xgradcam",
        "hirescam",
        "layercam",
        "scorecam",
        "eigencam",
    ] {
        let o = camview(&[
            "predict",
            "--model",
            &model(),
            "--map",
            "--method",
            method,
            "--json",
            img.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["map"]["method"], method);
    }
    let o = camview(&[
        "render",
        "--model",
        &model(),
        "--method",
        "cam",
        "--layer",
        "features.transition1",
        img.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("gray8.png") && err.contains("features.norm5"),
        "{err}"
    );
    let o = camview(&[
        "render",
        "--model",
        &model(),
        "--method",
        "gradcam",
        "--layer",
        "features.transition9",
        img.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(
        err.contains("gray8.png")
            && err.contains("features.transition9")
            && err.contains("features.transition3"),
        "{err}"
    );
    let o = camview(&["render", "--layer", "block2", img.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("unknown layer 'block2'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn faithfulness_json_has_both_curves_and_a_summary() {
    let o = camview(&[
        "faithfulness",
        "--model",
        &model(),
        "--method",
        "gradcam",
        "--steps",
        "4",
        "--json",
        image("rgb24.bmp").to_str().unwrap(),
        image("gray8.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for v in &lines[..2] {
        assert_eq!(v["method"], "gradcam");
        assert_eq!(v["deletion"]["probabilities"].as_array().unwrap().len(), 5);
        assert_eq!(v["insertion"]["fractions"][4], 1.0);
        let auc = v["deletion"]["auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{auc}");
    }
    assert_eq!(lines[2]["summary"]["images"], 2);
}

/// The multi-label fixture (tests/fixtures/make_multilabel_fixtures.py): chest5.pth with its
/// sidecar (sigmoid, per-class thresholds), and what PyTorch computed.
fn multilabel() -> (String, serde_json::Value) {
    let dir = fixtures().join("models/multilabel");
    let expected = std::fs::read(dir.join("expected.json")).unwrap();
    (
        dir.join("chest5.pth").display().to_string(),
        serde_json::from_slice(&expected).unwrap(),
    )
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

fn assert_close(ours: &[f32], torch: &[f32], tolerance: f32, what: &str) {
    assert_eq!(ours.len(), torch.len(), "{what}");
    assert!(
        ours.iter()
            .zip(torch)
            .all(|(a, b)| (a - b).abs() <= tolerance),
        "{what}: ours {ours:?}, PyTorch {torch:?}"
    );
}

#[test]
fn predict_json_of_a_multi_label_model_has_its_activation_and_positives() {
    let (model, expected) = multilabel();
    let names = ["gray8.png", "pal1.bmp", "gray16.png"];
    let paths: Vec<String> = names
        .iter()
        .map(|n| image(n).display().to_string())
        .collect();
    let run = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["predict", "--model", &model, "--json"];
        args.extend(extra);
        args.extend(paths.iter().map(String::as_str));
        let o = camview(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        (stdout(&o).lines())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // The sidecar's sigmoid, then --activation softmax on the same file: PyTorch's numbers
    // either way; under softmax the predicted class is the one finding.
    for (extra, activation) in [
        (&[][..], "sigmoid"),
        (&["--activation", "softmax"], "softmax"),
    ] {
        for (name, v) in names.iter().zip(run(extra)) {
            let e = &expected["images"][name];
            assert_eq!(v["activation"], activation, "{name}");
            assert_eq!(v["model"]["activation"], activation);
            assert_eq!(v["model"]["thresholds"], expected["thresholds"]);
            let positives = match activation {
                "sigmoid" => e["positives"].clone(),
                _ => serde_json::json!([v["predicted"]]),
            };
            assert_eq!(v["positives"], positives, "{name}: {activation}");
            let (ours, torch) = (floats(&v["probabilities"]), floats(&e[activation]));
            assert_close(&ours, &torch, 1e-6, &format!("{name}: {activation}"));
            assert_close(&floats(&v["logits"]), &floats(&e["logits"]), 1e-4, name);
        }
    }
    // A model whose sidecar says nothing is read with a softmax, and says so.
    let o = camview(&["predict", "--model", &self::model(), "--json", &paths[0]]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["activation"], "softmax");
    assert_eq!(v["model"]["thresholds"], serde_json::json!([0.5, 0.5, 0.5]));
    assert_eq!(v["positives"], serde_json::json!([v["predicted"]]));
}

#[test]
fn predict_text_of_a_multi_label_model_names_every_positive_finding() {
    let (model, expected) = multilabel();
    let path = image("gray8.png").display().to_string();
    let o = camview(&["predict", "--model", &model, &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // What the text must say, from PyTorch's probabilities: the positive findings first, then
    // every class by probability, the positive ones marked.
    let e = &expected["images"]["gray8.png"];
    let p = floats(&e["sigmoid"]);
    let labels: Vec<String> = serde_json::from_value(expected["labels"].clone()).unwrap();
    let positives: Vec<usize> = serde_json::from_value(e["positives"].clone()).unwrap();
    // Nodule is above 0.5 but below its own threshold (0.62): not positive.
    let nodule = labels.iter().position(|l| l == "Nodule").unwrap();
    assert!(p[nodule] > 0.5 && !positives.contains(&nodule), "{p:?}");
    let mut ranked: Vec<usize> = (0..p.len()).collect();
    ranked.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let named: Vec<String> = (ranked.iter().filter(|c| positives.contains(c)))
        .map(|&c| format!("{} ({:.1}%)", labels[c], 100.0 * p[c]))
        .collect();
    let mut lines = vec![format!("{path}: positive (sigmoid): {}", named.join(", "))];
    lines.extend(ranked.iter().map(|&c| {
        let mark = if positives.contains(&c) {
            "  (positive)"
        } else {
            ""
        };
        format!("  {:>6.2}%  {}{mark}", 100.0 * p[c], labels[c])
    }));
    assert_eq!(out.lines().collect::<Vec<_>>(), lines, "{out}");
}

#[test]
fn a_saved_overlay_of_a_multi_label_model_records_the_activation_and_the_positives() {
    let (model, expected) = multilabel();
    let (dir, src) = scratch("pal1.bmp");
    let o = camview(&[
        "render",
        "--model",
        &model,
        "--class",
        "Effusion",
        "--caption",
        "--json",
        src.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let overlay = dir.path().join("pal1_cam_Effusion.png");
    let sidecar: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("pal1_cam_Effusion.png.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["model"]["activation"], "sigmoid");
    assert_eq!(sidecar["model"]["thresholds"], expected["thresholds"]);
    let positives: Vec<&str> = (sidecar["positives"].as_array().unwrap().iter())
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(positives, ["Cardiomegaly", "Effusion", "Mass"]);
    let e = &expected["images"]["pal1.bmp"];
    assert_close(
        &floats(&sidecar["probabilities"]),
        &floats(&e["sigmoid"]),
        1e-6,
        "the sidecar's probabilities",
    );
    // The PNG's own text chunks: the same record, and a caption with no single "predicted".
    let reader = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&overlay).unwrap(),
    ))
    .read_info()
    .unwrap();
    let text = |keyword: &str| {
        let chunk = reader
            .info()
            .utf8_text
            .iter()
            .find(|t| t.keyword == keyword);
        chunk.unwrap().get_text().unwrap()
    };
    let embedded: serde_json::Value = serde_json::from_str(&text("camview")).unwrap();
    assert_eq!(embedded, sidecar);
    let caption = text("Description");
    // The positive findings by probability (PyTorch's: 0.86, 0.80, 0.71).
    let effusion = 100.0 * floats(&e["sigmoid"])[2];
    let first = format!(
        "pal1.bmp  |  Effusion: {effusion:.1}% (sigmoid)  |  positive: Cardiomegaly, Mass, Effusion\n"
    );
    assert!(caption.starts_with(&first), "{caption}");
    assert!(!caption.contains("predicted"), "{caption}");
    let printed = stdout(&o);
    assert!(printed.contains(r#""activation":"sigmoid""#), "{printed}");
}

#[test]
fn faithfulness_under_sigmoid_scores_the_classs_own_probability() {
    let (model, expected) = multilabel();
    let e = &expected["images"]["gray16.png"];
    let o = camview(&[
        "faithfulness",
        "--model",
        &model,
        "--class",
        "Nodule",
        "--steps",
        "2",
        "--json",
        image("gray16.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(v["class"], 4);
    let y = v["probability"].as_f64().unwrap() as f32;
    let (sigmoid, softmax) = (floats(&e["sigmoid"])[4], floats(&e["softmax"])[4]);
    // Sigmoid 0.818 against softmax 0.319: a softmax score could not pass.
    assert!(
        (y - sigmoid).abs() < 1e-6,
        "{y} vs PyTorch's sigmoid {sigmoid}"
    );
    assert!((y - softmax).abs() > 0.1, "{y} is the softmax {softmax}");
    let start = v["deletion"]["probabilities"][0].as_f64().unwrap() as f32;
    assert!((start - sigmoid).abs() < 1e-6, "{start}");
}

#[test]
fn a_sidecar_with_the_wrong_number_of_thresholds_is_refused_by_name() {
    let (model, _) = multilabel();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("chest5.pth");
    std::fs::copy(&model, &copy).unwrap();
    let sidecar = dir.path().join("chest5.json");
    std::fs::write(
        &sidecar,
        r#"{"activation": "sigmoid", "thresholds": [0.5, 0.5, 0.5]}"#,
    )
    .unwrap();
    let o = camview(&[
        "predict",
        "--model",
        copy.to_str().unwrap(),
        image("gray8.png").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o),
        format!(
            "camview: {}: 3 thresholds were given but the model has 5 classes (one threshold \
             per class)\n",
            sidecar.display()
        )
    );
    std::fs::write(&sidecar, r#"{"activation": "logistic"}"#).unwrap();
    let o = camview(&[
        "predict",
        "--model",
        copy.to_str().unwrap(),
        image("gray8.png").to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "camview: {}: not a valid model sidecar: ",
            sidecar.display()
        )) && err.contains("unknown variant `logistic`, expected `softmax` or `sigmoid`"),
        "{err}"
    );
}

#[test]
fn batch_appends_the_positive_findings_to_predictions_csv() {
    let (model, expected) = multilabel();
    let input = tempfile::tempdir().unwrap();
    for name in ["gray8.png", "pal1.bmp"] {
        std::fs::copy(image(name), input.path().join(name)).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let o = camview(&[
        "batch",
        "--model",
        &model,
        "--out",
        out.path().to_str().unwrap(),
        input.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut reader = csv::Reader::from_path(out.path().join("predictions.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    // The columns scripts read stay where they were; the findings come after them.
    assert_eq!(
        header,
        [
            "image",
            "status",
            "width",
            "height",
            "predicted",
            "predicted_label",
            "class",
            "overlay",
            "p_Atelectasis",
            "p_Cardiomegaly",
            "p_Effusion",
            "p_Mass",
            "p_Nodule",
            "error",
            "positives",
            "positive_labels",
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let found: Vec<(&str, &str)> = rows.iter().map(|r| (&r[14], &r[15])).collect();
    assert_eq!(
        found,
        [
            ("0;2", "Atelectasis;Effusion"),
            ("1;2;3", "Cardiomegaly;Effusion;Mass")
        ]
    );
    assert_eq!(
        expected["images"]["pal1.bmp"]["positives"],
        serde_json::json!([1, 2, 3])
    );
}

/// The sidecar of an output, as JSON.
fn sidecar_of(output: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(format!("{}.json", output.display())).unwrap()).unwrap()
}

#[test]
fn render_method_all_lays_out_every_method_each_tile_as_its_own_render() {
    let (dir, src) = scratch("gray8.png");
    let grid_path = dir.path().join("grid.png");
    let o = camview(&[
        "render",
        "--model",
        &model(),
        src.to_str().unwrap(),
        "--method",
        "all",
        "--class",
        "2",
        "--out",
        grid_path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sidecar = sidecar_of(&grid_path);
    // Every method, in Method's order, four a row; none left out for a one-layer head.
    let methods: Vec<&str> = (sidecar["tiles"].as_array().unwrap().iter())
        .map(|t| t["method"].as_str().unwrap())
        .collect();
    let names: Vec<&str> = camview::explain::Method::ALL
        .iter()
        .map(|m| m.name())
        .collect();
    assert_eq!(methods, names);
    assert_eq!(sidecar["skipped"], serde_json::json!([]));
    let layout = &sidecar["layout"];
    assert_eq!(
        (layout["columns"].as_u64(), layout["rows"].as_u64()),
        (Some(4), Some(2))
    );
    let (cell_w, cell_h) = (
        layout["cell_width"].as_u64().unwrap() as u32,
        layout["cell_height"].as_u64().unwrap() as u32,
    );
    // A tile is the image (80 x 60) over a band naming its method.
    assert_eq!(cell_w, 80);
    assert!(cell_h > 60, "no band under the tiles: {cell_h}");
    let grid = image::open(&grid_path).unwrap().to_rgb8();
    assert_eq!(
        grid.dimensions(),
        (4 * cell_w, 2 * cell_h),
        "the grid is its layout"
    );
    // Grad-CAM's tile (column 1, row 0) is `render --method gradcam`, pixel for pixel.
    let gradcam_tile = &sidecar["tiles"][1];
    assert_eq!(
        (
            gradcam_tile["column"].as_u64(),
            gradcam_tile["row"].as_u64()
        ),
        (Some(1), Some(0))
    );
    let single = dir.path().join("gradcam.png");
    let o = camview(&[
        "render",
        "--model",
        &model(),
        src.to_str().unwrap(),
        "--method",
        "gradcam",
        "--class",
        "2",
        "--out",
        single.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let single_image = image::open(&single).unwrap().to_rgb8();
    let tile = image::imageops::crop_imm(&grid, cell_w, 0, 80, 60).to_image();
    assert_eq!(tile.dimensions(), single_image.dimensions());
    let differing = (tile.pixels().zip(single_image.pixels()))
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "pixels of the Grad-CAM tile differ from its own render"
    );
    // The tile's provenance is the single render's, but for where the file went.
    let single_sidecar = sidecar_of(&single);
    for key in [
        "method",
        "layer",
        "class",
        "map_range",
        "logits",
        "opacity",
        "colormap",
    ] {
        assert_eq!(gradcam_tile[key], single_sidecar[key], "{key}");
    }
    // Its band holds the method's name: light text pixels below the image.
    let text = (60..cell_h)
        .flat_map(|y| (cell_w..2 * cell_w).map(move |x| (x, y)))
        .filter(|&(x, y)| grid.get_pixel(x, y).0[0] > 150)
        .count();
    assert!(
        text > 20,
        "only {text} text pixels in the Grad-CAM tile's band"
    );
    assert_eq!(
        std::fs::read(&src).unwrap(),
        std::fs::read(image("gray8.png")).unwrap()
    );
}

#[test]
fn render_method_all_leaves_out_what_the_head_does_not_allow_and_compares_the_maps() {
    let (dir, src) = scratch("rgb24.bmp");
    let mlp = fixtures().join("models/heads/mlp_head.pth");
    let o = camview(&[
        "render",
        "--model",
        mlp.to_str().unwrap(),
        src.to_str().unwrap(),
        "--method",
        "all",
        "--correlations",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("CAM left out: CAM is not defined for this model"),
        "{}",
        stderr(&o)
    );
    let predicted = stdout(&o)
        .split(": ")
        .nth(1)
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .to_string();
    let label = predicted.replace(' ', "_");
    let out = dir.path().join(format!("rgb24_all_{label}.png"));
    let sidecar = sidecar_of(&out);
    assert_eq!(sidecar["tiles"].as_array().unwrap().len(), 7);
    assert_eq!(sidecar["tiles"][0]["method"], "gradcam");
    assert_eq!(sidecar["skipped"][0]["method"], "cam");
    // Seven tiles: two rows of four cells, the last empty.
    let layout = &sidecar["layout"];
    let grid = image::open(&out).unwrap();
    assert_eq!(
        (grid.width() as u64, grid.height() as u64),
        (
            4 * layout["cell_width"].as_u64().unwrap(),
            2 * layout["cell_height"].as_u64().unwrap()
        )
    );
    // The correlations: a header of the seven methods, then a row each, 1 on the diagonal
    // (or NaN for a constant map).
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 7, "{text}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "gradcam",
            "gradcam++",
            "xgradcam",
            "hirescam",
            "layercam",
            "scorecam",
            "eigencam"
        ]
    );
    for (i, row) in lines[2..].iter().enumerate() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], header[i]);
        assert!(cells[1 + i] == "1.000" || cells[1 + i] == "NaN", "{row}");
    }
    // --correlations compares methods; --raw-cam is one method's map.
    let one = camview(&[
        "render",
        "--model",
        &model(),
        src.to_str().unwrap(),
        "--correlations",
    ]);
    assert!(!one.status.success() && stderr(&one).contains("--method all"));
    let raw = dir.path().join("raw.npy");
    let all_raw = camview(&[
        "render",
        "--model",
        &model(),
        src.to_str().unwrap(),
        "--method",
        "all",
        "--raw-cam",
        raw.to_str().unwrap(),
    ]);
    assert!(!all_raw.status.success() && stderr(&all_raw).contains("--raw-cam"));
    assert!(!raw.exists());
}
