//! A region mask (the clinician's finding, `render::annotation::region_mask`) as an 8-bit
//! grayscale PNG: 255 inside, 0 outside, the format `camview eval --masks` reads back.

use std::path::Path;

use super::{ExportError, check_destination, to_io, write_atomic};

/// Writes `mask` (`width x height`, row-major) to `path` as a grayscale PNG, atomically and
/// never over an existing file unless `replace`. It does not know the image the mask was drawn
/// on: when there is one, [`save_mask_png`] also refuses to write over it.
pub fn write_mask_png(
    path: &Path,
    width: u32,
    height: u32,
    mask: &[bool],
    replace: bool,
) -> Result<(), ExportError> {
    save_mask_png(path, width, height, mask, replace, &[])
}

/// [`write_mask_png`], refusing to write over any of `sources` (the image the mask belongs to)
/// even with `replace`, as the overlay's save does.
pub fn save_mask_png(
    path: &Path,
    width: u32,
    height: u32,
    mask: &[bool],
    replace: bool,
    sources: &[&Path],
) -> Result<(), ExportError> {
    let file = || path.display().to_string();
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(ExportError::MaskNotPng { file: file() });
    }
    if mask.len() as u64 != u64::from(width) * u64::from(height) {
        return Err(ExportError::MaskSize {
            file: file(),
            width,
            height,
            pixels: mask.len(),
        });
    }
    check_destination(path, replace, sources)?;
    let pixels: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
    write_atomic(path, replace, |w| {
        let mut encoder = png::Encoder::new(w, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(to_io)?;
        writer.write_image_data(&pixels).map_err(to_io)?;
        writer.finish().map_err(to_io)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_reads_back_as_the_same_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("finding.png");
        let (w, h) = (7u32, 5u32);
        let mask: Vec<bool> = (0..w * h).map(|i| i % 3 == 0 || i == 34).collect();
        write_mask_png(&path, w, h, &mask, false).unwrap();
        let back = image::open(&path).unwrap();
        assert_eq!(back.color(), image::ColorType::L8);
        let back = back.to_luma8();
        assert_eq!(back.dimensions(), (w, h));
        let values: Vec<u8> = back.pixels().map(|p| p.0[0]).collect();
        let expected: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
        assert_eq!(values, expected);
        // An existing file is kept unless replacing is asked for.
        let err = write_mask_png(&path, w, h, &mask, false).unwrap_err();
        assert!(matches!(err, ExportError::Exists { .. }), "{err}");
        write_mask_png(&path, w, h, &[false; 35], true).unwrap();
        assert!(
            image::open(&path)
                .unwrap()
                .to_luma8()
                .pixels()
                .all(|p| p.0[0] == 0)
        );
    }

    #[test]
    fn the_source_a_wrong_size_and_other_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let scan = dir.path().join("scan.png");
        std::fs::write(&scan, b"pixels").unwrap();
        let err = save_mask_png(&scan, 2, 2, &[true; 4], true, &[&scan]).unwrap_err();
        assert!(matches!(err, ExportError::IsSource { .. }), "{err}");
        assert_eq!(std::fs::read(&scan).unwrap(), b"pixels");
        let err = write_mask_png(&dir.path().join("m.png"), 3, 2, &[true; 4], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: the mask has 4 pixels, not 3 x 2",
                dir.path().join("m.png").display()
            )
        );
        let err = write_mask_png(&dir.path().join("m.bmp"), 2, 2, &[true; 4], false).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("a mask is written as PNG: name it .png")
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
