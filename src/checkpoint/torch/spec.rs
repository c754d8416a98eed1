//! Describing each tensor and storage as the pickle does, before any storage
//! byte is read.

use crate::checkpoint::CheckpointError;
use crate::checkpoint::pickle::{Global, Id, Obj, Pickle, ScalarType, StorageType};

/// A storage named by a persistent id.
#[derive(Debug, Clone)]
pub(super) struct StorageRef {
    /// Key of the storage's data (zip entry name / legacy root key).
    pub(super) key: String,
    pub(super) kind: StorageType,
    /// Elements of the root storage, as the pickle states it.
    pub(super) numel: u64,
    /// A legacy storage view into the root.
    pub(super) view: Option<StorageView>,
}

/// Part of a root storage that a legacy storage view covers, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StorageView {
    pub(super) offset: u64,
    pub(super) len: u64,
}

/// A tensor as the pickle describes it.
#[derive(Debug)]
pub(super) struct TensorSpec {
    pub(super) storage: StorageRef,
    pub(super) dtype: ScalarType,
    pub(super) offset: usize,
    pub(super) size: Vec<usize>,
    pub(super) stride: Vec<usize>,
}

pub(super) fn key_str(p: &Pickle, id: Id) -> Option<&str> {
    p.str(id)
}

/// The value stored under string key `key` (the last one, as Python would keep).
pub(super) fn lookup(p: &Pickle, items: &[(Id, Id)], key: &str) -> Option<Id> {
    items
        .iter()
        .rev()
        .find(|(k, _)| p.str(*k) == Some(key))
        .map(|&(_, v)| v)
}

/// The value stored under `key` in the dict `id`, if it is one.
pub(super) fn field(p: &Pickle, id: Id, key: &str) -> Option<Id> {
    lookup(p, p.dict(id)?, key)
}

/// A tensor: a recorded call of a rebuild function.
pub(super) fn is_tensor(p: &Pickle, id: Id) -> bool {
    matches!(p.get(id), Obj::Call { .. })
}

/// Describes the tensor `id` (named `key` in messages) as the pickle does.
pub(super) fn tensor_spec_of(
    name: &str,
    p: &Pickle,
    key: &str,
    id: Id,
) -> Result<TensorSpec, CheckpointError> {
    tensor_spec(p, id, 0).map_err(|e| match e {
        SpecError::Corrupt(d) => CheckpointError::corrupt(name, format!("tensor '{key}': {d}")),
        SpecError::Unsupported(d) => {
            CheckpointError::unsupported(name, format!("tensor '{key}' {d}"))
        }
    })
}

/// Whether the tensor `id` has at least one dimension; a tensor that cannot
/// be described counts as one, so that its error is reported, not skipped.
pub(super) fn has_dimensions(p: &Pickle, id: Id) -> bool {
    tensor_spec(p, id, 0).map_or(true, |spec| !spec.size.is_empty())
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
pub(super) fn storage_ref(p: &Pickle, pid: Id) -> Result<StorageRef, String> {
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
                (Some(offset), Some(len)) => Some(StorageView { offset, len }),
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
