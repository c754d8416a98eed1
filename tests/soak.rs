//! Hours of use, compressed: a seeded random session drives the viewer through egui_kittest (no
//! display, no GPU) with thousands of weighted random events, and checks after each one that
//! nothing panicked and that every cache stays within its bound, and at each checkpoint that the
//! worker answered or cancelled every job.
//!
//! The events: the keys of every command of the command table (`camview::gui::Command`, so a new
//! command is pressed as soon as it has keys), except Quit and those that open a native file
//! dialog (rfd must not open in a test: Open image, Open model, and the save window's Browse…,
//! which random clicks are kept away from too); clicks and drags (primary, secondary, middle) at
//! random points and on random widgets found in the AccessKit tree; the wheel (zoom) with and
//! without Ctrl; the class, the method (all of `Method::ALL`) and layer (the model's stages),
//! Score-CAM's channels, colormap, opacity, threshold and normalisation; opening good images
//! (copies of tests/fixtures/images, DICOM files, two larger generated ones), damaged ones
//! (truncated copies, damaged DICOM fixtures, a text file named .png, an empty file) and missing
//! paths, through the session (what the file dialogs call), the Open field and dropped files; a
//! file in the folder rewritten, damaged or deleted under the viewer; models good and damaged;
//! saves through the save window to a writable folder (new names and Replace), to a missing
//! folder and under a regular file (refused in the window), to a folder that cannot be written
//! (`/sys`, even as root: the worker's write fails), and through `Session::save` under a
//! regular file (the folder vanished after the window's check); window resizes; idle time.
//!
//! Asserted after every event:
//! - no panic, on any thread (a panic hook records them; the only ones allowed are inside the
//!   dicom-rs crates on the worker threads, which camview reads under `catch_unwind` by design,
//!   see ARCHITECTURE.md), and no "internal error" notice (a job that panicked);
//! - no native dialog was attempted ("No file dialog is available here" never shown);
//! - the view's zoom and centre are finite;
//! - the bounds, read from the code:
//!   - neighbours kept prepared <= 2 (`session::neighbours::PREPARED_IMAGES`), being prepared <= 2;
//!   - map choices cached per image (on screen and per prepared neighbour) <= methods x the
//!     model's stages x 2 (Score-CAM's two channel options, which the Compare window applies
//!     to every method); layers with cached activations <= the model's stages;
//!   - the marks' undo history of the image on screen <= `annotate::UNDO_LIMIT` (100) changes;
//!   - errors on show (the red band) <= `session::ERRORS_SHOWN` (4);
//!   - images whose marks are stashed <= distinct images shown so far (only images with marks
//!     or a history are kept: the stash grows with the user's work, not with the session);
//!   - egui textures by kind: image pyramid levels <= the levels of a `max_texture_side` image
//!     (`pyramid::MIN_LEVEL_SIDE`), bytes <= those levels'; heat textures <= 1, <= 1024 px a side
//!     (`heat::SCREEN_HEAT_MAX_SIDE`); Compare tiles <= 65 (the panel clears its map above 64),
//!     <= 340 px a side; sanity strip <= 1 + the steps of a report, <= 112 px a side; egui's own
//!     (the font atlas) <= 2.
//!
//! Asserted at each checkpoint (every `CAMVIEW_SOAK_SETTLE_EVERY` events, 25 by default, after
//! each open of a damaged or missing file, damaged model and save, and at the end): the session
//! becomes idle and stops prefetching within 60 s of wall time (120 s in a debug build) while
//! frames run (every job answered or cancelled: "the worker never stuck"); the quiet viewer then
//! shows the chosen method and layer (or went back to the map on screen when the choice failed),
//! the map of the chosen class and its heat texture; no `.camview-*.part` file is left in any
//! folder written to; the AccessKit tree names every input widget (kittest's accessibility
//! check). After opening a damaged or missing file, the error band showed (in some frame) an
//! error naming it and the file is not on screen; after a damaged model, an error naming it and
//! the model is unchanged; a good save writes the overlay and its `.json` sidecar and says so,
//! and a file that exists is replaced only through Replace; a refused one leaves the window open
//! saying why, a failed one shows an error naming the file, and neither leaves a file. At the
//! end, every source file is byte for byte what it was, and the resident memory (VmRSS) after
//! warm-up (the first 20% of the run) grew by less than 256 MiB: a generous limit, meant to
//! catch growth with the length of the session, not to measure it (both figures are printed).
//! The summary line prints the undo history's depth and the marks it holds (each change keeps a
//! copy of every mark: up to 100 copies of an image's marks).
//!
//! Configuration (environment):
//! - `CAMVIEW_SOAK_SEED` (decimal or 0x hex; default 0x50A4): a failure prints the seed and
//!   the step, and the same seed replays the same session (the worker's timing aside);
//! - `CAMVIEW_SOAK_EVENTS` (default 300: about half a minute in a debug build with the default
//!   seed; seeds that open the sanity panel early take a few minutes);
//! - `CAMVIEW_SOAK_SECONDS`: run until this much time has passed instead (the long run);
//! - `CAMVIEW_SOAK_REPORT_EVERY` (default 100): a summary line every so many events (events,
//!   rate, tickets, RSS, textures, caches, marks), shown with `--nocapture`;
//! - `CAMVIEW_SOAK_SETTLE_EVERY` (default 25).
//!
//! The short run is part of the suite (`cargo test --test soak`); the hour-long run is
//! `CAMVIEW_SOAK_SECONDS=3600 cargo test --release --test soak -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use camview::explain::{Method, Normalisation, Stage};
use camview::gui::annotate::UNDO_LIMIT;
use camview::gui::session::{ERRORS_SHOWN, Notice, NoticeKind};
use camview::gui::textures::max_texture_side;
use camview::gui::{CamviewApp, Command, ImageOrigin, Launch, ModelRequest};
use camview::render::Colormap;
use eframe::egui::{
    self, Event, Key, Modifiers, MouseWheelSource, MouseWheelUnit, PointerButton, Pos2, Rect,
    TouchPhase, accesskit::Role, pos2, vec2,
};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::{Harness, TestRenderer};

mod common;
use common::fixtures;

/// How long a checkpoint may wait for the worker: 60 s, twice that in a debug build (camview
/// itself unoptimised: a sanity check of Score-CAM over every channel, asked for by its open
/// panel, takes tens of seconds there on a busy machine).
const SETTLE_DEADLINE: Duration =
    Duration::from_secs(if cfg!(debug_assertions) { 120 } else { 60 });
/// Neighbours kept prepared: `session::neighbours::PREPARED_IMAGES`.
const PREPARED_IMAGES: usize = 2;
/// The Compare window's tiles: its map is cleared when it holds more than 64, then one added.
const COMPARE_TEXTURES: usize = 65;
/// A Compare tile's texture side (`2 * TILE`, panels/compare.rs).
const COMPARE_SIDE: usize = 340;
/// A sanity strip thumbnail's texture side (`2 * THUMB`, panels/sanity.rs).
const SANITY_SIDE: usize = 112;
/// The heat texture's side (`heat::SCREEN_HEAT_MAX_SIDE`).
const HEAT_SIDE: usize = camview::gui::heat::SCREEN_HEAT_MAX_SIDE as usize;
/// Resident memory may grow by less than this after warm-up.
const RSS_GROWTH_LIMIT: u64 = 256 << 20;

// ---------------------------------------------------------------------------------------------
// Configuration and randomness.

struct Config {
    seed: u64,
    events: usize,
    seconds: Option<f64>,
    report_every: usize,
    settle_every: usize,
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

impl Config {
    fn from_env() -> Self {
        Self {
            seed: env_number("CAMVIEW_SOAK_SEED").unwrap_or(0x50A4),
            events: env_number("CAMVIEW_SOAK_EVENTS").map_or(300, |n| n as usize),
            seconds: std::env::var("CAMVIEW_SOAK_SECONDS").ok().map(|s| {
                s.trim()
                    .parse()
                    .expect("CAMVIEW_SOAK_SECONDS is not a number")
            }),
            report_every: env_number("CAMVIEW_SOAK_REPORT_EVERY")
                .map_or(100, |n| n.max(1) as usize),
            settle_every: env_number("CAMVIEW_SOAK_SETTLE_EVERY").map_or(25, |n| n.max(1) as usize),
        }
    }
}

/// SplitMix64: small, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// In `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// Panics on any thread.

struct PanicRecord {
    thread: String,
    location: String,
    message: String,
}

fn panics() -> &'static Mutex<Vec<PanicRecord>> {
    static PANICS: OnceLock<Mutex<Vec<PanicRecord>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let record = PanicRecord {
                thread: std::thread::current().name().unwrap_or("?").to_string(),
                location: info
                    .location()
                    .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line())),
                message,
            };
            if let Ok(mut all) = panics().try_lock() {
                all.push(record);
            }
            previous(info);
        }));
        Mutex::new(Vec::new())
    })
}

impl PanicRecord {
    /// Inside dicom-rs on a worker thread: camview reads DICOM under `catch_unwind` and says
    /// "the DICOM data set is damaged" (ARCHITECTURE.md, "DICOM").
    fn is_by_design(&self) -> bool {
        self.thread.starts_with("camview-")
            && self.location.contains("/dicom-")
            && !self.location.starts_with("src/")
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

/// Everything the session opens and writes, in a fresh folder.
struct Files {
    _dir: tempfile::TempDir,
    /// The folder walked with Left and Right: the good images, one damaged file, the volatile one.
    images: PathBuf,
    good: Vec<PathBuf>,
    damaged: Vec<PathBuf>,
    missing: Vec<PathBuf>,
    /// A file in `images` that the session rewrites, damages and deletes.
    volatile: PathBuf,
    /// Every file the viewer reads, with its bytes, to compare at the end.
    sources: Vec<(PathBuf, Vec<u8>)>,
    /// Where good saves go.
    out: PathBuf,
    /// A regular file: nothing can be written under it.
    not_a_folder: PathBuf,
    /// An existing folder nothing can be written to, even as root (`/sys` on Linux).
    unwritable: Option<PathBuf>,
    models: Vec<PathBuf>,
    bad_model: PathBuf,
}

fn copy_into(dir: &Path, from: &Path, name: &str) -> PathBuf {
    let dest = dir.join(name);
    std::fs::copy(from, &dest).unwrap();
    dest
}

fn truncated(dir: &Path, from: &Path, name: &str, keep: f64) -> PathBuf {
    let bytes = std::fs::read(from).unwrap();
    let dest = dir.join(name);
    std::fs::write(&dest, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
    dest
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let damaged_dir = dir.path().join("damaged");
        let out = dir.path().join("out");
        for d in [&images, &damaged_dir, &out] {
            std::fs::create_dir(d).unwrap();
        }
        let fx = fixtures();
        let mut good: Vec<PathBuf> = std::fs::read_dir(fx.join("images"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        good.sort();
        let mut good: Vec<PathBuf> = good
            .iter()
            .map(|p| copy_into(&images, p, &p.file_name().unwrap().to_string_lossy()))
            .collect();
        for name in [
            "ct_explicit_le.dcm",
            "multiframe.dcm",
            "dx_mono1_voilut.dcm",
        ] {
            good.push(copy_into(&images, &fx.join("dicom").join(name), name));
        }
        // Larger than the texture tiles and the in-frame windowing (512 x 512): a pyramid of
        // several levels, a 16-bit image windowed on the worker.
        let big = images.join("big_rgb.png");
        image::RgbImage::from_fn(1200, 900, |x, y| {
            let n = (x * 7919 + y * 104_729) % 61;
            image::Rgb([(x / 5) as u8, (y / 4) as u8, (n * 4) as u8])
        })
        .save(&big)
        .unwrap();
        let big16 = images.join("big_gray16.png");
        image::ImageBuffer::from_fn(900, 700, |x, y| image::Luma([(x * 50 + y * 17) as u16]))
            .save(&big16)
            .unwrap();
        good.extend([big, big16]);

        // Damaged files: one in the folder walked, the rest beside it.
        let mut damaged = vec![truncated(
            &images,
            &fx.join("images/large.png"),
            "m_broken.png",
            0.3,
        )];
        damaged.push(truncated(
            &damaged_dir,
            &fx.join("images/large.png"),
            "large_head.png",
            0.02,
        ));
        damaged.push(truncated(
            &damaged_dir,
            &fx.join("images/photo.jpg"),
            "photo_head.jpg",
            0.05,
        ));
        // Its headers whole, its image data cut (refused, as PIL refuses it).
        damaged.push(truncated(
            &damaged_dir,
            &fx.join("images/photo.jpg"),
            "photo_half.jpg",
            0.5,
        ));
        damaged.push(truncated(
            &damaged_dir,
            &fx.join("images/rgb24.bmp"),
            "rgb24_cut.bmp",
            0.1,
        ));
        damaged.push(truncated(
            &damaged_dir,
            &fx.join("images/image.tif"),
            "image_half.tif",
            0.4,
        ));
        damaged.push(truncated(
            &damaged_dir,
            &fx.join("dicom/ct_explicit_le.dcm"),
            "ct_half.dcm",
            0.5,
        ));
        for name in [
            "broken_truncated.dcm",
            "dicm_garbage.dcm",
            "short_pixel_data.dcm",
            "unknown_transfer_syntax.dcm",
            "no_pixels_sr.dcm",
        ] {
            damaged.push(copy_into(&damaged_dir, &fx.join("dicom").join(name), name));
        }
        for entry in std::fs::read_dir(fx.join("dicom/damaged")).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("damaged_{}", path.file_name().unwrap().to_string_lossy());
            damaged.push(copy_into(&damaged_dir, &path, &name));
        }
        let text = damaged_dir.join("notes.png");
        std::fs::write(&text, "not an image, only its name says so\n").unwrap();
        let empty = damaged_dir.join("empty.bmp");
        std::fs::write(&empty, b"").unwrap();
        damaged.extend([text, empty]);

        let missing = vec![
            images.join("gone.png"),
            damaged_dir.join("never_there.dcm"),
            dir.path().join("no/such/folder/scan.png"),
        ];
        let volatile = images.join("volatile.png");
        std::fs::copy(&good[0], &volatile).unwrap();

        let not_a_folder = out.join("not-a-folder.txt");
        std::fs::write(&not_a_folder, "a file, not a folder\n").unwrap();
        let unwritable = Path::new("/sys").to_path_buf();
        let probe = unwritable.join("camview-soak-probe.png");
        let unwritable = (cfg!(target_os = "linux")
            && unwritable.is_dir()
            && std::fs::write(&probe, b"x").is_err())
        .then_some(unwritable);

        let models = vec![fx.join("models/tiny.pth"), fx.join("models/tiny3.pth")];
        let bad_model = truncated(dir.path(), &models[0], "half.pth", 0.5);

        let mut sources: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for path in good.iter().chain(&damaged).chain(&models) {
            sources.push((path.clone(), std::fs::read(path).unwrap()));
        }
        Self {
            _dir: dir,
            images,
            good,
            damaged,
            missing,
            volatile,
            sources,
            out,
            not_a_folder,
            unwritable,
            models,
            bad_model,
        }
    }

    /// Temporary files an atomic write left behind.
    fn leftovers(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in [&self.images, &self.out, &self.images.join("masks")] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".camview-") || name.ends_with(".part") {
                    found.push(e.path());
                }
            }
        }
        found
    }
}

/// Drops every texture upload (the soak must not keep them, as `TextureRecorder` does).
struct Discard;

impl TestRenderer for Discard {
    fn handle_delta(&mut self, delta: &mut egui::TexturesDelta) {
        delta.clear();
    }

    fn render(
        &mut self,
        _ctx: &egui::Context,
        _output: &egui::FullOutput,
    ) -> Result<image::RgbaImage, String> {
        Err("the soak test does not render".to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Measures.

/// The resident set size, from /proc/self/status (0 where there is none).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// egui's textures by kind: count and bytes.
#[derive(Debug, Default, Clone, Copy)]
struct TextureCounts {
    image: (usize, usize),
    heat: (usize, usize),
    compare: (usize, usize),
    sanity: (usize, usize),
    other: (usize, usize),
    /// The largest side of a Compare tile, a sanity thumbnail, a heat texture.
    compare_side: usize,
    sanity_side: usize,
    heat_side: usize,
}

impl TextureCounts {
    fn of(ctx: &egui::Context) -> Self {
        let mut t = Self::default();
        let manager = ctx.tex_manager();
        let manager = manager.read();
        for (_, meta) in manager.allocated() {
            let bytes = meta.bytes_used();
            let side = meta.size[0].max(meta.size[1]);
            let slot = if meta.name.starts_with("camview-image-") {
                &mut t.image
            } else if meta.name == "camview-heat" {
                t.heat_side = t.heat_side.max(side);
                &mut t.heat
            } else if meta.name.starts_with("compare-") {
                t.compare_side = t.compare_side.max(side);
                &mut t.compare
            } else if meta.name.starts_with("sanity-") {
                t.sanity_side = t.sanity_side.max(side);
                &mut t.sanity
            } else {
                &mut t.other
            };
            slot.0 += 1;
            slot.1 += bytes;
        }
        t
    }

    fn count(&self) -> usize {
        self.image.0 + self.heat.0 + self.compare.0 + self.sanity.0 + self.other.0
    }

    fn bytes(&self) -> usize {
        self.image.1 + self.heat.1 + self.compare.1 + self.sanity.1 + self.other.1
    }
}

/// The pyramid levels of an image `side` pixels a side, and their bytes (pyramid.rs: half-size
/// levels while the next one's longer side is at least `MIN_LEVEL_SIDE`).
fn pyramid_bound(side: usize) -> (usize, usize) {
    let (mut levels, mut bytes, mut s) = (1, side * side * 4, side);
    while s.div_ceil(2) >= camview::gui::pyramid::MIN_LEVEL_SIDE {
        s = s.div_ceil(2);
        levels += 1;
        bytes += s * s * 4;
    }
    (levels, bytes)
}

// ---------------------------------------------------------------------------------------------
// The session.

#[derive(Default)]
struct Tally {
    keys: usize,
    clicks: usize,
    drags: usize,
    wheels: usize,
    widgets: usize,
    choices: usize,
    opened_good: usize,
    opened_damaged: usize,
    opened_missing: usize,
    volatile: usize,
    models: usize,
    saved: usize,
    replaced: usize,
    refused: usize,
    failed_saves: usize,
    resizes: usize,
    settles: usize,
    /// The longest a checkpoint waited for the worker, and the work in flight when it began.
    longest_settle: Duration,
    longest_settle_work: Vec<String>,
    /// Each kind of event: how many, and the time they took (with their frames).
    time: BTreeMap<&'static str, (usize, Duration)>,
}

struct Soak {
    h: Harness<'static, CamviewApp>,
    rng: Rng,
    files: Files,
    seed: u64,
    step: usize,
    /// The latest events, for a failure's report.
    log: VecDeque<String>,
    tally: Tally,
    /// Every image shown (the stash holds one entry per image left).
    shown: HashSet<ImageOrigin>,
    /// The most steps of a sanity report seen (the strip shows one thumbnail per step and the
    /// original).
    sanity_steps: usize,
    /// Names for new saves.
    saves: usize,
    /// The overlays saved.
    saved: Vec<PathBuf>,
    peak_textures: TextureCounts,
    /// The notices drawn, in order (the latest 64).
    notices: VecDeque<Option<Notice>>,
    /// When the last summary was printed, and egui's frame count then.
    last_summary: (Instant, u64),
}

/// The labels of what opens a native file dialog or quits: random clicks keep away.
fn is_blocked_label(label: &str) -> bool {
    [
        Command::OpenImage.label(),
        Command::OpenModel.label(),
        Command::Quit.label(),
        "Browse…",
    ]
    .iter()
    .any(|b| label.starts_with(b))
}

/// The commands whose keys the session presses: all with keys, except Quit and those that
/// open a native dialog.
fn pressable() -> Vec<(Command, egui::KeyboardShortcut)> {
    Command::ALL
        .into_iter()
        .filter(|c| !matches!(c, Command::Quit | Command::OpenImage | Command::OpenModel))
        .flat_map(|c| c.shortcuts().iter().map(move |&s| (c, s)))
        .collect()
}

fn is_interactive(role: Role) -> bool {
    matches!(
        role,
        Role::Button
            | Role::CheckBox
            | Role::RadioButton
            | Role::ComboBox
            | Role::ListBoxOption
            | Role::MenuItem
            | Role::MenuItemCheckBox
            | Role::MenuItemRadio
            | Role::Tab
            | Role::Link
            | Role::Slider
            | Role::SpinButton
            | Role::Switch
            | Role::TextInput
            | Role::Image
    )
}

impl Soak {
    fn new(seed: u64) -> Self {
        let files = Files::new();
        let launch = Launch {
            model: ModelRequest::file(files.models[0].clone()),
            images: vec![files.good[0].clone()],
            method: Method::Cam,
            layer: Stage::Norm5,
            started: Instant::now(),
        };
        let h = Harness::builder()
            .with_size([1280.0, 800.0])
            .with_max_steps(50)
            .renderer(Discard)
            .build_eframe(|cc| CamviewApp::new(cc, launch).unwrap());
        let mut soak = Self {
            h,
            rng: Rng(seed),
            files,
            seed,
            step: 0,
            log: VecDeque::new(),
            tally: Tally::default(),
            shown: HashSet::new(),
            sanity_steps: 0,
            saves: 0,
            saved: Vec::new(),
            peak_textures: TextureCounts::default(),
            last_summary: (Instant::now(), 0),
            notices: VecDeque::new(),
        };
        soak.settle("launch");
        assert!(
            soak.h.state().analysis().is_some(),
            "the first image was not analysed"
        );
        soak
    }

    fn note(&mut self, what: String) {
        if self.log.len() == 30 {
            self.log.pop_front();
        }
        self.log.push_back(format!("{}: {what}", self.step));
    }

    fn side(&self) -> usize {
        max_texture_side(&self.h.ctx)
    }

    /// One frame; the image it shows is remembered.
    fn frame(&mut self) {
        self.h.step();
        let session = &self.h.state().session;
        if let Some(image) = session.image()
            && !self.shown.contains(&image.origin)
        {
            self.shown.insert(image.origin.clone());
        }
        // The errors on show and the latest info (neither hides the other).
        let on_show = session.errors().iter().chain(session.latest_info());
        for notice in on_show.cloned().map(Some).collect::<Vec<_>>() {
            if !self.notices.contains(&notice) {
                if self.notices.len() == 64 {
                    self.notices.pop_front();
                }
                self.notices.push_back(notice);
            }
        }
    }

    /// Forgets the notices seen, and dismisses the errors on show (they stay until then), so
    /// that what follows is checked for an error of its own.
    fn forget_notices(&mut self) {
        self.notices.clear();
        self.h.state_mut().session.dismiss_notice();
    }

    /// Whether the error band showed an error containing `text` in a frame since
    /// `forget_notices`.
    fn error_shown(&self, text: &str) -> bool {
        self.notices
            .iter()
            .flatten()
            .any(|n| n.kind == NoticeKind::Error && n.text.contains(text))
    }

    fn frames(&mut self, n: usize) {
        for _ in 0..n {
            self.frame();
        }
    }

    fn window(&self) -> Rect {
        self.h.ctx.content_rect()
    }

    fn random_point(&mut self) -> Pos2 {
        let r = self.window();
        pos2(
            self.rng.range(r.min.x, r.max.x),
            self.rng.range(r.min.y, r.max.y),
        )
    }

    /// The rectangles of what must not be clicked.
    fn blocked(&self) -> Vec<Rect> {
        self.h
            .query_all_by(|n| n.label().is_some_and(|l| is_blocked_label(&l)))
            .map(|n| n.rect().expand(3.0))
            .collect()
    }

    /// A random point not on anything that opens a native dialog or quits.
    fn safe_point(&mut self) -> Option<Pos2> {
        let blocked = self.blocked();
        (0..20)
            .map(|_| self.random_point())
            .find(|p| !blocked.iter().any(|r| r.contains(*p)))
    }

    /// A random point on the overlay or original pane, if one is shown.
    fn pane_point(&mut self) -> Option<Pos2> {
        let label = if self.rng.chance(0.6) {
            "Overlay image"
        } else {
            "Original image"
        };
        let rect = self.h.query_all_by_label(label).next()?.rect();
        let blocked = self.blocked();
        let p = pos2(
            self.rng.range(rect.min.x, rect.max.x),
            self.rng.range(rect.min.y, rect.max.y),
        );
        (!blocked.iter().any(|r| r.contains(p))).then_some(p)
    }

    fn button(&self, pos: Pos2, button: PointerButton, pressed: bool, modifiers: Modifiers) {
        self.h.event(Event::PointerButton {
            pos,
            button,
            pressed,
            modifiers,
        });
    }

    /// Presses `key` with `modifiers`, a frame per event (as kittest's `key_press` queues them),
    /// so that the notices of every frame are seen.
    fn press(&mut self, modifiers: Modifiers, key: Key) {
        let key_event = |pressed| Event::Key {
            key,
            physical_key: None,
            pressed,
            repeat: false,
            modifiers,
        };
        let mut events = vec![
            Event::ModifiersChanged(modifiers),
            key_event(true),
            key_event(false),
            Event::ModifiersChanged(Modifiers::NONE),
        ];
        if modifiers == Modifiers::NONE {
            events = events[1..3].to_vec();
        }
        for event in events {
            self.h.event(event);
            self.frame();
        }
    }

    fn random_button(&mut self) -> PointerButton {
        match self.rng.below(10) {
            0..=6 => PointerButton::Primary,
            7 | 8 => PointerButton::Secondary,
            _ => PointerButton::Middle,
        }
    }

    fn click(&mut self, at: Pos2, button: PointerButton, double: bool) {
        self.h.event(Event::PointerMoved(at));
        for _ in 0..if double { 2 } else { 1 } {
            self.button(at, button, true, Modifiers::NONE);
            self.button(at, button, false, Modifiers::NONE);
        }
        self.frame();
    }

    // The events.

    fn press_key(&mut self) {
        let keys = pressable();
        let (command, shortcut) = *self.rng.pick(&keys);
        self.note(format!(
            "key {} ({command:?})",
            camview::gui::commands::shortcut_text(&shortcut)
        ));
        self.press(shortcut.modifiers, shortcut.logical_key);
        self.tally.keys += 1;
    }

    fn click_somewhere(&mut self) {
        let at = if self.rng.chance(0.5) {
            self.pane_point()
        } else {
            self.safe_point()
        };
        let Some(at) = at else { return };
        let button = self.random_button();
        let double = self.rng.chance(0.1);
        self.note(format!(
            "click {button:?} at {at:?}{}",
            if double { " (double)" } else { "" }
        ));
        self.click(at, button, double);
        self.tally.clicks += 1;
    }

    fn drag_somewhere(&mut self) {
        let from = if self.rng.chance(0.7) {
            self.pane_point()
        } else {
            self.safe_point()
        };
        let Some(from) = from else { return };
        let to = if self.rng.chance(0.8) {
            from + vec2(self.rng.range(-300.0, 300.0), self.rng.range(-300.0, 300.0))
        } else {
            self.random_point()
        };
        let button = self.random_button();
        let moves = 1 + self.rng.below(8);
        self.note(format!("drag {button:?} {from:?} -> {to:?} in {moves}"));
        self.h.event(Event::PointerMoved(from));
        self.button(from, button, true, Modifiers::NONE);
        self.frame();
        for i in 1..=moves {
            let p = from + (to - from) * (i as f32 / moves as f32);
            self.h.event(Event::PointerMoved(p));
            self.frame();
        }
        self.button(to, button, false, Modifiers::NONE);
        self.frame();
        self.tally.drags += 1;
    }

    fn wheel(&mut self) {
        let at = match self.pane_point() {
            Some(p) if self.rng.chance(0.8) => p,
            _ => self.random_point(),
        };
        let notches = 1 + self.rng.below(6);
        let up = self.rng.chance(0.5);
        let ctrl = self.rng.chance(0.2);
        let modifiers = if ctrl {
            Modifiers::COMMAND
        } else {
            Modifiers::NONE
        };
        self.note(format!(
            "wheel {} x{notches} at {at:?}{}",
            if up { "up" } else { "down" },
            if ctrl { " with Ctrl" } else { "" }
        ));
        self.h.event(Event::PointerMoved(at));
        for _ in 0..notches {
            self.h.event(Event::MouseWheel {
                unit: MouseWheelUnit::Point,
                delta: vec2(0.0, if up { 50.0 } else { -50.0 }),
                phase: TouchPhase::Move,
                source: MouseWheelSource::Wheel,
                modifiers,
            });
        }
        self.frame();
        self.tally.wheels += 1;
    }

    /// Clicks (or sets, or types into) a random widget of the AccessKit tree.
    fn widget(&mut self) {
        let candidates: Vec<(Role, String, Rect)> = self
            .h
            .query_all_by(|n| {
                is_interactive(n.role()) && n.label().is_none_or(|l| !is_blocked_label(&l))
            })
            .map(|n| {
                let node = n.accesskit_node();
                (node.role(), node.label().unwrap_or_default(), n.rect())
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (role, label, rect) = self.rng.pick(&candidates).clone();
        if self.blocked().iter().any(|b| b.contains(rect.center())) {
            return;
        }
        self.tally.widgets += 1;
        match role {
            Role::Slider if !label.is_empty() => {
                let Some((lo, hi)) =
                    self.h
                        .query_all_by_role_and_label(role, &label)
                        .next()
                        .map(|node| {
                            let n = node.accesskit_node();
                            (
                                n.min_numeric_value().unwrap_or(0.0),
                                n.max_numeric_value().unwrap_or(1.0),
                            )
                        })
                else {
                    return;
                };
                let value = f64::from(self.rng.unit()) * (hi - lo) + lo;
                self.note(format!("slider {label:?} to {value:.3}"));
                if let Some(node) = self.h.query_all_by_role_and_label(role, &label).next() {
                    node.set_value_accesskit(value);
                }
                self.frame();
            }
            Role::TextInput if label == "Note text:" => {
                let word = *self.rng.pick(&["lesion", "here?", "ROI 2", "é ü ✓", ""]);
                self.note(format!("note text {word:?}"));
                let Some(node) = self.h.query_all_by_label(&label).next() else {
                    return;
                };
                node.type_text(word);
                self.frame();
                self.press(Modifiers::NONE, Key::Enter);
                self.frame();
            }
            Role::TextInput => {} // the Open and File fields have their own events
            _ => {
                let button = if self.rng.chance(0.9) {
                    PointerButton::Primary
                } else {
                    PointerButton::Secondary
                };
                self.note(format!("widget {role:?} {label:?} ({button:?})"));
                self.click(rect.center(), button, false);
            }
        }
    }

    fn choose_class(&mut self) {
        let Some(classes) = self.h.state().session.model().map(|m| m.labels.len()) else {
            return;
        };
        let class = self.rng.below(classes + 1); // one past the last, now and then
        self.note(format!("class {class}"));
        self.h.state_mut().session.select_class(class);
        self.tally.choices += 1;
    }

    fn choose_map(&mut self) {
        let Some(stages) = self.h.state().session.model().map(|m| m.stages()) else {
            return;
        };
        self.tally.choices += 1;
        if self.rng.chance(0.1) {
            let all = self.rng.chance(0.5);
            self.note(format!("Score-CAM every channel: {all}"));
            self.h.state_mut().session.choose_score_cam_channels(all);
            return;
        }
        let method = *self.rng.pick(&Method::ALL);
        let layer = *self.rng.pick(&stages);
        self.note(format!("map {} at {layer}", method.name()));
        self.h.state_mut().session.choose_map(method, layer);
    }

    fn style(&mut self) {
        let colormap = *self.rng.pick(&Colormap::ALL);
        let normalisation = *self.rng.pick(&Normalisation::ALL);
        let opacity = self.rng.unit();
        let threshold = if self.rng.chance(0.5) {
            0.0
        } else {
            self.rng.unit()
        };
        let flip = self.rng.below(4);
        self.note(format!(
            "style {colormap:?} {normalisation:?} opacity {opacity:.2} threshold {threshold:.2} flip {flip}"
        ));
        let s = &mut self.h.state_mut().settings;
        s.colormap = colormap;
        s.normalisation = normalisation;
        s.opacity = opacity;
        s.threshold = threshold;
        match flip {
            0 => s.show_overlay = !s.show_overlay,
            1 => s.caption = !s.caption,
            2 => s.colour_bar = !s.colour_bar,
            _ => {}
        }
        self.tally.choices += 1;
    }

    fn close_save_window(&mut self) {
        if self.h.state().save_dialog_open() {
            self.press(Modifiers::NONE, Key::Escape);
            self.frames(2);
        }
    }

    /// Types `text` into the field labelled `label` (replacing what it holds).
    fn type_into(&mut self, label: &str, text: &str) -> bool {
        let Some(field) = self.h.query_all_by_label(label).next() else {
            return false;
        };
        field.focus();
        self.press(Modifiers::COMMAND, Key::A);
        self.frame();
        let Some(field) = self.h.query_all_by_label(label).next() else {
            return false;
        };
        field.type_text(text);
        self.frame();
        true
    }

    /// Opens `paths` the way the user would: through the session (as the file dialogs do),
    /// typed in the Open field, or dropped on the window. Returns how.
    fn open(&mut self, paths: &[PathBuf]) -> &'static str {
        match self.rng.below(3) {
            0 => {
                let side = self.side();
                self.h
                    .state_mut()
                    .session
                    .open_image_file(paths[0].clone(), side);
                self.frame();
                "session"
            }
            1 => {
                self.close_save_window();
                if !self.type_into("Open:", &paths[0].display().to_string()) {
                    return "nothing (no Open field)";
                }
                self.press(Modifiers::NONE, Key::Enter);
                self.frame();
                "Open field"
            }
            _ => {
                self.close_save_window();
                for p in paths {
                    self.h
                        .input_mut()
                        .dropped_files
                        .push(Arc::new(common::DroppedPath(p.clone())));
                }
                self.frame();
                "dropped"
            }
        }
    }

    fn open_good(&mut self) {
        let count = if self.rng.chance(0.15) {
            2 + self.rng.below(3)
        } else {
            1
        };
        let paths: Vec<PathBuf> = (0..count)
            .map(|_| self.rng.pick(&self.files.good).clone())
            .collect();
        let how = self.open(&paths);
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        self.note(format!("open {names:?} ({how})"));
        self.tally.opened_good += 1;
    }

    /// Opens a damaged or missing file; once the worker answered, the error band names it and
    /// it is not on screen.
    fn open_bad(&mut self, missing: bool) {
        let path = if missing {
            self.rng.pick(&self.files.missing).clone()
        } else {
            self.rng.pick(&self.files.damaged).clone()
        };
        self.forget_notices();
        let how = self.open(std::slice::from_ref(&path));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        self.note(format!(
            "open {} {name} ({how})",
            if missing { "missing" } else { "damaged" }
        ));
        if how.starts_with("nothing") {
            return;
        }
        self.settle("a damaged or missing file opened");
        assert!(
            self.error_shown(&name),
            "opening {} ({how}) did not show an error naming it; the notices: {:?}",
            path.display(),
            self.notices,
        );
        let on_screen = self.h.state().session.image().map(|i| i.origin.clone());
        assert_ne!(
            on_screen,
            Some(ImageOrigin::File(path.clone())),
            "{} is on screen",
            path.display()
        );
        if missing {
            self.tally.opened_missing += 1;
        } else {
            self.tally.opened_damaged += 1;
        }
    }

    /// Rewrites the volatile file in the folder walked: another image, damaged bytes, or gone.
    fn touch_volatile(&mut self) {
        let v = self.files.volatile.clone();
        match self.rng.below(3) {
            0 => {
                let pngs: Vec<&PathBuf> = (self.files.good.iter())
                    .filter(|p| p.extension().is_some_and(|e| e == "png"))
                    .collect();
                let from = (*self.rng.pick(&pngs)).clone();
                self.note(format!("volatile.png becomes {}", from.display()));
                std::fs::copy(from, &v).unwrap();
            }
            1 => {
                self.note("volatile.png damaged".to_string());
                std::fs::write(&v, b"\x89PNG\r\n\x1a\n damaged").unwrap();
            }
            _ => {
                self.note("volatile.png deleted".to_string());
                let _ = std::fs::remove_file(&v);
            }
        }
        self.tally.volatile += 1;
    }

    fn open_model(&mut self) {
        let bad = self.rng.chance(0.3);
        let path = if bad {
            self.files.bad_model.clone()
        } else {
            self.rng.pick(&self.files.models).clone()
        };
        let typed = self.rng.chance(0.5);
        self.note(format!(
            "model {}{}",
            path.display(),
            if typed { " (Open field)" } else { "" }
        ));
        let before = self.h.state().session.model().cloned();
        self.forget_notices();
        if typed {
            self.close_save_window();
            if self.type_into("Open:", &path.display().to_string()) {
                self.press(Modifiers::NONE, Key::Enter);
                self.frame();
            }
        } else {
            self.h
                .state_mut()
                .session
                .open_model(ModelRequest::file(path.clone()));
        }
        self.tally.models += 1;
        if !bad {
            return;
        }
        self.settle("a damaged model opened");
        assert!(
            self.error_shown("half.pth"),
            "the damaged model did not show an error naming it; the notices: {:?}",
            self.notices
        );
        let session = &self.h.state().session;
        if let Some(before) = before {
            assert!(
                session.model().is_some_and(|m| Arc::ptr_eq(m, &before)),
                "the damaged model replaced the model"
            );
        }
    }

    /// Opens the save window (Ctrl+S or its button) and types `dest`; false if there is no
    /// overlay to save yet.
    fn fill_save_window(&mut self, dest: &Path) -> bool {
        if !self.h.state().save_dialog_open() {
            if self.rng.chance(0.5) {
                self.press(Modifiers::COMMAND, Key::S);
            } else if let Some(b) = self
                .h
                .query_all_by_label(Command::SaveOverlay.label())
                .next()
            {
                b.click();
            }
            self.frames(2);
        }
        if !self.h.state().save_dialog_open() {
            return false;
        }
        let typed = self.type_into("File:", &dest.display().to_string());
        // The window grows for a .dcm name (a warning) and is centred again a frame later: a
        // button is clicked where it is drawn once it stays.
        self.frames(3);
        typed
    }

    /// Presses Save (its button, Enter in the field, or Ctrl+S again).
    fn submit_save_window(&mut self) {
        match self.rng.below(3) {
            0 => {
                if let Some(b) = self.h.query_all_by_label("Save").next() {
                    b.click();
                }
            }
            1 => {
                if let Some(f) = self.h.query_all_by_label("File:").next() {
                    f.focus();
                }
                self.frame();
                self.press(Modifiers::NONE, Key::Enter);
            }
            _ => self.press(Modifiers::COMMAND, Key::S),
        }
        self.frames(3);
    }

    fn save_good(&mut self) {
        self.settle("before saving");
        if self.h.state().analysis().is_none() {
            return;
        }
        let dicom = self
            .h
            .state()
            .session
            .image()
            .is_some_and(|i| i.source.dicom.is_some());
        let extensions: &[&str] = if dicom {
            &["png", "bmp", "jpg", "tif", "dcm"]
        } else {
            &["png", "bmp", "jpg", "tif"]
        };
        // Now and then a file saved before: the window asks before replacing it.
        let dest = if !self.saved.is_empty() && self.rng.chance(0.25) {
            self.rng.pick(&self.saved).clone()
        } else {
            let ext = *self.rng.pick(extensions);
            self.saves += 1;
            self.files.out.join(format!("overlay_{}.{ext}", self.saves))
        };
        let sidecar = camview::export::sidecar_path(&dest);
        let existed = dest.exists() || sidecar.exists();
        let before = std::fs::read(&dest).ok();
        self.note(format!("save to {}", dest.display()));
        self.forget_notices();
        if !self.fill_save_window(&dest) {
            return;
        }
        self.submit_save_window();
        let mut replaced = false;
        if self
            .h
            .query_all_by_label_contains("already exists. Replace it?")
            .next()
            .is_some()
        {
            assert!(
                existed,
                "asked to replace {}, which did not exist",
                dest.display()
            );
            if self.rng.chance(0.7) {
                self.note("Replace".to_string());
                self.h.query_all_by_label("Replace").next().unwrap().click();
                replaced = true;
            } else {
                self.note("Cancel, Cancel".to_string());
                self.h.query_all_by_label("Cancel").next().unwrap().click();
                self.frames(2);
                self.close_save_window();
            }
            self.frames(2);
        }
        if self.h.state().save_dialog_open() {
            let labels: Vec<String> = self
                .h
                .query_all_by(|n| n.label().is_some())
                .map(|n| {
                    format!(
                        "{:?} {:?}",
                        n.accesskit_node().label().unwrap_or_default(),
                        n.rect()
                    )
                })
                .collect();
            panic!(
                "the save window stayed open (window {:?}): {labels:#?}",
                self.window()
            );
        }
        self.settle("a save");
        if existed && !replaced {
            assert_eq!(
                std::fs::read(&dest).ok(),
                before,
                "{} was replaced without asking",
                dest.display()
            );
            return;
        }
        let said = dest.display().to_string();
        assert!(
            self.notices
                .iter()
                .flatten()
                .any(|n| n.text.starts_with("Saved ") && n.text.contains(&said)),
            "saving to {said} did not say it saved; the notices: {:?}",
            self.notices
        );
        assert!(dest.is_file(), "nothing at {}", dest.display());
        assert!(sidecar.is_file(), "no sidecar at {}", sidecar.display());
        if replaced {
            self.tally.replaced += 1;
        } else {
            self.tally.saved += 1;
            self.saved.push(dest);
        }
    }

    /// A destination the save window refuses: a missing folder, or under a regular file.
    fn save_refused(&mut self) {
        self.settle("before saving");
        if self.h.state().analysis().is_none() {
            return;
        }
        let dest = if self.rng.chance(0.5) {
            self.files.out.join("no/such/folder/overlay.png")
        } else {
            self.files.not_a_folder.join("overlay.png")
        };
        self.note(format!("save (refused) to {}", dest.display()));
        if !self.fill_save_window(&dest) {
            return;
        }
        self.submit_save_window();
        assert!(
            self.h.state().save_dialog_open(),
            "the save window closed on {}",
            dest.display()
        );
        assert!(
            self.h
                .query_all_by_label_contains("does not exist")
                .next()
                .is_some(),
            "the save window does not say why {} cannot be written",
            dest.display()
        );
        self.close_save_window();
        assert!(!dest.exists());
        self.settle("a refused save");
        self.tally.refused += 1;
    }

    /// A save the window lets through but the worker cannot write: into `/sys` (through the
    /// window), or under a regular file through `Session::save` (the folder went away after the
    /// window's check). The error band names the file; nothing is written.
    fn save_fails(&mut self) {
        self.settle("before saving");
        if self.h.state().analysis().is_none() {
            return;
        }
        self.saves += 1;
        let name = format!("camview-soak-{}-{}.png", std::process::id(), self.saves);
        let through_window = self.files.unwritable.is_some() && self.rng.chance(0.5);
        let dest = match &self.files.unwritable {
            Some(dir) if through_window => dir.join(&name),
            _ => self.files.not_a_folder.join(&name),
        };
        self.note(format!("save (fails) to {}", dest.display()));
        self.forget_notices();
        if through_window {
            if !self.fill_save_window(&dest) {
                return;
            }
            self.submit_save_window();
            assert!(
                !self.h.state().save_dialog_open(),
                "the save window refused {}",
                dest.display()
            );
        } else {
            self.close_save_window();
            let app = self.h.state_mut();
            let style = app.settings.style();
            let (caption, bar) = (app.settings.caption, app.settings.colour_bar);
            let Some(request) = app.session.compose_request(style, caption, bar) else {
                return;
            };
            app.session.save(request, dest.clone(), false);
        }
        self.settle("a failed save");
        assert!(
            self.error_shown(&name),
            "the failed save to {} did not show an error naming it; the notices: {:?}",
            dest.display(),
            self.notices
        );
        assert!(!dest.exists(), "{} exists", dest.display());
        self.tally.failed_saves += 1;
    }

    fn resize(&mut self) {
        let size = vec2(self.rng.range(760.0, 1920.0), self.rng.range(480.0, 1200.0));
        self.note(format!("resize to {size:?}"));
        self.h.set_size(size);
        self.frame();
        self.tally.resizes += 1;
    }

    fn idle(&mut self) {
        let frames = 1 + self.rng.below(6);
        self.note(format!("idle {frames} frames"));
        for _ in 0..frames {
            std::thread::sleep(Duration::from_millis(10 + self.rng.below(40) as u64));
            self.frame();
        }
    }

    /// One random event, weighted; its time is added to its kind's.
    fn event(&mut self) {
        type Event = fn(&mut Soak);
        let (kind, event): (&'static str, Event) = match self.rng.below(100) {
            0..=27 => ("key", Self::press_key),
            28..=37 => ("click", Self::click_somewhere),
            38..=47 => ("drag", Self::drag_somewhere),
            48..=53 => ("wheel", Self::wheel),
            54..=63 => ("widget", Self::widget),
            64..=67 => ("class", Self::choose_class),
            68..=73 => ("map", Self::choose_map),
            74..=77 => ("style", Self::style),
            78..=82 => ("open good", Self::open_good),
            83..=85 => ("open damaged", |s| s.open_bad(false)),
            86 | 87 => ("open missing", |s| s.open_bad(true)),
            88 => ("volatile", Self::touch_volatile),
            89 => ("model", Self::open_model),
            90 | 91 => ("save", Self::save_good),
            92 => ("save refused", Self::save_refused),
            93 => ("save fails", Self::save_fails),
            94 | 95 => ("resize", Self::resize),
            96..=98 => ("idle", Self::idle),
            _ => ("pause", |s| s.settle("a pause")),
        };
        let started = Instant::now();
        event(self);
        // At least one frame, which takes every event still queued (a frame each): the next
        // event's calls into the session must not overtake this one's keys.
        let extra = self.rng.below(3);
        self.frames(1 + extra);
        let slot = self.tally.time.entry(kind).or_default();
        slot.0 += 1;
        slot.1 += started.elapsed();
    }

    // The checks.

    /// Runs frames until every job was answered or cancelled and no neighbour is being
    /// prepared, then checks what a quiet viewer must hold.
    fn settle(&mut self, why: &str) {
        let started = Instant::now();
        let activity = self.h.state().session.activity();
        loop {
            self.frame();
            let s = &self.h.state().session;
            if s.is_idle() && !s.is_prefetching() {
                break;
            }
            assert!(
                started.elapsed() < SETTLE_DEADLINE,
                "the worker is stuck ({why}): still {:?}, prefetching: {}, after {:?}",
                s.activity(),
                s.is_prefetching(),
                SETTLE_DEADLINE
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        self.frames(2);
        self.tally.settles += 1;
        if started.elapsed() > self.tally.longest_settle {
            self.tally.longest_settle = started.elapsed();
            self.tally.longest_settle_work = activity;
        }
        let leftovers = self.files.leftovers();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        self.h.check_accessibility();
        self.check();
        // A quiet viewer shows the chosen map of the chosen class (or went back to the one on
        // screen when the choice failed), with its heat texture.
        let s = &self.h.state().session;
        if s.model().is_some() && s.image().is_some() {
            let analysis = s.analysis().unwrap_or_else(|| {
                panic!(
                    "idle ({why}) with an image and a model but no analysis: {:?}",
                    s.notice()
                )
            });
            let shown = s.shown_map();
            assert_eq!(
                (shown.method, shown.layer),
                (s.method(), s.layer()),
                "idle ({why}) showing another map than the one chosen"
            );
            assert!(
                analysis.map(s.class()).is_some(),
                "idle ({why}) without the map of class {}",
                s.class()
            );
            let heat = TextureCounts::of(&self.h.ctx).heat.0;
            assert_eq!(heat, 1, "idle ({why}) without a heat texture");
        }
    }

    /// What must hold after every event.
    fn check(&mut self) {
        let bugs: Vec<String> = panics()
            .lock()
            .unwrap()
            .iter()
            .filter(|p| !p.is_by_design())
            .map(|p| format!("{} at {} on {}", p.message, p.location, p.thread))
            .collect();
        assert!(bugs.is_empty(), "panicked: {bugs:#?}");
        let app = self.h.state();
        let s = &app.session;
        assert!(
            s.errors().len() <= ERRORS_SHOWN,
            "{} errors on show",
            s.errors().len()
        );
        for n in s.errors().iter().chain(s.latest_info()) {
            assert!(
                !n.text.contains("internal error"),
                "a job panicked: {:?}",
                n.text
            );
            assert!(
                !n.text.starts_with("No file dialog is available"),
                "a native file dialog was asked for: {:?}",
                n.text
            );
        }
        let v = &app.view;
        assert!(
            v.zoom.is_finite() && v.zoom > 0.0 && v.centre.x.is_finite() && v.centre.y.is_finite(),
            "the view went wrong: {v:?}"
        );
        if let Some((_, report)) = s.sanity() {
            self.sanity_steps = self.sanity_steps.max(report.steps.len());
        }

        let c = s.cache_sizes();
        assert!(
            c.prepared <= PREPARED_IMAGES && c.prefetching <= PREPARED_IMAGES,
            "neighbours: {c:?}"
        );
        let stages = s.model().map_or(1, |m| m.stages().len());
        let choices = Method::ALL.len() * stages * 2;
        assert!(
            c.map_choices <= choices && c.prepared_map_choices <= choices,
            "more map choices cached than {choices}: {c:?}"
        );
        assert!(
            c.activations <= stages && c.prepared_activations <= stages,
            "activations of more than {stages} layers cached: {c:?}"
        );
        let undo = s.annotations().undo_depth();
        assert!(
            undo <= UNDO_LIMIT,
            "the marks' undo history is {undo} deep, more than {UNDO_LIMIT}"
        );
        assert!(
            c.stashed_marks <= self.shown.len(),
            "marks kept for {} images, {} shown",
            c.stashed_marks,
            self.shown.len()
        );

        let t = TextureCounts::of(&self.h.ctx);
        let (levels, level_bytes) = pyramid_bound(self.side());
        assert!(
            t.image.0 <= levels && t.image.1 <= level_bytes,
            "image textures {:?}, at most {levels} levels and {level_bytes} bytes",
            t.image
        );
        assert!(
            t.heat.0 <= 1 && t.heat_side <= HEAT_SIDE,
            "heat textures: {t:?}"
        );
        assert!(
            t.compare.0 <= COMPARE_TEXTURES && t.compare_side <= COMPARE_SIDE,
            "Compare textures: {t:?}"
        );
        assert!(
            t.sanity.0 <= 1 + self.sanity_steps && t.sanity_side <= SANITY_SIDE,
            "sanity textures: {t:?} (reports of at most {} steps)",
            self.sanity_steps
        );
        assert!(t.other.0 <= 2, "egui's own textures: {t:?}");
        if t.count() > self.peak_textures.count() {
            self.peak_textures = t;
        }
    }

    /// The marks of the image on screen, their undo history's depth and the marks it holds.
    fn marks(&self) -> (usize, usize, usize) {
        let mut layer = self.h.state().session.annotations().clone();
        let items = layer.items.len();
        let (mut depth, mut held) = (0, 0);
        while layer.undo() {
            depth += 1;
            held += layer.items.len();
        }
        (items, depth, held)
    }

    fn summary(&mut self, started: Instant, rss_warm: Option<u64>) -> String {
        let frames = self.h.ctx.cumulative_frame_nr();
        let (since, frames_then) =
            std::mem::replace(&mut self.last_summary, (Instant::now(), frames));
        let frame_ms =
            since.elapsed().as_secs_f64() * 1000.0 / (frames - frames_then).max(1) as f64;
        let s = &self.h.state().session;
        let c = s.cache_sizes();
        let t = TextureCounts::of(&self.h.ctx);
        let secs = started.elapsed().as_secs_f64();
        let (items, depth, held) = self.marks();
        format!(
            "soak: {} events in {secs:.0} s ({:.1}/s), {frames} frames ({frame_ms:.1} ms each \
             lately), {} checkpoints (longest {:.1} s), {} tickets; RSS {:.0} MiB{}; textures {} \
             ({:.1} MiB: {} image, {} heat, {} compare, {} sanity, {} egui); caches: {} prepared, \
             {} map choices, {} activations, {} stashed mark layers, {} images shown; marks on \
             screen {items} (undo {depth} deep, {held} marks held)",
            self.step,
            self.step as f64 / secs.max(1e-9),
            self.tally.settles,
            self.tally.longest_settle.as_secs_f64(),
            c.tickets,
            mib(rss_bytes()),
            rss_warm.map_or(String::new(), |w| format!(" (warm {:.0})", mib(w))),
            t.count(),
            mib(t.bytes() as u64),
            t.image.0,
            t.heat.0,
            t.compare.0,
            t.sanity.0,
            t.other.0,
            c.prepared,
            c.map_choices,
            c.activations,
            c.stashed_marks,
            self.shown.len(),
        )
    }

    /// Runs `f`; on a panic, says how to replay the session, then panics on.
    fn guarded(&mut self, what: &str, f: impl FnOnce(&mut Self)) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if let Err(e) = result {
            eprintln!(
                "soak: FAILED at step {} ({what}) with CAMVIEW_SOAK_SEED={:#x}; the last events:",
                self.step, self.seed
            );
            for line in &self.log {
                eprintln!("    {line}");
            }
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn a_random_session_keeps_the_viewer_answering_and_its_memory_bounded() {
    panics(); // the hook, before any thread starts
    let config = Config::from_env();
    let started = Instant::now();
    let mut soak = Soak::new(config.seed);
    let target = config
        .seconds
        .map_or_else(|| format!("{} events", config.events), |s| format!("{s} s"));
    eprintln!(
        "soak: seed {:#x}, {target}, summary every {} events, checkpoint every {}",
        config.seed, config.report_every, config.settle_every
    );
    let warm_up_at = |step: usize, elapsed: f64| match config.seconds {
        Some(s) => elapsed >= 0.2 * s,
        None => step >= config.events / 5,
    };
    let done = |step: usize, elapsed: f64| match config.seconds {
        Some(s) => elapsed >= s,
        None => step >= config.events,
    };
    let mut rss_warm: Option<u64> = None;
    let mut rss_peak_after_warm = 0u64;
    loop {
        let elapsed = started.elapsed().as_secs_f64();
        if done(soak.step, elapsed) {
            break;
        }
        soak.guarded("an event", |s| {
            s.event();
            s.check();
            if (s.step + 1).is_multiple_of(config.settle_every) {
                s.settle("a checkpoint");
            }
        });
        soak.step += 1;
        if rss_warm.is_none() && warm_up_at(soak.step, started.elapsed().as_secs_f64()) {
            soak.guarded("warm-up", |s| s.settle("the end of the warm-up"));
            rss_warm = Some(rss_bytes());
        }
        if rss_warm.is_some() {
            rss_peak_after_warm = rss_peak_after_warm.max(rss_bytes());
        }
        if soak.step.is_multiple_of(config.report_every) {
            eprintln!("{}", soak.summary(started, rss_warm));
        }
    }
    soak.guarded("the end", |s| {
        s.close_save_window();
        s.settle("the end");
    });
    let rss_end = rss_bytes();
    eprintln!("{}", soak.summary(started, rss_warm));
    let t = &soak.tally;
    eprintln!(
        "soak: {} keys, {} clicks, {} drags, {} wheels, {} widgets, {} choices; opened {} good, \
         {} damaged, {} missing; volatile file changed {} times; {} models; saves: {} new, {} \
         replaced, {} refused, {} failed; {} resizes",
        t.keys,
        t.clicks,
        t.drags,
        t.wheels,
        t.widgets,
        t.choices,
        t.opened_good,
        t.opened_damaged,
        t.opened_missing,
        t.volatile,
        t.models,
        t.saved,
        t.replaced,
        t.refused,
        t.failed_saves,
        t.resizes
    );
    let by_design = panics()
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.is_by_design())
        .count();
    let kinds: Vec<String> = t
        .time
        .iter()
        .map(|(kind, (n, time))| {
            format!(
                "{kind} {n} ({:.0} ms each)",
                time.as_secs_f64() * 1000.0 / *n as f64
            )
        })
        .collect();
    eprintln!("soak: by kind: {}", kinds.join(", "));
    eprintln!(
        "soak: the longest checkpoint waited {:.1} s for {:?}",
        t.longest_settle.as_secs_f64(),
        t.longest_settle_work
    );
    let peak = soak.peak_textures;
    eprintln!(
        "soak: peak textures {} ({:.1} MiB); panics inside dicom-rs caught by design: {by_design}",
        peak.count(),
        mib(peak.bytes() as u64)
    );

    for (path, bytes) in &soak.files.sources {
        assert!(
            std::fs::read(path).ok().as_ref() == Some(bytes),
            "{} was changed",
            path.display()
        );
    }
    if let Some(warm) = rss_warm {
        eprintln!(
            "soak: RSS after warm-up {:.0} MiB, at the end {:.0} MiB, peak after warm-up {:.0} MiB",
            mib(warm),
            mib(rss_end),
            mib(rss_peak_after_warm)
        );
        assert!(
            rss_end < warm + RSS_GROWTH_LIMIT,
            "resident memory grew from {:.0} MiB after warm-up to {:.0} MiB (seed {:#x})",
            mib(warm),
            mib(rss_end),
            config.seed
        );
    }
}
