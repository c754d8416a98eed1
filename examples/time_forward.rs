//! Times a checkpoint's load and forward pass (used by tools/pytorch/compare_pytorch.sh).
//!
//! `cargo run --release --example time_forward -- CHECKPOINT [SIZE] [REPEATS] [--candle]`
//! prints `load_ms`, then one line per timed forward, then the median.
//! `--input X.npy --expect LOGITS.npy` instead runs `X` once and prints the largest difference
//! from the expected logits (tools/pytorch/check_densenet121.py writes both with PyTorch).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a measuring tool: a failure is a bug to see
use std::time::Instant;

use camview::network::{Classifier, DifferentiableDenseNet};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

/// candle's differentiable network over the same checkpoint (the path training and the
/// gradient methods use), to compare with the inference engine.
fn differentiable(path: &str, classifier: &Classifier) -> anyhow::Result<DifferentiableDenseNet> {
    let tensors = camview::checkpoint::read_state_dict(std::path::Path::new(path))?;
    let vb = VarBuilder::from_tensors(tensors.into_iter().collect(), DType::F32, &Device::Cpu);
    Ok(DifferentiableDenseNet::new(classifier.config(), vb)?)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let candle = args.iter().any(|a| a == "--candle");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (input, expect) = (value("--input"), value("--expect"));
    let args: Vec<&String> = args
        .iter()
        .filter(|a| {
            !a.starts_with("--") && Some(*a) != input.as_ref() && Some(*a) != expect.as_ref()
        })
        .collect();
    let path = args.first().ok_or_else(|| {
        anyhow::anyhow!("usage: time_forward CHECKPOINT [SIZE] [REPEATS] [--candle]")
    })?;
    let size: usize = args.get(1).map_or(Ok(224), |s| s.parse())?;
    let repeats: usize = args.get(2).map_or(Ok(20), |s| s.parse())?.max(1);
    let start = Instant::now();
    let classifier = Classifier::load(std::path::Path::new(path.as_str()), None)?;
    println!("load_ms {:.1}", start.elapsed().as_secs_f64() * 1e3);
    if let (Some(input), Some(expect)) = (input, expect) {
        let x = Tensor::read_npy(input)?;
        let expected = Tensor::read_npy(expect)?;
        let net = differentiable(path, &classifier)?;
        for (name, logits) in [
            ("engine", classifier.forward(&x)?.logits),
            ("candle", net.forward(&x)?.logits),
        ] {
            let diff = (logits - &expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let largest = expected.abs()?.max_all()?.to_scalar::<f32>()?;
            println!(
                "{name}: largest logit difference from PyTorch {diff:.3e} (largest logit {largest:.3})"
            );
        }
        return Ok(());
    }
    let x = Tensor::randn(0f32, 1.0, (1, 3, size, size), &Device::Cpu)?;
    let net = if candle {
        Some(differentiable(path, &classifier)?)
    } else {
        None
    };
    let run = || -> anyhow::Result<f64> {
        let start = Instant::now();
        let out = if let Some(net) = &net {
            net.forward(&x)?
        } else {
            classifier.forward(&x)?
        };
        std::hint::black_box(out);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..3 {
        run()?;
    }
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let ms = run()?;
        println!("forward_ms {ms:.2}");
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    println!("median_ms {:.2}", times[times.len() / 2]);
    Ok(())
}
