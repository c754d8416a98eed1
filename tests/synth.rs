//! The synthetic scan generator: determinism, labels and masks that match the pixels, and
//! distractors that stop brightness or contrast alone from giving the label away.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use camview::training::synth::{MAX_SIDE, MIN_SIDE, Scan, ScanGenerator, write_dataset};
use image::GrayImage;

/// Box means over a (2r+1)^2 window, clipped at the borders, from an integral image.
fn box_means(image: &GrayImage, r: u32) -> Vec<f32> {
    let (w, h) = image.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut integral = vec![0u64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u64;
        for x in 0..w {
            row += u64::from(image.as_raw()[y * w + x]);
            integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
        }
    }
    let r = r as usize;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let (x0, y0) = (x.saturating_sub(r), y.saturating_sub(r));
            let (x1, y1) = ((x + r + 1).min(w), (y + r + 1).min(h));
            let sum = integral[y1 * (w + 1) + x1] + integral[y0 * (w + 1) + x0]
                - integral[y0 * (w + 1) + x1]
                - integral[y1 * (w + 1) + x0];
            out.push(sum as f32 / ((x1 - x0) * (y1 - y0)) as f32);
        }
    }
    out
}

/// The brightest 9x9 neighbourhood.
fn max_local_brightness(image: &GrayImage) -> f32 {
    box_means(image, 4).into_iter().fold(f32::MIN, f32::max)
}

/// The strongest 9x9 local-mean difference: |mean of 9x9 - mean of the 27x27 around it|,
/// away from the border.
fn max_local_contrast(image: &GrayImage) -> f32 {
    let (w, h) = image.dimensions();
    let small = box_means(image, 4);
    let large = box_means(image, 13);
    let mut best = 0.0f32;
    for y in 13..h.saturating_sub(13) {
        for x in 13..w.saturating_sub(13) {
            let i = (y * w + x) as usize;
            best = best.max((small[i] - large[i]).abs());
        }
    }
    best
}

/// ROC AUC of a score separating positives from negatives (0.5 = no better than chance).
fn auc(positives: &[f32], negatives: &[f32]) -> f64 {
    let mut wins = 0.0;
    for p in positives {
        for n in negatives {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (positives.len() * negatives.len()) as f64
}

/// The mask's 4-connected components, as pixel index lists.
fn components(mask: &GrayImage) -> Vec<Vec<usize>> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let m = mask.as_raw();
    let mut seen = vec![false; w * h];
    let mut out = Vec::new();
    for start in 0..w * h {
        if m[start] == 0 || seen[start] {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            comp.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if m[j] != 0 && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        out.push(comp);
    }
    out
}

/// Mean intensity inside a component minus the mean over the ring of pixels 2..=5 pixels
/// outside it (outside every lesion).
fn lesion_contrast(scan: &Scan, comp: &[usize]) -> f32 {
    let (w, h) = (scan.image.width() as i64, scan.image.height() as i64);
    let img = scan.image.as_raw();
    let mask = scan.mask.as_raw();
    let mut own = vec![false; img.len()];
    for &i in comp {
        own[i] = true;
    }
    let inside: f32 = comp.iter().map(|&i| f32::from(img[i])).sum::<f32>() / comp.len() as f32;
    let mut ring = std::collections::BTreeSet::new();
    for &i in comp {
        let (x, y) = ((i as i64) % w, (i as i64) / w);
        for dy in -5i64..=5 {
            for dx in -5i64..=5 {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w || ny >= h {
                    continue;
                }
                let j = (ny * w + nx) as usize;
                if mask[j] == 0 && dx * dx + dy * dy >= 4 {
                    ring.insert(j);
                }
            }
        }
    }
    // Keep only pixels at least 2 away from the component.
    let ring: Vec<usize> = ring
        .into_iter()
        .filter(|&j| {
            let (x, y) = ((j as i64) % w, (j as i64) / w);
            (-1i64..=1).all(|dy| {
                (-1i64..=1).all(|dx| {
                    let (nx, ny) = (x + dx, y + dy);
                    nx < 0 || ny < 0 || nx >= w || ny >= h || !own[(ny * w + nx) as usize]
                })
            })
        })
        .collect();
    assert!(!ring.is_empty());
    let around: f32 = ring.iter().map(|&j| f32::from(img[j])).sum::<f32>() / ring.len() as f32;
    inside - around
}

#[test]
fn same_seed_and_index_give_the_same_bytes() {
    let g = ScanGenerator::new(7);
    let a = g.scan(3);
    let b = ScanGenerator::new(7).scan(3);
    assert_eq!(a.image, b.image);
    assert_eq!(a.mask, b.mask);
    assert_eq!(a.positive, b.positive);
    assert_eq!(a.lesions, b.lesions);
}

#[test]
fn different_index_or_seed_gives_a_different_scan() {
    let g = ScanGenerator::new(7);
    let base = g.scan(3);
    for other in [
        g.scan(4),
        g.scan(2),
        ScanGenerator::new(8).scan(3),
        ScanGenerator::new(0).scan(3),
    ] {
        assert_ne!(base.image, other.image);
    }
}

#[test]
fn order_and_threads_do_not_matter() {
    let g = ScanGenerator::new(42);
    let forward: Vec<Scan> = (0..24).map(|i| g.scan(i)).collect();
    let backward: Vec<Scan> = (0..24).rev().map(|i| g.scan(i)).collect();
    for (i, b) in backward.iter().rev().enumerate() {
        assert_eq!(forward[i].image, b.image, "scan {i}");
        assert_eq!(forward[i].mask, b.mask, "scan {i}");
    }
    let threaded: Vec<Scan> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24u64)
            .map(|i| s.spawn(move || ScanGenerator::new(42).scan(i)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, t) in threaded.iter().enumerate() {
        assert_eq!(forward[i].image, t.image, "scan {i}");
    }
}

/// Pins the generator's output: the same seed gives the same images on every machine. If this
/// fails after a deliberate change to the generator, update the hash (and retrain the demo).
#[test]
fn output_is_pinned() {
    use sha2::{Digest, Sha256};
    let g = ScanGenerator::new(2024);
    let mut hasher = Sha256::new();
    for i in 0..8 {
        let s = g.scan(i);
        hasher.update(s.image.width().to_le_bytes());
        hasher.update(s.image.height().to_le_bytes());
        hasher.update(s.image.as_raw());
        hasher.update(s.mask.as_raw());
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("digest {digest}");
    assert_eq!(digest, PINNED);
}

/// Regenerate (and retrain the demo model) whenever the generator changes on purpose.
const PINNED: &str = "a05030dd5fd7f73541c2875aba2c6be61deb2b1138a49b90407de8ed3e24e9c7";

#[test]
fn sizes_labels_and_masks_agree_with_the_pixels() {
    let g = ScanGenerator::new(1);
    let mut positives = 0;
    let mut contrasts = Vec::new();
    let mut coverages = Vec::new();
    for i in 0..200 {
        let s = g.scan(i);
        let (w, h) = s.image.dimensions();
        assert!((MIN_SIDE..=MAX_SIDE).contains(&w), "scan {i}: width {w}");
        assert!((MIN_SIDE..=MAX_SIDE).contains(&h), "scan {i}: height {h}");
        assert_eq!(s.mask.dimensions(), (w, h), "scan {i}");
        assert!(
            s.mask.as_raw().iter().all(|&m| m == 0 || m == 255),
            "scan {i}"
        );
        let covered = s.mask.as_raw().iter().filter(|&&m| m == 255).count();
        if !s.positive {
            assert_eq!(covered, 0, "scan {i}: a negative with a mask");
            assert!(s.lesions.is_empty(), "scan {i}");
            continue;
        }
        positives += 1;
        assert!((1..=3).contains(&s.lesions.len()), "scan {i}");
        let coverage = covered as f64 / f64::from(w * h);
        coverages.push(coverage);
        assert!(
            (0.002..=0.15).contains(&coverage),
            "scan {i}: mask covers {:.3}%",
            coverage * 100.0
        );
        let comps = components(&s.mask);
        assert_eq!(
            comps.len(),
            s.lesions.len(),
            "scan {i}: one mask region per lesion"
        );
        for comp in &comps {
            let c = lesion_contrast(&s, comp);
            contrasts.push(c);
            assert!(
                c.abs() >= 6.0,
                "scan {i}: a lesion only {c:.1} grey levels from its surroundings"
            );
        }
    }
    assert!(
        (70..=130).contains(&positives),
        "{positives} positives of 200"
    );
    coverages.sort_by(f64::total_cmp);
    println!(
        "{positives} positives of 200; mask coverage {:.2}%..{:.2}%",
        coverages[0] * 100.0,
        coverages[coverages.len() - 1] * 100.0
    );
    contrasts.sort_by(f32::total_cmp);
    let brighter = contrasts.iter().filter(|&&c| c > 0.0).count();
    println!(
        "{} lesions; contrast min {:.1}, median |c| {:.1}, {} brighter",
        contrasts.len(),
        contrasts.iter().map(|c| c.abs()).fold(f32::MAX, f32::min),
        {
            let mut a: Vec<f32> = contrasts.iter().map(|c| c.abs()).collect();
            a.sort_by(f32::total_cmp);
            a[a.len() / 2]
        },
        brighter
    );
    // Mostly brighter, some darker.
    assert!(
        brighter * 10 >= contrasts.len() * 6,
        "{brighter} of {} brighter",
        contrasts.len()
    );
    assert!(brighter < contrasts.len(), "no darker lesions");
}

#[test]
fn brightness_and_local_contrast_do_not_give_the_label_away() {
    let g = ScanGenerator::new(3);
    let (mut bright_pos, mut bright_neg) = (Vec::new(), Vec::new());
    let (mut contrast_pos, mut contrast_neg) = (Vec::new(), Vec::new());
    let mut i = 0;
    while bright_neg.len() < 200 || bright_pos.len() < 200 {
        let s = g.scan(i);
        i += 1;
        let (b, c) = (max_local_brightness(&s.image), max_local_contrast(&s.image));
        if s.positive {
            bright_pos.push(b);
            contrast_pos.push(c);
        } else {
            bright_neg.push(b);
            contrast_neg.push(c);
        }
    }
    let bright_auc = auc(&bright_pos, &bright_neg);
    let contrast_auc = auc(&contrast_pos, &contrast_neg);
    let median = |v: &mut Vec<f32>| {
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let (mp, mn) = (median(&mut contrast_pos), median(&mut contrast_neg));
    // Negatives whose strongest local contrast beats a quarter of the positives'.
    let q1 = contrast_pos[contrast_pos.len() / 4];
    let strong_negatives = contrast_neg.iter().filter(|&&c| c >= q1).count();
    println!(
        "AUC max brightness {bright_auc:.3}, AUC max 9x9 contrast {contrast_auc:.3}; median \
         contrast positives {mp:.1}, negatives {mn:.1}; {strong_negatives} of {} negatives above \
         the positives' first quartile",
        contrast_neg.len()
    );
    assert!(
        bright_auc < 0.8 && bright_auc > 0.2,
        "brightness AUC {bright_auc:.3}"
    );
    assert!(contrast_auc < 0.8, "local contrast AUC {contrast_auc:.3}");
    assert!(
        mn >= 0.7 * mp,
        "negatives' local contrast {mn:.1} vs positives' {mp:.1}"
    );
    assert!(
        strong_negatives * 2 >= contrast_neg.len(),
        "{strong_negatives} strong negatives"
    );
}

#[test]
fn write_dataset_writes_images_masks_and_labels_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let summary = write_dataset(&out, 6, 11, false).unwrap();
    assert_eq!(summary.count, 6);
    assert_eq!(summary.positives + summary.negatives, 6);

    let g = ScanGenerator::new(11);
    let csv = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "image,label,lesions,mask");
    assert_eq!(lines.len(), 7);
    let mut lesions = 0;
    for i in 0..6u64 {
        let scan = g.scan(i);
        let row = format!(
            "scan_{i:05}.bmp,{},{},masks/scan_{i:05}.png",
            u8::from(scan.positive),
            scan.lesions.len()
        );
        assert_eq!(lines[i as usize + 1], row);
        lesions += scan.lesions.len() as u64;

        let bmp = std::fs::read(out.join(format!("scan_{i:05}.bmp"))).unwrap();
        assert_eq!(&bmp[..2], b"BM");
        assert_eq!(
            u16::from_le_bytes([bmp[28], bmp[29]]),
            8,
            "8 bits per pixel"
        );
        let decoded = image::load_from_memory(&bmp).unwrap().to_luma8();
        assert_eq!(decoded, scan.image, "scan {i}");
        // camview's own reader (PIL's convert("RGB")) sees the same grey levels.
        let source = camview::imaging::open_image(&out.join(format!("scan_{i:05}.bmp"))).unwrap();
        assert_eq!(source.format, "BMP");
        assert!(
            source
                .rgb
                .pixels()
                .zip(scan.image.pixels())
                .all(|(rgb, g)| rgb.0 == [g.0[0]; 3]),
            "scan {i}"
        );
        let mask = image::open(out.join(format!("masks/scan_{i:05}.png"))).unwrap();
        assert_eq!(mask.color(), image::ColorType::L8);
        assert_eq!(mask.to_luma8(), scan.mask, "mask {i}");
    }
    assert_eq!(summary.lesions, lesions);

    // Again without replace: refused, nothing changed, nothing added.
    let before = listing(&out);
    let err = write_dataset(&out, 8, 12, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(listing(&out), before);

    // With replace: rewritten with the new seed.
    let summary = write_dataset(&out, 6, 12, true).unwrap();
    assert_eq!(summary.count, 6);
    let decoded = image::open(out.join("scan_00000.bmp")).unwrap().to_luma8();
    assert_eq!(decoded, ScanGenerator::new(12).scan(0).image);
    assert!(!listing(&out).iter().any(|(name, _)| name.contains(".part")));
}

/// Every file under a folder with its bytes.
fn listing(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(listing(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}
