//! The legacy layout (PyTorch < 1.6, or `_use_new_zipfile_serialization=False`).

use std::collections::{HashMap, HashSet};

use candle_core::Tensor;

use super::locate::state_dict;
use super::spec::{StorageRef, key_str, lookup, storage_ref};
use super::{Storages, big_endian, element_size, tensors_from_specs};
use crate::checkpoint::CheckpointError;
use crate::checkpoint::pickle::{self, Id, Obj, OpCode, Pickle};

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as pickled by LONG1.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The first pickle of a legacy file as `torch.save` writes it: `PROTO 2`, the magic number
/// as a `LONG1`, `STOP`.
const LEGACY_HEADER: [u8; 15] = {
    let mut header = [0u8; 15];
    header[0] = OpCode::Proto as u8;
    header[1] = 2;
    header[2] = OpCode::Long1 as u8;
    header[3] = LEGACY_MAGIC.len() as u8;
    let mut i = 0;
    while i < LEGACY_MAGIC.len() {
        header[4 + i] = LEGACY_MAGIC[i];
        i += 1;
    }
    header[14] = OpCode::Stop as u8;
    header
};
/// `torch.serialization.PROTOCOL_VERSION`.
const LEGACY_PROTOCOL: i64 = 1001;

/// A stream of five pickles (magic number, protocol version, system info,
/// the saved object, the storage keys), then every storage's raw data, of
/// which only the storages of the tensors found are read.
pub(crate) fn read_legacy(
    name: &str,
    bytes: &[u8],
) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let header = |what: &str, start: usize| {
        pickle::parse(bytes, start).map_err(|e| CheckpointError::from_pickle(name, what, e))
    };
    let magic_end = skip_legacy_magic(name, bytes)?;
    let version = header("the legacy header (protocol version)", magic_end)?;
    check_legacy_protocol(name, &version)?;
    let sys = header("the legacy header (system info)", version.end)?;
    check_little_endian(name, &sys)?;
    let main = header("the main pickle", sys.end)?;
    let keys_pickle = header("the list of storages", main.end)?;
    let Some(key_ids) = keys_pickle.seq(keys_pickle.root) else {
        return Err(CheckpointError::corrupt(
            name,
            "the list of storages after the main pickle is not a list",
        ));
    };
    let refs = storage_refs(name, &main)?;
    let specs = state_dict(name, &main)?;
    let used: HashSet<String> = specs.iter().map(|(_, s)| s.storage.key.clone()).collect();
    let data = LegacyData {
        name,
        bytes,
        keys: &keys_pickle,
        refs: &refs,
        used: &used,
    };
    let storages = data.storages(key_ids, keys_pickle.end)?;
    tensors_from_specs(name, specs, &storages, |key| format!("storage '{key}'"))
}

/// Checks the first pickle, torch's magic number (any other pickle is not a
/// `torch.save` file), and returns where the next one starts.
fn skip_legacy_magic(name: &str, bytes: &[u8]) -> Result<usize, CheckpointError> {
    let magic = match pickle::parse(bytes, 0) {
        Ok(p) => p,
        Err(e @ (pickle::PickleError::Refused(_) | pickle::PickleError::Misused { .. })) => {
            return Err(CheckpointError::from_pickle(name, "the pickle", e));
        }
        Err(pickle::PickleError::Truncated) if LEGACY_HEADER.starts_with(bytes) => {
            return Err(CheckpointError::corrupt(
                name,
                "the file ends inside the PyTorch header",
            ));
        }
        Err(_) => {
            return Err(CheckpointError::not_a_checkpoint(
                name,
                "it starts like a Python pickle but is not a valid one",
            ));
        }
    };
    let is_magic = match magic.get(magic.root) {
        Obj::BigInt(b) => {
            let mut n = b.len();
            while n > LEGACY_MAGIC.len() && b.get(n - 1) == Some(&0) {
                n -= 1;
            }
            b.get(..n) == Some(&LEGACY_MAGIC[..])
        }
        _ => false,
    };
    if !is_magic {
        return Err(CheckpointError::not_a_checkpoint(
            name,
            "it is a Python pickle, but not one written by torch.save",
        ));
    }
    Ok(magic.end)
}

fn check_legacy_protocol(name: &str, version: &Pickle) -> Result<(), CheckpointError> {
    match version.int(version.root) {
        Some(LEGACY_PROTOCOL) => Ok(()),
        Some(v) => Err(CheckpointError::unsupported(
            name,
            format!("legacy PyTorch serialization protocol {v} (only {LEGACY_PROTOCOL} exists)"),
        )),
        None => Err(CheckpointError::corrupt(
            name,
            "the legacy header has no protocol version",
        )),
    }
}

/// The system info may lack the key; only an explicit `False` is refused.
fn check_little_endian(name: &str, sys: &Pickle) -> Result<(), CheckpointError> {
    if let Some(items) = sys.dict(sys.root) {
        let little = lookup(sys, items, "little_endian");
        if little.is_some_and(|v| matches!(sys.get(v), Obj::Bool(false))) {
            return Err(big_endian(name));
        }
    }
    Ok(())
}

/// What the pickle says about every storage (first mention wins, as in torch).
fn storage_refs(name: &str, main: &Pickle) -> Result<HashMap<String, StorageRef>, CheckpointError> {
    let mut refs: HashMap<String, StorageRef> = HashMap::new();
    for &pid in &main.persids {
        let r = storage_ref(main, pid).map_err(|d| CheckpointError::corrupt(name, d))?;
        refs.entry(r.key.clone()).or_insert(r);
    }
    Ok(refs)
}

/// The raw storages after the pickles of a legacy file.
struct LegacyData<'a> {
    /// The file's name, for messages.
    name: &'a str,
    bytes: &'a [u8],
    /// The last pickle: the storage keys, in the order their data follows.
    keys: &'a Pickle,
    refs: &'a HashMap<String, StorageRef>,
    /// The storages of the tensors found; the others are skipped unread.
    used: &'a HashSet<String>,
}

impl<'a> LegacyData<'a> {
    /// The bytes of every used storage, in the list that starts at `pos`.
    fn storages(&self, key_ids: &[Id], mut pos: usize) -> Result<Storages<'a>, CheckpointError> {
        let mut storages = Storages::new();
        for &kid in key_ids {
            let Some(key) = key_str(self.keys, kid) else {
                return Err(CheckpointError::corrupt(
                    self.name,
                    "a storage key is not a string",
                ));
            };
            if self.used.contains(key) {
                let (data, end) = self.storage(key, pos)?;
                storages.insert(key, data);
                pos = end;
            } else {
                pos = self.skip(key, pos)?;
            }
        }
        Ok(storages)
    }

    /// What the pickle says of the listed storage `key`.
    fn reference(&self, key: &str) -> Result<&'a StorageRef, CheckpointError> {
        self.refs.get(key).ok_or_else(|| {
            CheckpointError::corrupt(
                self.name,
                format!("storage '{key}' is listed but no tensor uses it"),
            )
        })
    }

    /// Where the storage after the one at `pos` starts, from the size the
    /// pickle gives, without looking at the storage's own bytes.
    fn skip(&self, key: &str, pos: usize) -> Result<usize, CheckpointError> {
        let r = self.reference(key)?;
        let el = element_size(self.name, r.kind)? as u64;
        r.numel
            .checked_mul(el)
            .and_then(|len| len.checked_add(8))
            .and_then(|len| usize::try_from(len).ok())
            .and_then(|len| pos.checked_add(len))
            .ok_or_else(|| {
                CheckpointError::corrupt(self.name, format!("storage '{key}' has an absurd size"))
            })
    }

    /// One storage at `pos`: its i64 element count, then its raw elements;
    /// returns them and where the next storage starts.
    fn storage(&self, key: &str, pos: usize) -> Result<(&'a [u8], usize), CheckpointError> {
        let (name, bytes) = (self.name, self.bytes);
        let r = self.reference(key)?;
        let el = element_size(name, r.kind)?;
        let cut = || {
            CheckpointError::corrupt(
                name,
                format!("the file ends inside the data of storage '{key}'"),
            )
        };
        let count_bytes = pos
            .checked_add(8)
            .and_then(|end| bytes.get(pos..end))
            .ok_or_else(cut)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(count_bytes);
        let count = i64::from_le_bytes(a);
        let Ok(count) = u64::try_from(count) else {
            return Err(CheckpointError::corrupt(
                name,
                format!("storage '{key}' has a negative size"),
            ));
        };
        if count != r.numel {
            return Err(CheckpointError::corrupt(
                name,
                format!(
                    "storage '{key}' holds {count} elements but the pickle says {}",
                    r.numel
                ),
            ));
        }
        let start = pos.saturating_add(8);
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(el))
            .ok_or_else(cut)?;
        let end = start.checked_add(len).ok_or_else(cut)?;
        let data = bytes.get(start..end).ok_or_else(cut)?;
        Ok((data, end))
    }
}
