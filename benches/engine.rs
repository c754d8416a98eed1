//! The engine's hot paths: the forward pass (slow, once per image) and everything a person moves
//! with the mouse (CAM for a class, overlay composition), which must fit in a frame.

#![allow(clippy::expect_used)] // benchmarks build their own inputs; a failure is a bug to see
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use camview::explain::{self, Analysis, ClassActivationMap, Method, Normalisation};
use camview::imaging::Region;
use camview::network::{DenseNet, DenseNetConfig};
use camview::render::{Heat, OverlayStyle, blend};

fn densenet121() -> DenseNet {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    DenseNet::new(&DenseNetConfig::densenet121(2), vb).expect("build densenet121")
}

fn forward(c: &mut Criterion) {
    let net = densenet121();
    let x = Tensor::randn(0f32, 1.0, (1, 3, 224, 224), &Device::Cpu).expect("input");
    let mut group = c.benchmark_group("densenet121");
    group.sample_size(10);
    group.bench_function("forward_224", |b| {
        b.iter(|| net.forward(black_box(&x)).expect("forward"))
    });
    group.finish();
}

fn cam(c: &mut Criterion) {
    let net = densenet121();
    let features = Tensor::rand(0f32, 1.0, (1024, 7, 7), &Device::Cpu).expect("features");
    let (weight, _) = net.classifier();
    let one_class = weight.narrow(0, 1, 1).expect("row");
    c.bench_function("cam_one_class_1024x7x7", |b| {
        b.iter(|| explain::class_activation_maps(black_box(&features), &one_class).expect("cam"))
    });
}

fn analysis_of(size: u32) -> Analysis {
    let values: Vec<f32> = (0..49).map(|i| (i as f32 * 0.37).sin()).collect();
    let cam = ClassActivationMap {
        class: 0,
        method: Method::Cam,
        layer: camview::explain::Stage::Norm5,
        width: 7,
        height: 7,
        values,
        region: Region::whole(size, size),
    };
    Analysis {
        logits: vec![0.0, 1.0],
        probabilities: explain::softmax(&[0.0, 1.0]),
        predicted: 1,
        cams: vec![cam.clone(), cam],
        region: Region::whole(size, size),
        input_size: (224, 224),
        features: Tensor::zeros((1, 7, 7), DType::F32, &Device::Cpu).expect("zeros"),
        input: Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).expect("zeros"),
    }
}

fn overlay(c: &mut Criterion) {
    for size in [512u32, 2048] {
        let analysis = analysis_of(size);
        let image =
            image::RgbImage::from_fn(size, size, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let style = OverlayStyle::default();
        let heat = Heat::of(&analysis, 0, Normalisation::PerMap, size, size);
        c.bench_function(&format!("overlay_blend_{size}"), |b| {
            b.iter(|| blend(black_box(&image), &heat, &style))
        });
        c.bench_function(&format!("overlay_heat_and_blend_{size}"), |b| {
            b.iter(|| {
                let heat = Heat::of(&analysis, 0, Normalisation::PerMap, size, size);
                blend(black_box(&image), &heat, &style)
            })
        });
    }
}

/// DenseNet-121 (random weights, 2 classes) as a classifier, and its analysis of a 224 x 224
/// image: the forward pass every method starts from.
fn densenet121_analysis() -> (camview::network::Classifier, Analysis) {
    let net = densenet121();
    let config = net.config().clone();
    let classifier = camview::network::Classifier {
        net,
        info: camview::network::ModelInfo {
            file: "bench".into(),
            sha256: String::new(),
            architecture: config.architecture_name(),
            num_classes: 2,
            config,
        },
        labels: vec!["a".into(), "b".into()],
        preprocessing: camview::imaging::Preprocessing::default(),
    };
    let image = image::RgbImage::from_fn(224, 224, |x, y| {
        image::Rgb([x as u8, y as u8, ((x * y) % 251) as u8])
    });
    let analysis =
        explain::analyse(&classifier, "bench", &image, &classifier.preprocessing).expect("analyse");
    (classifier, analysis)
}

/// Time per map (every class: 2) for each method at features.norm5 of DenseNet-121 at 224,
/// from the cached forward pass (what switching method costs); Grad-CAM at the earlier
/// layers (a forward up to the layer, the rest of the network and its backward pass); the
/// faithfulness scores at the default 20 steps.
fn methods(c: &mut Criterion) {
    use camview::explain::faithfulness::{FaithfulnessOptions, faithfulness};
    use camview::explain::methods::explain;
    use camview::explain::{MethodOptions, NoProgress, Stage};
    let (classifier, analysis) = densenet121_analysis();
    let options = MethodOptions::default();
    let mut group = c.benchmark_group("densenet121_224_map");
    group.sample_size(10);
    for method in Method::ALL {
        group.bench_function(format!("{}_norm5", method.name()), |b| {
            b.iter(|| {
                explain(
                    &classifier,
                    &analysis,
                    method,
                    Stage::Norm5,
                    &options,
                    &NoProgress,
                )
                .expect("map")
            })
        });
    }
    for layer in [
        Stage::DenseBlock(1),
        Stage::Transition(2),
        Stage::DenseBlock(3),
    ] {
        group.bench_function(format!("gradcam_{}", layer.name()), |b| {
            b.iter(|| {
                explain(
                    &classifier,
                    &analysis,
                    Method::GradCam,
                    layer,
                    &options,
                    &NoProgress,
                )
                .expect("map")
            })
        });
    }
    let map = explain(
        &classifier,
        &analysis,
        Method::GradCam,
        Stage::Norm5,
        &options,
        &NoProgress,
    )
    .expect("map");
    group.bench_function("faithfulness_20_steps", |b| {
        b.iter(|| {
            faithfulness(
                &classifier.net,
                &analysis.input,
                &map[1],
                &FaithfulnessOptions::default(),
                &NoProgress,
            )
            .expect("faithfulness")
        })
    });
    group.finish();
    // Exact Score-CAM (every one of norm5's 1024 channels) takes minutes a run: timed once,
    // and only when asked (CAMVIEW_BENCH_SCORECAM_ALL=1).
    if std::env::var_os("CAMVIEW_BENCH_SCORECAM_ALL").is_some() {
        let all = MethodOptions {
            score_cam_channels: None,
            ..MethodOptions::default()
        };
        let start = std::time::Instant::now();
        explain(
            &classifier,
            &analysis,
            Method::ScoreCam,
            Stage::Norm5,
            &all,
            &NoProgress,
        )
        .expect("map");
        eprintln!(
            "densenet121_224_map/scorecam_all_channels_norm5: {:.1} s (one run)",
            start.elapsed().as_secs_f64()
        );
    }
}

criterion_group!(benches, forward, cam, overlay, methods);
criterion_main!(benches);
