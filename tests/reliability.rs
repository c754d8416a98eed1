//! Reliability of the command line under what the world does to it: a batch killed and
//! resumed, an image over the memory budget, a disk that fills up. Driven through the real
//! binary (README, "Reliability").
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod batch_common;
use batch_common::{
    batch_args, camview, fixtures, input_folder, model, outputs, rows, sidecars, stderr,
};

#[test]
fn a_batch_killed_at_any_moment_and_resumed_gives_the_uninterrupted_run_row_for_row() {
    const IMAGES: usize = 16;
    let input = input_folder(IMAGES);
    let whole = tempfile::tempdir().unwrap();
    let o = camview()
        .args(batch_args(whole.path(), input.path()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = rows(whole.path());
    assert_eq!(expected.len(), IMAGES + 1);
    assert_eq!(sidecars(whole.path()), IMAGES);

    // Killed before any image, after a few, about half way and near the end.
    for kill_after in [0, 1, IMAGES / 2, IMAGES - 2] {
        let out = tempfile::tempdir().unwrap();
        let mut child = camview()
            .args(batch_args(out.path(), input.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while sidecars(out.path()) < kill_after && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // What a kill during a write leaves (the window is short, so it is made here too): a
        // temporary file named after this machine and the dead process.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let stale = out
            .path()
            .join(format!(".camview-{host}-{}-Xy12ab.part", child.id()));
        std::fs::write(&stale, b"half an overlay").unwrap();
        let finished_before = sidecars(out.path());
        assert!(
            !out.path().join("predictions.csv").exists(),
            "killed after {kill_after}: predictions.csv is written last"
        );
        // Whatever the kill left is whole: every overlay present is a PNG that decodes.
        for name in outputs(out.path()) {
            if name.ends_with(".png") && !name.starts_with('.') {
                image::open(out.path().join(&name))
                    .unwrap_or_else(|e| panic!("killed after {kill_after}: {name}: {e}"));
            }
        }

        let o = camview()
            .args(batch_args(out.path(), input.path()))
            .arg("--resume")
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "killed after {kill_after}: {err}");
        assert!(
            err.contains(&format!("({finished_before} found finished)")),
            "killed after {kill_after} with {finished_before} sidecars: {err}"
        );
        assert!(
            err.contains(&format!(
                "camview: removed {}, left by a batch that was stopped",
                stale.display()
            )),
            "{err}"
        );
        assert_eq!(rows(out.path()), expected, "killed after {kill_after}");
        assert_eq!(
            outputs(out.path()),
            outputs(whole.path()),
            "killed after {kill_after}: the same files, and no temporary one left"
        );
        for name in outputs(whole.path()) {
            assert!(
                std::fs::read(out.path().join(&name)).unwrap()
                    == std::fs::read(whole.path().join(&name)).unwrap(),
                "killed after {kill_after}: {name} differs from the uninterrupted run's"
            );
        }
    }
}

#[test]
fn resume_redoes_an_output_made_otherwise_only_with_force_and_a_finished_batch_not_at_all() {
    let input = input_folder(3);
    // A DICOM file too: its record holds patient data no sidecar carries.
    std::fs::copy(
        fixtures().join("dicom/ct_explicit_le.dcm"),
        input.path().join("ct.dcm"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = camview()
        .args(batch_args(out.path(), input.path()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = rows(out.path());

    // All finished: nothing is analysed again, predictions.csv is the same.
    let o = camview()
        .args(batch_args(out.path(), input.path()))
        .arg("--resume")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("(4 found finished)"), "{}", stderr(&o));
    assert_eq!(rows(out.path()), expected);

    // Other settings (no caption): the outputs are not this run's; they are not replaced
    // without --force.
    let mut other = batch_args(out.path(), input.path());
    other.retain(|a| *a != "--caption");
    let o = camview().args(&other).arg("--resume").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(stderr(&o).contains("(0 found finished)"), "{}", stderr(&o));
    let o = camview()
        .args(&other)
        .args(["--resume", "--force"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let sidecar = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sidecar).unwrap()).unwrap();
    assert_eq!(record["decorations"]["caption"], false);

    // A changed source is analysed again.
    let first = input.path().join("rgb24.bmp");
    let mut img = image::open(&first).unwrap().to_rgb8();
    img.put_pixel(0, 0, image::Rgb([1, 2, 3]));
    img.save(&first).unwrap();
    let o = camview().args(&other).arg("--resume").output().unwrap();
    assert!(stderr(&o).contains("(3 found finished)"), "{}", stderr(&o));
}

/// Score-CAM's channel limit is a setting like the others: the sidecar records it, and an
/// output made with another limit is not counted as this run's.
#[test]
fn resume_tells_score_cam_runs_with_other_channel_limits_apart() {
    let input = input_folder(1);
    let out = tempfile::tempdir().unwrap();
    let args = |channels: &str| {
        let mut args = batch_args(out.path(), input.path());
        for a in &mut args {
            if a == "gradcam" {
                *a = "scorecam".into();
            }
        }
        args.extend(["--scorecam-channels".into(), channels.into()]);
        args
    };
    let o = camview().args(args("4")).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let sidecar = |out: &Path| -> serde_json::Value {
        let path = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .unwrap();
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let record = sidecar(out.path());
    assert_eq!(record["method"], "scorecam");
    assert_eq!(record["score_cam_most_active"], 4);

    let o = camview().args(args("4")).arg("--resume").output().unwrap();
    assert!(stderr(&o).contains("(1 found finished)"), "{}", stderr(&o));
    for other in ["8", "all"] {
        let o = camview()
            .args(args(other))
            .arg("--resume")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{other}: {}", stderr(&o));
        assert!(stderr(&o).contains("(0 found finished)"), "{}", stderr(&o));
    }
    let o = camview()
        .args(args("all"))
        .args(["--resume", "--force"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(sidecar(out.path()).get("score_cam_most_active").is_none());
    // Another method records no limit, whatever --scorecam-channels says.
    let other = tempfile::tempdir().unwrap();
    let o = camview()
        .args(batch_args(other.path(), input.path()))
        .args(["--scorecam-channels", "4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let record = sidecar(other.path());
    assert_eq!(record["method"], "gradcam");
    assert!(record.get("score_cam_most_active").is_none());
}

/// A PNG that declares `width` x `height` pixels (8-bit RGB, or 16-bit gray when `deep`) and
/// holds a few bytes of them.
fn png_bomb(width: u32, height: u32, deep: bool) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(if deep {
        &[16, 0, 0, 0, 0]
    } else {
        &[8, 2, 0, 0, 0]
    });
    chunk(&mut png, b"IHDR", &header);
    // A zlib stream of a few rows of zeros, then nothing more.
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x18, 0x05, 0x00],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn an_image_over_the_memory_budget_is_refused_from_its_header_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, png_bomb(20_000, 20_000, false)).unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 100);
    let o = camview()
        .args(["predict", "--memory-budget", "2G", "--model", &model()])
        .arg(&bomb)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "camview: {}: opening the 20000 x 20000 image would take about 4.5 GiB, more than \
             camview's memory budget of 2.0 GiB (set it with --memory-budget or \
             CAMVIEW_MEMORY_BUDGET)",
            bomb.display()
        )
    );
    // 16-bit gray is kept at full depth as well: it costs more.
    let deep = dir.path().join("deep.png");
    std::fs::write(&deep, png_bomb(20_000, 20_000, true)).unwrap();
    let o = camview()
        .args(["predict", "--memory-budget", "8G", "--model", &model()])
        .arg(&deep)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("would take about 8.2 GiB, more than camview's memory budget of 8.0 GiB"),
        "{}",
        stderr(&o)
    );
    // The same by the environment, for the viewer too.
    let o = camview()
        .env("CAMVIEW_MEMORY_BUDGET", "100M")
        .args(["predict", "--model", &model()])
        .arg(&bomb)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("memory budget of 100.0 MiB"),
        "{}",
        stderr(&o)
    );
    // Within the budget, the bomb is read as what it is: a damaged file.
    let o = camview()
        .args(["predict", "--memory-budget", "6G", "--model", &model()])
        .arg(&bomb)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "camview: {}: the PNG image is damaged",
            bomb.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Runs `script` (bash) in a private mount namespace where `dir` is a tmpfs of `size`.
fn on_a_small_tmpfs(dir: &Path, size: &str, script: &str) -> Output {
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "bash", "-c"])
        .arg(format!(
            "set -e; mount -t tmpfs -o size={size} tmpfs '{}'; {script}",
            dir.display()
        ))
        .output()
        .expect("unshare (util-linux) runs")
}

#[test]
fn a_full_disk_gives_one_message_and_leaves_no_partial_file() {
    let full = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_camview");
    let large = fixtures().join("images/large.png");
    // 64 KiB: room for the sidecar and part of the overlay, not all of it.
    let o = on_a_small_tmpfs(
        full.path(),
        "64k",
        &format!(
            "status=0; '{bin}' render --model '{}' '{}' --caption --out '{dir}/overlay.png' \
             2> '{logs}/render.err' || status=$?; ls -A '{dir}' > '{logs}/left.txt'; \
             exit $status",
            model(),
            large.display(),
            dir = full.path().display(),
            logs = logs.path().display()
        ),
    );
    let err = std::fs::read_to_string(logs.path().join("render.err")).unwrap_or_default();
    let left = std::fs::read_to_string(logs.path().join("left.txt")).unwrap_or_default();
    assert_eq!(o.status.code(), Some(1), "{} {err}", stderr(&o));
    assert_eq!(
        err.trim(),
        format!(
            "camview: {}/overlay.png: cannot write: the disk is full",
            full.path().display()
        )
    );
    assert_eq!(left.trim(), "", "nothing is left on the full disk");

    // A batch that fills the disk part way: each image that could not be written says so,
    // every file left is whole, and an overlay is left with its sidecar or not at all.
    let input = input_folder(6);
    let o = on_a_small_tmpfs(
        full.path(),
        "160k",
        &format!(
            "status=0; '{bin}' batch --model '{}' --out '{dir}' '{}' 2> '{logs}/batch.err' \
             || status=$?; cp -r '{dir}' '{logs}/left'; exit $status",
            model(),
            input.path().display(),
            dir = full.path().display(),
            logs = logs.path().display()
        ),
    );
    let err = std::fs::read_to_string(logs.path().join("batch.err")).unwrap_or_default();
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.lines()
            .any(|l| l.ends_with(": cannot write: the disk is full")),
        "{err}"
    );
    let left = outputs(&logs.path().join("left"));
    for name in &left {
        let pair = name
            .strip_suffix(".json")
            .map_or_else(|| format!("{name}.json"), String::from);
        assert!(
            left.contains(&pair),
            "{name} is left without {pair}: {left:?}"
        );
        let path = logs.path().join("left").join(name);
        assert!(!name.starts_with('.'), "a temporary file is left: {name}");
        if name.ends_with(".png") {
            image::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    assert!(
        left.len() < 12,
        "the disk filled up before the end: {left:?}"
    );
}
