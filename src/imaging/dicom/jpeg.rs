//! Lossy JPEG frames whose DICOM Photometric Interpretation is RGB and whose stream says
//! nothing of its colours (no JFIF, no Adobe marker): PS3.5 8.2.1 has the DICOM attribute
//! decide, so the samples are RGB as stored. jpeg-decoder (through dicom-rs) would read such a
//! stream by the JPEG convention, as YCbCr, and turn every colour wrong; here it is told.

use jpeg_decoder::{ColorTransform, Decoder};

/// Whether the stream names its colour transform (APP0 "JFIF" or APP14 "Adobe") before its
/// first scan.
fn names_its_colours(stream: &[u8]) -> bool {
    let mut at = 2;
    while let Some(&[0xFF, marker, hi, lo]) = stream.get(at..at + 4) {
        if marker == 0xDA {
            break;
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let body = stream.get(at + 4..at + 2 + len).unwrap_or_default();
        if (marker == 0xE0 && body.starts_with(b"JFIF"))
            || (marker == 0xEE && body.starts_with(b"Adobe"))
        {
            return true;
        }
        at += 2 + len;
    }
    false
}

/// The frame's stream: all fragments of a single-frame file, or the frame's own fragment.
pub(super) fn frame_stream(fragments: &[Vec<u8>], frames: u32, frame: u32) -> Option<Vec<u8>> {
    if frames == 1 {
        Some(fragments.concat())
    } else if fragments.len() == frames as usize {
        fragments.get(frame as usize - 1).cloned()
    } else {
        None
    }
}

/// The RGB samples of `stream` when it must be read as RGB against the JPEG convention;
/// `None` when the usual decoding is right (the stream names its colours).
pub(super) fn decode_as_stored_rgb(stream: &[u8]) -> Option<Result<Vec<u8>, String>> {
    if !stream.starts_with(&[0xFF, 0xD8]) || names_its_colours(stream) {
        return None;
    }
    let mut decoder = Decoder::new(stream);
    decoder.set_color_transform(ColorTransform::RGB);
    Some(
        decoder
            .decode()
            .map_err(|e| format!("cannot decode the JPEG pixel data: {e}")),
    )
}
