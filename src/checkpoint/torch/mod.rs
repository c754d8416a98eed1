//! The two PyTorch layouts: the zip archive of `torch.save` (PyTorch >= 1.6,
//! [`archive`]) and the legacy stream of pickles followed by raw storages
//! ([`legacy`]). Both describe their tensors with the same pickle, searched
//! for state dicts and modules by [`locate`] ([`module`] walks a whole
//! module, [`spec`] describes each tensor), and end the same way: tensors
//! built from the bytes of the storages those tensors use, and no others.

mod archive;
mod legacy;
mod locate;
mod module;
mod spec;

use std::collections::HashMap;

use candle_core::Tensor;

use super::CheckpointError;
use super::pickle::StorageType;
use super::tensor::{self, Budget, BuildError};
use spec::{StorageView, TensorSpec};

pub(crate) use archive::read_zip;
pub(crate) use legacy::read_legacy;

fn big_endian(name: &str) -> CheckpointError {
    CheckpointError::unsupported(
        name,
        "it was saved on a big-endian machine; load it with PyTorch on a little-endian \
         machine and save it again",
    )
}

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
        Some(StorageView { offset, len }) => {
            let range = offset
                .checked_mul(storage_el)
                .zip(
                    offset
                        .checked_add(len)
                        .and_then(|e| e.checked_mul(storage_el)),
                )
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
