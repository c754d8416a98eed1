//! RLE Lossless (PS3.5 Annex G), decoded here rather than by dicom-rs's adapter, which panics
//! on a damaged segment (an index past the decoded bytes) and allocates a damaged header's
//! segment count before checking it. Every length here is checked against the fragment.

/// One frame's fragment decoded to little-endian samples, pixel-interleaved: `samples` samples
/// of `bytes_per_sample` bytes for each of `pixels` pixels.
pub(super) fn decode_rle_frame(
    fragment: &[u8],
    pixels: usize,
    samples: usize,
    bytes_per_sample: usize,
) -> Result<Vec<u8>, String> {
    let damaged = |what: &str| format!("the RLE pixel data is damaged: {what}");
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = fragment.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = word(0).ok_or_else(|| damaged("the fragment has no RLE header"))?;
    let planes = samples * bytes_per_sample;
    if count != planes || count > 15 {
        return Err(damaged(&format!(
            "{count} segments where the image needs {planes}"
        )));
    }
    let mut offsets: Vec<usize> = (0..count)
        .map(|i| word(4 + 4 * i).ok_or_else(|| damaged("the RLE header is cut short")))
        .collect::<Result<_, _>>()?;
    offsets.push(fragment.len());
    let mut out = vec![0u8; pixels * planes];
    for plane in 0..planes {
        let (start, end) = (offsets[plane], offsets[plane + 1]);
        let segment = fragment
            .get(start..end.max(start))
            .filter(|_| start >= 64 && start <= end)
            .ok_or_else(|| damaged(&format!("segment {plane} lies outside the fragment")))?;
        let decoded = unpack_bits(segment, pixels);
        if decoded.len() < pixels {
            return Err(damaged(&format!(
                "segment {plane} holds {} of {pixels} pixels",
                decoded.len()
            )));
        }
        // Segments run most significant byte first within each sample.
        let sample = plane / bytes_per_sample;
        let byte = bytes_per_sample - 1 - plane % bytes_per_sample;
        let at = sample * bytes_per_sample + byte;
        for (i, &v) in decoded.iter().take(pixels).enumerate() {
            out[i * planes + at] = v;
        }
    }
    Ok(out)
}

/// PackBits (PS3.5 G.3.1), stopping once `wanted` bytes are out.
fn unpack_bits(segment: &[u8], wanted: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(wanted);
    let mut i = 0;
    while i < segment.len() && out.len() < wanted {
        let n = segment[i] as i8;
        i += 1;
        match n {
            0..=127 => {
                let run = usize::from(n as u8) + 1;
                let end = (i + run).min(segment.len());
                out.extend_from_slice(&segment[i..end]);
                i = end;
            }
            -127..=-1 => {
                if let Some(&v) = segment.get(i) {
                    out.extend(std::iter::repeat_n(v, usize::from(n.unsigned_abs()) + 1));
                }
                i += 1;
            }
            -128 => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_literal_and_repeat_runs() {
        // 3 literals, then 4 repeats of 9, then a no-op.
        assert_eq!(
            unpack_bits(&[2, 1, 2, 3, 0xFD, 9, 0x80], 100),
            vec![1, 2, 3, 9, 9, 9, 9]
        );
    }

    #[test]
    fn damaged_headers_are_refused() {
        let mut frame = vec![0u8; 64];
        frame[0] = 2;
        let err = decode_rle_frame(&frame, 4, 1, 2).unwrap_err();
        assert!(err.contains("segment 0 lies outside the fragment"), "{err}");
        frame[0] = 0xFF;
        frame[3] = 0xFF;
        let err = decode_rle_frame(&frame, 4, 1, 2).unwrap_err();
        assert!(err.contains("segments where the image needs 2"), "{err}");
    }
}
