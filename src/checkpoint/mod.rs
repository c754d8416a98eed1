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
//! other than the handful a checkpoint of tensors needs, so a malicious
//! checkpoint is rejected instead of running its payload.

mod pickle;
mod safetensors;
mod tensor;
mod torch;

use std::collections::HashMap;
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
    /// The checkpoint names code to run (or a class that is not plain data).
    #[error(
        "{name}: refused to load: the checkpoint references '{global}', which is not a tensor \
         or a plain container (a checkpoint must never run code){hint}"
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

/// Extra advice after a refused global.
fn refusal_hint(global: &str) -> String {
    let (module, class) = global.rsplit_once('.').unwrap_or(("", global));
    const CODE_MODULES: &[&str] = &[
        "os",
        "posix",
        "nt",
        "subprocess",
        "builtins",
        "__builtin__",
        "sys",
        "shutil",
        "socket",
        "runpy",
        "pty",
        "webbrowser",
        "importlib",
        "code",
        "pickle",
        "_pickle",
        "copyreg",
        "functools",
        "operator",
        "types",
    ];
    let top = module.split('.').next().unwrap_or("");
    if module.starts_with("__torch__") {
        ". It looks like a TorchScript model (torch.jit.save); save model.state_dict() with \
         torch.save instead"
            .to_owned()
    } else if !CODE_MODULES.contains(&top)
        && !module.is_empty()
        && class.chars().next().is_some_and(|c| c.is_ascii_uppercase())
    {
        ". It looks like a whole model object saved with torch.save(model); save \
         model.state_dict() instead"
            .to_owned()
    } else {
        String::new()
    }
}

/// Tensors of a checkpoint's state dict, in file order, with canonical key
/// names; floating-point tensors are converted to f32 on the CPU, integer and
/// bool tensors (e.g. `num_batches_tracked`) are returned as i64.
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
    let raw = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        torch::read_zip(name, bytes)?
    } else if safetensors::looks_like(bytes) {
        safetensors::read(name, bytes)?
    } else if bytes.first() == Some(&0x80) {
        torch::read_legacy(name, bytes)?
    } else if bytes.get(257..262) == Some(b"ustar") {
        return Err(CheckpointError::unsupported(
            name,
            "this is a very old PyTorch checkpoint (tar format, PyTorch 0.3 or older); load it \
             with PyTorch and save model.state_dict() again",
        ));
    } else {
        return Err(CheckpointError::not_a_checkpoint(
            name,
            describe_content(bytes),
        ));
    };
    canonical_keys(name, raw)
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

/// Removes wrapper prefixes and renames old torchvision DenseNet keys, keeping order.
fn canonical_keys(
    name: &str,
    entries: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let originals: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    let mut keys: Vec<String> = originals.clone();
    loop {
        for k in &mut keys {
            strip_wrappers(k);
        }
        let all_model = !keys.is_empty() && keys.iter().all(|k| k.starts_with("model."));
        if !all_model {
            break;
        }
        for k in &mut keys {
            k.drain(.."model.".len());
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(keys.len());
    let mut out = Vec::with_capacity(entries.len());
    for (i, ((mut key, (_, tensor)), original)) in keys
        .into_iter()
        .zip(entries)
        .zip(originals.iter())
        .enumerate()
    {
        if let Some(renamed) = old_densenet_key(&key) {
            key = renamed;
        }
        if let Some(&j) = seen.get(&key) {
            return Err(CheckpointError::DuplicateKey {
                name: name.to_owned(),
                key,
                first: originals.get(j).cloned().unwrap_or_default(),
                second: original.clone(),
            });
        }
        seen.insert(key.clone(), i);
        out.push((key, tensor));
    }
    Ok(out)
}

/// Strips leading `module.` (DataParallel / DDP) and `_orig_mod.` (torch.compile).
fn strip_wrappers(key: &mut String) {
    loop {
        let n = if key.starts_with("module.") {
            "module.".len()
        } else if key.starts_with("_orig_mod.") {
            "_orig_mod.".len()
        } else {
            return;
        };
        key.drain(..n);
    }
}

/// torchvision's renaming of pre-0.3 DenseNet keys
/// (`^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$`):
/// `...denselayer3.norm.1.weight` -> `...denselayer3.norm1.weight`.
fn old_densenet_key(key: &str) -> Option<String> {
    let (rest, param) = key.rsplit_once('.')?;
    if !matches!(
        param,
        "weight" | "bias" | "running_mean" | "running_var" | "num_batches_tracked"
    ) {
        return None;
    }
    let (rest, digit) = rest.rsplit_once('.')?;
    if digit != "1" && digit != "2" {
        return None;
    }
    let (layer, kind) = rest.rsplit_once('.')?;
    if !matches!(kind, "norm" | "relu" | "conv") {
        return None;
    }
    let without_digits = layer.trim_end_matches(|c: char| c.is_ascii_digit());
    if without_digits.len() == layer.len() || !without_digits.ends_with("denselayer") {
        return None;
    }
    Some(format!("{rest}{digit}.{param}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_densenet_keys_are_renamed_like_torchvision() {
        assert_eq!(
            old_densenet_key("features.denseblock1.denselayer12.norm.1.weight").as_deref(),
            Some("features.denseblock1.denselayer12.norm1.weight")
        );
        assert_eq!(
            old_densenet_key("features.denseblock4.denselayer2.conv.2.weight").as_deref(),
            Some("features.denseblock4.denselayer2.conv2.weight")
        );
        assert_eq!(
            old_densenet_key("denselayer1.relu.2.running_var").as_deref(),
            Some("denselayer1.relu2.running_var")
        );
        assert_eq!(
            old_densenet_key("features.denseblock1.denselayer1.norm1.weight"),
            None
        );
        assert_eq!(old_densenet_key("features.norm.1.weight"), None);
        assert_eq!(old_densenet_key("features.denselayer.norm.1.weight"), None);
        assert_eq!(old_densenet_key("features.denselayer1.norm.3.weight"), None);
        assert_eq!(old_densenet_key("features.denselayer1.pool.1.weight"), None);
        assert_eq!(old_densenet_key("features.denselayer1.norm.1.scale"), None);
        assert_eq!(old_densenet_key(""), None);
    }

    fn t() -> Tensor {
        Tensor::new(&[1f32], &candle_core::Device::Cpu).unwrap()
    }

    fn keys(input: &[&str]) -> Result<Vec<String>, CheckpointError> {
        let entries = input.iter().map(|k| (k.to_string(), t())).collect();
        Ok(canonical_keys("x.pth", entries)?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    #[test]
    fn wrapper_prefixes_are_removed() {
        assert_eq!(
            keys(&["module.a.weight", "module.module.b", "_orig_mod.module.c"]).unwrap(),
            ["a.weight", "b", "c"]
        );
        assert_eq!(keys(&["model.a", "model.module.b"]).unwrap(), ["a", "b"]);
        // model. only when every key has it
        assert_eq!(keys(&["model.a", "b"]).unwrap(), ["model.a", "b"]);
        assert_eq!(keys(&["module.model.a", "model.b"]).unwrap(), ["a", "b"]);
    }

    #[test]
    fn duplicate_keys_after_normalisation_are_an_error() {
        let err = keys(&["module.a", "a"]).unwrap_err();
        assert!(matches!(err, CheckpointError::DuplicateKey { .. }));
        let msg = err.to_string();
        assert!(msg.starts_with("x.pth: "), "{msg}");
        assert!(msg.contains("'a'") && msg.contains("'module.a'"), "{msg}");
        let err = keys(&["f.denselayer1.norm.1.weight", "f.denselayer1.norm1.weight"]).unwrap_err();
        assert!(matches!(err, CheckpointError::DuplicateKey { .. }));
    }

    #[test]
    fn refusal_hints() {
        assert_eq!(refusal_hint("posix.system"), "");
        assert_eq!(refusal_hint("builtins.eval"), "");
        assert_eq!(refusal_hint("subprocess.Popen"), "");
        assert!(refusal_hint("torchvision.models.densenet.DenseNet").contains("state_dict()"));
        assert!(refusal_hint("__torch__.torchvision.models.DenseNet").contains("TorchScript"));
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
