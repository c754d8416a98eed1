//! The bytes of a pickle, read from a position that only moves forward.
//!
//! Every read is checked against the bytes that are really left, so a
//! hostile length is `Truncated` before anything is allocated for it.

use super::{PResult, PickleError};

pub(super) struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub(super) fn new(data: &'a [u8], start: usize) -> Self {
        Input { data, pos: start }
    }

    /// Offset of the next byte to read.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(super) fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
        let s = data.get(self.pos..end).ok_or(PickleError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    pub(super) fn array<const N: usize>(&mut self) -> PResult<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(super) fn u8(&mut self) -> PResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u32(&mut self) -> PResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A text line without its `\n` (protocol 0 opcodes).
    pub(super) fn line(&mut self) -> PResult<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).ok_or(PickleError::Truncated)?;
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        let line = rest.get(..n).ok_or(PickleError::Truncated)?;
        self.pos = self.pos.saturating_add(n).saturating_add(1);
        Ok(line)
    }

    /// A text line, without a Windows `\r`, decoded leniently: names and
    /// numbers are ASCII, and anything else fails later with a clear message.
    pub(super) fn line_str(&mut self) -> PResult<String> {
        let l = self.line()?;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        Ok(String::from_utf8_lossy(l).into_owned())
    }
}
