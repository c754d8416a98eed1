//! Parity with torchvision, Pillow and OpenCV, against fixtures made by the real libraries
//! (tests/fixtures/make_fixtures.py; see tests/fixtures/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::{Path, PathBuf};

use camview::explain::{self, Analysis, Classes};
use camview::imaging::{self, Geometry, Preprocessing, Region};
use camview::network::Classifier;
use camview::render::Colormap;
use candle_core::Tensor;

#[path = "parity/channels.rs"]
mod channels;

/// Logits and raw maps must match PyTorch to this absolute error.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model(name: &str) -> Classifier {
    Classifier::load(&fixtures().join("models").join(name), None).unwrap_or_else(|e| panic!("{e}"))
}

fn npy(name: &str) -> Tensor {
    let path = fixtures().join("expected").join(name);
    Tensor::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn npy_f32(name: &str) -> Vec<f32> {
    npy(name).flatten_all().unwrap().to_vec1().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// How many of two images' bytes differ.
fn differing(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// Largest difference between two images' bytes.
fn worst_difference(a: &[u8], b: &[u8]) -> u8 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn png(name: &str) -> image::RgbImage {
    image::open(fixtures().join("expected").join(name))
        .unwrap()
        .to_rgb8()
}

fn analyse(classifier: &Classifier, image: &str, preprocessing: &Preprocessing) -> Analysis {
    let img = imaging::open_image(&fixtures().join("images").join(image)).unwrap();
    explain::analyse(classifier, &img, preprocessing).unwrap()
}

fn assert_matches_torch(a: &Analysis, prefix: &str, what: &str) {
    let logits = npy_f32(&format!("{prefix}.logits.npy"));
    let err = max_abs_diff(&a.logits, &logits);
    assert!(
        err <= TOLERANCE,
        "{what}: logits differ by {err}: ours {:?}, torch {logits:?}",
        a.logits
    );
    let maps: Vec<f32> = a
        .maps
        .iter()
        .flat_map(|c| c.values.iter().copied())
        .collect();
    let err = max_abs_diff(&maps, &npy_f32(&format!("{prefix}.cams.npy")));
    assert!(err <= TOLERANCE, "{what}: raw CAMs differ by {err}");
}

const IMAGES: [&str; 15] = [
    "gray8.bmp",
    "pal8.bmp",
    "pal4.bmp",
    "pal1.bmp",
    "rgb24.bmp",
    "rgba32.bmp",
    "rgba32_v5.bmp",
    "gray8.png",
    "gray16.png",
    "rgb16.png",
    "rgba.png",
    "photo.jpg",
    "image.tif",
    "large.png",
    "tall.png",
];

fn prefix(image: &str) -> String {
    image.replace('.', "_")
}

#[test]
fn decoding_matches_pil_convert_rgb() {
    for image in IMAGES {
        let expected = fixtures()
            .join("expected")
            .join(format!("{}.rgb.png", prefix(image)));
        if !expected.exists() {
            continue; // large.png and tall.png are already RGB PNGs
        }
        let ours = imaging::open_image(&fixtures().join("images").join(image))
            .unwrap()
            .rgb;
        let pil = image::open(&expected).unwrap().to_rgb8();
        assert_eq!(ours.dimensions(), pil.dimensions(), "{image}");
        let worst = worst_difference(ours.as_raw(), pil.as_raw());
        // JPEG decoders may round the IDCT and chroma upsampling differently; all else is exact.
        let allowed = if image.ends_with(".jpg") {
            JPEG_LEVELS
        } else {
            0
        };
        assert!(
            worst <= allowed,
            "{image}: decoded pixels differ from PIL by up to {worst}"
        );
    }
}

/// Largest per-channel difference allowed between our JPEG decoder and PIL's libjpeg-turbo.
const JPEG_LEVELS: u8 = 3;

#[test]
fn resizing_is_bit_exact_with_pillow() {
    for image in IMAGES {
        let pil_input = fixtures()
            .join("expected")
            .join(format!("{}.rgb.png", prefix(image)));
        let source = if pil_input.exists() {
            pil_input
        } else {
            fixtures().join("images").join(image)
        };
        let rgb = image::open(&source).unwrap().to_rgb8();
        let ours = imaging::resample::resize_bilinear_like_pil(&rgb, 224, 224);
        let pil = png(&format!("{}.resized.png", prefix(image)));
        let count = differing(ours.as_raw(), pil.as_raw());
        assert_eq!(
            count, 0,
            "{image}: {count} channel values differ from Pillow"
        );
    }
}

#[test]
fn logits_and_maps_match_torchvision_for_every_image_format() {
    let tiny = model("tiny.pth");
    for image in IMAGES {
        if image.ends_with(".jpg") {
            continue; // below: our JPEG decoder rounds differently from libjpeg-turbo
        }
        let a = analyse(&tiny, image, &Preprocessing::default());
        assert_matches_torch(&a, &prefix(image), image);
    }
}

#[test]
fn jpeg_network_path_is_exact_and_decoder_difference_is_bounded() {
    let tiny = model("tiny.pth");
    // From the pixels PIL decoded, the network matches torchvision to the usual tolerance.
    let pil = png("photo_jpg.rgb.png");
    let pil = imaging::SourceImage::from_rgb("photo.jpg", pil, "JPEG");
    let a = explain::analyse(&tiny, &pil, &Preprocessing::default()).unwrap();
    assert_matches_torch(&a, "photo_jpg", "photo.jpg decoded by PIL");
    // From our own decoding (up to 3 levels off libjpeg-turbo), logits stay close.
    let ours = analyse(&tiny, "photo.jpg", &Preprocessing::default());
    let err = max_abs_diff(&ours.logits, &npy_f32("photo_jpg.logits.npy"));
    assert!(err <= JPEG_LOGIT_TOLERANCE, "JPEG logits differ by {err}");
}

/// Measured 0.0127 on photo.jpg with the tiny model.
const JPEG_LOGIT_TOLERANCE: f32 = 0.02;

#[test]
fn cam_identity_mean_plus_bias_is_the_logit() {
    let tiny = model("tiny.pth");
    let bias: Vec<f32> = tiny.cam_weights().unwrap().1.unwrap().to_vec1().unwrap();
    let a = analyse(&tiny, "rgb24.bmp", &Preprocessing::default());
    for (c, cam) in a.maps.iter().enumerate() {
        let mean = cam.values.iter().sum::<f32>() / cam.values.len() as f32;
        assert!((mean + bias[c] - a.logits[c]).abs() < 1e-4, "class {c}");
    }
}

#[test]
fn centre_crop_and_native_geometries_match_torchvision() {
    let tiny = model("tiny.pth");
    let crop = Preprocessing {
        geometry: Geometry::CentreCrop,
        ..Default::default()
    };
    let a = analyse(&tiny, "large.png", &crop);
    assert_matches_torch(&a, "large_png.crop", "crop");
    let native = Preprocessing {
        geometry: Geometry::Native,
        ..Default::default()
    };
    let a = analyse(&tiny, "large.png", &native);
    assert_eq!((a.maps[0].width, a.maps[0].height), (9, 8));
    assert_eq!(a.region, Region::whole(300, 260));
    assert_matches_torch(&a, "large_png.native", "native");
}

#[test]
fn crop_input_pixels_are_torchvision_s() {
    let img = imaging::open_image(&fixtures().join("images/large.png")).unwrap();
    let crop = Preprocessing {
        geometry: Geometry::CentreCrop,
        ..Default::default()
    };
    let input = crop.prepare(&img.rgb, 3).unwrap();
    assert_eq!(input.pixels, png("large_png.crop.resized.png"));
}

#[test]
fn upsampled_map_matches_f_interpolate() {
    let tiny = model("tiny.pth");
    let a = analyse(&tiny, "rgb24.bmp", &Preprocessing::default());
    let cam = &a.maps[0];
    let ours = cam.upsample(&cam.values, 70, 52);
    let torch = npy_f32("rgb24_bmp.cam0_upsampled.npy");
    let err = max_abs_diff(&ours, &torch);
    assert!(
        err <= TOLERANCE,
        "upsampled map differs from F.interpolate by {err}"
    );
}

#[test]
fn another_configuration_and_half_precision_weights() {
    let a = analyse(&model("tiny3.pth"), "rgb24.bmp", &Preprocessing::default());
    assert_eq!(a.maps[0].width, 14);
    assert_matches_torch(&a, "tiny3_rgb24_bmp", "tiny3");
    // f16 weights upcast to f32 compute what PyTorch computes with the same upcast weights.
    let a = analyse(
        &model("tiny_f16.pth"),
        "rgb24.bmp",
        &Preprocessing::default(),
    );
    assert_matches_torch(&a, "tiny_f16_rgb24_bmp", "tiny_f16");
}

#[test]
fn every_checkpoint_layout_gives_the_same_network() {
    let reference = analyse(&model("tiny.pth"), "rgb24.bmp", &Preprocessing::default());
    for name in [
        "tiny_dataparallel.pth",
        "tiny_nested.pth",
        "tiny_model_key.pth",
        "tiny_model_state_dict_key.pth",
        "tiny_oldkeys.pth",
        "tiny_legacy.pth",
        "tiny_legacy_nested.pth",
        "tiny.safetensors",
        "tiny_f64.pth",
    ] {
        let m = model(name);
        assert_eq!(
            m.info.architecture,
            "densenet (growth 8, blocks 2-3-2-2, init 16, bn_size 2)"
        );
        let a = analyse(&m, "rgb24.bmp", &Preprocessing::default());
        let err = max_abs_diff(&a.logits, &reference.logits);
        assert!(err <= 1e-5, "{name}: logits differ from tiny.pth by {err}");
    }
}

fn load_error(name: &str) -> String {
    let path = fixtures().join("models").join(name);
    match Classifier::load(&path, None) {
        Ok(_) => panic!("{name} loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_checkpoints_are_refused_with_a_message_naming_the_problem() {
    let _ = std::fs::remove_file("/tmp/camview_pwned");
    for name in ["evil.pth", "evil_legacy.pth"] {
        let err = load_error(name);
        assert!(err.contains(name) && err.contains("posix.system"), "{err}");
    }
    assert!(!Path::new("/tmp/camview_pwned").exists(), "the payload ran");

    let err = load_error("resnet_like.pth");
    assert!(err.contains("not a DenseNet checkpoint"), "{err}");

    let err = load_error("tiny_missing.pth");
    assert!(
        err.contains("2 missing: classifier.bias, features.denseblock2.denselayer1.conv2.weight"),
        "{err}"
    );
    let err = load_error("tiny_badshape.pth");
    assert!(
        err.contains("features.norm5.weight is [33], expected [34]"),
        "{err}"
    );
    let err = load_error("tiny_unexpected.pth");
    assert!(err.contains("1 unexpected: features.extra.weight"), "{err}");
}

#[test]
fn jet_matches_opencv_exactly_viridis_and_inferno_within_a_level() {
    for (colormap, file, allowed) in [
        (Colormap::Jet, "jet_lut.npy", 0u8),
        (Colormap::Viridis, "viridis_lut.npy", 1),
        (Colormap::Inferno, "inferno_lut.npy", 1),
    ] {
        let opencv: Vec<u8> = npy(file).flatten_all().unwrap().to_vec1().unwrap();
        let ours: Vec<u8> = colormap.lut().iter().flatten().copied().collect();
        let worst = ours
            .iter()
            .zip(&opencv)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        assert!(
            worst <= allowed,
            "{file}: differs from OpenCV by up to {worst}"
        );
    }
}

#[test]
fn turbo_is_the_polynomial_approximation_of_opencv_s_table() {
    // colorous draws Turbo with its author's published polynomial, which departs from the
    // official table most at the dark end (measured: max 32 levels, mean 6.3).
    let opencv: Vec<u8> = npy("turbo_lut.npy")
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let ours: Vec<u8> = Colormap::Turbo.lut().iter().flatten().copied().collect();
    let diffs: Vec<u8> = ours
        .iter()
        .zip(&opencv)
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    assert!(
        *diffs.iter().max().unwrap() <= 32 && mean < 7.0,
        "mean {mean}"
    );
}

// ---------------------------------------------------------------------------------------------
// The Grad-CAM family against pytorch-grad-cam 1.5.7 (tests/fixtures/make_gradcam_fixtures.py):
// the reduced DenseNet `tiny` on photo.jpg (PIL's decoding) at Resize((128, 128)).
//
// Definitional differences, and how the test bridges them:
// - pytorch-grad-cam returns `scale_cam_image(relu(map))`: min-max scaled with
//   `(x - min) / (1e-7 + max - min)` and resized with `cv2.resize` (bilinear, half-pixel
//   centres) to the input size. Ours is the map at the layer's resolution after the ReLU
//   (`--raw-cam`), and the renderer scales it on its own grid and upsamples it with the same
//   half-pixel rule; their public output is also scaled a second time after the resize
//   (`aggregate_multi_layers`), which ours is not (the colour bar shows the map's own range). So we compare (1) our map with theirs before scaling (`*.raw.npy`,
//   relative to the map's largest value) and (2) our map put through their scaling and
//   resizing with their public output (`*.out.npy`, absolute, on a 0..1 scale).
// - The target `norm5` is relu(features.norm5) in both (the generator hooks a non-inplace
//   ReLU module; see its docstring for why hooking `features.norm5` itself differs).
// - Eigen-CAM: the sign of an SVD vector is arbitrary (LAPACK's); ours is fixed by
//   pytorch-grad-cam's own sign correction (flip when |min| > |max|). The test accepts
//   relu(+projection) or relu(-projection).
// ---------------------------------------------------------------------------------------------

/// Relative error allowed on raw maps (their float32 NumPy arithmetic vs ours; the worst
/// measured is 7.8e-5, Grad-CAM++ at denseblock1, whose weights divide small numbers).
const FAMILY_RAW_TOLERANCE: f32 = 2e-4;
/// Absolute error allowed on the scaled, resized 0..1 maps.
const FAMILY_OUT_TOLERANCE: f32 = 1e-4;

fn family_npy(name: &str) -> Vec<f32> {
    npy_f32(&format!("gradcam/{name}"))
}

/// pytorch-grad-cam's `scale_cam_image(map, size)` then `aggregate_multi_layers`' second
/// `scale_cam_image`: `(x - min) / (1e-7 + max - min)`, bilinear half-pixel resizing (cv2's
/// INTER_LINEAR upsampling, which equals PyTorch's `align_corners=False`) to `size x size`, and
/// the same scaling again (resizing moves the extremes: no output pixel centre falls on an
/// input pixel centre).
fn scale_and_resize_like_pytorch_grad_cam(
    map: &explain::ClassActivationMap,
    size: u32,
) -> Vec<f32> {
    let (lo, hi) = map.min_max();
    let scaled: Vec<f32> = map
        .values
        .iter()
        .map(|v| (v - lo) / (1e-7 + (hi - lo)))
        .collect();
    let mut on_input = map.clone();
    on_input.region = Region::whole(size, size);
    let resized = on_input.upsample(&scaled, size, size);
    let (lo, hi) = resized
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, u), &v| {
            (l.min(v), u.max(v))
        });
    resized
        .iter()
        .map(|v| (v - lo) / (1e-7 + (hi - lo)))
        .collect()
}

#[test]
fn grad_cam_family_matches_pytorch_grad_cam() {
    use explain::{Method, MethodOptions, NoProgress, Stage};
    let tiny = model("tiny.pth");
    let preprocessing = Preprocessing {
        input_size: 128,
        ..Default::default()
    };
    let pil = imaging::SourceImage::from_rgb("photo.jpg", png("photo_jpg.rgb.png"), "JPEG");
    let a = explain::analyse(&tiny, &pil, &preprocessing).unwrap();
    let options = MethodOptions {
        score_cam_channels: None,
        ..Default::default()
    };
    let mut report = Vec::new();
    for layer in ["denseblock1", "transition2", "denseblock3", "norm5"] {
        let stage: Stage = layer.parse().unwrap();
        for method in Method::ALL.into_iter().filter(|m| *m != Method::Cam) {
            let maps = method_maps(&tiny, &a, method, stage, &options, &NoProgress)
                .unwrap_or_else(|e| panic!("{method} at {layer}: {e}"));
            let name = method.name();
            for class in [0usize, 2] {
                let ours = &maps[class];
                let what = format!("{name} at {layer}, class {class}");
                if method == Method::EigenCam {
                    if class != 0 {
                        continue;
                    }
                    let projection = family_npy(&format!("eigencam.{layer}.projection.npy"));
                    let err = [1.0f32, -1.0]
                        .iter()
                        .map(|s| {
                            let theirs: Vec<f32> =
                                projection.iter().map(|p| (s * p).max(0.0)).collect();
                            relative_diff(&ours.values, &theirs)
                        })
                        .fold(f32::INFINITY, f32::min);
                    assert!(
                        err <= FAMILY_RAW_TOLERANCE,
                        "{what}: differs by {err} (relative) for either sign"
                    );
                    report.push(format!("{what}: raw {err:.2e}"));
                } else {
                    let theirs = family_npy(&format!("{name}.{layer}.c{class}.raw.npy"));
                    let err = relative_diff(&ours.values, &theirs);
                    assert!(
                        err <= FAMILY_RAW_TOLERANCE,
                        "{what}: raw maps differ by {err} (relative)"
                    );
                    report.push(format!("{what}: raw {err:.2e}"));
                }
                let out = format!("{name}.{layer}.c{class}.out.npy");
                if fixtures().join("expected/gradcam").join(&out).exists()
                    && method != Method::EigenCam
                {
                    let theirs = family_npy(&out);
                    let err =
                        max_abs_diff(&scale_and_resize_like_pytorch_grad_cam(ours, 128), &theirs);
                    assert!(
                        err <= FAMILY_OUT_TOLERANCE,
                        "{what}: scaled 128x128 maps differ by {err}"
                    );
                    report.push(format!("{what}: scaled+resized {err:.2e}"));
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// The chosen method's maps of every class, through the engine's entry point.
fn method_maps(
    classifier: &Classifier,
    a: &Analysis,
    method: explain::Method,
    layer: explain::Stage,
    options: &explain::MethodOptions,
    progress: &dyn explain::Progress,
) -> Result<Vec<explain::ClassActivationMap>, explain::ExplainError> {
    let choice = explain::MapChoice {
        method,
        layer,
        options: *options,
    };
    explain::methods::explain_maps(classifier, a, &choice, &Classes::All, None, progress)
        .map(|e| e.maps)
}

/// Largest absolute difference relative to the reference's largest magnitude.
fn relative_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    max_abs_diff(ours, theirs) / scale
}

#[test]
fn cam_is_only_defined_at_norm5() {
    use explain::{Method, MethodOptions, NoProgress, Stage};
    let tiny = model("tiny.pth");
    let a = analyse(&tiny, "rgb24.bmp", &Preprocessing::default());
    let err = method_maps(
        &tiny,
        &a,
        Method::Cam,
        Stage::DenseBlock(2),
        &MethodOptions::default(),
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("features.norm5"), "{err}");
    let err = method_maps(
        &tiny,
        &a,
        Method::GradCam,
        Stage::Transition(4),
        &MethodOptions::default(),
        &NoProgress,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("features.transition3"), "{err}");
    // At norm5, CAM through the method API is the analysis's own CAM.
    let maps = method_maps(
        &tiny,
        &a,
        Method::Cam,
        Stage::Norm5,
        &MethodOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(maps[1].values, a.maps[1].values);
}

#[test]
fn score_cam_reports_progress_stops_when_cancelled_and_can_keep_fewer_channels() {
    use explain::{ExplainError, Method, MethodOptions, Progress, Stage};
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// Cancels once the first batch is reported.
    struct StopAfterFirstBatch(AtomicUsize, AtomicUsize);
    impl Progress for StopAfterFirstBatch {
        fn report(&self, done: usize, total: usize) {
            self.0.store(done, Ordering::Relaxed);
            self.1.store(total, Ordering::Relaxed);
        }
        fn cancelled(&self) -> bool {
            self.0.load(Ordering::Relaxed) > 0
        }
    }
    let tiny = model("tiny.pth");
    let a = analyse(&tiny, "rgb24.bmp", &Preprocessing::default());
    let stage = Stage::DenseBlock(1); // 32 channels
    let options = |channels| MethodOptions {
        score_cam_channels: channels,
        score_cam_batch: 4,
    };
    let progress = StopAfterFirstBatch(AtomicUsize::new(0), AtomicUsize::new(0));
    let result = method_maps(
        &tiny,
        &a,
        Method::ScoreCam,
        stage,
        &options(None),
        &progress,
    );
    assert!(matches!(result, Err(ExplainError::Cancelled)), "{result:?}");
    assert_eq!(progress.0.load(Ordering::Relaxed), 4);
    assert_eq!(progress.1.load(Ordering::Relaxed), 32);

    let all = method_maps(
        &tiny,
        &a,
        Method::ScoreCam,
        stage,
        &options(None),
        &explain::NoProgress,
    )
    .unwrap();
    let few = method_maps(
        &tiny,
        &a,
        Method::ScoreCam,
        stage,
        &options(Some(8)),
        &explain::NoProgress,
    )
    .unwrap();
    let same = method_maps(
        &tiny,
        &a,
        Method::ScoreCam,
        stage,
        &options(Some(32)),
        &explain::NoProgress,
    )
    .unwrap();
    assert_eq!(
        all[0].values, same[0].values,
        "keeping every channel is the exact map"
    );
    assert_ne!(all[0].values, few[0].values);
    assert!(few[0].values.iter().all(|v| *v >= 0.0));
}
