//! One frame's pixels: native pixel data read here, encapsulated pixel data through
//! dicom-pixeldata's decoders; then stored values, the Modality LUT, and colour.

use std::sync::Arc;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::attributes::{DicomIdentifiers, PatientStudy, number, numbers, text};
use super::{DicomInfo, GrayOrColour};
use super::{jpeg, rle};
use crate::imaging::decode::MAX_SIDE;
use crate::imaging::levels::{GrayLevels, LookupTable, Voi, Window, WindowFunction};

/// The image attributes of PS3.3 C.7.6.3 that decoding needs.
struct Layout {
    rows: u32,
    columns: u32,
    frames: u32,
    samples: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    planar: bool,
    photometric: String,
}

impl Layout {
    fn of(object: &InMemDicomObject) -> Result<Self, String> {
        let required = |tag, name: &str| {
            number(object, tag).ok_or_else(|| format!("the DICOM file has no {name}"))
        };
        if object.get(tags::PIXEL_DATA).is_none() {
            let what = text(object, tags::SOP_CLASS_UID)
                .map(|uid| sop_class_name(&uid))
                .unwrap_or_else(|| "a DICOM object".to_string());
            return Err(format!(
                "the DICOM file has no pixel data (it is {what}, not an image)"
            ));
        }
        let rows = required(tags::ROWS, "Rows")? as u32;
        let columns = required(tags::COLUMNS, "Columns")? as u32;
        let bits_allocated = required(tags::BITS_ALLOCATED, "Bits Allocated")? as u16;
        let layout = Self {
            rows,
            columns,
            frames: number(object, tags::NUMBER_OF_FRAMES).map_or(1, |n| n.max(1.0) as u32),
            samples: number(object, tags::SAMPLES_PER_PIXEL).map_or(1, |n| n as u16),
            bits_allocated,
            bits_stored: number(object, tags::BITS_STORED).map_or(bits_allocated, |n| n as u16),
            signed: number(object, tags::PIXEL_REPRESENTATION) == Some(1.0),
            planar: number(object, tags::PLANAR_CONFIGURATION) == Some(1.0),
            photometric: text(object, tags::PHOTOMETRIC_INTERPRETATION)
                .unwrap_or_else(|| "MONOCHROME2".to_string()),
        };
        layout.check()?;
        Ok(layout)
    }

    fn check(&self) -> Result<(), String> {
        if self.rows == 0 || self.columns == 0 {
            return Err("the image is 0 pixels wide or high".to_string());
        }
        if self.rows > MAX_SIDE || self.columns > MAX_SIDE {
            return Err(format!(
                "the image is {} x {} pixels, larger than camview opens ({MAX_SIDE} x {MAX_SIDE})",
                self.columns, self.rows
            ));
        }
        if ![1, 8, 16, 32].contains(&self.bits_allocated) {
            return Err(format!(
                "Bits Allocated {} is not one camview reads (1, 8, 16 or 32)",
                self.bits_allocated
            ));
        }
        if self.bits_stored == 0 || self.bits_stored > self.bits_allocated {
            return Err(format!(
                "Bits Stored {} does not fit Bits Allocated {}",
                self.bits_stored, self.bits_allocated
            ));
        }
        match (self.samples, self.photometric.as_str()) {
            (1, "MONOCHROME1" | "MONOCHROME2" | "PALETTE COLOR") => Ok(()),
            // YBR_RCT and YBR_ICT are JPEG 2000's colour transforms, undone by its decoder.
            (3, "RGB" | "YBR_FULL" | "YBR_FULL_422" | "YBR_RCT" | "YBR_ICT") => Ok(()),
            (samples, pi) => Err(format!(
                "photometric interpretation {pi} with {samples} samples per pixel is not one \
                 camview reads (MONOCHROME1, MONOCHROME2, PALETTE COLOR, RGB, YBR_FULL, \
                 YBR_FULL_422)"
            )),
        }
    }

    fn bytes_per_sample(&self) -> usize {
        usize::from(self.bits_allocated / 8)
    }

    fn pixels(&self) -> usize {
        self.rows as usize * self.columns as usize
    }

    /// Refuses pixel data of `held` bytes where the frames need `needed` (`what`: how wide a
    /// pixel is, when it is not the usual).
    fn check_holds(&self, held: usize, needed: usize, what: &str) -> Result<(), String> {
        if held >= needed {
            return Ok(());
        }
        Err(format!(
            "the pixel data holds {held} bytes, but {} x {} pixels x {} frame{}{what} need {needed}",
            self.columns,
            self.rows,
            self.frames,
            if self.frames == 1 { "" } else { "s" }
        ))
    }

    /// Bytes of one native frame (YBR_FULL_422 holds two samples a pixel, PS3.5 8.2.1).
    fn native_frame_bytes(&self) -> usize {
        let samples = if self.photometric == "YBR_FULL_422" {
            self.pixels() * 2
        } else {
            self.pixels() * usize::from(self.samples)
        };
        samples * self.bytes_per_sample()
    }
}

/// A friendly name for the SOP classes that carry no pixels.
fn sop_class_name(uid: &str) -> String {
    match uid {
        "1.2.840.10008.5.1.4.1.1.88.11" => "a Basic Text SR",
        "1.2.840.10008.5.1.4.1.1.88.22" => "an Enhanced SR",
        "1.2.840.10008.5.1.4.1.1.88.33" => "a Comprehensive SR",
        "1.2.840.10008.5.1.4.1.1.481.5" => "an RT Plan",
        "1.2.840.10008.5.1.4.1.1.481.3" => "an RT Structure Set",
        "1.2.840.10008.5.1.4.1.1.104.1" => "an encapsulated PDF",
        _ => return format!("SOP class {uid}"),
    }
    .to_string()
}

/// Decodes frame `frame` (from 1) of `object`.
/// The image's width and height (checked as `decode_frame` checks them), and whether it is
/// gray (kept at full depth), to weigh it against the memory budget before its pixels are
/// decoded.
pub(super) fn dimensions(object: &DefaultDicomObject) -> Result<(u32, u32, bool), String> {
    let layout = Layout::of(object)?;
    Ok((layout.columns, layout.rows, layout.samples == 1))
}

pub(super) fn decode_frame(
    object: &DefaultDicomObject,
    frame: u32,
) -> Result<(GrayOrColour, DicomInfo), String> {
    let layout = Layout::of(object)?;
    if frame == 0 || frame > layout.frames {
        return Err(format!(
            "there is no frame {frame}: the file has {} frame{}",
            layout.frames,
            if layout.frames == 1 { "" } else { "s" }
        ));
    }
    let ts_uid = object.meta().transfer_syntax().trim_end_matches('\0');
    let ts = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or_else(|| format!("the transfer syntax {ts_uid} is not one camview knows"))?;
    let (samples, photometric) = if ts.is_encapsulated_pixel_data() {
        let (bytes, photometric) = encapsulated_frame(object, &layout, ts, ts_uid, frame)?;
        (samples_of(&layout, &bytes, false)?, photometric)
    } else {
        let samples = if layout.bits_allocated == 1 {
            bit_samples(object, &layout, frame)?
        } else {
            samples_of(
                &layout,
                &native_frame(object, &layout, frame)?,
                layout.planar,
            )?
        };
        (samples, layout.photometric.clone())
    };
    let info = DicomInfo {
        modality: text(object, tags::MODALITY),
        body_part: text(object, tags::BODY_PART_EXAMINED),
        rows: layout.rows,
        columns: layout.columns,
        pixel_spacing: match numbers(object, tags::PIXEL_SPACING)[..] {
            [r, c, ..] => Some([r, c]),
            _ => None,
        },
        frame,
        frames: layout.frames,
        photometric: layout.photometric.clone(),
        transfer_syntax: ts.name().to_string(),
        identifiers: DicomIdentifiers::of(object),
        patient_study: Arc::new(PatientStudy::of(object)),
    };
    let image = match photometric.as_str() {
        "MONOCHROME1" | "MONOCHROME2" => {
            GrayOrColour::Gray(gray_levels(object, &layout, &info, samples, frame)?)
        }
        "PALETTE COLOR" => GrayOrColour::Colour(palette(object, &layout, &samples)?),
        "YBR_FULL_422" => GrayOrColour::Colour(ybr_422(&layout, &samples)?),
        "RGB" => GrayOrColour::Colour(colour(&layout, &samples, false)?),
        "YBR_FULL" => GrayOrColour::Colour(colour(&layout, &samples, true)?),
        other => {
            return Err(format!(
                "photometric interpretation {other} is JPEG 2000's, but the pixel data is not \
                 JPEG 2000"
            ));
        }
    };
    Ok((image, info))
}

/// Explicit VR Big Endian's transfer syntax UID.
const EXPLICIT_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// JPEG baseline and extended (lossy) transfer syntax UIDs.
const LOSSY_JPEG: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];

/// RLE Lossless's transfer syntax UID.
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// The decoded bytes of encapsulated frame `frame` (from 1), as little-endian samples, and the
/// photometric interpretation they are in.
fn encapsulated_frame(
    object: &DefaultDicomObject,
    layout: &Layout,
    ts: &dicom_encoding::TransferSyntax,
    ts_uid: &str,
    frame: u32,
) -> Result<(Vec<u8>, String), String> {
    if !ts.can_decode_all() {
        return Err(format!(
            "the pixel data is compressed as {} ({ts_uid}), which camview cannot decode",
            ts.name()
        ));
    }
    if ts_uid == RLE_LOSSLESS {
        // One fragment per frame (PS3.5 G.2), RLE-decoded here (`rle.rs` says why).
        let fragment = match object.get(tags::PIXEL_DATA).map(|e| e.value()) {
            Some(Value::PixelSequence(seq)) => seq.fragments().get(frame as usize - 1).cloned(),
            _ => None,
        }
        .ok_or_else(|| format!("the RLE pixel data has no fragment for frame {frame}"))?;
        let bytes = rle::decode_rle_frame(
            &fragment,
            layout.pixels(),
            usize::from(layout.samples),
            layout.bytes_per_sample(),
        )?;
        return Ok((bytes, layout.photometric.clone()));
    }
    // jpeg-decoder (dicom-rs's pure-Rust JPEG codec) reads 8-bit lossy JPEG only.
    if ts_uid == "1.2.840.10008.1.2.4.51" && layout.bits_stored > 8 {
        return Err(format!(
            "the pixel data is {}-bit {} ({ts_uid}), which camview cannot decode: its \
             JPEG decoder reads lossy JPEG at 8 bits only",
            layout.bits_stored,
            ts.name()
        ));
    }
    if layout.samples == 3 && layout.photometric == "RGB" && LOSSY_JPEG.contains(&ts_uid) {
        let stream = match object.get(tags::PIXEL_DATA).map(|e| e.value()) {
            Some(Value::PixelSequence(seq)) => {
                jpeg::frame_stream(seq.fragments(), layout.frames, frame)
            }
            _ => None,
        };
        if let Some(decoded) = stream.as_deref().and_then(jpeg::decode_as_stored_rgb) {
            return Ok((decoded?, "RGB".to_string()));
        }
    }
    let decoded = object
        .decode_pixel_data_frame(frame - 1)
        .map_err(|e| format!("cannot decode the {} pixel data: {e}", ts.name()))?;
    // The JPEG family's decoders return RGB.
    let photometric = if layout.samples == 3 {
        "RGB".to_string()
    } else {
        layout.photometric.clone()
    };
    let bytes = decoded
        .frame_data(0)
        .map_err(|e| format!("cannot decode the {} pixel data: {e}", ts.name()))?;
    Ok((bytes.to_vec(), photometric))
}

/// The bytes of native frame `frame` (from 1), as little-endian samples.
fn native_frame(
    object: &DefaultDicomObject,
    layout: &Layout,
    frame: u32,
) -> Result<Vec<u8>, String> {
    let element = object
        .get(tags::PIXEL_DATA)
        .ok_or("the DICOM file has no pixel data")?;
    // dicom-rs hands OW values over as native 16-bit words. In big endian files a 32-bit
    // sample is two words, high first; bytes (OB) keep the file's order, so a big endian
    // sample's bytes are turned round.
    let big_endian = object.meta().transfer_syntax().trim_end_matches('\0') == EXPLICIT_BIG_ENDIAN;
    let width = layout.bytes_per_sample();
    let bytes: Vec<u8> = match element.value() {
        Value::Primitive(PrimitiveValue::U16(v)) if big_endian && width == 4 => v
            .chunks_exact(2)
            .flat_map(|w| ((u32::from(w[0]) << 16) | u32::from(w[1])).to_le_bytes())
            .collect(),
        Value::Primitive(PrimitiveValue::U16(v)) => {
            v.iter().flat_map(|s| s.to_le_bytes()).collect()
        }
        Value::Primitive(PrimitiveValue::I16(v)) => {
            v.iter().flat_map(|s| s.to_le_bytes()).collect()
        }
        Value::Primitive(PrimitiveValue::U32(v)) => {
            v.iter().flat_map(|s| s.to_le_bytes()).collect()
        }
        Value::Primitive(PrimitiveValue::F32(v)) => {
            v.iter().flat_map(|s| s.to_le_bytes()).collect()
        }
        Value::Primitive(PrimitiveValue::U8(v)) if big_endian && width > 1 => v
            .chunks_exact(width)
            .flat_map(|c| c.iter().rev().copied())
            .collect(),
        Value::Primitive(p) => p.to_bytes().into_owned(),
        _ => return Err("the pixel data is not stored as pixels".to_string()),
    };
    let size = layout.native_frame_bytes();
    layout.check_holds(bytes.len(), size * layout.frames as usize, "")?;
    let start = size * (frame as usize - 1);
    Ok(bytes[start..start + size].to_vec())
}

/// The 0/1 samples of a native 1-bit frame (a segmentation or overlay-like image): the bits run
/// on across frames, least significant bit first (PS3.5 8.1.1).
fn bit_samples(
    object: &DefaultDicomObject,
    layout: &Layout,
    frame: u32,
) -> Result<Vec<i32>, String> {
    let bytes = match object.get(tags::PIXEL_DATA).map(|e| e.value()) {
        Some(Value::Primitive(p)) => p.to_bytes().into_owned(),
        _ => return Err("the 1-bit pixel data is not stored as pixels".to_string()),
    };
    let n = layout.pixels() * usize::from(layout.samples);
    let needed = (n * layout.frames as usize).div_ceil(8);
    layout.check_holds(bytes.len(), needed, " of 1 bit")?;
    let start = n * (frame as usize - 1);
    Ok((start..start + n)
        .map(|bit| i32::from((bytes[bit / 8] >> (bit % 8)) & 1))
        .collect())
}

/// The samples of a frame as integers (masked to Bits Stored, sign-extended), interleaved
/// (planar configuration 1 is reordered here).
fn samples_of(layout: &Layout, bytes: &[u8], planar: bool) -> Result<Vec<i32>, String> {
    let width = layout.bytes_per_sample();
    if width == 0 {
        return Err("1-bit pixel data is read uncompressed only".to_string());
    }
    let raw: Vec<u32> = bytes
        .chunks_exact(width)
        .map(|c| match *c {
            [a] => u32::from(a),
            [a, b] => u32::from(u16::from_le_bytes([a, b])),
            [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
            _ => 0,
        })
        .collect();
    let bits = u32::from(layout.bits_stored);
    let mask = if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let value = |v: u32| -> i32 {
        let v = v & mask;
        if layout.signed && bits < 32 && v & (1 << (bits - 1)) != 0 {
            (v as i64 - (1i64 << bits)) as i32
        } else {
            v as i32
        }
    };
    let samples: Vec<i32> = raw.into_iter().map(value).collect();
    if !planar || layout.samples == 1 {
        return Ok(samples);
    }
    let n = layout.pixels();
    if samples.len() < 3 * n {
        return Err("the pixel data is shorter than the image".to_string());
    }
    Ok((0..n)
        .flat_map(|i| [samples[i], samples[n + i], samples[2 * n + i]])
        .collect())
}

/// A monochrome frame's stored values through the Modality LUT, with the file's windows.
fn gray_levels(
    object: &DefaultDicomObject,
    layout: &Layout,
    info: &DicomInfo,
    stored: Vec<i32>,
    frame: u32,
) -> Result<GrayLevels, String> {
    let n = layout.pixels();
    if stored.len() < n {
        return Err("the pixel data is shorter than the image".to_string());
    }
    let mut stored = stored;
    stored.truncate(n);
    let per_frame = |values: Vec<f64>| -> Option<f64> {
        values.get(frame as usize - 1).or(values.first()).copied()
    };
    let modality: Vec<f32> = match lut_sequence(object, tags::MODALITY_LUT_SEQUENCE)? {
        Some(lut) => stored
            .iter()
            .map(|&v| lut.lookup(f64::from(v)) as f32)
            .collect(),
        None => {
            let slope = per_frame(numbers(object, tags::RESCALE_SLOPE)).unwrap_or(1.0);
            let intercept = per_frame(numbers(object, tags::RESCALE_INTERCEPT)).unwrap_or(0.0);
            stored
                .iter()
                .map(|&v| (stored_value(layout, v) * slope + intercept) as f32)
                .collect()
        }
    };
    let mut levels = GrayLevels::new(layout.columns, layout.rows, stored, modality);
    levels.inverted = layout.photometric == "MONOCHROME1";
    levels.unit = (info.modality.as_deref() == Some("CT")).then(|| "HU".to_string());
    levels.windows = windows(object);
    levels.file_voi = match (
        levels.windows.first(),
        lut_sequence(object, tags::VOILUT_SEQUENCE)?,
    ) {
        (Some(w), _) => Voi::Window(*w),
        (None, Some(lut)) => Voi::Lut(lut),
        (None, None) => Voi::MinMax,
    };
    Ok(levels)
}

/// A stored sample as a number: unsigned 32-bit samples are held as i32 bits.
fn stored_value(layout: &Layout, v: i32) -> f64 {
    if layout.signed {
        f64::from(v)
    } else {
        f64::from(v as u32)
    }
}

/// The file's windows (centre, width and function), the invalid ones left out.
fn windows(object: &InMemDicomObject) -> Vec<Window> {
    let centers = numbers(object, tags::WINDOW_CENTER);
    let widths = numbers(object, tags::WINDOW_WIDTH);
    let functions: Vec<String> = object
        .get(tags::VOILUT_FUNCTION)
        .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
        .unwrap_or_default();
    centers
        .iter()
        .zip(&widths)
        .enumerate()
        .filter_map(|(i, (&center, &width))| {
            let function = functions
                .get(i)
                .or(functions.first())
                .map_or(Some(WindowFunction::Linear), |f| {
                    WindowFunction::from_dicom(f)
                })?;
            Some(Window {
                center,
                width,
                function,
            })
        })
        .filter(Window::is_valid)
        .collect()
}

/// The first item of a Modality or VOI LUT Sequence.
fn lut_sequence(
    object: &InMemDicomObject,
    tag: dicom_core::Tag,
) -> Result<Option<LookupTable>, String> {
    let Some(item) = object
        .get(tag)
        .and_then(|e| e.items())
        .and_then(|i| i.first())
    else {
        return Ok(None);
    };
    lookup_table(item, tags::LUT_DESCRIPTOR, tags::LUT_DATA).map(Some)
}

/// A LUT from its descriptor (entries, first mapped value, bits; 0 entries means 65536) and
/// data, checked to hold the entries it declares.
fn lookup_table(
    object: &InMemDicomObject,
    descriptor: dicom_core::Tag,
    data: dicom_core::Tag,
) -> Result<LookupTable, String> {
    let [entries, first, bits, ..] = numbers(object, descriptor)[..] else {
        return Err("a LUT Descriptor has fewer than 3 values".to_string());
    };
    let data = lut_data(object, data, bits as u16)?;
    let entries = if entries == 0.0 { 65536.0 } else { entries };
    if data.len() < entries as usize {
        return Err(format!(
            "a LUT holds {} entries but its descriptor says {entries}",
            data.len()
        ));
    }
    Ok(LookupTable {
        first: first as i64,
        bits: bits as u16,
        data,
    })
}

/// LUT Data as 16-bit entries (8-bit LUTs may be packed two a word or stored as bytes).
fn lut_data(item: &InMemDicomObject, tag: dicom_core::Tag, bits: u16) -> Result<Vec<u16>, String> {
    let element = item.get(tag).ok_or("a LUT has no data")?;
    Ok(match element.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => v.to_vec(),
        Value::Primitive(PrimitiveValue::I16(v)) => v.iter().map(|&x| x as u16).collect(),
        Value::Primitive(p) => {
            let bytes = p.to_bytes();
            if bits <= 8 {
                bytes.iter().map(|&b| u16::from(b)).collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect()
            }
        }
        _ => return Err("a LUT's data is not a list of numbers".to_string()),
    })
}

/// An 8-bit channel from a palette entry of `bits` bits: `round(v * 255 / (2^bits - 1))`.
fn palette_channel(v: f64, bits: u16) -> u8 {
    let max = (2f64).powi(i32::from(bits.clamp(1, 16))) - 1.0;
    (v * 255.0 / max).round().clamp(0.0, 255.0) as u8
}

/// PALETTE COLOR through the Red, Green and Blue Palette Color LUTs.
fn palette(
    object: &InMemDicomObject,
    layout: &Layout,
    samples: &[i32],
) -> Result<image::RgbImage, String> {
    let table = |descriptor, data| lookup_table(object, descriptor, data);
    let luts = [
        table(
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        )?,
        table(
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        )?,
        table(
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        )?,
    ];
    let rgb = samples
        .iter()
        .take(layout.pixels())
        .flat_map(|&v| {
            luts.each_ref()
                .map(|l| palette_channel(l.lookup(f64::from(v)), l.bits))
        })
        .collect();
    image_of(layout, rgb)
}

/// YBR_FULL to RGB as PS3.3 C.7.6.3.1.2 (pydicom's `convert_color_space` coefficients).
fn ybr_to_rgb(y: f64, cb: f64, cr: f64) -> [u8; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let r = y + 1.402 * cr;
    let g = y - (0.114 * 1.772 / 0.587) * cb - (0.299 * 1.402 / 0.587) * cr;
    let b = y + 1.772 * cb;
    [r, g, b].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// 8-bit channels of RGB or YBR_FULL samples (wider samples keep their high byte); too few
/// samples for the image's size (a frame that decoded short) is an error.
fn colour(layout: &Layout, samples: &[i32], ybr: bool) -> Result<image::RgbImage, String> {
    let shift = layout.bits_stored.saturating_sub(8);
    // Unsigned 32-bit samples are held as i32 bits: read them back as u32.
    let to8 = |v: i32| {
        let v = if layout.signed {
            v.max(0) as u32
        } else {
            v as u32
        };
        (v >> shift).min(255) as i32
    };
    let rgb = samples
        .chunks_exact(3)
        .take(layout.pixels())
        .flat_map(|p| {
            let [a, b, c] = [to8(p[0]), to8(p[1]), to8(p[2])];
            if ybr {
                ybr_to_rgb(f64::from(a), f64::from(b), f64::from(c))
            } else {
                [a as u8, b as u8, c as u8]
            }
        })
        .collect();
    image_of(layout, rgb)
}

/// Native YBR_FULL_422: each pair of pixels is stored Y1 Y2 Cb Cr (PS3.5 8.2.1).
fn ybr_422(layout: &Layout, samples: &[i32]) -> Result<image::RgbImage, String> {
    let (w, h) = (layout.columns as usize, layout.rows as usize);
    let per_row = w.div_ceil(2) * 4;
    if samples.len() < per_row * h {
        return Err("the pixel data is shorter than the image".to_string());
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in samples.chunks_exact(per_row).take(h) {
        for (x, group) in row.chunks_exact(4).enumerate() {
            let [y1, y2, cb, cr] = [group[0], group[1], group[2], group[3]].map(f64::from);
            rgb.extend(ybr_to_rgb(y1, cb, cr));
            if 2 * x + 1 < w {
                rgb.extend(ybr_to_rgb(y2, cb, cr));
            }
        }
    }
    image_of(layout, rgb)
}

fn image_of(layout: &Layout, rgb: Vec<u8>) -> Result<image::RgbImage, String> {
    image::RgbImage::from_raw(layout.columns, layout.rows, rgb)
        .ok_or_else(|| "the pixel data is shorter than the image".to_string())
}
