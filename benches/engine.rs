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

criterion_group!(benches, forward, cam, overlay);
criterion_main!(benches);
