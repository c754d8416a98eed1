//! DICOM and 16-bit images against pydicom and PIL (tests/fixtures/make_dicom_fixtures.py wrote
//! the files and the references; tests/fixtures/dicom/expected.json lists them), and the
//! privacy of every output of a DICOM run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use camview::imaging::{self, SourceImage};
use serde_json::Value;

fn dicom_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(dicom_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fixtures() -> Vec<Value> {
    expected()["fixtures"].as_array().unwrap().clone()
}

fn camview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_camview"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "camview failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models/tiny.pth")
        .display()
        .to_string()
}

/// A little-endian `.npy` of `<i4` or `<f8` values, as f64 (the fixtures' two kinds).
fn npy(name: &str) -> Vec<f64> {
    let bytes = std::fs::read(dicom_dir().join(name)).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{name}");
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    let data = &bytes[10 + header_len..];
    if header.contains("'<i4'") {
        data.chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
            .collect()
    } else if header.contains("'<f8'") {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    } else {
        panic!("{name}: unexpected dtype in {header}")
    }
}

fn reference_rgb(name: &str) -> image::RgbImage {
    image::open(dicom_dir().join(name)).unwrap().to_rgb8()
}

fn largest_difference(a: &image::RgbImage, b: &image::RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// The largest difference camview's 8-bit image of each colour fixture may have from pydicom's:
/// 0 where both compute the same thing; 1 for YBR_FULL (both round the same float formula, in
/// f64 here and in NumPy there); JPEG baseline is decoded by two different decoders (libjpeg's
/// IDCT and chroma upsampling under pydicom, jpeg-decoder's here; measured: 13 levels).
fn colour_tolerance(file: &str) -> u8 {
    match file {
        "ybr_full.dcm" | "ybr_full_422.dcm" => 1,
        "rgb_jpeg_baseline.dcm" | "rgb_jpeg_extended.dcm" => 16,
        // Read as RGB, as its Photometric Interpretation says (PS3.5 8.2.1), not as YCbCr by
        // the JPEG convention: measured 1 level (the IDCTs); read as YCbCr (as PIL reads the
        // bare stream) it is off by 225.
        "rgb_jpeg_no_transform.dcm" => 2,
        _ => 0,
    }
}

#[test]
fn every_fixture_decodes_as_pydicom_does() {
    let mut checked = 0;
    for fixture in fixtures() {
        let file = fixture["file"].as_str().unwrap();
        let references = &fixture["references"];
        if !fixture["refusal"].is_null() || references.is_null() {
            continue;
        }
        // The 16-bit PNG and TIFF have their own test.
        let Some(pngs) = references["expected_png"].as_array() else {
            continue;
        };
        let frames = pngs.len();
        for (frame, png) in pngs.iter().enumerate() {
            let image = imaging::open_image_frame(&dicom_dir().join(file), frame as u32 + 1)
                .unwrap_or_else(|e| panic!("{e}"));
            let expected = reference_rgb(png.as_str().unwrap());
            let dicom = image.dicom.as_ref().unwrap();
            assert_eq!(
                (dicom.frame, dicom.frames),
                (frame as u32 + 1, frames as u32)
            );
            match &image.levels {
                Some(levels) => {
                    check_levels(file, frame, frames, &image, levels, references);
                    assert_eq!(image.rgb, expected, "{file} frame {frame}: 8-bit image");
                }
                None => {
                    let d = largest_difference(&image.rgb, &expected);
                    assert!(
                        d <= colour_tolerance(file),
                        "{file}: differs from pydicom by {d} levels"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 38, "fixtures checked");
}

/// Stored and modality values equal pydicom's; the VOI before rounding within 1e-6 of it.
fn check_levels(
    file: &str,
    frame: usize,
    frames: usize,
    image: &SourceImage,
    levels: &imaging::GrayLevels,
    references: &Value,
) {
    let n = (levels.width * levels.height) as usize;
    let slice = |all: Vec<f64>| -> Vec<f64> {
        assert_eq!(all.len(), n * frames, "{file}: reference size");
        all[frame * n..(frame + 1) * n].to_vec()
    };
    let stored = slice(npy(references["stored_npy"].as_str().unwrap()));
    let modality = slice(npy(references["modality_npy"].as_str().unwrap()));
    let voi = slice(npy(references["voi_npy"].as_str().unwrap()));
    for i in 0..n {
        assert_eq!(
            f64::from(levels.stored[i]),
            stored[i],
            "{file}: stored value {i}"
        );
        let m = f64::from(levels.modality[i]);
        assert!(
            (m - modality[i]).abs() <= 1e-4 * modality[i].abs().max(1.0),
            "{file}: modality value {i}: {m} vs {}",
            modality[i]
        );
    }
    // The VOI is exact up to float rounding: the 8-bit images are compared byte for byte, and
    // the fixtures keep every value at least 5e-5 from a rounding tie.
    let ours = levels.render(&levels.file_voi, levels.inverted);
    for i in 0..n {
        let expected = (voi[i] + 0.5).floor().clamp(0.0, 255.0);
        assert_eq!(f64::from(ours[i]), expected, "{file}: VOI of pixel {i}");
    }
    assert!(image.sha256.len() == 64);
}

#[test]
fn lossless_encodings_give_the_original_pixels() {
    let original = imaging::open_image(&dicom_dir().join("ct_explicit_le.dcm")).unwrap();
    for fixture in fixtures() {
        let Some(of) = fixture["decodes_identical_to"].as_str() else {
            continue;
        };
        if of != "ct_explicit_le.dcm" || !fixture["refusal"].is_null() {
            continue;
        }
        let file = fixture["file"].as_str().unwrap();
        let image = imaging::open_image(&dicom_dir().join(file)).unwrap();
        assert_eq!(
            image.levels.as_ref().unwrap().stored,
            original.levels.as_ref().unwrap().stored,
            "{file}"
        );
        assert_eq!(image.rgb, original.rgb, "{file}");
    }
}

#[test]
fn bad_files_get_one_message_naming_file_and_problem() {
    let cases = [
        (
            "broken_truncated.dcm",
            "the DICOM data set is damaged or cut short",
        ),
        (
            "ct_jpegls.dcm",
            "the pixel data is compressed as JPEG-LS Lossless Image Compression \
             (1.2.840.10008.1.2.4.80), which camview cannot decode",
        ),
        (
            "ct_jpeg_extended.dcm",
            "the pixel data is 12-bit JPEG Extended (Process 2 & 4) (1.2.840.10008.1.2.4.51), \
             which camview cannot decode: its JPEG decoder reads lossy JPEG at 8 bits only",
        ),
        (
            "no_pixels_sr.dcm",
            "the DICOM file has no pixel data (it is a Basic Text SR, not an image)",
        ),
        (
            "no_pixels_rtplan.dcm",
            "the DICOM file has no pixel data (it is an RT Plan, not an image)",
        ),
        (
            "unknown_transfer_syntax.dcm",
            "the transfer syntax 1.2.826.0.1.3680043.8.498.13.999.1 is not one camview can read",
        ),
        (
            "short_pixel_data.dcm",
            "the pixel data holds 7680 bytes, but 96 x 80 pixels x 1 frame need 15360",
        ),
        (
            "dicm_garbage.dcm",
            "not a readable DICOM file: its file meta information is damaged",
        ),
        // Found by the fuzzer: a JPEG frame that decodes to fewer pixels than Rows x Columns
        // gave an image of 0 x 0, which the network then classified.
        (
            "fuzz/jpeg_frame_decodes_short.dcm",
            "the pixel data is shorter than the image",
        ),
    ];
    for (file, problem) in cases {
        let path = dicom_dir().join(file);
        let message = imaging::open_image(&path).unwrap_err().to_string();
        let named = format!("{}: {problem}", path.display());
        assert!(message.starts_with(&named), "{message}\nexpected {named}");
        let out = camview(&["predict", &path.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(problem), "{stderr}");
    }
    // Every cut of a good file: a message, never a panic.
    let bytes = std::fs::read(dicom_dir().join("ct_explicit_le.dcm")).unwrap();
    for cut in (0..bytes.len()).step_by(97) {
        if let Err(e) = imaging::decode_image("cut.dcm", &bytes[..cut]) {
            assert!(e.to_string().starts_with("cut.dcm: "), "{e}");
        }
    }
}

#[test]
fn frames_are_chosen_counted_from_one_and_stated() {
    let path = dicom_dir().join("multiframe.dcm").display().to_string();
    let out = camview(&["predict", "--json", "--model", &tiny_model(), &path]);
    let first: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(first["dicom"]["frame"], 1);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("camview: {path}: frame 1 of 3 (choose with --frame N)")
    );
    let out = camview(&[
        "predict",
        "--json",
        "--model",
        &tiny_model(),
        "--frame",
        "3",
        &path,
    ]);
    let third: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(third["dicom"]["frame"], 3);
    assert_ne!(first["logits"], third["logits"]);
    let out = camview(&["predict", "--frame", "4", &path]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("camview: {path}: there is no frame 4: the file has 3 frames")
    );
}

/// `predict` on a DICOM file equals `predict` on pydicom's 8-bit image of it saved as PNG.
#[test]
fn predict_on_dicom_equals_predict_on_its_png() {
    for (dcm, png) in [
        ("ct_explicit_le.dcm", "ct_explicit_le.expected.png"),
        ("dx_mono1_voilut.dcm", "dx_mono1_voilut.expected.png"),
        ("palette_color.dcm", "palette_color.expected.png"),
    ] {
        let logits = |file: &str| -> Value {
            let path = dicom_dir().join(file).display().to_string();
            let out = camview(&["predict", "--json", "--model", &tiny_model(), &path]);
            let record: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
            record["logits"].clone()
        };
        assert_eq!(logits(dcm), logits(png), "{dcm}");
    }
}

/// The network's window: the file's by default, the command line's when given (a preset is
/// its centre and width), recorded in the output; 8-bit images ignore it.
#[test]
fn the_network_window_comes_from_the_file_or_the_command_line() {
    let path = dicom_dir().join("ct_explicit_le.dcm").display().to_string();
    let run = |extra: &[&str]| -> Value {
        let mut args = vec!["predict", "--json", "--model"];
        let model = tiny_model();
        args.push(&model);
        args.extend_from_slice(extra);
        args.push(&path);
        serde_json::from_str(stdout(&camview(&args)).trim()).unwrap()
    };
    let file = run(&[]);
    assert_eq!(file["network_window"], "C -600 / W 1500 (the file's)");
    let lung = run(&["--window-preset", "lung"]);
    let typed = run(&["--window", "-600,1500"]);
    assert_eq!(lung["logits"], file["logits"]);
    assert_eq!(typed["network_window"], "C -600 / W 1500");
    let soft = run(&["--window", "40,400"]);
    assert_ne!(soft["logits"], file["logits"]);
    assert_eq!(soft["preprocessing"]["window"]["center"], 40.0);
    // The second window of the file rendered by camview and saved as PNG gives the same input.
    let image = imaging::open_image(Path::new(&path)).unwrap();
    let levels = image.levels.as_ref().unwrap();
    assert_eq!(levels.windows[1], imaging::Window::linear(40.0, 400.0));
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("soft.png");
    levels
        .render_rgb(&imaging::Voi::Window(levels.windows[1]), false)
        .save(&png)
        .unwrap();
    let out = camview(&[
        "predict",
        "--json",
        "--model",
        &tiny_model(),
        &png.display().to_string(),
    ]);
    let from_png: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(from_png["logits"], soft["logits"]);
    let minmax = run(&["--window", "minmax"]);
    assert_eq!(minmax["network_window"], "min-max");
    let out = camview(&["predict", "--window", "wide", &path]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is neither CENTRE,WIDTH, minmax nor a preset"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sixteen_bit_png_and_tiff_keep_pil_s_input_and_show_min_max() {
    for (file, stem) in [("gray16.png", "gray16_png"), ("gray16.tif", "gray16_tif")] {
        let image = imaging::open_image(&dicom_dir().join(file)).unwrap();
        assert!(image.levels.is_some(), "{file}");
        assert_eq!(image.rgb, reference_rgb(&format!("{stem}.network_rgb.png")));
        assert_eq!(
            *image.displayed(None),
            reference_rgb(&format!("{stem}.display.png")),
            "{file}"
        );
        assert_eq!(
            image.network_window_name(None).as_deref(),
            Some("PIL's 8-bit conversion (clipped at 255)")
        );
    }
}

#[test]
fn a_folder_of_dicom_files_is_a_series_in_instance_number_order() {
    let order: Vec<String> = imaging::image_files(&dicom_dir().join("series"))
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: Vec<String> = expected()["series"]["expected_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, expected);
}

/// Every identifying value of the privacy fixture, as it may appear in an output.
fn identifying_values() -> Vec<String> {
    let fixture = fixtures()
        .into_iter()
        .find(|f| f["file"] == "ct_privacy.dcm")
        .unwrap();
    fixture["identifying_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        // Patient's Sex ("F") is one letter that occurs everywhere: the test checks instead
        // that no field names it.
        .filter(|v| v.len() > 1)
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Bytes contain `needle` (as text in any output: PNG text chunks, JSON, CSV, stdout).
fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[test]
fn no_output_of_a_dicom_run_carries_patient_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let source = input.join("study.dcm");
    std::fs::copy(dicom_dir().join("ct_privacy.dcm"), &source).unwrap();
    let src = source.display().to_string();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let render_png = out_dir.join("render.png").display().to_string();
    let mut printed = Vec::new();
    for args in [
        vec![
            "render",
            "--caption",
            "--colorbar",
            "--json",
            "--out",
            &render_png,
            &src,
        ],
        vec!["predict", "--json", "--map", &src],
        vec!["predict", &src],
    ] {
        printed.extend(stdout(&camview(&args)).into_bytes());
    }
    let batch_dir = out_dir.join("batch").display().to_string();
    let input_dir = input.display().to_string();
    let out = camview(&["batch", "--caption", "--out", &batch_dir, &input_dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed.extend(out.stderr);
    let outputs = files_under(&out_dir);
    assert!(outputs.len() >= 5, "{outputs:?}");
    let values = identifying_values();
    assert!(values.len() >= 20, "{values:?}");
    for value in &values {
        assert!(
            !contains(&printed, value),
            "printed output contains {value}"
        );
        for file in &outputs {
            let bytes = std::fs::read(file).unwrap();
            assert!(
                !contains(&bytes, value),
                "{} contains {value}",
                file.display()
            );
        }
    }
    // No field names a patient attribute either (the sex, "F", is too short to scan for).
    let sidecar = std::fs::read_to_string(out_dir.join("render.png.json")).unwrap();
    for key in ["patient", "sex", "birth", "accession", "institution", "uid"] {
        assert!(!sidecar.to_lowercase().contains(key), "sidecar names {key}");
    }
    let record: Value = serde_json::from_str(&sidecar).unwrap();
    assert_eq!(record["image"]["dicom"]["modality"], "CT");
    assert_eq!(record["image"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        record["image"]["network_window"],
        "C -600 / W 1500 (the file's)"
    );

    // --provenance full adds the UIDs, and still no name, birth date or institution.
    let full_png = out_dir.join("full.png").display().to_string();
    let out = camview(&["render", "--provenance", "full", "--out", &full_png, &src]);
    stdout(&out);
    let full = std::fs::read_to_string(out_dir.join("full.png.json")).unwrap();
    let record: Value = serde_json::from_str(&full).unwrap();
    let uids = &record["image"]["uids"];
    assert!(uids["study_instance_uid"].as_str().unwrap().len() > 10);
    let linked: Vec<&str> = ["study", "series", "sop"]
        .iter()
        .map(|k| uids[format!("{k}_instance_uid")].as_str().unwrap())
        .collect();
    assert!(linked.iter().all(|uid| values.iter().any(|v| v == uid)));
    // The UIDs themselves may hold digits of a date; the rest of the file may not.
    let rest = linked
        .iter()
        .fold(full.clone(), |text, uid| text.replace(uid, ""));
    for value in values.iter().filter(|v| !linked.contains(&v.as_str())) {
        assert!(
            !contains(rest.as_bytes(), value),
            "full provenance contains {value}"
        );
    }
}

/// The Python with pydicom that reads the Secondary Capture back: `CAMVIEW_PYDICOM_PYTHON`
/// (`.ci/run` makes one), else a python3 that has pydicom. In CI it must exist.
fn pydicom_python() -> Option<String> {
    if let Ok(python) = std::env::var("CAMVIEW_PYDICOM_PYTHON") {
        return Some(python);
    }
    let found = Command::new("python3")
        .args(["-c", "import pydicom, PIL, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI needs pydicom: set CAMVIEW_PYDICOM_PYTHON (.ci/run does)"
    );
    found.then(|| "python3".to_string())
}

#[test]
fn the_secondary_capture_files_into_the_source_study_with_the_png_s_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let source = dicom_dir().join("ct_privacy.dcm");
    let src = source.display().to_string();
    let dcm = dir.path().join("result.dcm");
    let png = dir.path().join("result.png");
    for out in [&dcm, &png] {
        let out = out.display().to_string();
        stdout(&camview(&[
            "render",
            "--caption",
            "--colorbar",
            "--out",
            &out,
            &src,
        ]));
    }
    // camview's own reader sees the overlay's pixels.
    let reread = imaging::open_image(&dcm).unwrap();
    assert_eq!(reread.rgb, image::open(&png).unwrap().to_rgb8());
    assert_eq!(reread.dicom.as_ref().unwrap().photometric, "RGB");
    // The sidecar of the DICOM result carries no patient data either.
    let sidecar = std::fs::read(dir.path().join("result.dcm.json")).unwrap();
    for value in identifying_values() {
        assert!(!contains(&sidecar, &value), "sidecar contains {value}");
    }
    let Some(python) = pydicom_python() else {
        eprintln!("pydicom not found: the Secondary Capture was checked by camview's reader only");
        return;
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check_secondary_capture.py");
    let out = Command::new(python)
        .arg(&script)
        .args([&dcm, &png, &source])
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["pixels_equal_png"], true, "{report}");
    assert_eq!(report["sop_class"], "1.2.840.10008.5.1.4.1.1.7");
    assert_eq!(report["transfer_syntax"], "1.2.840.10008.1.2.1");
    for key in [
        "same_study",
        "same_patient",
        "new_series",
        "new_instance",
        "meta_instance_matches",
    ] {
        assert_eq!(report[key], true, "{key}: {report}");
    }
    assert_eq!(report["burned_in_annotation"], "YES");
    assert_eq!(report["photometric"], "RGB");
    let derivation = report["derivation"].as_str().unwrap();
    assert!(
        derivation.starts_with("camview ") && derivation.contains("CAM at features.norm5"),
        "{derivation}"
    );
}

/// A model's sidecar states the window it was trained with; the command line overrides it.
#[test]
fn a_model_sidecar_states_the_network_window() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("ct.pth");
    std::fs::copy(tiny_model(), &model).unwrap();
    let m = model.display().to_string();
    let ct = dicom_dir().join("ct_explicit_le.dcm").display().to_string();
    let predict = |sidecar: &str, extra: &[&str]| -> Output {
        std::fs::write(dir.path().join("ct.json"), sidecar).unwrap();
        let mut args = vec!["predict", "--json", "--model", &m];
        args.extend_from_slice(extra);
        args.push(&ct);
        camview(&args)
    };
    let record = |out: Output| -> Value { serde_json::from_str(stdout(&out).trim()).unwrap() };
    let soft = record(predict(r#"{"window": {"center": 40, "width": 400}}"#, &[]));
    assert_eq!(soft["network_window"], "C 40 / W 400");
    let typed = record(predict("{}", &["--window", "40,400"]));
    assert_eq!(soft["logits"], typed["logits"]);
    let lung = record(predict(r#"{"window": "lung"}"#, &[]));
    let file = record(predict("{}", &[]));
    assert_eq!(lung["logits"], file["logits"]);
    let overridden = record(predict(r#"{"window": "lung"}"#, &["--window", "40,400"]));
    assert_eq!(overridden["logits"], soft["logits"]);
    let minmax = record(predict(r#"{"window": "minmax"}"#, &[]));
    assert_eq!(minmax["network_window"], "min-max");
    let out = predict(r#"{"window": {"center": 40, "width": 0}}"#, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("ct.json") && stderr.contains("window"),
        "{stderr}"
    );
}

/// Files a mutation run over the fixtures found (tests/fixtures/dicom/damaged, README there):
/// each once cost seconds and gigabytes, or a panic's backtrace; now one message, at once.
#[test]
fn damaged_files_found_by_mutation_get_one_message() {
    let cases = [
        (
            "length_bomb.dcm",
            "element (0028,1050) declares 2147483647 bytes, but only 15450 follow",
        ),
        (
            "deflated_length_bomb.dcm",
            "element (524F,4749) declares 1230131292 bytes, but only 16034 follow",
        ),
        (
            "unknown_vr.dcm",
            "element (0008,0008) declares 1195987535 bytes, but only 7362 follow",
        ),
        (
            "rle_segment.dcm",
            "the RLE pixel data is damaged: segment 0 holds 7669 of 7680 pixels",
        ),
    ];
    for (file, problem) in cases {
        refused_in_one_line(&dicom_dir().join("damaged").join(file), problem);
    }
}

/// `predict` on `path` exits 1 with one line naming the file and saying `problem`.
fn refused_in_one_line(path: &std::path::Path, problem: &str) {
    let out = camview(&["predict", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", path.display());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("camview: {}: ", path.display())) && stderr.contains(problem),
        "{stderr}"
    );
}

/// What the DICOM fuzz target found (tools/fuzz.sh; the inputs in tests/fixtures/dicom/fuzz):
/// files of a few bytes to 18 KB that made dicom-rs allocate 0.5-3 GB, each now refused by the
/// length walk before dicom-rs reads it, both when opened and when its header is read to sort a
/// series.
#[test]
fn what_the_fuzzer_found_is_refused_before_dicom_rs_allocates() {
    let cases = [
        // dicom-rs reads a tag of group FFFE other than an item or delimiter as an element of
        // its declared length; the walk skipped it.
        (
            "item_group_tag.dcm",
            "the DICOM data set is damaged: (FFFE,FFFF) is neither an item nor a delimiter",
        ),
        // dicom-rs reads len / 4 values of a UL but counts len bytes: it then read the next
        // element from elsewhere than the walk.
        (
            "odd_ul_length.dcm",
            "element (0000,0000) of VR UL declares 2 bytes, not a whole number of its 4-byte \
             values",
        ),
        // dicom-rs ends the file meta by its group length (0002,0000), not at the first element
        // of another group: the walk looked for the data set elsewhere.
        (
            "meta_group_length.dcm",
            "element (3432,3330) declares 1297350704 bytes, but only 2644 follow",
        ),
        // A data set without meta is read whole by dicom-rs even for its header; the walk
        // stopped at the pixel data.
        (
            "raw_pixel_data_past_header.dcm",
            "element (9B03,9203) declares 3104023555 bytes, but only 1771 follow",
        ),
        (
            "deflated_garbage.dcm",
            "the deflated DICOM data set is damaged (corrupt deflate stream)",
        ),
        // dicom-rs reads the items of a sequence of defined length element by element; the walk
        // skipped the sequence whole.
        (
            "defined_length_sequence.dcm",
            "element (0008,0100) declares 808661297 bytes, but only 8 follow",
        ),
        // dicom-rs reads the file meta's elements as bytes, a sequence there included; the walk
        // entered it, and read the data set from elsewhere.
        (
            "sequence_in_file_meta.dcm",
            "element (3689,620F) declares 3560954895 bytes, but only 703 follow",
        ),
    ];
    for (file, problem) in cases {
        let path = dicom_dir().join("fuzz").join(file);
        refused_in_one_line(&path, problem);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(camview::imaging::dicom::series_key(&bytes), None, "{file}");
    }
}

/// `--display-window` draws the image under the heat map through another window; the network's
/// input, and so the numbers and the map, stay the file's.
#[test]
fn the_display_window_changes_the_picture_and_not_the_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let ct = dicom_dir().join("ct_explicit_le.dcm");
    let src = ct.display().to_string();
    let render = |name: &str, extra: &[&str]| -> (image::RgbImage, Value) {
        let out = dir.path().join(name);
        let out_s = out.display().to_string();
        let mut args = vec!["render", "--opacity", "0", "--out", &out_s];
        args.extend_from_slice(extra);
        args.push(&src);
        stdout(&camview(&args));
        let sidecar = std::fs::read_to_string(format!("{out_s}.json")).unwrap();
        (
            image::open(&out).unwrap().to_rgb8(),
            serde_json::from_str(&sidecar).unwrap(),
        )
    };
    let (file, file_record) = render("file.png", &[]);
    let (soft, soft_record) = render("soft.png", &["--display-window", "40,400"]);
    let levels = imaging::open_image(&ct).unwrap().levels.unwrap();
    let window = imaging::Voi::Window(imaging::Window::linear(40.0, 400.0));
    assert_eq!(soft, levels.render_rgb(&window, false));
    assert_ne!(soft, file);
    assert_eq!(soft_record["logits"], file_record["logits"]);
    assert_eq!(soft_record["map_range"], file_record["map_range"]);
    assert_eq!(soft_record["image"]["display_window"], "C 40 / W 400");
    assert_eq!(
        file_record["image"]["display_window"],
        "C -600 / W 1500 (the file's)"
    );
}
