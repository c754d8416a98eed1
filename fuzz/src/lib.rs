//! What camview's fuzz targets share: an allocator that counts, so that each target asserts
//! the most memory a read held against a bound derived from the input's size (not just "no
//! panic"), and the checks each kind of result must pass.
//!
//! Run them with `tools/fuzz.sh` (ARCHITECTURE.md, "Fuzzing"); a finding becomes an ordinary
//! regression test under `tests/`, its input committed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use camview::imaging::SourceImage;
use camview::imaging::decode::MAX_SIDE;

/// The system allocator, counting the bytes held now and the most held since `peak_during`
/// started.
pub struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = HELD.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
    if bytes >= LARGE {
        trace_large(bytes);
    }
}

/// Allocations from this size on are traced when `CAMVIEW_FUZZ_TRACE` is set: the backtrace
/// of each is printed, to find what a finding allocated.
const LARGE: usize = 64 << 20;

fn trace_large(bytes: usize) {
    thread_local! {
        static TRACING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if TRACING.get() || std::env::var_os("CAMVIEW_FUZZ_TRACE").is_none() {
        return;
    }
    TRACING.set(true);
    eprintln!(
        "allocating {bytes} bytes:\n{}",
        std::backtrace::Backtrace::force_capture()
    );
    TRACING.set(false);
}

// SAFETY: every call is passed to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller promised for `layout`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller promised.
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller promised for `ptr`, `layout` and `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                HELD.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`; returns what it returned and the most bytes held at once while it ran, beyond
/// what was held when it started.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HELD.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed).saturating_sub(base))
}

const MIB: usize = 1 << 20;

/// Fails the run when `peak` exceeds `bound` (a finding: the read allocated more than its
/// input can justify).
pub fn assert_within(what: &str, input_len: usize, peak: usize, bound: usize) {
    assert!(
        peak <= bound,
        "{what}: {input_len} bytes of input held {peak} bytes at once, more than the bound \
         {bound}"
    );
}

/// The most a checkpoint read may hold: the tensors' values (f32 or i64) may add up to 16
/// values per stored byte plus 2^24 (`checkpoint::tensor::Budget`), each made once and then
/// copied into its tensor; the pickle's objects are at most a few per byte.
pub fn checkpoint_bound(input_len: usize) -> usize {
    let values = input_len.saturating_mul(16).saturating_add(1 << 24);
    values
        .saturating_mul(8 * 3)
        .saturating_add(input_len.saturating_mul(256))
        .saturating_add(64 * MIB)
}

/// A checkpoint's bytes read as camview reads them; a successful read is checked tensor by
/// tensor, and the model built from it (architecture inference and shape checks).
pub fn check_checkpoint(data: &[u8]) {
    let (read, peak) =
        peak_during(|| camview::checkpoint::read_state_dict_from_bytes("fuzz.pth", data));
    assert_within("checkpoint", data.len(), peak, checkpoint_bound(data.len()));
    let Ok(tensors) = read else { return };
    for (name, t) in &tensors {
        let count: usize = t.dims().iter().product();
        assert_eq!(
            count,
            t.elem_count(),
            "{name}: shape and element count disagree"
        );
        let held = match t.dtype() {
            candle_core::DType::F32 => t
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map(|v| v.len()),
            candle_core::DType::I64 => t
                .flatten_all()
                .and_then(|t| t.to_vec1::<i64>())
                .map(|v| v.len()),
            other => panic!("{name}: a tensor of {other:?}, neither f32 nor i64"),
        };
        assert_eq!(
            held.ok(),
            Some(count),
            "{name}: its values are not its shape's count"
        );
    }
    let (_, peak) =
        peak_during(|| camview::network::Classifier::from_bytes("fuzz.pth", data, None));
    assert_within("model", data.len(), peak, checkpoint_bound(data.len()));
}

/// The budget the image targets decode within: small, so that the fuzzer stays fast and a
/// read that ignores it is caught.
pub const IMAGE_BUDGET: u64 = 256 << 20;

/// An image's bytes decoded within [`IMAGE_BUDGET`]; a decoded image is checked: its sides
/// within the limit and its buffers the size its dimensions say; the read held no more than
/// the budget's worth of pixels plus a few copies of the input.
pub fn check_image(data: &[u8]) {
    let (decoded, peak) =
        peak_during(|| camview::imaging::decode_image_within("fuzz", data, 1, Some(IMAGE_BUDGET)));
    let bound = IMAGE_BUDGET as usize + data.len() * 4 + 16 * MIB;
    assert_within("image", data.len(), peak, bound);
    if let Ok(image) = decoded {
        check_decoded(&image);
    }
}

fn check_decoded(image: &SourceImage) {
    let (w, h) = (image.width(), image.height());
    assert!(
        w > 0 && h > 0 && w <= MAX_SIDE && h <= MAX_SIDE,
        "{w} x {h}"
    );
    let pixels = w as usize * h as usize;
    assert_eq!(
        image.rgb.as_raw().len(),
        pixels * 3,
        "RGB buffer of {w} x {h}"
    );
    if let Some(levels) = &image.levels {
        assert_eq!((levels.width, levels.height), (w, h), "levels' size");
        assert_eq!(levels.stored.len(), pixels, "stored values");
        assert_eq!(levels.modality.len(), pixels, "modality values");
        let (lo, hi) = levels.range;
        assert!(lo <= hi, "range {lo}..{hi}");
    }
    assert_eq!(image.sha256.len(), 64, "the file's hash");
}
