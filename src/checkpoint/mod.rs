//! Reading the weights out of a checkpoint file, safely.
//!
//! Three layouts are recognised by their content (never by the extension):
//!
//! * the PyTorch zip format (`torch.save`, PyTorch >= 1.6),
//! * the legacy PyTorch format (PyTorch < 1.6, or
//!   `_use_new_zipfile_serialization=False`): a stream of pickles followed by
//!   the raw storages,
//! * safetensors.
//!
//! Pickles are read by a small interpreter of our own ([`pickle`]) that never
//! executes anything and refuses any file that names a class or function
//! other than the handful a checkpoint of tensors needs, a model's module
//! classes used as `torch.save(model)` uses them, and the OmegaConf classes and
//! types of a saved config (Hydra users' `hyper_parameters`), so a malicious
//! checkpoint is rejected instead of running its payload.
//!
//! Where the tensors are in a PyTorch file ([`torch`]'s `locate`): the file's
//! object is searched through plain dicts (with string keys), lists and
//! tuples, at any depth, for
//!
//! * state dicts: dicts whose keys are strings and whose values are tensors
//!   (`None` and torch's `*_extra_state` entries aside), at least one of them
//!   with a dimension. The root, `state_dict`, `model`, `ema`, any key: what
//!   counts is the content. A dict mixing tensors with other values (metrics,
//!   hyper-parameters) is not one, as PyTorch's own strict loading would
//!   refuse it, and a dict of scalar tensors (`best_model_score`) is a metric;
//! * whole modules (`torch.save(model)`): their parameters and persistent
//!   buffers, walked as `Module.state_dict()` walks them.
//!
//! An optimizer's state (a dict with `state` and `param_groups`), dicts
//! keyed by anything but strings (the optimizer keeps its per-parameter state
//! under parameter numbers) and saved OmegaConf configs (which hold no
//! tensors) are skipped whole. Only the tensors found are ever
//! built: nothing else in the file is read beyond its pickle, so optimizer
//! moments, callbacks and metrics cost nothing and may even be damaged. How
//! the keys are named, alone or when there are several state dicts, is in
//! [`keys`].

mod keys;
mod pickle;
mod safetensors;
mod tensor;
mod torch;

use std::path::Path;

use candle_core::Tensor;

/// Why a checkpoint could not be read. `Display` always starts with the file name.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("{name}: cannot read the file: {}", crate::describe_io_error(error))]
    Io { name: String, error: std::io::Error },
    /// The file has no bytes at all.
    #[error("{name}: the file is empty (0 bytes), so it holds no model weights")]
    Empty { name: String },
    /// The content is none of the checkpoint formats.
    #[error("{name}: not a PyTorch or safetensors checkpoint ({detail})")]
    NotACheckpoint { name: String, detail: String },
    /// The file is a checkpoint but is cut short or damaged.
    #[error("{name}: the checkpoint is truncated or corrupt: {detail}")]
    Corrupt { name: String, detail: String },
    /// The checkpoint names code to run, or a class that is neither plain data
    /// nor used as a model's module or a saved config.
    #[error(
        "{name}: refused to load: the checkpoint references '{global}', which is not a tensor, \
         a plain container, a module of a saved model or a saved config (a checkpoint must \
         never run code){hint}"
    )]
    Refused {
        name: String,
        global: String,
        hint: String,
    },
    /// A real checkpoint that camview cannot use (big-endian, TorchScript, complex tensors, ...).
    #[error("{name}: unsupported checkpoint: {detail}")]
    Unsupported { name: String, detail: String },
    /// The file holds data, but no dict of tensors could be found in it.
    #[error("{name}: no state dict found; {detail}")]
    NoStateDict { name: String, detail: String },
    /// Two tensors have the same name once prefixes like `module.` are removed.
    #[error(
        "{name}: two tensors both become '{key}' once prefixes like 'module.' are removed \
         ('{first}' and '{second}')"
    )]
    DuplicateKey {
        name: String,
        key: String,
        first: String,
        second: String,
    },
}

impl CheckpointError {
    pub(crate) fn corrupt(name: &str, detail: impl Into<String>) -> Self {
        CheckpointError::Corrupt {
            name: name.to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn unsupported(name: &str, detail: impl Into<String>) -> Self {
        CheckpointError::Unsupported {
            name: name.to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn not_a_checkpoint(name: &str, detail: impl Into<String>) -> Self {
        CheckpointError::NotACheckpoint {
            name: name.to_owned(),
            detail: detail.into(),
        }
    }

    /// A pickle that could not be read; `what` names it ("archive/data.pkl").
    pub(crate) fn from_pickle(name: &str, what: &str, err: pickle::PickleError) -> Self {
        match err {
            pickle::PickleError::Refused(global) => {
                let hint = refusal_hint(&global);
                CheckpointError::Refused {
                    name: name.to_owned(),
                    global,
                    hint,
                }
            }
            pickle::PickleError::Misused { global, how, rule } => CheckpointError::Refused {
                name: name.to_owned(),
                global,
                hint: format!(". It is {how}, while {rule}"),
            },
            pickle::PickleError::TooLarge(_) => {
                CheckpointError::unsupported(name, format!("{what} {err}"))
            }
            _ => CheckpointError::corrupt(name, format!("{what} {err}")),
        }
    }

    /// The `name` every message starts with.
    pub fn file_name(&self) -> &str {
        match self {
            CheckpointError::Io { name, .. }
            | CheckpointError::Empty { name }
            | CheckpointError::NotACheckpoint { name, .. }
            | CheckpointError::Corrupt { name, .. }
            | CheckpointError::Refused { name, .. }
            | CheckpointError::Unsupported { name, .. }
            | CheckpointError::NoStateDict { name, .. }
            | CheckpointError::DuplicateKey { name, .. } => name,
        }
    }
}

/// Extra advice after a global refused by name.
fn refusal_hint(global: &str) -> String {
    if global.starts_with("__torch__.") {
        ". It looks like a TorchScript model (torch.jit.save); save model.state_dict() with \
         torch.save instead"
            .to_owned()
    } else {
        String::new()
    }
}

/// The tensors of a checkpoint's state dicts or modules, in file order, under
/// the keys described in [`keys`]; floating-point tensors are converted to f32
/// on the CPU, integer and bool tensors (e.g. `num_batches_tracked`) are
/// returned as i64.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
        name: name.clone(),
        error,
    })?;
    read_state_dict_from_bytes(&name, &bytes)
}

/// Same as [`read_state_dict`] from bytes already in memory; `name` is used in messages.
pub fn read_state_dict_from_bytes(
    name: &str,
    bytes: &[u8],
) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    if bytes.is_empty() {
        return Err(CheckpointError::Empty {
            name: name.to_owned(),
        });
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        torch::read_zip(name, bytes)
    } else if safetensors::looks_like(bytes) {
        let tensors = safetensors::read(name, bytes)?;
        let group = keys::Group {
            path: String::new(),
            tensors,
        };
        keys::name_tensors(name, vec![group])
    } else if bytes.first() == Some(&0x80) {
        torch::read_legacy(name, bytes)
    } else if bytes.get(257..262) == Some(b"ustar") {
        Err(CheckpointError::unsupported(
            name,
            "this is a very old PyTorch checkpoint (tar format, PyTorch 0.3 or older); load it \
             with PyTorch and save model.state_dict() again",
        ))
    } else {
        Err(CheckpointError::not_a_checkpoint(
            name,
            describe_content(bytes),
        ))
    }
}

/// What unknown content looks like, for the "not a checkpoint" message.
fn describe_content(bytes: &[u8]) -> String {
    let head = bytes.get(..16).unwrap_or(bytes);
    let printable = head
        .iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if bytes.starts_with(b"\x89PNG") || bytes.starts_with(b"\xff\xd8\xff") {
        "it is an image".to_owned()
    } else if bytes.starts_with(b"\x93NUMPY") {
        "it is a numpy .npy array".to_owned()
    } else if bytes.starts_with(b"\x89HDF") {
        "it is an HDF5 file (Keras?)".to_owned()
    } else if printable {
        "it is a text file".to_owned()
    } else {
        let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("it starts with bytes {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_hints() {
        assert_eq!(refusal_hint("posix.system"), "");
        assert_eq!(refusal_hint("builtins.eval"), "");
        assert_eq!(refusal_hint("subprocess.Popen"), "");
        assert_eq!(refusal_hint("torchvision.models.densenet.DenseNet"), "");
        assert!(refusal_hint("__torch__.torchvision.models.DenseNet").contains("TorchScript"));
    }

    #[test]
    fn a_plain_pickle_that_calls_a_function_is_refused_by_name() {
        for (global, pickle) in [
            (
                "posix.system",
                &b"\x80\x02cposix\nsystem\nX\x01\x00\x00\x00x\x85R."[..],
            ),
            ("evil.run", b"\x80\x02cevil\nrun\nX\x01\x00\x00\x00x\x85R."),
        ] {
            let err = read_state_dict_from_bytes("p.pkl", pickle).unwrap_err();
            let CheckpointError::Refused { global: g, .. } = &err else {
                panic!("{global}: {err}");
            };
            assert_eq!(g, global);
        }
    }

    #[test]
    fn empty_and_unknown_content() {
        let err = read_state_dict_from_bytes("e.pth", b"").unwrap_err();
        assert!(matches!(err, CheckpointError::Empty { .. }));
        assert!(err.to_string().starts_with("e.pth: "));
        let err = read_state_dict_from_bytes("e.pth", b"hello world\n").unwrap_err();
        assert!(matches!(err, CheckpointError::NotACheckpoint { .. }));
        assert!(
            err.to_string()
                .contains("not a PyTorch or safetensors checkpoint"),
            "{err}"
        );
        let err = read_state_dict(Path::new("/nonexistent/dir/m.pth")).unwrap_err();
        assert!(matches!(err, CheckpointError::Io { .. }));
        assert!(
            err.to_string()
                .starts_with("/nonexistent/dir/m.pth: cannot read the file: ")
        );
        assert_eq!(err.file_name(), "/nonexistent/dir/m.pth");
    }
}
