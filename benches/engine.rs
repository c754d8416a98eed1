//! The engine's hot paths: the forward pass (slow, once per image) and everything a person moves
//! with the mouse (CAM for a class, overlay composition), which must fit in a frame.

#![allow(clippy::expect_used)] // benchmarks build their own inputs; a failure is a bug to see
use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use camview::explain::{
    self, Analysis, ClassActivationMap, Classes, MapChoice, Method, Normalisation,
};
use camview::imaging::Region;
use camview::network::{Classifier, DenseNetConfig, DifferentiableDenseNet, InferenceEngine};
use camview::render::{Heat, OverlayStyle, blend};

/// DenseNet-121 with random weights: the candle network and the inference engine built from
/// the same tensors, and the tensors.
fn densenet121() -> (
    DifferentiableDenseNet,
    InferenceEngine,
    HashMap<String, Tensor>,
) {
    let config = DenseNetConfig::densenet121(2);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let net = DifferentiableDenseNet::new(&config, vb).expect("build densenet121");
    let tensors = varmap
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let engine = InferenceEngine::from_tensors(&config, &tensors).expect("engine");
    (net, engine, tensors)
}

fn forward(c: &mut Criterion) {
    let (net, engine, _) = densenet121();
    let x = Tensor::randn(0f32, 1.0, (1, 3, 224, 224), &Device::Cpu).expect("input");
    let mut group = c.benchmark_group("densenet121");
    group.sample_size(20);
    group.bench_function("forward_224", |b| {
        b.iter(|| engine.forward(black_box(&x)).expect("forward"))
    });
    group.sample_size(10);
    group.bench_function("forward_224_candle_differentiable", |b| {
        b.iter(|| net.forward(black_box(&x)).expect("forward"))
    });
    group.finish();
}

/// Each kind of layer of DenseNet-121 at 224, on the maps the real forward pass gives it.
fn layers(c: &mut Criterion) {
    let (_, engine, _) = densenet121();
    let image: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| ((i % 255) as f32 / 128.0) - 1.0)
        .collect();
    let config = engine.config().clone();
    let mut group = c.benchmark_group("densenet121_layers");
    group.sample_size(20);
    group.bench_function("stem_conv0_pool0_224", |b| {
        b.iter(|| engine.stem(black_box(&image), 1, 224, 224).expect("stem"))
    });
    let mut maps = engine.stem(&image, 1, 224, 224).expect("stem");
    for (i, &n_layers) in config.block_config.iter().enumerate() {
        let size = maps.height;
        for j in 0..n_layers {
            if j == 0 || j + 1 == n_layers {
                let mut at = maps.clone();
                let channels = at.channels;
                group.bench_function(
                    format!("dense_layer_block{}_{}in_{size}x{size}", i + 1, channels),
                    |b| {
                        b.iter(|| {
                            at.channels = channels;
                            engine.dense_layer(i, j, &mut at).expect("layer")
                        })
                    },
                );
            }
            engine.dense_layer(i, j, &mut maps).expect("layer");
        }
        if i + 1 < config.block_config.len() {
            group.bench_function(
                format!("transition{}_{}in_{size}x{size}", i + 1, maps.channels),
                |b| b.iter(|| engine.transition(i, black_box(&maps)).expect("transition")),
            );
            maps = engine.transition(i, &maps).expect("transition");
        }
    }
    group.bench_function("head_norm5_pool_classifier", |b| {
        b.iter(|| engine.head(black_box(maps.clone())).expect("head"))
    });
    group.finish();
}

fn cam(c: &mut Criterion) {
    let (net, _, _) = densenet121();
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
        transposed: false,
        score_cam_most_active: None,
        class: 0,
        method: Method::Cam,
        layer: camview::explain::Stage::Norm5,
        width: 7,
        height: 7,
        values,
        region: Region::whole(size, size),
    };
    Analysis {
        transposed: false,
        logits: vec![0.0, 1.0],
        probabilities: explain::softmax(&[0.0, 1.0]),
        activation: camview::network::Activation::Softmax,
        predicted: 1,
        positives: vec![1],
        maps: vec![cam.clone(), cam],
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
        let heat = Heat::of(
            &analysis,
            &analysis.maps[0],
            Normalisation::PerMap,
            size,
            size,
        );
        c.bench_function(&format!("overlay_blend_{size}"), |b| {
            b.iter(|| blend(black_box(&image), &heat, &style))
        });
        c.bench_function(&format!("overlay_heat_and_blend_{size}"), |b| {
            b.iter(|| {
                let heat = Heat::of(
                    &analysis,
                    &analysis.maps[0],
                    Normalisation::PerMap,
                    size,
                    size,
                );
                blend(black_box(&image), &heat, &style)
            })
        });
    }
}

/// DenseNet-121 (random weights, 2 classes) as a classifier, loaded from a safetensors file in
/// memory as a user's would be, and its analysis of a 224 x 224 image: the forward pass every
/// method starts from.
fn densenet121_analysis() -> (Classifier, Analysis, DifferentiableDenseNet) {
    let (net, _, tensors) = densenet121();
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .expect("serialise");
    let classifier = Classifier::from_bytes("bench", &bytes, None).expect("classifier");
    let image = image::RgbImage::from_fn(224, 224, |x, y| {
        image::Rgb([x as u8, y as u8, ((x * y) % 251) as u8])
    });
    let source = camview::imaging::SourceImage::from_rgb("bench", image, "synthetic");
    let analysis =
        explain::analyse(&classifier, &source, &classifier.preprocessing).expect("analyse");
    (classifier, analysis, net)
}

/// Time per map (every class: 2) for each method at features.norm5 of DenseNet-121 at 224,
/// from the cached forward pass (what switching method costs). Score-CAM, Grad-CAM at the
/// earlier layers (a forward pass up to the layer, the rest of the network and its backward
/// pass) and the faithfulness scores take seconds a run, too long for criterion's ten samples
/// on a shared 2-core machine: with CAMVIEW_BENCH_SLOW=1 they are timed once each (best of
/// two), and exact Score-CAM (all 1024 channels) with CAMVIEW_BENCH_SCORECAM_ALL=1.
fn methods(c: &mut Criterion) {
    use camview::explain::methods::explain_maps;
    use camview::explain::{NoProgress, Stage};
    let (classifier, analysis, net) = densenet121_analysis();
    let mut group = c.benchmark_group("densenet121_224_map");
    group.sample_size(10);
    for method in Method::ALL.into_iter().filter(|m| *m != Method::ScoreCam) {
        let choice = MapChoice::new(method, Stage::Norm5);
        group.bench_function(format!("{}_norm5", method.name()), |b| {
            b.iter(|| {
                explain_maps(
                    &classifier,
                    &analysis,
                    &choice,
                    &Classes::All,
                    None,
                    &NoProgress,
                )
                .expect("map")
            })
        });
    }
    group.finish();
    slow_methods(&classifier, &analysis, &net);
}

/// `net` is candle's differentiable network over the same weights: its forward pass is timed for
/// scale (the gradient methods run it from the layer on).
fn slow_methods(classifier: &Classifier, analysis: &Analysis, net: &DifferentiableDenseNet) {
    use camview::explain::faithfulness::{FaithfulnessOptions, faithfulness};
    use camview::explain::methods::explain_maps;
    use camview::explain::{MethodOptions, NoProgress, Stage};
    let once = |name: &str, runs: usize, f: &dyn Fn()| {
        let best = (0..runs)
            .map(|_| {
                let start = std::time::Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        eprintln!("densenet121_224_map/{name}: {best:.2} s (best of {runs})");
    };
    let options = MethodOptions::default();
    let map = |method, layer, options: &MethodOptions| {
        let choice = MapChoice {
            method,
            layer,
            options: *options,
        };
        explain_maps(
            classifier,
            analysis,
            &choice,
            &Classes::All,
            None,
            &NoProgress,
        )
        .expect("map")
        .maps
    };
    if std::env::var_os("CAMVIEW_BENCH_SLOW").is_some() {
        once("forward_224_batch1_differentiable", 2, &|| {
            net.forward(&analysis.input).expect("forward");
        });
        once("scorecam_norm5_64_channels", 2, &|| {
            map(Method::ScoreCam, Stage::Norm5, &options);
        });
        for layer in [
            Stage::DenseBlock(1),
            Stage::Transition(2),
            Stage::DenseBlock(3),
        ] {
            once(&format!("gradcam_{}", layer.name()), 2, &|| {
                map(Method::GradCam, layer, &options);
            });
        }
        let grad_cam = map(Method::GradCam, Stage::Norm5, &options);
        once("faithfulness_20_steps", 2, &|| {
            faithfulness(
                classifier,
                &analysis.input,
                &grad_cam[1],
                &FaithfulnessOptions::default(),
                &NoProgress,
            )
            .expect("faithfulness");
        });
    }
    if std::env::var_os("CAMVIEW_BENCH_SCORECAM_ALL").is_some() {
        let all = MethodOptions {
            score_cam_channels: None,
            ..MethodOptions::default()
        };
        once("scorecam_norm5_all_1024_channels", 1, &|| {
            map(Method::ScoreCam, Stage::Norm5, &all);
        });
    }
}

criterion_group!(benches, forward, layers, cam, overlay, methods);
criterion_main!(benches);
