//! The zip archive `torch.save` writes since PyTorch 1.6: `<folder>/data.pkl`
//! describes the tensors, `<folder>/data/<key>` holds each storage's bytes.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};

use candle_core::Tensor;
use zip::ZipArchive;

use super::locate::state_dict;
use super::spec::{StorageRef, TensorSpec};
use super::{Storages, big_endian, element_size, tensors_from_specs};
use crate::checkpoint::CheckpointError;
use crate::checkpoint::pickle;

/// Largest `data.pkl` accepted (a state dict's pickle is a few MB at most).
const MAX_PICKLE_BYTES: u64 = 512 << 20;

pub(crate) fn read_zip(name: &str, bytes: &[u8]) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let mut archive = ZipCheckpoint::open(name, bytes)?;
    archive.check_byteorder()?;
    let data = archive.read_data_pkl()?;
    let p = pickle::parse(&data, 0)
        .map_err(|e| CheckpointError::from_pickle(name, &archive.data_pkl, e))?;
    let specs = state_dict(name, &p)?;
    let owned = archive.read_storages(&specs)?;
    let storages: Storages = owned
        .iter()
        .map(|(key, data)| (key.as_str(), data.as_slice()))
        .collect();
    tensors_from_specs(name, specs, &storages, |key| archive.storage_entry(key))
}

/// A `torch.save` zip archive whose `data.pkl` has been found.
struct ZipCheckpoint<'a> {
    /// The file's name, for messages.
    name: &'a str,
    /// Bounds every read: no entry can hold more than the whole file.
    file_len: usize,
    zip: ZipArchive<Cursor<&'a [u8]>>,
    entries: HashSet<String>,
    /// `<folder>/data.pkl`; the folder is named after the file `torch.save` wrote.
    data_pkl: String,
    /// `<folder>/`, in front of every other entry.
    prefix: String,
}

impl<'a> ZipCheckpoint<'a> {
    /// Opens the archive and finds its `data.pkl`, refusing TorchScript archives.
    fn open(name: &'a str, bytes: &'a [u8]) -> Result<Self, CheckpointError> {
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
            let text = e.to_string();
            if text.contains("EOCD") || text.contains("Unexpected end") {
                CheckpointError::corrupt(
                    name,
                    "the zip archive's table of contents, at the end of the file, is missing (was \
                     the file cut short while copying or downloading?)",
                )
            } else {
                CheckpointError::corrupt(name, format!("the zip archive is damaged ({text})"))
            }
        })?;
        let entries: HashSet<String> = zip
            .file_names()
            .filter_map(Result::ok)
            .map(|n| n.into_owned())
            .collect();
        // The shallowest data.pkl: a nested one belongs to something saved inside.
        let Some(data_pkl) = entries
            .iter()
            .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
            .min_by_key(|n| (n.matches('/').count(), n.as_str()))
            .cloned()
        else {
            if entries.iter().any(|n| n.ends_with("constants.pkl")) {
                return Err(torchscript(name));
            }
            return Err(CheckpointError::not_a_checkpoint(
                name,
                "it is a zip archive without a data.pkl inside",
            ));
        };
        let prefix = data_pkl
            .strip_suffix("data.pkl")
            .unwrap_or_default()
            .to_owned();
        let (constants, code) = (format!("{prefix}constants.pkl"), format!("{prefix}code/"));
        if entries
            .iter()
            .any(|n| *n == constants || n.starts_with(&code))
        {
            return Err(torchscript(name));
        }
        Ok(ZipCheckpoint {
            name,
            file_len: bytes.len(),
            zip,
            entries,
            data_pkl,
            prefix,
        })
    }

    /// Refuses big-endian data, which the tensors' raw bytes would silently garble.
    fn check_byteorder(&mut self) -> Result<(), CheckpointError> {
        let entry = format!("{}byteorder", self.prefix);
        if !self.entries.contains(&entry) {
            return Ok(());
        }
        let order = self.read_entry(&entry, 64)?;
        match String::from_utf8_lossy(&order).trim() {
            "little" => Ok(()),
            "big" => Err(big_endian(self.name)),
            other => Err(CheckpointError::corrupt(
                self.name,
                format!("{entry} says '{other}' instead of 'little' or 'big'"),
            )),
        }
    }

    fn read_data_pkl(&mut self) -> Result<Vec<u8>, CheckpointError> {
        let entry = self.data_pkl.clone();
        let data = self.read_entry(&entry, MAX_PICKLE_BYTES + 1)?;
        if data.len() as u64 > MAX_PICKLE_BYTES {
            return Err(CheckpointError::unsupported(
                self.name,
                format!("{entry} is larger than {MAX_PICKLE_BYTES} bytes"),
            ));
        }
        Ok(data)
    }

    fn storage_entry(&self, key: &str) -> String {
        format!("{}data/{key}", self.prefix)
    }

    /// Loads every storage the state dict uses, once (tensors may share one),
    /// each cut to the size the pickle states.
    fn read_storages(
        &mut self,
        specs: &[(String, TensorSpec)],
    ) -> Result<HashMap<String, Vec<u8>>, CheckpointError> {
        let name = self.name;
        let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
        for (_, spec) in specs {
            let key = &spec.storage.key;
            let need = storage_bytes(name, &spec.storage)?;
            if storages
                .get(key)
                .is_some_and(|existing| existing.len() as u64 >= need)
            {
                continue;
            }
            let entry = self.storage_entry(key);
            if !self.entries.contains(&entry) {
                return Err(CheckpointError::corrupt(
                    name,
                    format!("the archive has no entry {entry} for a tensor's data"),
                ));
            }
            let mut v = self.read_entry(&entry, need.saturating_add(1))?;
            if (v.len() as u64) < need {
                return Err(CheckpointError::corrupt(
                    name,
                    format!(
                        "{entry} has {} bytes but the checkpoint says it holds {need}",
                        v.len()
                    ),
                ));
            }
            v.truncate(usize::try_from(need).unwrap_or(usize::MAX));
            storages.insert(key.clone(), v);
        }
        Ok(storages)
    }

    /// Reads one entry, at most `limit` bytes, without trusting the declared size.
    fn read_entry(&mut self, entry: &str, limit: u64) -> Result<Vec<u8>, CheckpointError> {
        let name = self.name;
        let damaged = |e: &dyn std::fmt::Display| {
            if e.to_string().contains("checksum") {
                return CheckpointError::corrupt(
                    name,
                    format!(
                        "{entry} is damaged: its bytes do not match the checksum stored in the \
                         archive"
                    ),
                );
            }
            CheckpointError::corrupt(
                name,
                format!("cannot read {entry} from the zip archive ({e})"),
            )
        };
        let file = self.zip.by_name(entry).map_err(|e| damaged(&e))?;
        // Never reserve more than the whole file up front, whatever the entry claims.
        let capacity = file.size().min(limit).min(self.file_len as u64);
        let mut v = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        file.take(limit)
            .read_to_end(&mut v)
            .map_err(|e| damaged(&e))?;
        Ok(v)
    }
}

fn torchscript(name: &str) -> CheckpointError {
    CheckpointError::unsupported(
        name,
        "this is a TorchScript model (torch.jit.save), not a checkpoint of weights; save \
         model.state_dict() with torch.save instead",
    )
}

/// Bytes of the root storage according to the pickle.
fn storage_bytes(name: &str, r: &StorageRef) -> Result<u64, CheckpointError> {
    let el = element_size(name, r.kind)? as u64;
    r.numel.checked_mul(el).ok_or_else(|| {
        CheckpointError::corrupt(name, format!("storage '{}' has an absurd size", r.key))
    })
}
