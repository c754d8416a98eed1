//! A walk over a file's element headers before dicom-rs parses it: every defined length must fit
//! in the bytes that follow. dicom-rs allocates and zero-fills an element's declared length
//! before reading it, so a damaged length of 4 GiB in a 16 KB file would cost seconds and
//! gigabytes before failing; here it is refused at once, naming the element.

/// How a data set is encoded.
#[derive(Clone, Copy, PartialEq)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

/// VRs with a 2-byte length in explicit VR (PS3.5 7.1.2); every other VR, and any unknown one
/// (which dicom-rs reads as UN), has a 4-byte length after 2 reserved bytes.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// The size of one value of a binary VR that dicom-rs reads as numbers (2, 4 or 8 bytes), or
/// `None` for the rest. dicom-rs reads `len / size` whole values and counts `len` bytes read,
/// so a length that is not a multiple would leave it reading the next element from elsewhere
/// than this walk (and allocating what it finds there).
fn value_size(vr: &[u8]) -> Option<u32> {
    match vr {
        b"US" | b"SS" | b"OW" => Some(2),
        b"UL" | b"SL" | b"FL" | b"OF" | b"OL" | b"AT" => Some(4),
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        _ => None,
    }
}

/// The VR dicom-rs gives an element of implicit VR: the standard dictionary's (group lengths
/// are UL), the stricter of the two where it names two (US or SS, OB or OW, US or OW).
fn implicit_vr(group: u16, element: u16) -> [u8; 2] {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    if element == 0 {
        return *b"UL";
    }
    let entry =
        dicom_dictionary_std::StandardDataDictionary.by_tag(dicom_core::Tag(group, element));
    match entry.map(|e| e.vr()) {
        Some(VirtualVr::Exact(vr)) => {
            let name = vr.to_string();
            name.as_bytes().try_into().unwrap_or(*b"UN")
        }
        Some(VirtualVr::Xs | VirtualVr::Ox | VirtualVr::Px | VirtualVr::Lt) => *b"OW",
        _ => *b"UN",
    }
}

struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Stop at the pixel data: only the header is there (a file's first bytes, read to sort a
    /// series).
    header_only: bool,
    /// Where the file meta group ends by its group length (0002,0000), as dicom-rs reads it:
    /// every element until that many bytes were read, whatever its group.
    meta_end: Option<usize>,
}

impl<'a> Walker<'a> {
    fn u16(&self, at: usize, big_endian: bool) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: usize, big_endian: bool) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// The element header at the walk's position in explicit VR: its VR, length (`None` when
    /// the bytes end) and size.
    fn explicit_header(&self, big_endian: bool) -> (&'a [u8], Option<u32>, usize) {
        let bytes: &'a [u8] = self.bytes;
        let vr = bytes.get(self.pos + 4..self.pos + 6).unwrap_or_default();
        if SHORT_VRS.iter().any(|v| v.as_slice() == vr) {
            (vr, self.u16(self.pos + 6, big_endian).map(u32::from), 8)
        } else {
            (vr, self.u32(self.pos + 8, big_endian), 12)
        }
    }

    /// Checks that `len` bytes follow the header just read, then skips them.
    fn skip(&mut self, group: u16, element: u16, len: u32) -> Result<(), String> {
        let remaining = self.bytes.len().saturating_sub(self.pos);
        if len as usize > remaining {
            return Err(format!(
                "the DICOM data set is damaged or cut short: element ({group:04X},{element:04X}) \
                 declares {len} bytes, but only {remaining} follow"
            ));
        }
        self.pos += len as usize;
        Ok(())
    }

    /// Walks elements until the bytes end (or a header is cut: dicom-rs reports that).
    /// Returns the transfer syntax UID when it walks the file meta group.
    fn walk(&mut self, encoding: Encoding, meta_only: bool) -> Result<Option<String>, String> {
        let mut syntax = None;
        // What each open sequence of undefined length holds, innermost last: elements in an
        // encoding (a UN sequence's items are implicit VR, PS3.5 6.2.2), or pixel data
        // fragments (bytes, not elements). Its delimiter closes it.
        let mut open: Vec<Option<Encoding>> = Vec::new();
        while self.pos + 8 <= self.bytes.len() {
            let inner = open.last().copied();
            let fragments = inner == Some(None);
            let encoding = inner.flatten().unwrap_or(encoding);
            let be = encoding.big_endian;
            let (Some(group), Some(element)) = (self.u16(self.pos, be), self.u16(self.pos + 2, be))
            else {
                break;
            };
            if meta_only {
                let meta_over = match self.meta_end {
                    Some(end) => self.pos >= end,
                    None => group != 0x0002,
                };
                if meta_over {
                    break;
                }
                // The meta is read whole, whatever it holds (a pixel data tag too).
                self.meta_element(group, element, &mut syntax)?;
                continue;
            }
            if self.header_only && (group, element) == (0x7FE0, 0x0010) {
                break;
            }
            if group == 0xFFFE {
                // Items and delimiters: a 4-byte length, whatever the VR encoding.
                let len = self.u32(self.pos + 4, be).unwrap_or(0);
                self.pos += 8;
                match element {
                    0xE0DD => {
                        open.pop();
                    }
                    0xE000 if fragments => self.skip(group, element, len)?,
                    0xE000 if len != UNDEFINED => self.check_fits("item", group, element, len)?,
                    0xE000 | 0xE00D => {}
                    // Group FFFE holds items and delimiters only (PS3.5 7.5); dicom-rs reads
                    // any other tag there as an element of the declared length.
                    _ => {
                        return Err(format!(
                            "the DICOM data set is damaged: ({group:04X},{element:04X}) is \
                             neither an item nor a delimiter"
                        ));
                    }
                }
                continue;
            }
            let (vr, len, header) = if encoding.explicit {
                self.explicit_header(be)
            } else {
                (&b""[..], self.u32(self.pos + 4, be), 8)
            };
            let Some(len) = len else { break };
            let implicit;
            let vr = if encoding.explicit {
                vr
            } else {
                implicit = implicit_vr(group, element);
                &implicit[..]
            };
            if let Some(size) = value_size(vr).filter(|&size| len != UNDEFINED && len % size != 0) {
                return Err(format!(
                    "the DICOM data set is damaged: element ({group:04X},{element:04X}) of VR \
                     {} declares {len} bytes, not a whole number of its {size}-byte values",
                    String::from_utf8_lossy(vr)
                ));
            }
            self.pos += header;
            if len == UNDEFINED {
                open.push(if (group, element) == (0x7FE0, 0x0010) {
                    None
                } else if vr == b"UN" {
                    Some(Encoding {
                        explicit: false,
                        big_endian: false,
                    })
                } else {
                    Some(encoding)
                });
                continue;
            }
            if vr == b"SQ" {
                // A sequence of defined length: dicom-rs reads its items' elements one by one
                // (allocating what each declares), so they are walked, not skipped.
                self.check_fits("element", group, element, len)?;
                continue;
            }
            self.skip(group, element, len)?;
        }
        Ok(syntax)
    }

    /// One element of the file meta group, read as dicom-rs reads it there: explicit VR little
    /// endian, each value as bytes of its length, whatever its tag (group FFFE too, with a
    /// 4-byte length and no VR) and VR (a sequence is not entered); an undefined length ends
    /// the walk (dicom-rs refuses it). Notes the transfer syntax UID.
    fn meta_element(
        &mut self,
        group: u16,
        element: u16,
        syntax: &mut Option<String>,
    ) -> Result<(), String> {
        let (len, header) = if group == 0xFFFE {
            (self.u32(self.pos + 4, false), 8)
        } else {
            let (_, len, header) = self.explicit_header(false);
            (len, header)
        };
        let Some(len) = len.filter(|&len| len != UNDEFINED) else {
            self.pos = self.bytes.len();
            return Ok(());
        };
        self.pos += header;
        if (group, element) == (0x0002, 0x0010) {
            let value = self.bytes.get(self.pos..self.pos + len as usize);
            *syntax = value.map(|v| {
                String::from_utf8_lossy(v)
                    .trim_end_matches(['\0', ' '])
                    .to_string()
            });
        }
        self.skip(group, element, len)
    }

    /// An item or sequence of defined length must fit; its elements are then walked one by one.
    fn check_fits(&self, what: &str, group: u16, element: u16, len: u32) -> Result<(), String> {
        let remaining = self.bytes.len().saturating_sub(self.pos);
        if len as usize > remaining {
            return Err(format!(
                "the DICOM data set is damaged or cut short: {what} ({group:04X},{element:04X}) \
                 declares {len} bytes, but only {remaining} follow"
            ));
        }
        Ok(())
    }
}

/// Checks the declared lengths of a file's elements (with or without preamble and file meta);
/// a deflated data set is inflated (at most `MAX_DECODED_BYTES`) and checked likewise.
/// With `header_only`, the walk stops at the pixel data (`bytes` may be the file's beginning).
pub(super) fn check_lengths(bytes: &[u8], header_only: bool) -> Result<(), String> {
    let little_explicit = Encoding {
        explicit: true,
        big_endian: false,
    };
    let start = if bytes.get(128..132) == Some(b"DICM") {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        let explicit = bytes
            .get(4..6)
            .is_some_and(|vr| vr.iter().all(u8::is_ascii_uppercase));
        // Big endian data sets are explicit VR, their group 0x0008 read as such.
        let big_endian = bytes.starts_with(&[0x00, 0x08]);
        // dicom-rs reads a data set without meta whole, pixel data included, even for the
        // header alone: every element is walked.
        let mut walker = Walker {
            bytes,
            pos: 0,
            header_only: false,
            meta_end: None,
        };
        walker.walk(
            Encoding {
                explicit,
                big_endian,
            },
            false,
        )?;
        return Ok(());
    };
    // (0002,0000) UL of 4 bytes first: the group's length, counted from the next element.
    let meta_end = (bytes.get(start..start + 8) == Some(&[2, 0, 0, 0, b'U', b'L', 4, 0]))
        .then(|| bytes.get(start + 8..start + 12))
        .flatten()
        .and_then(|v| v.try_into().ok())
        .map(|v: [u8; 4]| (start + 12).saturating_add(u32::from_le_bytes(v) as usize));
    let mut walker = Walker {
        bytes,
        pos: start,
        header_only,
        meta_end,
    };
    let syntax = walker.walk(little_explicit, true)?.ok_or(
        "not a readable DICOM file: its file meta information is damaged (it names no transfer \
         syntax)",
    )?;
    let encoding = match syntax.as_str() {
        "1.2.840.10008.1.2" => Encoding {
            explicit: false,
            big_endian: false,
        },
        "1.2.840.10008.1.2.2" => Encoding {
            explicit: true,
            big_endian: true,
        },
        "1.2.840.10008.1.2.1.99" => {
            use std::io::Read;
            let mut inflated = Vec::new();
            let rest = bytes.get(walker.pos..).unwrap_or_default();
            flate2::read::DeflateDecoder::new(rest)
                .take(crate::imaging::decode::MAX_DECODED_BYTES)
                .read_to_end(&mut inflated)
                .map_err(|e| format!("the deflated DICOM data set is damaged ({e})"))?;
            Walker {
                bytes: &inflated,
                pos: 0,
                header_only,
                meta_end: None,
            }
            .walk(little_explicit, false)?;
            return Ok(());
        }
        _ => little_explicit,
    };
    walker.walk(encoding, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the fuzzer found (tests/fixtures/dicom/fuzz) is refused by the walk itself, both
    /// before a whole read and before a header read (a series sorted by its headers): dicom-rs
    /// would otherwise allocate what the file declares.
    #[test]
    fn the_walk_refuses_what_the_fuzzer_found_for_whole_and_header_reads() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/fuzz");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Not a length: its pixel data decodes short (tests/dicom.rs).
            if !name.ends_with(".dcm") || name == "jpeg_frame_decodes_short.dcm" {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for header_only in [false, true] {
                assert!(
                    check_lengths(&bytes, header_only).is_err(),
                    "{name}, header only: {header_only}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 7);
    }
}
