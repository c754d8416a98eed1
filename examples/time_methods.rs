//! Times camview's maps, one method and layer at a time (used by
//! tools/pytorch/compare_methods.sh, beside tools/pytorch/time_gradcam.py for pytorch-grad-cam).
//!
//! `cargo run --release --example time_methods -- CHECKPOINT IMAGE REPEATS
//!  [--methods M,..] [--layers L,..] [--scorecam L,..] [--scorecam-repeats N] [--class C]`
//!
//! `IMAGE` is an image at the network's input size (224 x 224: camview's resize is then the
//! identity), the one whose ImageNet-normalised tensor time_gradcam.py reads as `.npy`.
//! For every method and layer: one warm-up call, then REPEATS timed calls of the whole
//! per-image work for one class after decoding (`one_map`: `explain::explain_image` with that
//! class alone). Each timed call prints `map_ms METHOD LAYER MS`,
//! the format of time_gradcam.py. Score-CAM runs every channel (`score_cam_channels: None`,
//! pytorch-grad-cam's behaviour; camview's default keeps 64), only at the `--scorecam` layers,
//! `--scorecam-repeats` times (default 1), without a warm-up call of its own.
//! RAYON_NUM_THREADS sets the threads.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a measuring tool: a failure is a bug to see
use std::path::Path;
use std::time::Instant;

use camview::explain::{self, Classes, MapChoice, Method, MethodOptions, NoProgress, Stage};
use camview::imaging::{self, SourceImage};
use camview::network::Classifier;

const DEFAULT_METHODS: &str = "gradcam,gradcam++,xgradcam,hirescam,layercam,eigencam";
const DEFAULT_LAYERS: &str =
    "denseblock1,transition1,denseblock2,transition2,denseblock3,transition3,denseblock4,norm5";

/// The timed work: one image's map of `class` by `choice` through camview's one analysis
/// path (preprocessing, the engine's forward pass keeping the layer's activations, the backward
/// pass of that class), as `render --class` runs it after decoding.
fn one_map(
    classifier: &Classifier,
    image: &SourceImage,
    choice: &MapChoice,
    class: usize,
) -> anyhow::Result<()> {
    let classes = Classes::Only(vec![class]);
    let analysis = explain::explain_image(classifier, image, choice, &classes, &NoProgress)?;
    std::hint::black_box(analysis.map(class));
    Ok(())
}

fn parse_method(name: &str) -> anyhow::Result<Method> {
    Method::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| anyhow::anyhow!("unknown method '{name}'"))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: time_methods CHECKPOINT IMAGE REPEATS [--methods M,..] \
                 [--layers L,..] [--scorecam L,..] [--scorecam-repeats N] [--class C]";
    let mut positional = Vec::new();
    let (mut methods_arg, mut layers_arg) =
        (DEFAULT_METHODS.to_string(), DEFAULT_LAYERS.to_string());
    let (mut scorecam_arg, mut scorecam_repeats, mut class) = (String::new(), 1usize, 0usize);
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--methods" => methods_arg = value()?,
            "--layers" => layers_arg = value()?,
            "--scorecam" => scorecam_arg = value()?,
            "--scorecam-repeats" => scorecam_repeats = value()?.parse()?,
            "--class" => class = value()?.parse()?,
            _ if arg.starts_with("--") => anyhow::bail!("unknown option {arg}\n{usage}"),
            _ => positional.push(arg),
        }
    }
    let [checkpoint, image, repeats] = positional.as_slice() else {
        anyhow::bail!(usage);
    };
    let repeats: usize = repeats.parse()?;
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.trim_start_matches("features.").to_string())
            .collect()
    };

    let classifier = Classifier::load(Path::new(checkpoint), None)?;
    let image = imaging::open_image(Path::new(image))?;
    anyhow::ensure!(
        class < classifier.info.num_classes,
        "class {class} of {}",
        classifier.info.num_classes
    );
    for _ in 0..2 {
        // warm the allocator and the engine, like time_gradcam.py
        std::hint::black_box(explain::analyse(
            &classifier,
            &image,
            &classifier.preprocessing,
        )?);
    }

    // (method, layer, timed calls, warm-up calls), in time_gradcam.py's order.
    let mut runs: Vec<(Method, String, usize, usize)> = Vec::new();
    for m in list(&methods_arg).iter().filter(|m| *m != "scorecam") {
        for layer in list(&layers_arg) {
            runs.push((parse_method(m)?, layer, repeats, 1));
        }
    }
    for layer in list(&scorecam_arg) {
        runs.push((Method::ScoreCam, layer, scorecam_repeats, 0));
    }
    for (method, layer, repeats, warmups) in runs {
        let stage: Stage = layer.parse().map_err(anyhow::Error::msg)?;
        let choice = MapChoice {
            method,
            layer: stage,
            options: MethodOptions {
                score_cam_channels: None, // every channel, as pytorch-grad-cam
                ..MethodOptions::default()
            },
        };
        let mut times = Vec::with_capacity(repeats);
        for i in 0..warmups + repeats {
            let start = Instant::now();
            one_map(&classifier, &image, &choice, class)?;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            if i >= warmups {
                println!("map_ms {} {layer} {ms:.2}", method.name());
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        let mid = times.len() / 2;
        let median = if times.len() % 2 == 1 {
            times[mid]
        } else {
            (times[mid - 1] + times[mid]) / 2.0
        };
        println!("median_ms {} {layer} {median:.2}", method.name());
    }
    Ok(())
}
