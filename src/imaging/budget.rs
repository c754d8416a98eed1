//! The memory budget: how much memory one image may take, checked from its header before its
//! pixels are decoded, so that an image too large for the machine is refused with a message
//! instead of the system killing camview (a decompression bomb, a PNG of a few KB declaring
//! 20000 x 20000, is refused or decoded within it).
//!
//! The cost of an image is its pixel count times [`BYTES_PER_PIXEL`] (and
//! [`LEVELS_BYTES_PER_PIXEL`] more for an image kept at full gray depth), the peak resident
//! memory per pixel measured for opening, predicting and rendering the largest images (README,
//! "Reliability"). The budget is half of the machine's memory unless `CAMVIEW_MEMORY_BUDGET`
//! or `--memory-budget` says otherwise (e.g. `6G`, `512M`, `0` for no limit).

use std::sync::atomic::{AtomicU64, Ordering};

/// Peak resident bytes per source pixel of `render` on the largest 8-bit images (20000 x 20000
/// PNG, RGB and gray: 9.9 measured with `/usr/bin/time -v`), with a margin: the decoded
/// pixels, the RGB copy, the heat map at the image's size, the overlay composed and encoded.
pub const BYTES_PER_PIXEL: u64 = 12;

/// What an image kept at full gray depth (16-bit PNG or TIFF, monochrome DICOM) costs more per
/// pixel: its stored (i32) and modality (f32) values, and the 16-bit decoded buffer (a 20000 x
/// 20000 16-bit PNG: 20.7 bytes per pixel measured for `render`).
pub const LEVELS_BYTES_PER_PIXEL: u64 = 10;

/// The environment variable that sets the budget (`--memory-budget` sets it too).
pub const BUDGET_VARIABLE: &str = "CAMVIEW_MEMORY_BUDGET";

/// Not yet chosen (read from the environment and the machine on first use).
const UNSET: u64 = u64::MAX;
/// No limit.
const UNLIMITED: u64 = 0;

static BUDGET: AtomicU64 = AtomicU64::new(UNSET);

/// The budget in bytes for one image, or `None` when there is no limit.
pub fn memory_budget() -> Option<u64> {
    let mut budget = BUDGET.load(Ordering::Relaxed);
    if budget == UNSET {
        budget = std::env::var(BUDGET_VARIABLE)
            .ok()
            .and_then(|v| parse_bytes(&v).ok())
            .unwrap_or_else(default_budget);
        BUDGET.store(budget, Ordering::Relaxed);
    }
    (budget != UNLIMITED).then_some(budget)
}

/// Sets the budget for the rest of the process (`None`: no limit).
pub fn set_memory_budget(bytes: Option<u64>) {
    BUDGET.store(bytes.unwrap_or(UNLIMITED).min(UNSET - 1), Ordering::Relaxed);
}

/// Half of the machine's memory (`MemTotal` of `/proc/meminfo`), 8 GiB where it cannot be read.
fn default_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024) / 2)
        })
        .unwrap_or(8 << 30)
}

/// A size in bytes written as a number with an optional K, M, G or T (powers of 1024; `0` is
/// no limit).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a size (e.g. 6G, 512M, 0 for no limit)");
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    Ok((value * (1u64 << shift) as f64).min((UNSET - 1) as f64) as u64)
}

/// A size for messages: "1.5 GiB", "300.0 MiB", "12 KiB".
pub fn format_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.0} KiB", (b / KIB).ceil())
    }
}

/// Why an image does not fit: its estimated cost and the budget, for the caller's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub needed: u64,
    pub budget: u64,
}

/// Checks an image of `width` x `height` pixels, kept at full gray depth or not (`levels`),
/// against `budget` (`None`: no limit).
pub fn check(width: u32, height: u32, levels: bool, budget: Option<u64>) -> Result<(), OverBudget> {
    let per_pixel = BYTES_PER_PIXEL + if levels { LEVELS_BYTES_PER_PIXEL } else { 0 };
    let needed = u64::from(width) * u64::from(height) * per_pixel;
    match budget {
        Some(budget) if needed > budget => Err(OverBudget { needed, budget }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_with_their_units() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes(" 2GiB "), Ok(2 << 30));
        assert_eq!(parse_bytes("6gb"), Ok(6 << 30));
        for bad in ["", "G", "-1G", "1X", "NaN", "1e400"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_image_is_checked_against_its_estimated_cost() {
        assert_eq!(check(20_000, 20_000, false, None), Ok(()));
        let needed = 20_000 * 20_000 * BYTES_PER_PIXEL;
        assert_eq!(check(20_000, 20_000, false, Some(needed)), Ok(()));
        let deep = 20_000 * 20_000 * (BYTES_PER_PIXEL + LEVELS_BYTES_PER_PIXEL);
        assert_eq!(
            check(20_000, 20_000, true, Some(needed)),
            Err(OverBudget {
                needed: deep,
                budget: needed
            })
        );
        assert_eq!(
            check(20_000, 20_000, false, Some(needed - 1)),
            Err(OverBudget {
                needed,
                budget: needed - 1
            })
        );
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(300 << 20), "300.0 MiB");
        assert_eq!(format_bytes(1000), "1 KiB");
    }
}
