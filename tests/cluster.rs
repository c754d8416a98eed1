//! Batch on a cluster: shards run as concurrent processes on one folder, a shard killed and
//! resumed, and `merge`'s checks (README, "On a cluster"; docs/cluster.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod batch_common;
use batch_common::{batch_args, camview, input_folder, sidecars, stderr};

const SHARDS: usize = 4;

/// The inputs: noise and fixture images, and one damaged file (an error row).
fn inputs() -> tempfile::TempDir {
    let input = input_folder(13);
    std::fs::write(input.path().join("damaged.png"), b"\x89PNG not really").unwrap();
    input
}

fn shard(out: &Path, input: &Path, index: usize, extra: &[&str]) -> Child {
    camview()
        .args(batch_args(out, input))
        .args(["--shard", &format!("{index}/{SHARDS}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a shard; its stderr.
fn finish(child: Child) -> (Option<i32>, String) {
    let o = child.wait_with_output().unwrap();
    (o.status.code(), stderr(&o))
}

fn merge(args: &[&Path]) -> (Option<i32>, String) {
    let o = camview().arg("merge").args(args).output().unwrap();
    (o.status.code(), stderr(&o))
}

/// A predictions file with its output folder's path written as OUT.
fn predictions(path: &Path, out: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .replace(&out.display().to_string(), "OUT")
}

/// The overlays and sidecars of a folder, by name, with their bytes.
fn overlays(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("predictions") && !n.starts_with("manifest-"))
        .map(|n| {
            let bytes = std::fs::read(out.join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn four_concurrent_shards_merge_into_the_single_runs_predictions_byte_for_byte() {
    let input = inputs();
    let single = tempfile::tempdir().unwrap();
    let o = camview()
        .args(batch_args(single.path(), input.path()))
        .output()
        .unwrap();
    // The damaged file fails (exit 1), as it does in its shard.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let expected = predictions(&single.path().join("predictions.csv"), single.path());
    assert_eq!(expected.lines().count(), 15);

    let out = tempfile::tempdir().unwrap();
    let children: Vec<Child> = (1..=SHARDS)
        .map(|i| shard(out.path(), input.path(), i, &[]))
        .collect();
    for (i, child) in (1..=SHARDS).zip(children) {
        let (code, err) = finish(child);
        // 14 inputs over 4 shards: 4, 4, 3, 3; the damaged file (first by name) is shard 1's.
        let (mine, failed) = match i {
            1 => (4, 1),
            2 => (4, 0),
            _ => (3, 0),
        };
        assert_eq!(code, Some(i32::from(failed > 0)), "shard {i}: {err}");
        assert!(
            err.contains(&format!(
                "shard {i} of 4 ({mine} of 14 inputs): {} of {mine} images done, {failed} failed",
                mine - failed
            )),
            "shard {i}: {err}"
        );
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.path().join(format!("manifest-{i}-of-4.json"))).unwrap(),
        )
        .unwrap();
        let positions: Vec<u64> = manifest["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|image| image["position"].as_u64().unwrap())
            .collect();
        let expected_positions: Vec<u64> = (0..14).filter(|p| p % 4 == i as u64 - 1).collect();
        assert_eq!(positions, expected_positions, "shard {i}");
        assert_eq!(manifest["inputs"]["count"], 14);
        assert_eq!(manifest["predictions"], format!("predictions-{i}-of-4.csv"));
        assert_eq!(manifest["run"]["method"], "gradcam");
        assert!(manifest["timings"]["seconds"].as_f64().unwrap() > 0.0);
    }
    assert!(!out.path().join("predictions.csv").exists());

    let (code, err) = merge(&[out.path()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("merged 4 shards of 14 images (1 failed;"),
        "{err}"
    );
    assert_eq!(
        predictions(&out.path().join("predictions.csv"), out.path()),
        expected
    );
    assert!(
        overlays(out.path()) == overlays(single.path()),
        "overlays and sidecars differ"
    );
    // Merged once, the file is not replaced without --force.
    let (code, err) = merge(&[out.path()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("already exists (use --force to replace it)"),
        "{err}"
    );

    // What merge refuses: a shard twice, a missing shard, a shard made otherwise.
    let (code, err) = merge(&[out.path(), out.path()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("shard 1 of 4 is there twice"), "{err}");
    let third = out.path().join("manifest-3-of-4.json");
    let kept = std::fs::read(&third).unwrap();
    let mut other: serde_json::Value = serde_json::from_slice(&kept).unwrap();
    other["run"]["opacity"] = serde_json::json!(0.9);
    std::fs::write(&third, serde_json::to_vec(&other).unwrap()).unwrap();
    let (code, err) = merge(&[out.path()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(
            "manifest-3-of-4.json: cannot be merged with the other shards: its settings differ"
        ),
        "{err}"
    );
    other["run"]["opacity"] = serde_json::json!(0.4);
    other["run"]["model"]["sha256"] = serde_json::json!("0123");
    std::fs::write(&third, serde_json::to_vec(&other).unwrap()).unwrap();
    let (_, err) = merge(&[out.path()]);
    assert!(err.contains("its model differs"), "{err}");
    std::fs::remove_file(&third).unwrap();
    let (code, err) = merge(&[out.path()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("shard 3 of 4 not found (or not finished"),
        "{err}"
    );
}

#[test]
fn a_killed_shard_resumed_finishes_only_what_is_missing() {
    let input = inputs();
    let single = tempfile::tempdir().unwrap();
    camview()
        .args(batch_args(single.path(), input.path()))
        .output()
        .unwrap();
    let expected = predictions(&single.path().join("predictions.csv"), single.path());

    // Shards in folders of their own (as machines without a shared disk would write them).
    let outs: Vec<tempfile::TempDir> = (0..SHARDS).map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, out) in (1..=SHARDS).zip(&outs).filter(|(i, _)| *i != 2) {
        finish(shard(out.path(), input.path(), i, &[]));
    }
    // Shard 2 (4 images) killed after its first.
    let mut child = shard(outs[1].path(), input.path(), 2, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while sidecars(outs[1].path()) < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = sidecars(outs[1].path());
    assert!(done < 4, "the shard finished before it was killed");
    let dirs: Vec<&Path> = outs.iter().map(|o| o.path()).collect();
    let (code, err) = merge(&dirs);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("shard 2 of 4 not found (or not finished"),
        "{err}"
    );

    let (code, err) = finish(shard(outs[1].path(), input.path(), 2, &["--resume"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("4 of 4 images done ({done} found finished)")),
        "{err}"
    );
    let (code, err) = merge(&dirs);
    assert_eq!(code, Some(0), "{err}");
    // Each shard's overlays are in its own folder: the overlay column names it.
    let mut merged = std::fs::read_to_string(outs[0].path().join("predictions.csv")).unwrap();
    for out in &outs {
        merged = merged.replace(&out.path().display().to_string(), "OUT");
    }
    assert_eq!(merged, expected);
}

#[test]
fn shard_auto_reads_the_scheduler_and_refuses_what_it_cannot_read() {
    let input = inputs();
    // Runs a shard in a folder of its own; its exit code, stderr and the manifests written.
    let run = |vars: &[(&str, &str)], shard: &str| {
        let out = tempfile::tempdir().unwrap();
        let mut command = camview();
        command
            .args(batch_args(out.path(), input.path()))
            .args(["--shard", shard])
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX");
        for (name, value) in vars {
            command.env(name, value);
        }
        let o = command.output().unwrap();
        let written: Vec<String> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("manifest-"))
            .collect();
        (o.status.code(), stderr(&o), written)
    };
    // Kubernetes: index 2 of 4 completions is shard 3.
    let (code, err, written) = run(&[("JOB_COMPLETION_INDEX", "2")], "auto/4");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("shard 3 of 4 (3 of 14 inputs)"), "{err}");
    assert_eq!(written, ["manifest-3-of-4.json"]);
    // Slurm, --array=1-7: task 7 is shard 7 of 7.
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_COUNT", "7"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
    ];
    let (code, err, written) = run(&slurm, "auto");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("shard 7 of 7 (2 of 14 inputs)"), "{err}");
    assert_eq!(written, ["manifest-7-of-7.json"]);
    // Nothing to read, or not enough: one message, nothing written.
    let (code, err, written) = run(&[], "auto");
    assert_eq!((code, written.len()), (Some(1), 0));
    assert!(
        err.contains("--shard auto: neither SLURM_ARRAY_TASK_ID"),
        "{err}"
    );
    let (code, err, written) = run(&[("JOB_COMPLETION_INDEX", "0")], "auto");
    assert_eq!((code, written.len()), (Some(1), 0));
    assert!(err.contains("give --shard auto/N"), "{err}");
    let (code, err, _) = run(&[], "5/4");
    assert_eq!(code, Some(2), "clap's usage error");
    assert!(err.contains("'5' is not a shard of 4"), "{err}");
}
