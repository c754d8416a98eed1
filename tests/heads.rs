//! DenseNets as other people's files hold them: under a wrapper's prefix, with Sequential and
//! MLP heads, a wrapper's `fc` after the classifier, two networks in one file, MONAI's
//! DenseNet; against PyTorch and MONAI (tests/fixtures/make_head_fixtures.py).
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use camview::explain::{self, Analysis, Classes, MapChoice, Method, NoProgress, Stage};
use camview::imaging;
use camview::model_request::ModelRequest;
use camview::network::Classifier;
use candle_core::Tensor;

/// Logits and CAMs against PyTorch.
const TOLERANCE: f32 = 1e-4;
/// Grad-CAM through a head of several layers against PyTorch's autograd.
const GRAD_CAM_TOLERANCE: f32 = 2e-4;
const IMAGES: [&str; 2] = ["rgb24.bmp", "tall.png"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model_path(name: &str) -> PathBuf {
    fixtures().join("models/heads").join(format!("{name}.pth"))
}

fn load(name: &str, submodel: Option<&str>) -> Classifier {
    let mut request = ModelRequest::file(model_path(name));
    request.submodel = submodel.map(String::from);
    request.load().unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load_error(path: &Path, submodel: Option<&str>) -> String {
    match Classifier::load_submodel(path, None, submodel) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

fn expected(name: &str) -> Vec<f32> {
    let path = fixtures().join("expected/heads").join(name);
    Tensor::read_npy(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn analyse(classifier: &Classifier, image: &str) -> Analysis {
    let img = imaging::open_image(&fixtures().join("images").join(image)).unwrap();
    explain::analyse(classifier, &img, &classifier.preprocessing).unwrap()
}

fn explain(classifier: &Classifier, image: &str, choice: &MapChoice) -> Result<Analysis, String> {
    let img = imaging::open_image(&fixtures().join("images").join(image)).unwrap();
    explain::explain_image(classifier, &img, choice, &Classes::All, &NoProgress)
        .map_err(|e| e.to_string())
}

fn all_maps(a: &Analysis) -> Vec<f32> {
    a.maps
        .iter()
        .flat_map(|m| m.values.iter().copied())
        .collect()
}

/// `stem` is the fixtures' name for the model (and network), e.g. `two_networks.ema_model`.
fn assert_logits_match(a: &Analysis, stem: &str, image: &str) {
    let torch = expected(&format!("{stem}.{}.logits.npy", image.replace('.', "_")));
    let err = max_abs_diff(&a.logits, &torch);
    assert!(
        err <= TOLERANCE,
        "{stem} on {image}: logits differ by {err}: ours {:?}, torch {torch:?}",
        a.logits
    );
}

fn assert_maps_match(a: &Analysis, stem: &str, image: &str, kind: &str, tolerance: f32) {
    let torch = expected(&format!("{stem}.{}.{kind}.npy", image.replace('.', "_")));
    let err = max_abs_diff(&all_maps(a), &torch);
    assert!(
        err <= tolerance,
        "{stem} on {image}: {kind} differ by {err}"
    );
}

#[test]
fn wrapped_sequential_and_monai_heads_match_pytorch_with_exact_cams() {
    for (name, prefix, head) in [
        (
            "chexnet_style",
            "densenet121.",
            "linear densenet121.classifier.0 [5, 32]",
        ),
        (
            "model_ft",
            "model_ft.",
            "linear model_ft.classifier.1 [3, 18]",
        ),
        ("identity_then_fc", "backbone.", "linear fc [2, 40]"),
        ("monai_2d", "", "linear class_layers.out [4, 18]"),
    ] {
        let classifier = load(name, None);
        assert_eq!(classifier.info.prefix, prefix, "{name}");
        assert_eq!(classifier.info.head.to_string(), head, "{name}");
        assert!(classifier.info.cam_is_exact(), "{name}");
        for image in IMAGES {
            let a = analyse(&classifier, image);
            assert!(a.maps.iter().all(|m| m.method == Method::Cam));
            assert_logits_match(&a, name, image);
            assert_maps_match(&a, name, image, "cams", TOLERANCE);
        }
    }
}

#[test]
fn of_two_networks_the_first_is_used_and_named_and_the_other_can_be_asked_for() {
    let classifier = load("two_networks", None);
    assert_eq!(classifier.info.prefix, "model.");
    assert_eq!(classifier.info.other_networks, ["ema_model."]);
    let note = classifier.info.other_networks_note().unwrap();
    assert!(
        note.ends_with(
            "two_networks.pth holds 2 DenseNets: used the one under 'model.'; the others are \
             under 'ema_model.'"
        ),
        "{note}"
    );
    let ema = load("two_networks", Some("ema_model."));
    assert_eq!(ema.info.prefix, "ema_model.");
    assert_eq!(ema.info.other_networks, ["model."]);
    for (classifier, stem) in [
        (&classifier, "two_networks.model"),
        (&ema, "two_networks.ema_model"),
    ] {
        for image in IMAGES {
            let a = analyse(classifier, image);
            assert_logits_match(&a, stem, image);
            assert_maps_match(&a, stem, image, "cams", TOLERANCE);
        }
    }
    // provenance records the network used
    let json = serde_json::to_value(&ema.info).unwrap();
    assert_eq!(json["prefix"], "ema_model.");
    assert_eq!(json["other_networks"][0], "model.");
    assert_eq!(json["head"][0]["layer"], "linear");
    assert_eq!(json["head"][0]["key"], "ema_model.classifier");

    let err = load_error(&model_path("two_networks"), Some("teacher"));
    assert!(
        err.ends_with(
            "two_networks.pth: there is no DenseNet under 'teacher.': the file's DenseNets are \
             under 'model.', under 'ema_model.'"
        ),
        "{err}"
    );
}

#[test]
fn heads_of_several_layers_run_exactly_and_grad_cam_goes_through_them() {
    let gradcam = MapChoice::new(Method::GradCam, Stage::Norm5);
    for (name, head) in [
        (
            "mlp_head",
            "linear classifier.0 [16, 32], relu, dropout, linear classifier.3 [4, 16]",
        ),
        (
            "densenet_then_fc",
            "linear densenet.classifier [10, 32], relu, linear fc [3, 10]",
        ),
    ] {
        let classifier = load(name, None);
        assert_eq!(classifier.info.head.to_string(), head);
        assert!(!classifier.info.cam_is_exact());
        assert!(classifier.cam_weights().is_none());
        for image in IMAGES {
            // the forward pass comes with Grad-CAM at norm5: CAM is not defined
            let a = analyse(&classifier, image);
            assert!(a.maps.iter().all(|m| m.method == Method::GradCam));
            assert_logits_match(&a, name, image);
            assert_maps_match(&a, name, image, "gradcam", GRAD_CAM_TOLERANCE);
            let shown = explain(&classifier, image, &gradcam).unwrap();
            assert_maps_match(&shown, name, image, "gradcam", GRAD_CAM_TOLERANCE);
        }
    }
}

#[test]
fn cam_is_refused_for_a_head_of_several_layers_and_every_other_method_runs() {
    let classifier = load("mlp_head", None);
    let err = explain(
        &classifier,
        "rgb24.bmp",
        &MapChoice::new(Method::Cam, Stage::Norm5),
    )
    .unwrap_err();
    let image = fixtures().join("images/rgb24.bmp");
    assert_eq!(
        err.strip_prefix(&format!("{}: ", image.display()))
            .unwrap_or(&err),
        "cannot compute cam at features.norm5: CAM is not defined for this model: its \
         head (linear classifier.0 [16, 32], relu, dropout, linear classifier.3 [4, 16]) is not \
         one linear map of the pooled features, so the classifier's weights on the final maps \
         are not the evidence its decision is made of; the gradient methods (Grad-CAM, \
         Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM) follow the decision through the whole head"
    );
    for method in Method::ALL.into_iter().filter(|&m| m != Method::Cam) {
        for layer in [Stage::Norm5, Stage::DenseBlock(2)] {
            let a = explain(&classifier, "rgb24.bmp", &MapChoice::new(method, layer))
                .unwrap_or_else(|e| panic!("{method} at {layer}: {e}"));
            assert_eq!(a.maps.len(), 4);
            assert!(
                a.maps
                    .iter()
                    .all(|m| m.method == method && m.layer == layer)
            );
            assert!(
                a.maps.iter().any(|m| m.values.iter().any(|&v| v > 0.0)),
                "{method} at {layer}: every map is empty"
            );
        }
    }
}

#[test]
fn a_head_of_several_layers_without_its_sidecar_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mlp_head", "densenet_then_fc"] {
        let path = dir.path().join(format!("{name}.pth"));
        std::fs::copy(model_path(name), &path).unwrap();
        let err = load_error(&path, None);
        let layers = if name == "mlp_head" {
            "classifier.0 [16, 32], classifier.3 [4, 16]"
        } else {
            "densenet.classifier [10, 32], fc [3, 10]"
        };
        let sidecar = path.with_extension("json");
        assert_eq!(
            err,
            format!(
                "{}: its classifier has 2 linear layers ({layers}), and the layers between them \
                 (ReLU, dropout) cannot be read from the file: state the head in order in the \
                 model's sidecar {}, e.g. \"head\": [\"linear\", \"relu\", \"linear\"] (items: \
                 linear, relu, dropout)",
                path.display(),
                sidecar.display()
            )
        );
        // the line it suggests loads the model
        std::fs::write(&sidecar, r#"{"head": ["linear", "relu", "linear"]}"#).unwrap();
        let classifier = Classifier::load(&path, None).unwrap();
        assert_eq!(
            classifier.info.head.to_string().matches("linear").count(),
            2
        );
    }
}

#[test]
fn a_3d_monai_densenet_is_refused_as_3d() {
    let path = model_path("monai_3d");
    let err = load_error(&path, None);
    assert_eq!(
        err,
        format!(
            "{}: features.conv0.weight has shape [4, 1, 7, 7, 7]: this is a 3-D network \
             (MONAI's spatial_dims=3), and camview explains 2-D images",
            path.display()
        )
    );
}

fn camview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_camview"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_line_names_the_network_used_and_takes_submodel() {
    let model = model_path("two_networks").display().to_string();
    let image = fixtures().join("images/rgb24.bmp").display().to_string();
    let o = camview(&["predict", "--model", &model, "--json", &image]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("used the one under 'model.'; the others are under 'ema_model.' (choose with --submodel PREFIX)"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"]["prefix"], "model.");

    let o = camview(&[
        "predict",
        "--model",
        &model,
        "--submodel",
        "ema_model",
        "--json",
        &image,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"]["prefix"], "ema_model.");
    let logits: Vec<f32> = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_f64().unwrap() as f32)
        .collect();
    let torch = expected("two_networks.ema_model.rgb24_bmp.logits.npy");
    assert!(max_abs_diff(&logits, &torch) <= TOLERANCE);

    let o = camview(&["predict", "--submodel", "model.", &image]);
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "camview: --submodel needs --model: the demo model is one network\n"
    );
}

#[test]
fn the_command_line_refuses_cam_for_an_mlp_head_and_predicts_with_it() {
    let model = model_path("mlp_head").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("rgb24.bmp");
    std::fs::copy(fixtures().join("images/rgb24.bmp"), &image).unwrap();
    let image = image.display().to_string();
    let o = camview(&["render", "--model", &model, &image]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("CAM is not defined for this model")
            && stderr
                .trim_end()
                .ends_with("(use --method gradcam, or another method but cam)"),
        "{stderr}"
    );
    let o = camview(&["render", "--model", &model, "--method", "gradcam", &image]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = camview(&["predict", "--model", &model, "--json", &image]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"]["head"].as_array().unwrap().len(), 4);
}

#[cfg(feature = "gui")]
mod common;

#[cfg(feature = "gui")]
#[test]
fn the_viewer_shows_grad_cam_for_an_mlp_head_and_says_why_cam_is_not_shown() {
    use camview::gui::session::NoticeKind;
    let image = fixtures().join("images/rgb24.bmp");
    let mut h = common::launch_with(model_path("mlp_head"), vec![image], [1000.0, 700.0]);
    let session = &h.state().session;
    assert_eq!(session.method(), Method::GradCam);
    let notice = session.notice().unwrap();
    assert!(
        notice
            .text
            .ends_with("CAM is not defined for its head: showing Grad-CAM"),
        "{}",
        notice.text
    );
    let maps = &session.analysis().unwrap().maps;
    assert!(maps.iter().all(|m| m.method == Method::GradCam));

    h.state_mut().session.choose_map(Method::Cam, Stage::Norm5);
    common::settle(&mut h);
    let session = &h.state().session;
    let notice = session.notice().unwrap();
    assert!(matches!(notice.kind, NoticeKind::Error));
    assert!(
        notice.text.contains("CAM is not defined for this model"),
        "{}",
        notice.text
    );
    assert_eq!(session.method(), Method::GradCam, "the choice goes back");

    // The picker offers CAM greyed out for such a model, and the other methods as usual.
    use egui_kittest::kittest::{NodeT, Queryable};
    h.get_by_label("Method").click();
    h.run();
    assert!(h.get_by_label("CAM").accesskit_node().is_disabled());
    assert!(!h.get_by_label("Grad-CAM++").accesskit_node().is_disabled());
}
