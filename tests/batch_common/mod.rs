//! Helpers of the tests that run real batches (tests/reliability.rs, tests/cluster.rs).
#![allow(clippy::unwrap_used, dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn model() -> String {
    fixtures().join("models/tiny.pth").display().to_string()
}

pub fn camview() -> Command {
    Command::new(env!("CARGO_BIN_EXE_camview"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A folder of `n` different images: the fixture images, then noise of several sizes.
pub fn input_folder(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copies = [
        "rgb24.bmp",
        "gray8.png",
        "photo.jpg",
        "large.png",
        "image.tif",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..n {
        if let Some(name) = copies.get(i) {
            std::fs::copy(fixtures().join("images").join(name), dir.path().join(name)).unwrap();
            continue;
        }
        let (w, h) = (64 + 13 * i as u32, 48 + 7 * i as u32);
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
        });
        img.save(dir.path().join(format!("noise{i:02}.png")))
            .unwrap();
    }
    dir
}

pub fn batch_args(out: &Path, input: &Path) -> Vec<String> {
    [
        "batch",
        "--model",
        &model(),
        "--method",
        "gradcam",
        "--caption",
        "--out",
        out.to_str().unwrap(),
        input.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// predictions.csv's rows with the output folder's name taken out of the overlay column.
pub fn rows(out: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(out.join("predictions.csv")).unwrap();
    let prefix = out.display().to_string();
    let mut rows = vec![reader.headers().unwrap().iter().map(String::from).collect()];
    rows.extend(reader.records().map(|r| {
        r.unwrap()
            .iter()
            .map(|f| f.replace(&prefix, "OUT"))
            .collect()
    }));
    rows
}

/// The files of a folder by name, sorted, with predictions.csv left out.
pub fn outputs(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "predictions.csv")
        .collect();
    names.sort();
    names
}

pub fn sidecars(out: &Path) -> usize {
    outputs(out).iter().filter(|n| n.ends_with(".json")).count()
}
