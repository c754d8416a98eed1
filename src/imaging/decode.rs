//! Decoding images from disk, with limits, into the RGB pixels PIL's `convert("RGB")` gives.
//!
//! The network was trained on what PIL produced, so the conversion follows PIL, not what would
//! look best: grayscale is replicated, palettes are looked up, alpha is dropped (not composited),
//! 16-bit grayscale is clipped at 255 and 16-bit colour (and 16-bit grey with alpha) keeps its
//! high byte.

use std::borrow::Cow;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use image::{
    ColorType, DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage,
};

use super::budget::{self, format_bytes};
use super::dicom::{self, DicomInfo, GrayOrColour};
use super::levels::{DisplayWindow, GrayLevels, NetworkWindow};

/// Largest width or height accepted.
pub const MAX_SIDE: u32 = 20_000;
/// Largest decoded buffer accepted: an 8-bit RGBA image at the side limit (a 16-bit colour one
/// that large is refused). The memory budget (`imaging::budget`) is checked before it.
pub const MAX_DECODED_BYTES: u64 = MAX_SIDE as u64 * MAX_SIDE as u64 * 4;
/// Largest file read.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Why an image could not be opened. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{file}: cannot read the image: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}: the file is empty")]
    Empty { file: String },
    #[error("{file}: not an image camview can read (BMP, PNG, JPEG, TIFF or DICOM)")]
    UnknownFormat { file: String },
    #[error(
        "{file}: the image is {width} x {height} pixels, larger than camview opens \
         ({MAX_SIDE} x {MAX_SIDE}, and 1.5 GiB of decoded pixels, at most)"
    )]
    TooLarge {
        file: String,
        width: u32,
        height: u32,
    },
    #[error(
        "{file}: opening the {width} x {height} image would take about {}, more than camview's \
         memory budget of {} (set it with --memory-budget or CAMVIEW_MEMORY_BUDGET)",
        format_bytes(*needed), format_bytes(*budget)
    )]
    OverBudget {
        file: String,
        width: u32,
        height: u32,
        needed: u64,
        budget: u64,
    },
    #[error("{file}: the image is 0 pixels wide or high")]
    NoPixels { file: String },
    #[error("{file}: {reason}")]
    Dicom { file: String, reason: String },
    #[error("{file}: the {format} image is damaged or unsupported: {reason}")]
    Corrupt {
        file: String,
        format: String,
        reason: String,
    },
}

/// An image as decoded: its RGB pixels and what the file was.
#[derive(Debug, Clone)]
pub struct SourceImage {
    /// Name for messages and provenance (usually the path).
    pub name: String,
    /// The 8-bit image the network sees unless the model states a window: PIL's
    /// `convert("RGB")` of an ordinary image, the file's own VOI of a DICOM frame
    /// (`imaging::levels`).
    pub rgb: RgbImage,
    /// e.g. "BMP", "PNG", "DICOM".
    pub format: String,
    /// The gray values at full depth (a monochrome DICOM frame, a 16-bit grayscale PNG or
    /// TIFF), for windows; `None` for 8-bit and colour images.
    pub levels: Option<Arc<GrayLevels>>,
    /// What a DICOM file says about itself.
    pub dicom: Option<Arc<DicomInfo>>,
    /// SHA-256 of the file's bytes, in hex.
    pub sha256: String,
}

impl SourceImage {
    /// An 8-bit image with no file behind it.
    pub fn from_rgb(name: &str, rgb: RgbImage, format: &str) -> Self {
        Self {
            name: name.to_string(),
            rgb,
            format: format.to_string(),
            levels: None,
            dicom: None,
            sha256: String::new(),
        }
    }

    /// The 8-bit image a network sees through `window` (the model's stated window, or the
    /// command line's): the gray values through it when the image has any, otherwise `rgb`.
    pub fn network_rgb(&self, window: Option<&NetworkWindow>) -> Cow<'_, RgbImage> {
        match (window, &self.levels) {
            (Some(w), Some(levels)) => Cow::Owned(levels.render_rgb(&w.voi(), false)),
            _ => Cow::Borrowed(&self.rgb),
        }
    }

    /// Which window the network saw this image through, in words; `None` for an image with no
    /// more than 8 bits of gray, where no window applies.
    pub fn network_window_name(&self, window: Option<&NetworkWindow>) -> Option<String> {
        let levels = self.levels.as_ref()?;
        Some(match window {
            Some(w) => w.to_string(),
            None if self.dicom.is_some() => format!("{} (the file's)", levels.file_voi),
            None => "PIL's 8-bit conversion (clipped at 255)".to_string(),
        })
    }

    /// Which window the image is shown through, in words (`None` as for the network's).
    pub fn display_window_name(&self, display: Option<&DisplayWindow>) -> Option<String> {
        let levels = self.levels.as_ref()?;
        Some(match display {
            Some(d) if d.invert => format!("{}, inverted", d.voi),
            Some(d) => d.voi.to_string(),
            None if self.dicom.is_some() => format!("{} (the file's)", levels.file_voi),
            None => levels.file_voi.to_string(),
        })
    }

    /// The 8-bit image as displayed through `display` (`None`: the file's own window, min-max
    /// for a 16-bit PNG or TIFF); an image without gray levels is shown as it is.
    pub fn displayed(&self, display: Option<&DisplayWindow>) -> Cow<'_, RgbImage> {
        match (&self.levels, display) {
            (Some(levels), Some(d)) => Cow::Owned(levels.render_rgb(&d.voi, d.invert)),
            (Some(levels), None) if self.dicom.is_none() => {
                Cow::Owned(levels.render_rgb(&levels.file_voi, false))
            }
            _ => Cow::Borrowed(&self.rgb),
        }
    }

    pub fn width(&self) -> u32 {
        self.rgb.width()
    }
    pub fn height(&self) -> u32 {
        self.rgb.height()
    }
}

/// Opens an image file (never writes it); a multi-frame DICOM file at its first frame.
pub fn open_image(path: &Path) -> Result<SourceImage, ImageError> {
    open_image_frame(path, 1)
}

/// Opens an image file at frame `frame` (from 1; only DICOM files have more than one).
pub fn open_image_frame(path: &Path, frame: u32) -> Result<SourceImage, ImageError> {
    let file = path.display().to_string();
    let io = |e: std::io::Error| ImageError::Io {
        file: file.clone(),
        reason: crate::describe_io_error(&e),
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(ImageError::Io {
            file,
            reason: format!(
                "the file is {} MiB; camview reads images up to 1 GiB",
                len >> 20
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode_image_frame(&file, &bytes, frame)
}

/// Decodes image bytes; `name` is used in messages.
pub fn decode_image(name: &str, bytes: &[u8]) -> Result<SourceImage, ImageError> {
    decode_image_frame(name, bytes, 1)
}

/// Decodes image bytes at frame `frame` (from 1), within the process's memory budget.
pub fn decode_image_frame(name: &str, bytes: &[u8], frame: u32) -> Result<SourceImage, ImageError> {
    decode_image_within(name, bytes, frame, budget::memory_budget())
}

/// [`decode_image_frame`] within `budget` bytes (`None`: no limit): an image whose estimated
/// cost (`budget::check`) exceeds it is refused from its header, before its pixels are decoded.
pub fn decode_image_within(
    name: &str,
    bytes: &[u8],
    frame: u32,
    budget: Option<u64>,
) -> Result<SourceImage, ImageError> {
    let file = name.to_string();
    if bytes.is_empty() {
        return Err(ImageError::Empty { file });
    }
    let sha256 = format!("{:x}", Sha256::digest(bytes));
    if dicom::is_dicom(bytes) {
        let (pixels, info) = dicom::decode_dicom(name, bytes, frame, budget)?;
        let (rgb, levels) = match pixels {
            GrayOrColour::Gray(levels) => (
                levels.render_rgb(&levels.file_voi, false),
                Some(Arc::new(levels)),
            ),
            GrayOrColour::Colour(rgb) => (rgb, None),
        };
        return Ok(SourceImage {
            name: file,
            rgb,
            format: "DICOM".to_string(),
            levels,
            dicom: Some(Arc::new(info)),
            sha256,
        });
    }
    if frame != 1 {
        return Err(ImageError::Dicom {
            file,
            reason: format!("there is no frame {frame}: the image has one"),
        });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Io {
            file: file.clone(),
            reason: e.to_string(),
        })?;
    let Some(format) = reader.format().filter(|f| {
        matches!(
            f,
            ImageFormat::Bmp | ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Tiff
        )
    }) else {
        return Err(ImageError::UnknownFormat { file });
    };
    let format_name = format!("{format:?}").to_uppercase();
    let corrupt = |e: image::ImageError| ImageError::Corrupt {
        file: file.clone(),
        format: format_name.clone(),
        reason: e.to_string(),
    };
    let damaged = match format {
        ImageFormat::Png => damaged_png_palette(bytes),
        ImageFormat::Jpeg => truncated_jpeg(bytes),
        _ => None,
    };
    if let Some(reason) = damaged {
        return Err(ImageError::Corrupt {
            file,
            format: format_name,
            reason,
        });
    }
    // Read the header first: an absurd size is refused before anything is allocated.
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(corrupt)?;
    if width == 0 || height == 0 {
        return Err(ImageError::NoPixels { file });
    }
    let too_large = ImageError::TooLarge {
        file: file.clone(),
        width,
        height,
    };
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(too_large);
    }
    // 16-bit gray is kept at full depth too (`GrayLevels`), which the budget counts.
    let deep = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map(|d| matches!(d.color_type(), ColorType::L16 | ColorType::La16))
        .map_err(corrupt)?;
    within_budget(&file, width, height, deep, budget)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(budget.map_or(MAX_DECODED_BYTES, |b| b.min(MAX_DECODED_BYTES)));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let decoded = match reader.decode() {
        Ok(img) => img,
        Err(image::ImageError::Limits(_)) => return Err(too_large),
        Err(e) => return Err(corrupt(e)),
    };
    let levels = match &decoded {
        DynamicImage::ImageLuma16(gray) => {
            let stored: Vec<i32> = gray.as_raw().iter().map(|&v| i32::from(v)).collect();
            let modality = gray.as_raw().iter().map(|&v| f32::from(v)).collect();
            Some(Arc::new(GrayLevels::new(width, height, stored, modality)))
        }
        _ => None,
    };
    Ok(SourceImage {
        name: file,
        rgb: to_rgb_like_pil(decoded),
        format: format_name,
        levels,
        dicom: None,
        sha256,
    })
}

/// Refuses an image of `width` x `height` (kept at full gray depth: `levels`) whose estimated
/// cost exceeds `budget`.
pub(crate) fn within_budget(
    file: &str,
    width: u32,
    height: u32,
    levels: bool,
    budget: Option<u64>,
) -> Result<(), ImageError> {
    budget::check(width, height, levels, budget).map_err(|over| ImageError::OverBudget {
        file: file.to_string(),
        width,
        height,
        needed: over.needed,
        budget: over.budget,
    })
}

/// PIL's `Image.convert("L")` (ITU-R 601-2 luma, PIL's fixed-point rounding) of the RGB
/// pixels PIL's `convert("RGB")` gives.
///
/// A grayscale model's training code does `Image.open(p).convert("L")` on the file, not on its
/// RGB conversion; with Pillow 13 the two agree bit for bit for every mode PIL opens (L, LA,
/// I;16, I, F, 1, P with and without transparency, RGB, RGBA, CMYK: measured by
/// tests/fixtures/make_channel_fixtures.py), because Pillow converts to L through the same
/// clipping, palette lookup and alpha dropping as to RGB, and the luma of a grey pixel is the
/// grey itself.
pub fn to_luma_like_pil(rgb: &RgbImage) -> GrayImage {
    use rayon::prelude::*;
    const PIXELS_PER_PIECE: usize = 64 * 1024;
    let (w, h) = rgb.dimensions();
    let mut luma = vec![0u8; w as usize * h as usize];
    luma.par_chunks_mut(PIXELS_PER_PIECE)
        .zip(rgb.as_raw().par_chunks(3 * PIXELS_PER_PIECE))
        .for_each(|(out, pixels)| {
            for (o, p) in out.iter_mut().zip(pixels.chunks_exact(3)) {
                let [r, g, b] = [p[0], p[1], p[2]].map(u32::from);
                // Convert.c: L24(rgb) >> 16
                *o = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8;
            }
        });
    GrayImage::from_raw(w, h, luma).unwrap_or_default()
}

/// PIL's `Image.convert("RGB")` of what PIL would have opened.
pub fn to_rgb_like_pil(img: DynamicImage) -> RgbImage {
    use DynamicImage as I;
    let (w, h) = (img.width(), img.height());
    let from_fn =
        |f: &dyn Fn(u32, u32) -> [u8; 3]| RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    // PIL opens 16-bit grayscale as I;16 and clips it to 255 on conversion.
    let clip16 = |v: u16| v.min(255) as u8;
    // PIL unpacks 16-bit colour PNG/TIFF channels by their most significant byte.
    let high = |v: u16| (v >> 8) as u8;
    // PIL's float ("F") images convert by clipping the value, not scaling it.
    let clipf = |v: f32| v.clamp(0.0, 255.0).round() as u8;
    match img {
        I::ImageRgb8(rgb) => rgb,
        I::ImageRgba8(i) => from_fn(&|x, y| {
            let p = i.get_pixel(x, y).0;
            [p[0], p[1], p[2]]
        }),
        I::ImageLuma8(i) => from_fn(&|x, y| [i.get_pixel(x, y).0[0]; 3]),
        I::ImageLumaA8(i) => from_fn(&|x, y| [i.get_pixel(x, y).0[0]; 3]),
        I::ImageLuma16(i) => from_fn(&|x, y| [clip16(i.get_pixel(x, y).0[0]); 3]),
        // PIL opens a 16-bit grey + alpha PNG as RGBA from the high bytes ("LA;16B"), not as
        // I;16 (it opens no 16-bit grey + alpha TIFF at all).
        I::ImageLumaA16(i) => from_fn(&|x, y| [high(i.get_pixel(x, y).0[0]); 3]),
        I::ImageRgb16(i) => from_fn(&|x, y| i.get_pixel(x, y).0.map(high)),
        I::ImageRgba16(i) => from_fn(&|x, y| {
            let p = i.get_pixel(x, y).0;
            [high(p[0]), high(p[1]), high(p[2])]
        }),
        I::ImageRgb32F(i) => from_fn(&|x, y| i.get_pixel(x, y).0.map(clipf)),
        I::ImageRgba32F(i) => from_fn(&|x, y| {
            let p = i.get_pixel(x, y).0;
            [clipf(p[0]), clipf(p[1]), clipf(p[2])]
        }),
        other => other.to_rgb8(),
    }
}

/// A PNG palette (PLTE) that is not whole RGB entries, 1 to 256 of them, which the png crate
/// (0.18.1) does not check and then panics on while expanding it (found by fuzzing; PIL
/// refuses such a file). The chunks before the image data are looked at.
fn damaged_png_palette(bytes: &[u8]) -> Option<String> {
    let mut at = 8;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        match &header[4..8] {
            b"PLTE" if len == 0 || !len.is_multiple_of(3) || len > 768 => {
                return Some(format!(
                    "its palette (PLTE) holds {len} bytes, not 1 to 256 RGB entries"
                ));
            }
            b"IDAT" | b"IEND" => return None,
            _ => at = at.saturating_add(12).saturating_add(len),
        }
    }
    None
}

/// Why a JPEG file ends before its image data does, if it does: there is no end-of-image marker
/// (EOI) after its first scan. The `image` crate's JPEG decoder (zune-jpeg, not in strict mode,
/// which would also refuse damage that libjpeg and PIL forgive) fills the missing rows in and
/// succeeds; PIL refuses such a file ("image file is truncated"), so a model trained through PIL
/// never saw one. A small walk of the markers rather than a library call: zune-jpeg does not
/// say whether it ran out of data. Bytes after the end-of-image marker are allowed, as in PIL.
fn truncated_jpeg(bytes: &[u8]) -> Option<String> {
    const MESSAGE: &str = "the file ends before its image data does (no end-of-image marker): \
                           it was cut short";
    let mut at = 2; // after the start-of-image marker
    loop {
        // The next marker: outside a scan, bytes between segments are skipped (as libjpeg
        // does); inside one, 0xFF is always followed by a marker code or a stuffed zero.
        let marker = bytes
            .get(at..)
            .and_then(|rest| rest.iter().position(|&b| b == 0xFF))
            .map(|offset| at + offset);
        let Some((marker, &code)) = marker.and_then(|m| Some((m, bytes.get(m + 1)?))) else {
            return Some(MESSAGE.to_string());
        };
        at = marker;
        match code {
            0xD9 => return None,
            // A stuffed zero in a scan, or a fill byte before a marker.
            0x00 | 0xFF => at += 1,
            // Restart markers and TEM carry no length.
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let Some(len) = bytes.get(at + 2..at + 4) else {
                    return Some(MESSAGE.to_string());
                };
                at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_huge_header_before_allocating() {
        // A 24-bit BMP header claiming 60000 x 60000 pixels, with no pixel data.
        let mut bmp = Vec::new();
        bmp.extend_from_slice(b"BM");
        bmp.extend_from_slice(&(54u32).to_le_bytes());
        bmp.extend_from_slice(&[0; 4]);
        bmp.extend_from_slice(&(54u32).to_le_bytes());
        bmp.extend_from_slice(&(40u32).to_le_bytes());
        bmp.extend_from_slice(&(60000i32).to_le_bytes());
        bmp.extend_from_slice(&(60000i32).to_le_bytes());
        bmp.extend_from_slice(&(1u16).to_le_bytes());
        bmp.extend_from_slice(&(24u16).to_le_bytes());
        bmp.extend_from_slice(&[0; 24]);
        let err = decode_image("huge.bmp", &bmp).unwrap_err().to_string();
        assert_eq!(
            err,
            "huge.bmp: the image is 60000 x 60000 pixels, larger than camview opens \
             (20000 x 20000, and 1.5 GiB of decoded pixels, at most)"
        );
    }

    /// The cuts and PIL's verdicts of tests/fixtures/jpeg/truncation_pil.py: a JPEG without its
    /// end-of-image marker is refused, baseline and progressive (ten scans, with Huffman tables
    /// between them); bytes after the marker are not.
    #[test]
    fn jpeg_cut_short_is_refused_as_pil_refuses_it() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for path in [
            fixtures.join("images/photo.jpg"),
            fixtures.join("jpeg/progressive.jpg"),
        ] {
            let whole = std::fs::read(&path).unwrap();
            let mut after = whole.clone();
            after.extend_from_slice(&b"junk".repeat(10));
            for (cut, bytes) in [("whole", &whole[..]), ("bytes after the end", &after[..])] {
                let image = decode_image("cut.jpg", bytes)
                    .unwrap_or_else(|e| panic!("{}, {cut}: {e}", path.display()));
                assert_eq!((image.width(), image.height()), (96, 72));
            }
            for (cut, len) in [
                ("no end-of-image marker", whole.len() - 2),
                ("last 10 bytes cut", whole.len() - 10),
                ("cut in half", whole.len() / 2),
            ] {
                let err = decode_image("cut.jpg", &whole[..len])
                    .map(|_| ())
                    .unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "cut.jpg: the JPEG image is damaged or unsupported: the file ends before \
                     its image data does (no end-of-image marker): it was cut short",
                    "{}, {cut}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn empty_and_unknown_files_are_named() {
        assert_eq!(
            decode_image("a.bmp", &[]).unwrap_err().to_string(),
            "a.bmp: the file is empty"
        );
        assert_eq!(
            decode_image("notes.txt", b"hello, this is not an image")
                .unwrap_err()
                .to_string(),
            "notes.txt: not an image camview can read (BMP, PNG, JPEG, TIFF or DICOM)"
        );
    }

    #[test]
    fn truncated_png_is_reported_as_damaged() {
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        for cut in [20, 40, png.len() / 2, png.len() - 13] {
            let err = decode_image("cut.png", &png[..cut])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("cut.png: "), "{err}");
        }
    }

    #[test]
    fn sixteen_bit_follows_pil() {
        let gray =
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 1, vec![7u16, 255, 40000])
                .unwrap();
        let rgb = to_rgb_like_pil(DynamicImage::ImageLuma16(gray));
        assert_eq!(rgb.as_raw(), &[7, 7, 7, 255, 255, 255, 255, 255, 255]);
        let colour = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(
            1,
            1,
            vec![0x1234u16, 0xff00, 0x00ff],
        )
        .unwrap();
        let rgb = to_rgb_like_pil(DynamicImage::ImageRgb16(colour));
        assert_eq!(rgb.as_raw(), &[0x12, 0xff, 0x00]);
    }

    #[test]
    fn luma_is_pil_s_fixed_point_itu_601() {
        let rgb = RgbImage::from_raw(
            5,
            1,
            vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 77, 77, 77, 10, 200, 31],
        )
        .unwrap();
        // Pillow 13: Image.frombytes("RGB", (5, 1), ..).convert("L")
        assert_eq!(to_luma_like_pil(&rgb).as_raw(), &[76, 150, 29, 77, 124]);
    }
}
