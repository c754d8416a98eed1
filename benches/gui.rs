//! What the viewer does when a person moves a control: rebuilding the heat texture for a
//! 2048 x 2048 image (class or normalisation changed: upsample + colour; colormap or threshold
//! changed: colour only). The opacity costs nothing on the CPU: it is the texture's alpha.
//! Must fit in a 60 Hz frame (16.7 ms) with room to spare.
//!
//! And what it does on the worker when an image is opened: the texture's half-size levels of a
//! 4096 x 4096 image (`pyramid`).

#![allow(clippy::expect_used)] // benchmarks build their own inputs; a failure is a bug to see
use candle_core::{DType, Device, Tensor};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use camview::explain::{self, Analysis, ClassActivationMap, Method, Normalisation};
use camview::gui::heat::{SCREEN_HEAT_MAX_SIDE, ScreenHeat};
use camview::gui::pyramid::Pyramid;
use camview::imaging::Region;
use camview::render::Colormap;
use eframe::egui::{Color32, ColorImage};

fn analysis_of(size: u32) -> Analysis {
    let cam = |phase: f32| ClassActivationMap {
        transposed: false,
        score_cam_most_active: None,
        class: 0,
        method: Method::Cam,
        layer: camview::explain::Stage::Norm5,
        width: 7,
        height: 7,
        values: (0..49).map(|i| (i as f32 * 0.37 + phase).sin()).collect(),
        region: Region::whole(size, size),
    };
    Analysis {
        transposed: false,
        logits: vec![0.0, 1.0],
        probabilities: explain::softmax(&[0.0, 1.0]),
        activation: camview::network::Activation::Softmax,
        predicted: 1,
        positives: vec![1],
        maps: vec![cam(0.0), cam(1.0)],
        region: Region::whole(size, size),
        input_size: (224, 224),
        features: Tensor::zeros((1, 7, 7), DType::F32, &Device::Cpu).expect("zeros"),
        input: Tensor::zeros((1, 3, 8, 8), DType::F32, &Device::Cpu).expect("zeros"),
    }
}

fn heat_texture(c: &mut Criterion) {
    let size = 2048;
    let analysis = analysis_of(size);
    let lut = Colormap::Jet.lut();
    // The heat texture of class 1, at most `max_side` pixels on a side.
    let heat_at = |max_side: u32| {
        ScreenHeat::of(
            black_box(&analysis),
            &analysis.maps[1],
            Normalisation::PerMap,
            size,
            size,
            max_side,
        )
    };
    let mut group = c.benchmark_group("heat_texture_2048");
    group.bench_function("class_change", |b| {
        b.iter(|| heat_at(SCREEN_HEAT_MAX_SIDE).colour(&lut, 0.2))
    });
    let heat = heat_at(SCREEN_HEAT_MAX_SIDE);
    group.bench_function("colormap_or_threshold_change", |b| {
        b.iter(|| black_box(&heat).colour(&lut, 0.2))
    });
    group.bench_function("class_change_full_resolution", |b| {
        b.iter(|| heat_at(size).colour(&lut, 0.2))
    });
    group.finish();
}

fn pyramid(c: &mut Criterion) {
    let side = 4096;
    let pixels = (0..side * side)
        .map(|i| Color32::from_gray((i % side * 7 + i / side * 13) as u8))
        .collect();
    let image = ColorImage::new([side, side], pixels);
    c.bench_function("pyramid_4096", |b| {
        b.iter_batched(|| image.clone(), Pyramid::build, BatchSize::LargeInput)
    });
}

criterion_group!(benches, heat_texture, pyramid);
criterion_main!(benches);
