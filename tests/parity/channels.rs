//! Networks with 1 input channel and MONAI's min-max intensity, against fixtures made by the
//! real Pillow, torchvision and MONAI (tests/fixtures/make_channel_fixtures.py; see
//! tests/fixtures/README.md, "Input channels").

use std::path::{Path, PathBuf};

use camview::explain::{
    self, Analysis, Classes, MapChoice, Method, MethodOptions, NoProgress, Stage,
};
use camview::imaging::{self, Geometry, Intensity, Preprocessing};
use camview::network::{Classifier, ModelSidecar};

use super::{
    FAMILY_RAW_TOLERANCE, JPEG_LEVELS, TOLERANCE, differing, fixtures, max_abs_diff, prefix,
    relative_diff, worst_difference,
};

fn expected(name: &str) -> PathBuf {
    fixtures().join("expected/channels").join(name)
}

/// A fixture image: the main set, or the channel fixtures' own images.
fn image_path(name: &str) -> PathBuf {
    let own = expected("images").join(name);
    if own.exists() {
        own
    } else {
        fixtures().join("images").join(name)
    }
}

fn model(name: &str) -> Classifier {
    super::model(&format!("channels/{name}"))
}

fn npy(name: &str) -> Vec<f32> {
    super::npy_f32(&format!("channels/{name}"))
}

fn gray_png(name: &str) -> image::GrayImage {
    image::open(expected(name)).unwrap().to_luma8()
}

fn analyse(classifier: &Classifier, image: &str, preprocessing: &Preprocessing) -> Analysis {
    let img = imaging::open_image(&image_path(image)).unwrap();
    explain::analyse(classifier, &img, preprocessing).unwrap()
}

/// The network's input exactly as torchvision/MONAI made it, then logits and CAMs within the
/// tolerance.
fn assert_matches_reference(a: &Analysis, tag: &str) {
    let input: Vec<f32> = a.input.flatten_all().unwrap().to_vec1().unwrap();
    let err = max_abs_diff(&input, &npy(&format!("{tag}.input.npy")));
    assert_eq!(err, 0.0, "{tag}: the network input differs by {err}");
    let logits = npy(&format!("{tag}.logits.npy"));
    let err = max_abs_diff(&a.logits, &logits);
    assert!(
        err <= TOLERANCE,
        "{tag}: logits differ by {err}: ours {:?}, torch {logits:?}",
        a.logits
    );
    // The reference maps are on the network's grid (transposed when the network saw the
    // image transposed); ours are in the image's orientation.
    let maps: Vec<f32> = a
        .maps
        .iter()
        .flat_map(|m| m.in_network_orientation().values)
        .collect();
    let cam_err = max_abs_diff(&maps, &npy(&format!("{tag}.cams.npy")));
    assert!(cam_err <= TOLERANCE, "{tag}: CAMs differ by {cam_err}");
    eprintln!("{tag}: logits {err:.1e}, CAMs {cam_err:.1e}");
}

const GRAY_IMAGES: [&str; 10] = [
    "gray8.png",
    "gray16.png",
    "pal8.bmp",
    "pal4.bmp",
    "pal1.bmp",
    "rgba.png",
    "rgb24.bmp",
    "large.png",
    "tall.png",
    "la16.png",
];

#[test]
fn grayscale_is_pil_s_convert_l_of_the_file_for_every_mode() {
    let mut checked = 0;
    for entry in std::fs::read_dir(expected(".")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".L.png") else {
            continue;
        };
        let file = stem.rsplit_once('_').map(|(a, b)| format!("{a}.{b}"));
        let file = file.unwrap();
        // camview's decoder opens no 32-bit integer or float TIFF (PIL's modes I and F)
        if file == "int32.tif" || file == "float32.tif" {
            let err = imaging::open_image(&image_path(&file)).unwrap_err();
            assert!(err.to_string().contains("damaged or unsupported"), "{err}");
            continue;
        }
        let decoded = imaging::open_image(&image_path(&file)).unwrap();
        let ours = imaging::decode::to_luma_like_pil(&decoded.rgb);
        let pil = gray_png(&name);
        assert_eq!(ours.dimensions(), pil.dimensions(), "{file}");
        let worst = worst_difference(ours.as_raw(), pil.as_raw());
        let allowed = if file.ends_with(".jpg") {
            JPEG_LEVELS
        } else {
            0
        };
        assert!(
            worst <= allowed,
            "{file}: grey levels differ from PIL's convert(\"L\") by up to {worst}"
        );
        checked += 1;
    }
    // the 15 main fixtures and 9 more: LA, 16-bit LA, two palettes, 1-bit, I;16 TIFF, CMYK and
    // grey JPEGs, the MedNIST-like image
    assert_eq!(checked, 15 + 9, "images checked");
}

#[test]
fn l_images_are_resized_bit_exact_with_pillow() {
    for image in GRAY_IMAGES {
        let l = gray_png(&format!("{}.L.png", prefix(image)));
        let ours = imaging::resample::resize_bilinear_like_pil(&l, 64, 64);
        let pil = gray_png(&format!("{}.L64.png", prefix(image)));
        let count = differing(ours.as_raw(), pil.as_raw());
        assert_eq!(count, 0, "{image}: {count} grey levels differ from Pillow");
    }
}

#[test]
fn a_grayscale_model_with_one_mean_and_std_matches_torchvision() {
    let gray = model("gray.pth");
    assert_eq!(gray.config().in_channels, 1);
    assert_eq!(
        gray.info.architecture,
        "densenet (growth 6, blocks 2-2, init 12, bn_size 2), 1 input channel"
    );
    assert_eq!(gray.labels, ["normal", "nodule", "effusion"]);
    let p = &gray.preprocessing;
    assert_eq!((p.input_size, p.geometry), (64, Geometry::Stretch));
    assert_eq!(
        (p.mean.as_slice(), p.std.as_slice()),
        (&[0.5][..], &[0.25][..])
    );
    for image in GRAY_IMAGES {
        let a = analyse(&gray, image, &gray.preprocessing);
        assert_eq!(a.input.dims(), &[1, 1, 64, 64]);
        assert_matches_reference(&a, &format!("gray.{}", prefix(image)));
    }
}

#[test]
fn min_max_intensity_matches_monai_s_scale_intensity_before_normalize() {
    let rgb = model("rgb_minmax.pth");
    assert_eq!(rgb.preprocessing.intensity, Intensity::MinMax);
    for image in [
        "rgb24.bmp",
        "pal8.bmp",
        "large.png",
        "gray16.png",
        "rgba.png",
    ] {
        let a = analyse(&rgb, image, &rgb.preprocessing);
        assert_matches_reference(&a, &format!("rgb_minmax.{}", prefix(image)));
    }
}

#[test]
fn the_mednist_pipeline_is_monai_s_with_its_transposed_images() {
    // MedNIST: 64 x 64 grey images, LoadImage + EnsureChannelFirst + ScaleIntensity, no mean
    // or std. MONAI's PIL reader gives the image transposed, and the network learnt on that:
    // `transpose` feeds it the same, and turns the maps back.
    let gray = model("gray.pth");
    let mednist = Preprocessing {
        input_size: 64,
        geometry: Geometry::Stretch,
        mean: vec![0.0],
        std: vec![1.0],
        intensity: Intensity::MinMax,
        transpose: true,
        window: None,
    };
    let a = analyse(&gray, "mednist_like.png", &mednist);
    assert!(a.transposed && a.maps.iter().all(|m| m.transposed));
    assert_matches_reference(&a, "gray.mednist_like_png.monai");
    // Without it, the network sees another image than MONAI gives it.
    let untransposed = analyse(
        &gray,
        "mednist_like.png",
        &Preprocessing {
            transpose: false,
            ..mednist
        },
    );
    let logits = npy("gray.mednist_like_png.monai.logits.npy");
    assert!(max_abs_diff(&untransposed.logits, &logits) > 1e-3);
}

/// With `transpose`, the network sees the image's transpose and every map comes back in the
/// image's orientation: on a non-square image at its own size, the logits and maps are those
/// of the transposed image, maps transposed, for every method.
#[test]
fn transposed_inputs_give_maps_in_the_image_s_orientation() {
    let gray = model("gray.pth");
    let native = |transpose| Preprocessing {
        geometry: Geometry::Native,
        transpose,
        ..gray.preprocessing.clone()
    };
    let image = imaging::open_image(&image_path("large.png")).unwrap();
    let (w, h) = image.rgb.dimensions();
    assert_ne!(w, h);
    let turned = image::RgbImage::from_fn(h, w, |x, y| *image.rgb.get_pixel(y, x));
    let turned = imaging::SourceImage::from_rgb("turned", turned, "PNG");
    let a = explain::analyse(&gray, &image, &native(true)).unwrap();
    let b = explain::analyse(&gray, &turned, &native(false)).unwrap();
    assert_eq!(a.logits, b.logits);
    for method in [Method::Cam, Method::GradCam, Method::ScoreCam] {
        let ours = maps_at(&gray, &a, method, Stage::Norm5);
        let theirs = maps_at(&gray, &b, method, Stage::Norm5);
        for (m, t) in ours.iter().zip(&theirs) {
            assert!(m.transposed && !t.transposed);
            assert_eq!((m.width, m.height), (t.height, t.width), "{method}");
            assert_eq!(
                m.height * 32 / m.width,
                h as usize * 32 / w as usize,
                "{method}"
            );
            let back = m.in_network_orientation();
            assert_eq!(back.values, t.values, "{method}");
        }
    }
    // Faithfulness deletes the network input's pixels in the map's order: the same pixels.
    let options = explain::faithfulness::FaithfulnessOptions {
        steps: 5,
        ..Default::default()
    };
    let score = |analysis: &Analysis| {
        explain::faithfulness::faithfulness(
            &gray,
            &analysis.input,
            &analysis.maps[1],
            &options,
            &NoProgress,
        )
        .unwrap()
    };
    let (sa, sb) = (score(&a), score(&b));
    assert_eq!(sa.deletion.probabilities, sb.deletion.probabilities);
    assert_eq!(sa.insertion.probabilities, sb.insertion.probabilities);
}

fn maps_at(
    classifier: &Classifier,
    a: &Analysis,
    method: Method,
    layer: Stage,
) -> Vec<explain::ClassActivationMap> {
    let choice = MapChoice {
        method,
        layer,
        options: MethodOptions {
            score_cam_channels: None,
            ..Default::default()
        },
    };
    explain::methods::explain_maps(classifier, a, &choice, &Classes::All, None, &NoProgress)
        .unwrap_or_else(|e| panic!("{method}: {e}"))
        .maps
}

#[test]
fn grad_cam_and_score_cam_run_through_one_input_channel() {
    let gray = model("gray.pth");
    let a = analyse(&gray, "large.png", &gray.preprocessing);
    for (method, file) in [(Method::GradCam, "gradcam"), (Method::ScoreCam, "scorecam")] {
        let maps = maps_at(&gray, &a, method, Stage::DenseBlock(1));
        let ours: Vec<f32> = maps.iter().flat_map(|m| m.values.clone()).collect();
        let theirs = npy(&format!("gray.large_png.{file}.denseblock1.npy"));
        let err = relative_diff(&ours, &theirs);
        assert!(
            err <= FAMILY_RAW_TOLERANCE,
            "{method} at denseblock1: differs by {err} (relative)"
        );
        assert_eq!((maps[0].width, maps[0].height), (16, 16));
        eprintln!("{method} at denseblock1: {err:.1e} (relative)");
    }
}

#[test]
fn faithfulness_deletes_and_blurs_the_one_channel() {
    let gray = model("gray.pth");
    let a = analyse(&gray, "large.png", &gray.preprocessing);
    let class = a.predicted;
    let scores = explain::faithfulness::faithfulness(
        &gray,
        &a.input,
        &a.maps[class],
        &explain::faithfulness::FaithfulnessOptions { steps: 8, batch: 4 },
        &NoProgress,
    )
    .unwrap();
    // softmax on the input, on the all-zero input and on the blurred input
    let ends = npy("gray.large_png.faithfulness_ends.npy");
    let [on_input, on_zeros, on_blur] = [0, 1, 2].map(|row| ends[row * 3 + class]);
    for (what, ours, torch) in [
        ("the input", scores.deletion.probabilities[0], on_input),
        (
            "all deleted",
            *scores.deletion.probabilities.last().unwrap(),
            on_zeros,
        ),
        (
            "the blurred start",
            scores.insertion.probabilities[0],
            on_blur,
        ),
        (
            "all inserted",
            *scores.insertion.probabilities.last().unwrap(),
            on_input,
        ),
    ] {
        assert!(
            (ours - torch).abs() <= TOLERANCE,
            "{what}: probability {ours}, torch {torch}"
        );
    }
}

fn load_error(path: &Path) -> String {
    match Classifier::load(path, None) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_first_convolution_of_two_channels_is_refused() {
    let path = fixtures().join("models/channels/two_channels.pth");
    assert_eq!(
        load_error(&path),
        format!(
            "{}: the network takes 2 input channels (features.conv0.weight is [12, 2, 7, 7]); \
             camview feeds a network 1 (grayscale) or 3 (RGB) channels",
            path.display()
        )
    );
}

/// `gray.pth` in a fresh folder, with `sidecar` beside it (or none).
fn gray_copy(sidecar: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gray.pth");
    std::fs::copy(fixtures().join("models/channels/gray.pth"), &path).unwrap();
    if let Some(text) = sidecar {
        std::fs::write(dir.path().join("gray.json"), text).unwrap();
    }
    (dir, path)
}

#[test]
fn statistics_that_do_not_fit_the_channels_are_refused() {
    let (_dir, path) = gray_copy(Some(
        r#"{"preprocessing": {"mean": [0.5, 0.5, 0.5], "std": [0.25]}}"#,
    ));
    assert_eq!(
        load_error(&path),
        format!(
            "{}: invalid preprocessing: the mean has 3 values [0.5, 0.5, 0.5] but the network \
             takes 1 input channel (grayscale): give one value (camview's default mean and std \
             are ImageNet's RGB ones, so a grayscale model's sidecar must state its own)",
            path.display()
        )
    );
    // no sidecar: ImageNet's statistics are RGB ones
    let (_dir, path) = gray_copy(None);
    let err = load_error(&path);
    assert!(
        err.starts_with(&format!(
            "{}: invalid preprocessing: the mean has 3 values [0.485, 0.456, 0.406]",
            path.display()
        )),
        "{err}"
    );
    // one value for an RGB network is torchvision's broadcast
    let bytes = std::fs::read(fixtures().join("models/channels/rgb_minmax.pth")).unwrap();
    let sidecar: ModelSidecar =
        serde_json::from_str(r#"{"preprocessing": {"mean": [0.5], "std": [0.2]}}"#).unwrap();
    let rgb = Classifier::from_bytes("rgb.pth", &bytes, Some(sidecar)).unwrap();
    assert_eq!(rgb.preprocessing.mean, [0.5; 3]);
}
