//! A batch over many machines: `batch --shard I/N` analyses a deterministic slice of the input
//! list and writes its own `predictions-I-of-N.csv` and `manifest-I-of-N.json`; `merge` checks
//! the manifests agree and writes the one `predictions.csv` a single run would have written.
//!
//! The slice is by position in the input list as `batch` makes it (files as given, each
//! folder's images sorted): shard I takes positions I-1, I-1+N, I-1+2N, ... Interleaving keeps
//! the shards' sizes within one image of each other, and spreads a folder of large studies over
//! all of them rather than giving it to one. Every machine must be given the same inputs (the
//! manifest records the list's SHA-256, and `merge` refuses shards made from different lists).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::args::StyleArgs;
use crate::explain::{MapChoice, Method, Normalisation, Stage};
use crate::export::{self, DecorationRecord, Provenance};
use crate::imaging::{DisplayWindow, Preprocessing};
use crate::network::{Classifier, DenseNetConfig, Head, ModelInfo, OutputRule};
use crate::render::Colormap;

/// One shard of N: `index` from 1 to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

/// `--shard`: `I/N`, or `auto` / `auto/N` to read the index from the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Given(Shard),
    Auto { count: Option<usize> },
}

/// Parses `--shard`'s value.
pub fn parse_shard(s: &str) -> Result<ShardArg, String> {
    let count = |n: &str| match n.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{n}' is not a positive number of shards")),
    };
    match s.split_once('/') {
        None if s == "auto" => Ok(ShardArg::Auto { count: None }),
        Some(("auto", n)) => Ok(ShardArg::Auto {
            count: Some(count(n)?),
        }),
        Some((i, n)) => {
            let count = count(n)?;
            match i.parse::<usize>() {
                Ok(index) if (1..=count).contains(&index) => {
                    Ok(ShardArg::Given(Shard { index, count }))
                }
                _ => Err(format!(
                    "'{i}' is not a shard of {count}: give I/N with I from 1 to {count}"
                )),
            }
        }
        None => Err(format!(
            "'{s}' is not a shard: give I/N (e.g. 3/8), auto (Slurm job arrays) or auto/N \
             (Kubernetes Indexed Jobs, N their completions)"
        )),
    }
}

impl ShardArg {
    /// The shard this process is: as given, or from the scheduler's environment (`var` reads
    /// a variable): a Slurm job array's task (`SLURM_ARRAY_TASK_ID`, counted from
    /// `SLURM_ARRAY_TASK_MIN` in steps of `SLURM_ARRAY_TASK_STEP`, of
    /// `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job's (`JOB_COMPLETION_INDEX`, from 0,
    /// of the N given).
    pub fn resolve(self, var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let given = match self {
            ShardArg::Given(shard) => return Ok(shard),
            ShardArg::Auto { count } => count,
        };
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| anyhow!("--shard auto: {name} is '{v}', not a whole number"))
                })
                .transpose()
        };
        let slurm = number("SLURM_ARRAY_TASK_ID")?;
        let kubernetes = number("JOB_COMPLETION_INDEX")?;
        let shard = match (slurm, kubernetes) {
            (Some(_), Some(_)) => bail!(
                "--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; give \
                 the shard as --shard I/N"
            ),
            (None, None) => bail!(
                "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor \
                 JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give the shard as \
                 --shard I/N"
            ),
            (Some(id), None) => {
                let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                    anyhow!(
                        "--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT"
                    )
                })?;
                let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
                let offset = id.checked_sub(min).filter(|o| o % step == 0);
                let index = offset.map(|o| o / step + 1).filter(|&i| i <= count);
                let index = index.ok_or_else(|| {
                    anyhow!(
                        "--shard auto: Slurm task {id} is not one of {count} tasks from {min} \
                         in steps of {step} (give the array as a range, e.g. --array=0-{})",
                        count - 1
                    )
                })?;
                if let Some(given) = given.filter(|&n| n != count) {
                    bail!(
                        "--shard auto/{given}: the Slurm job array has {count} tasks \
                         (SLURM_ARRAY_TASK_COUNT)"
                    );
                }
                Shard { index, count }
            }
            (None, Some(index)) => {
                let count = given.ok_or_else(|| {
                    anyhow!(
                        "--shard auto: JOB_COMPLETION_INDEX is {index}, but the number of \
                         shards is not known: give --shard auto/N, N the Job's completions"
                    )
                })?;
                if index >= count {
                    bail!(
                        "--shard auto/{count}: JOB_COMPLETION_INDEX is {index}, not one of \
                         0..{count}"
                    );
                }
                Shard {
                    index: index + 1,
                    count,
                }
            }
        };
        Ok(shard)
    }
}

impl Shard {
    /// Whether the input at `position` (from 0) of the whole list is this shard's.
    pub fn holds(self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// This shard's predictions file.
    pub fn predictions_name(self) -> String {
        format!("predictions-{}-of-{}.csv", self.index, self.count)
    }

    pub fn manifest_name(self) -> String {
        format!("manifest-{}-of-{}.json", self.index, self.count)
    }
}

/// What made a batch's outputs, apart from the images: camview, the model (wherever its file
/// is), its class names and preprocessing, the map and the overlay's style. A sidecar's
/// (`of_provenance`) is compared with the run's by `batch --resume`, and the shards'
/// manifests with each other by `merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub camview_version: String,
    pub model: ModelRecord,
    pub labels: Vec<String>,
    pub preprocessing: Preprocessing,
    pub method: Method,
    pub layer: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_cam_most_active: Option<usize>,
    pub opacity: f32,
    pub colormap: Colormap,
    pub threshold: f32,
    pub normalisation: Normalisation,
    pub decorations: DecorationRecord,
}

/// A model as the outputs depend on it: its file's hash and what was read of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub sha256: String,
    pub prefix: String,
    pub config: DenseNetConfig,
    pub head: Head,
    #[serde(flatten)]
    pub output: OutputRule,
}

impl ModelRecord {
    pub fn of(model: &ModelInfo) -> Self {
        Self {
            sha256: model.sha256.clone(),
            prefix: model.prefix.clone(),
            config: model.config.clone(),
            head: model.head.clone(),
            output: model.output.clone(),
        }
    }
}

impl RunRecord {
    /// What a batch with these settings makes its outputs with.
    pub fn of_run(classifier: &Classifier, style: &StyleArgs, choice: &MapChoice) -> Self {
        let overlay = style.style();
        Self {
            camview_version: env!("CARGO_PKG_VERSION").to_string(),
            model: ModelRecord::of(&classifier.info),
            labels: classifier.labels.clone(),
            preprocessing: classifier.preprocessing.clone(),
            method: choice.method,
            layer: choice.layer,
            score_cam_most_active: choice.options.most_active(choice.method),
            opacity: overlay.opacity,
            colormap: overlay.colormap,
            threshold: overlay.threshold,
            normalisation: overlay.normalisation,
            decorations: DecorationRecord {
                caption: style.caption,
                colour_bar: style.colorbar,
            },
        }
    }

    /// What an overlay's sidecar says made it (`None` for a sidecar older than the records of
    /// preprocessing and decorations, or of a viewer's save with marks: not a batch's).
    pub fn of_provenance(done: &Provenance) -> Option<Self> {
        if !done.annotations.is_empty() {
            return None;
        }
        Some(Self {
            camview_version: done.camview_version.clone(),
            model: ModelRecord::of(&done.model),
            labels: done.labels.clone(),
            preprocessing: done.preprocessing.clone()?,
            method: done.method,
            layer: done.layer,
            score_cam_most_active: done.score_cam_most_active,
            opacity: done.opacity,
            colormap: done.colormap,
            threshold: done.threshold,
            normalisation: done.normalisation,
            decorations: done.decorations?,
        })
    }
}

/// The settings of a batch that its run record does not hold: they shape each image's record
/// (frame, windows, identity) or which class is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchOptions {
    /// `--class` as given (each image's predicted class when absent).
    pub class: Option<String>,
    pub frame: u32,
    pub provenance: String,
    pub display_window: Option<DisplayWindow>,
}

/// The whole input list a shard was cut from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputList {
    pub count: usize,
    /// SHA-256 of the paths as given, one per line.
    pub sha256: String,
}

impl InputList {
    pub fn of(files: &[PathBuf]) -> Self {
        let mut hash = Sha256::new();
        for file in files {
            hash.update(file.as_os_str().as_encoded_bytes());
            hash.update(b"\n");
        }
        Self {
            count: files.len(),
            sha256: format!("{:x}", hash.finalize()),
        }
    }
}

/// One image of a shard: its position in the whole input list and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestImage {
    pub position: usize,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How long a shard took, where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub host: String,
    /// Seconds since 1970 when the shard started.
    pub started: f64,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Images found finished by `--resume` (not analysed again).
    pub resumed: usize,
}

/// A shard's record of its work, written after its predictions file: a shard without one has
/// not finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub shard: Shard,
    pub inputs: InputList,
    pub run: RunRecord,
    pub options: BatchOptions,
    /// The shard's predictions file, in the manifest's folder.
    pub predictions: String,
    pub images: Vec<ManifestImage>,
    pub timings: Timings,
}

impl Manifest {
    /// Writes the manifest into `dir` (atomically; replacing one only with `replace`).
    pub fn write(&self, dir: &Path, replace: bool) -> Result<PathBuf> {
        let path = dir.join(self.shard.manifest_name());
        let json = serde_json::to_vec_pretty(self)?;
        export::write_atomic(&path, replace, |w| {
            use std::io::Write;
            w.write_all(&json)
        })?;
        Ok(path)
    }
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Where the merged predictions go (default: predictions.csv in the first folder).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the merged file if it exists.
    #[arg(long)]
    pub force: bool,
    /// The folders the shards wrote to (`batch --out`), one or several.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
}

/// A shard's manifest as found, with the folder it is in.
struct Found {
    path: PathBuf,
    dir: PathBuf,
    manifest: Manifest,
}

/// `merge`: one predictions.csv from the shards' files, in the order of the whole input list.
pub fn merge_command(args: &MergeArgs) -> Result<ExitCode> {
    let found = read_manifests(&args.dirs)?;
    let first = &found[0];
    let count = first.manifest.shard.count;
    // Every shard made by the same camview, model, settings, from the same inputs.
    for other in &found[1..] {
        let (a, b) = (&first.manifest, &other.manifest);
        let differs = if a.shard.count != b.shard.count {
            Some(format!(
                "it is a shard of {}, {} one of {}",
                b.shard.count,
                first.path.display(),
                a.shard.count
            ))
        } else if a.run.camview_version != b.run.camview_version {
            Some(format!(
                "it was made by camview {}, {} by {}",
                b.run.camview_version,
                first.path.display(),
                a.run.camview_version
            ))
        } else if a.run.model != b.run.model || a.run.labels != b.run.labels {
            Some(format!(
                "its model differs from {}'s (model SHA-256 {} and {})",
                first.path.display(),
                b.run.model.sha256,
                a.run.model.sha256
            ))
        } else if a.run != b.run || a.options != b.options {
            Some(format!(
                "its settings differ from {}'s",
                first.path.display()
            ))
        } else if a.inputs != b.inputs {
            Some(format!(
                "it was cut from another input list than {} ({} and {} inputs, or the same \
                 number of other paths)",
                first.path.display(),
                b.inputs.count,
                a.inputs.count
            ))
        } else {
            None
        };
        if let Some(differs) = differs {
            bail!(
                "{}: cannot be merged with the other shards: {differs}",
                other.path.display()
            );
        }
    }
    // Each shard once, each input once.
    let mut by_index: BTreeMap<usize, &Found> = BTreeMap::new();
    for f in &found {
        if let Some(twice) = by_index.insert(f.manifest.shard.index, f) {
            bail!(
                "shard {} of {count} is there twice: {} and {}",
                f.manifest.shard.index,
                twice.path.display(),
                f.path.display()
            );
        }
    }
    let missing: Vec<String> = (1..=count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "shard{} {} of {count} not found (or not finished: a shard writes its manifest \
             last) in {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            folders(&args.dirs)
        );
    }
    let total = first.manifest.inputs.count;
    let mut rows: Vec<Option<csv::ByteRecord>> = vec![None; total];
    let mut header: Option<csv::ByteRecord> = None;
    let mut failures = 0;
    for f in by_index.values() {
        let shard = f.manifest.shard;
        let expected: Vec<usize> = (0..total).filter(|&p| shard.holds(p)).collect();
        let positions: Vec<usize> = f.manifest.images.iter().map(|i| i.position).collect();
        if positions != expected {
            bail!(
                "{}: shard {} of {count} lists other inputs than its share of the {total}",
                f.path.display(),
                shard.index
            );
        }
        let csv_path = f.dir.join(&f.manifest.predictions);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(&csv_path)
            .with_context(|| {
                format!(
                    "{}: cannot read the shard's predictions",
                    csv_path.display()
                )
            })?;
        let mut records = reader.byte_records();
        let head = records
            .next()
            .transpose()
            .with_context(|| format!("{}: damaged", csv_path.display()))?
            .ok_or_else(|| anyhow!("{}: empty", csv_path.display()))?;
        match &header {
            Some(h) if *h != head => bail!(
                "{}: its columns differ from the other shards'",
                csv_path.display()
            ),
            Some(_) => {}
            None => header = Some(head),
        }
        for image in &f.manifest.images {
            let record = records
                .next()
                .transpose()
                .with_context(|| format!("{}: damaged", csv_path.display()))?
                .ok_or_else(|| {
                    anyhow!(
                        "{}: has fewer rows than its manifest's {} images",
                        csv_path.display(),
                        f.manifest.images.len()
                    )
                })?;
            if record.get(0) != Some(image.image.as_bytes()) {
                bail!(
                    "{}: a row is for {}, where the manifest lists {}",
                    csv_path.display(),
                    String::from_utf8_lossy(record.get(0).unwrap_or_default()),
                    image.image
                );
            }
            failures += usize::from(image.error.is_some());
            rows[image.position] = Some(record);
        }
        if records.next().is_some() {
            bail!(
                "{}: has more rows than its manifest's {} images",
                csv_path.display(),
                f.manifest.images.len()
            );
        }
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dirs[0].join("predictions.csv"));
    let mut w = csv::Writer::from_writer(Vec::new());
    for record in header.iter().chain(rows.iter().flatten()) {
        w.write_byte_record(record)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| anyhow!("cannot build predictions.csv: {e}"))?;
    export::write_atomic(&out, args.force, |w| {
        use std::io::Write;
        w.write_all(&bytes)
    })?;
    let seconds: f64 = found.iter().map(|f| f.manifest.timings.seconds).sum();
    eprintln!(
        "camview: merged {count} shard{} of {total} images ({failures} failed; {seconds:.1} s of \
         work in all); wrote {}",
        if count > 1 { "s" } else { "" },
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn folders(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every `manifest-I-of-N.json` in the folders.
fn read_manifests(dirs: &[PathBuf]) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list the folder", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("manifest-") && n.ends_with(".json"))
            })
            .collect();
        paths.sort();
        for path in paths {
            let text =
                std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            let manifest: Manifest = serde_json::from_slice(&text)
                .map_err(|e| anyhow!("{}: not a camview shard manifest ({e})", path.display()))?;
            if path.file_name().and_then(|n| n.to_str())
                != Some(manifest.shard.manifest_name().as_str())
            {
                bail!(
                    "{}: it is shard {} of {}'s manifest under another name",
                    path.display(),
                    manifest.shard.index,
                    manifest.shard.count
                );
            }
            found.push(Found {
                path,
                dir: dir.clone(),
                manifest,
            });
        }
    }
    if found.is_empty() {
        bail!(
            "no shard manifests (manifest-I-of-N.json, written by batch --shard) in {}",
            folders(dirs)
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_are_parsed_and_checked() {
        let given = |i, n| Ok(ShardArg::Given(Shard { index: i, count: n }));
        assert_eq!(parse_shard("3/8"), given(3, 8));
        assert_eq!(parse_shard("1/1"), given(1, 1));
        assert_eq!(parse_shard("auto"), Ok(ShardArg::Auto { count: None }));
        assert_eq!(
            parse_shard("auto/16"),
            Ok(ShardArg::Auto { count: Some(16) })
        );
        for bad in [
            "0/4", "5/4", "1/0", "x/4", "3", "auto/0", "-1/4", "1/4/2", "",
        ] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_shard("5/4").unwrap_err(),
            "'5' is not a shard of 4: give I/N with I from 1 to 4"
        );
    }

    #[test]
    fn the_slices_cover_the_list_once_and_differ_by_at_most_one() {
        for count in 1..=7 {
            for total in 0..30 {
                let sizes: Vec<usize> = (1..=count)
                    .map(|index| {
                        let shard = Shard { index, count };
                        (0..total).filter(|&p| shard.holds(p)).count()
                    })
                    .collect();
                assert_eq!(sizes.iter().sum::<usize>(), total);
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            }
        }
    }

    #[test]
    fn auto_reads_slurm_arrays() {
        let auto = ShardArg::Auto { count: None };
        let shard = |vars: &[(&str, &str)]| auto.resolve(env(vars)).map_err(|e| e.to_string());
        let of = |index, count| Ok(Shard { index, count });
        // A Slurm task: its ID, the array's task count, its lowest ID and its step.
        let task =
            |id: &'static str, count: &'static str, min: &'static str, step: &'static str| {
                let vars = [
                    ("SLURM_ARRAY_TASK_ID", id),
                    ("SLURM_ARRAY_TASK_COUNT", count),
                    ("SLURM_ARRAY_TASK_MIN", min),
                    ("SLURM_ARRAY_TASK_STEP", step),
                ];
                shard(&vars)
            };
        assert_eq!(task("2", "4", "0", "1"), of(3, 4)); // --array=0-3
        assert_eq!(task("1", "4", "1", "1"), of(1, 4)); // --array=1-4: the first is shard 1
        assert_eq!(task("30", "4", "0", "10"), of(4, 4)); // --array=0-30:10
        // --array=1,3,9: not a range.
        let err = task("9", "3", "1", "1").unwrap_err();
        assert!(
            err.contains("Slurm task 9 is not one of 3 tasks from 1"),
            "{err}"
        );
        let vars = [("SLURM_ARRAY_TASK_ID", "2")];
        assert!(
            shard(&vars)
                .unwrap_err()
                .contains("not SLURM_ARRAY_TASK_COUNT")
        );
        let vars = [
            ("SLURM_ARRAY_TASK_ID", "two"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert!(
            shard(&vars)
                .unwrap_err()
                .contains("SLURM_ARRAY_TASK_ID is 'two'")
        );
        // A count given must be the array's.
        let vars = [
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        let given = ShardArg::Auto { count: Some(8) }.resolve(env(&vars));
        assert!(given.unwrap_err().to_string().contains("has 4 tasks"));
        assert!(
            shard(&[])
                .unwrap_err()
                .contains("neither SLURM_ARRAY_TASK_ID")
        );
    }

    #[test]
    fn auto_reads_kubernetes_indexed_jobs_with_the_count_given() {
        let vars = [("JOB_COMPLETION_INDEX", "0")];
        let shard = ShardArg::Auto { count: Some(4) }
            .resolve(env(&vars))
            .unwrap();
        assert_eq!(shard, Shard { index: 1, count: 4 });
        let vars = [("JOB_COMPLETION_INDEX", "4")];
        let err = ShardArg::Auto { count: Some(4) }
            .resolve(env(&vars))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("JOB_COMPLETION_INDEX is 4, not one of 0..4")
        );
        let err = ShardArg::Auto { count: None }
            .resolve(env(&vars))
            .unwrap_err();
        assert!(err.to_string().contains("give --shard auto/N"));
        let both = [("JOB_COMPLETION_INDEX", "1"), ("SLURM_ARRAY_TASK_ID", "1")];
        let err = ShardArg::Auto { count: Some(4) }
            .resolve(env(&both))
            .unwrap_err();
        assert!(err.to_string().contains("both"));
    }
}
