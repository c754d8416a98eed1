//! The two PyTorch layouts: the zip archive of `torch.save` (PyTorch >= 1.6)
//! and the legacy stream of pickles followed by raw storages.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};

use candle_core::Tensor;
use zip::ZipArchive;

use super::CheckpointError;
use super::pickle::{self, Global, Id, Obj, Pickle, ScalarType, StorageType};
use super::tensor::{self, Budget, BuildError};

/// Largest `data.pkl` accepted (a state dict's pickle is a few MB at most).
const MAX_PICKLE_BYTES: u64 = 512 << 20;

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as pickled by LONG1.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The first pickle of a legacy file as `torch.save` writes it (protocol 2).
const LEGACY_HEADER: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// `torch.serialization.PROTOCOL_VERSION`.
const LEGACY_PROTOCOL: i64 = 1001;

/// Keys under which training scripts nest the state dict, in priority order.
const STATE_DICT_KEYS: [&str; 6] = [
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "network",
    "weights",
];

/// A storage named by a persistent id.
#[derive(Debug, Clone)]
struct StorageRef {
    /// Key of the storage's data (zip entry name / legacy root key).
    key: String,
    kind: StorageType,
    /// Elements of the root storage, as the pickle states it.
    numel: u64,
    /// Legacy storage views: (element offset, element count) into the root.
    view: Option<(u64, u64)>,
}

/// A tensor as the pickle describes it.
#[derive(Debug)]
struct TensorSpec {
    storage: StorageRef,
    dtype: ScalarType,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

// ---------------------------------------------------------------------------
// zip
// ---------------------------------------------------------------------------

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

fn big_endian(name: &str) -> CheckpointError {
    CheckpointError::unsupported(
        name,
        "it was saved on a big-endian machine; load it with PyTorch on a little-endian \
         machine and save it again",
    )
}

// ---------------------------------------------------------------------------
// legacy
// ---------------------------------------------------------------------------

/// A stream of five pickles (magic number, protocol version, system info,
/// the saved object, the storage keys), then every storage's raw data.
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
    let data = LegacyData {
        name,
        bytes,
        keys: &keys_pickle,
        refs: &refs,
    };
    let storages = data.storages(key_ids, keys_pickle.end)?;
    tensors_from_specs(name, specs, &storages, |key| format!("storage '{key}'"))
}

/// Checks the first pickle, torch's magic number (any other pickle is not a
/// `torch.save` file), and returns where the next one starts.
fn skip_legacy_magic(name: &str, bytes: &[u8]) -> Result<usize, CheckpointError> {
    let magic = match pickle::parse(bytes, 0) {
        Ok(p) => p,
        Err(pickle::PickleError::Refused(g)) => {
            return Err(CheckpointError::from_pickle(
                name,
                "the pickle",
                pickle::PickleError::Refused(g),
            ));
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
}

impl<'a> LegacyData<'a> {
    /// Every listed storage's bytes, starting at `pos`.
    fn storages(&self, key_ids: &[Id], mut pos: usize) -> Result<Storages<'a>, CheckpointError> {
        let mut storages = Storages::new();
        for &kid in key_ids {
            let Some(key) = key_str(self.keys, kid) else {
                return Err(CheckpointError::corrupt(
                    self.name,
                    "a storage key is not a string",
                ));
            };
            let (data, end) = self.storage(key, pos)?;
            storages.insert(key, data);
            pos = end;
        }
        Ok(storages)
    }

    /// One storage at `pos`: its i64 element count, then its raw elements;
    /// returns them and where the next storage starts.
    fn storage(&self, key: &str, pos: usize) -> Result<(&'a [u8], usize), CheckpointError> {
        let (name, bytes) = (self.name, self.bytes);
        let Some(r) = self.refs.get(key) else {
            return Err(CheckpointError::corrupt(
                name,
                format!("storage '{key}' is listed but no tensor uses it"),
            ));
        };
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

// ---------------------------------------------------------------------------
// both layouts
// ---------------------------------------------------------------------------

/// The bytes of each storage, by key.
type Storages<'a> = HashMap<&'a str, &'a [u8]>;

/// Builds every tensor of the state dict from its storage, in file order,
/// under one budget for all (so that views cannot multiply the memory used).
/// `describe` names a storage's data in messages.
fn tensors_from_specs(
    name: &str,
    specs: Vec<(String, TensorSpec)>,
    storages: &Storages,
    describe: impl Fn(&str) -> String,
) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let mut budget = Budget::for_data(storages.values().map(|d| d.len()).sum());
    let mut out = Vec::with_capacity(specs.len());
    for (key, spec) in specs {
        let Some(&data) = storages.get(spec.storage.key.as_str()) else {
            return Err(CheckpointError::corrupt(
                name,
                format!(
                    "the data of storage '{}' (tensor '{key}') is missing",
                    spec.storage.key
                ),
            ));
        };
        let what = describe(&spec.storage.key);
        let t = make_tensor(name, &key, &what, &spec, data, &mut budget)?;
        out.push((key, t));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// interpreting the value tree
// ---------------------------------------------------------------------------

fn key_str(p: &Pickle, id: Id) -> Option<&str> {
    p.str(id)
}

/// The value stored under string key `key` (the last one, as Python would keep).
fn lookup(p: &Pickle, items: &[(Id, Id)], key: &str) -> Option<Id> {
    items
        .iter()
        .rev()
        .find(|(k, _)| p.str(*k) == Some(key))
        .map(|&(_, v)| v)
}

fn is_tensor(p: &Pickle, id: Id) -> bool {
    matches!(p.get(id), Obj::Call { .. })
}

/// A dict whose values are mostly tensors.
fn is_state_dict(p: &Pickle, id: Id) -> bool {
    let Some(items) = p.dict(id) else {
        return false;
    };
    let tensors = items.iter().filter(|&&(_, v)| is_tensor(p, v)).count();
    // A container such as {"state_dict": {...}, "ema": tensor} is not itself one.
    let nests_one = STATE_DICT_KEYS
        .iter()
        .filter_map(|k| lookup(p, items, k))
        .any(|v| p.dict(v).is_some());
    tensors > 0 && tensors * 2 >= items.len() && !nests_one
}

/// Finds the state dict and describes each of its tensors, in file order.
fn state_dict(name: &str, p: &Pickle) -> Result<Vec<(String, TensorSpec)>, CheckpointError> {
    let mut cur = p.root;
    let mut found = None;
    for _level in 0..4 {
        if is_state_dict(p, cur) {
            found = Some(cur);
            break;
        }
        let Some(items) = p.dict(cur) else { break };
        let candidates: Vec<Id> = STATE_DICT_KEYS
            .iter()
            .filter_map(|k| lookup(p, items, k))
            .filter(|&v| p.dict(v).is_some())
            .collect();
        if let Some(&sd) = candidates.iter().find(|&&v| is_state_dict(p, v)) {
            found = Some(sd);
            break;
        }
        match candidates.first() {
            Some(&next) => cur = next,
            None => break,
        }
    }
    let Some(sd) = found else {
        return Err(CheckpointError::NoStateDict {
            name: name.to_owned(),
            detail: describe_root(p),
        });
    };
    let items = p.dict(sd).unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for &(k, v) in items {
        if !is_tensor(p, v) {
            continue; // e.g. `_extra_state`, or None buffers
        }
        let key = match p.get(k) {
            Obj::Str(s) => s.clone(),
            Obj::Int(i) => i.to_string(),
            _ => {
                return Err(CheckpointError::corrupt(
                    name,
                    format!(
                        "a tensor is stored under {} instead of a name",
                        p.type_name(k)
                    ),
                ));
            }
        };
        let spec = tensor_spec(p, v, 0).map_err(|e| match e {
            SpecError::Corrupt(d) => CheckpointError::corrupt(name, format!("tensor '{key}': {d}")),
            SpecError::Unsupported(d) => {
                CheckpointError::unsupported(name, format!("tensor '{key}' {d}"))
            }
        })?;
        out.push((key, spec));
    }
    Ok(out)
}

/// "top-level keys are: ..." or what the root is instead of a dict.
fn describe_root(p: &Pickle) -> String {
    match p.dict(p.root) {
        Some([]) => "the checkpoint is an empty dict".to_owned(),
        Some(items) => {
            const SHOWN: usize = 20;
            let mut keys: Vec<String> = items
                .iter()
                .take(SHOWN)
                .map(|&(k, _)| match p.get(k) {
                    Obj::Str(s) => s.clone(),
                    Obj::Int(i) => i.to_string(),
                    _ => format!("<{}>", p.type_name(k)),
                })
                .collect();
            if items.len() > SHOWN {
                keys.push(format!("... ({} more)", items.len() - SHOWN));
            }
            format!("top-level keys are: {}", keys.join(", "))
        }
        None => format!(
            "the checkpoint holds {}, not a dict of tensors",
            p.type_name(p.root)
        ),
    }
}

enum SpecError {
    Corrupt(String),
    Unsupported(String),
}

impl From<String> for SpecError {
    fn from(s: String) -> Self {
        SpecError::Corrupt(s)
    }
}

impl From<&str> for SpecError {
    fn from(s: &str) -> Self {
        SpecError::Corrupt(s.to_owned())
    }
}

/// Reads a `_rebuild_*` call (possibly wrapped in a parameter / subclass rebuild).
fn tensor_spec(p: &Pickle, id: Id, depth: usize) -> Result<TensorSpec, SpecError> {
    match p.get(id) {
        Obj::Call { func, args } => call_spec(p, *func, *args, depth),
        _ => Err(format!("expected a tensor, found {}", p.type_name(id)).into()),
    }
}

fn call_spec(p: &Pickle, func: Global, args: Id, depth: usize) -> Result<TensorSpec, SpecError> {
    if depth > 4 {
        return Err("the tensor is wrapped too deeply".into());
    }
    let a = p
        .seq(args)
        .ok_or_else(|| "its arguments are not a tuple".to_owned())?;
    let arg = |i: usize| {
        a.get(i)
            .copied()
            .ok_or_else(|| SpecError::Corrupt("it has too few arguments".to_owned()))
    };
    match func {
        Global::RebuildTensor | Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
            let Obj::PersId(pid) = p.get(arg(0)?) else {
                return Err("its data is not a storage".into());
            };
            let storage = storage_ref(p, *pid)?;
            let offset = index(p, arg(1)?).ok_or("its storage offset is not a valid index")?;
            let size = indices(p, arg(2)?).ok_or("its size is not a tuple of valid sizes")?;
            let stride = indices(p, arg(3)?).ok_or("its stride is not a tuple of valid strides")?;
            let dtype = if func == Global::RebuildTensorV3 {
                match p.get(arg(6)?) {
                    Obj::Global(Global::Dtype(Some(t), _)) => *t,
                    Obj::Global(Global::Dtype(None, n)) => {
                        return Err(SpecError::Unsupported(format!(
                            "has dtype torch.{n}, which camview cannot convert"
                        )));
                    }
                    _ => return Err("its dtype is not a torch dtype".into()),
                }
            } else {
                match storage.kind {
                    StorageType::Typed(t) => t,
                    StorageType::Untyped => ScalarType::U8,
                    StorageType::Unsupported(n) => {
                        return Err(SpecError::Unsupported(format!(
                            "is stored as torch.{n}, which camview cannot convert"
                        )));
                    }
                }
            };
            Ok(TensorSpec {
                storage,
                dtype,
                offset,
                size,
                stride,
            })
        }
        Global::RebuildParameter | Global::RebuildParameterWithState => {
            tensor_spec(p, arg(0)?, depth + 1)
        }
        Global::RebuildFromTypeV2 => {
            let Obj::Global(inner) = p.get(arg(0)?) else {
                return Err("it is rebuilt by something that is not a function".into());
            };
            call_spec(p, *inner, arg(2)?, depth + 1)
        }
        _ => Err("it is not rebuilt by a tensor function".into()),
    }
}

/// A non-negative integer that fits in usize.
fn index(p: &Pickle, id: Id) -> Option<usize> {
    usize::try_from(p.int(id)?).ok()
}

fn indices(p: &Pickle, id: Id) -> Option<Vec<usize>> {
    p.seq(id)?.iter().map(|&i| index(p, i)).collect()
}

/// `('storage', StorageClass, key, location, numel[, view_metadata])`.
fn storage_ref(p: &Pickle, pid: Id) -> Result<StorageRef, String> {
    let Some(items) = p.seq(pid) else {
        return Err(format!(
            "a storage reference is {} instead of a tuple",
            p.type_name(pid)
        ));
    };
    let get = |i: usize| items.get(i).copied();
    let typename = get(0).and_then(|i| p.str(i));
    if typename != Some("storage") {
        return Err(format!(
            "a persistent reference of kind '{}' is not a storage",
            typename.unwrap_or("?")
        ));
    }
    let kind = match get(1).map(|i| p.get(i)) {
        Some(Obj::Global(Global::Storage(k))) => *k,
        _ => return Err("a storage reference does not name a storage type".to_owned()),
    };
    let key = match get(2).map(|i| p.get(i)) {
        Some(Obj::Str(s)) => s.clone(),
        Some(Obj::Int(i)) => i.to_string(),
        _ => return Err("a storage reference has no key".to_owned()),
    };
    let numel = get(4)
        .and_then(|i| p.int(i))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("storage '{key}' has no valid size"))?;
    let view = match get(5).map(|i| (i, p.get(i))) {
        None | Some((_, Obj::None)) => None,
        Some((v, _)) => {
            let parts = p.seq(v).unwrap_or_default();
            let num = |i: usize| {
                parts
                    .get(i)
                    .and_then(|&x| p.int(x))
                    .and_then(|n| u64::try_from(n).ok())
            };
            match (num(1), num(2)) {
                (Some(off), Some(len)) => Some((off, len)),
                _ => return Err(format!("storage '{key}' has a malformed view")),
            }
        }
    };
    Ok(StorageRef {
        key,
        kind,
        numel,
        view,
    })
}

fn element_size(name: &str, kind: StorageType) -> Result<usize, CheckpointError> {
    match kind {
        StorageType::Typed(t) => Ok(t.size()),
        StorageType::Untyped => Ok(1),
        StorageType::Unsupported(n) => Err(CheckpointError::unsupported(
            name,
            format!("it stores torch.{n} data, which camview cannot convert"),
        )),
    }
}

/// Bytes of the root storage according to the pickle.
fn storage_bytes(name: &str, r: &StorageRef) -> Result<u64, CheckpointError> {
    let el = element_size(name, r.kind)? as u64;
    r.numel.checked_mul(el).ok_or_else(|| {
        CheckpointError::corrupt(name, format!("storage '{}' has an absurd size", r.key))
    })
}

/// Builds one tensor; `data` are the bytes of its root storage, `what` names them.
fn make_tensor(
    name: &str,
    key: &str,
    what: &str,
    spec: &TensorSpec,
    data: &[u8],
    budget: &mut Budget,
) -> Result<Tensor, CheckpointError> {
    let storage_el = element_size(name, spec.storage.kind)? as u64;
    let data = match spec.storage.view {
        None => data,
        Some((off, len)) => {
            let range = off
                .checked_mul(storage_el)
                .zip(off.checked_add(len).and_then(|e| e.checked_mul(storage_el)))
                .and_then(|(s, e)| Some(usize::try_from(s).ok()?..usize::try_from(e).ok()?));
            match range.and_then(|r| data.get(r)) {
                Some(d) => d,
                None => {
                    return Err(CheckpointError::corrupt(
                        name,
                        format!("tensor '{key}' is a view outside {what}"),
                    ));
                }
            }
        }
    };
    tensor::build(
        spec.dtype,
        data,
        spec.offset,
        &spec.size,
        &spec.stride,
        budget,
    )
    .map_err(|e| match e {
        BuildError::Corrupt(d) => {
            CheckpointError::corrupt(name, format!("tensor '{key}' (data in {what}): {d}"))
        }
        BuildError::TooLarge(d) => CheckpointError::unsupported(name, d),
    })
}
