//! The names the tensors of a checkpoint are returned under.
//!
//! Each key is the state-dict key PyTorch gives (the dotted path from the
//! network's root), with three changes that never hide which network a
//! tensor belongs to:
//!
//! * leading `module.` (DataParallel / DDP) and `_orig_mod.` (torch.compile)
//!   are removed, as many times as they repeat;
//! * `_orig_mod.` is removed wherever it is a path component, since
//!   torch.compile inside another module (a Lightning module) puts it after
//!   the outer module's attribute: `model._orig_mod.features...` becomes
//!   `model.features...`;
//! * torchvision's pre-0.3 DenseNet names are renamed as torchvision renames
//!   them (`denselayer1.norm.1.weight` becomes `denselayer1.norm1.weight`).
//!
//! Every other prefix (`model.`, `densenet121.`, `backbone.`) stays: finding
//! the network behind them is the network loader's work, and a prefix is what
//! tells two networks in one file apart. When a file holds several state dicts
//! (or modules), each key is prefixed by where its state dict sits in the file
//! (`ema.features.conv0.weight`); with one, its keys are returned as they are.

use std::collections::HashMap;

use super::CheckpointError;

/// The tensors of one state dict (or whole module) found in a file.
#[derive(Debug)]
pub(crate) struct Group<T> {
    /// Where the state dict sits: dict keys and list indices joined by `.`
    /// (`"ema"`, `"optimizer_states.0"`); empty at the root.
    pub(crate) path: String,
    /// Each tensor, under its key in the state dict, in file order.
    pub(crate) tensors: Vec<(String, T)>,
}

/// The tensors of every group under the keys callers get, in file order;
/// an error when two of them end up with the same key.
pub(crate) fn name_tensors<T>(
    name: &str,
    groups: Vec<Group<T>>,
) -> Result<Vec<(String, T)>, CheckpointError> {
    let several = groups.len() > 1;
    let mut origins: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(groups.iter().map(|g| g.tensors.len()).sum());
    for group in groups {
        for (raw, tensor) in group.tensors {
            let key = canonical_key(&raw);
            let (key, origin) = if several {
                (join(&group.path, &key), join(&group.path, &raw))
            } else {
                (key, raw)
            };
            if let Some(first) = origins.get(&key) {
                return Err(CheckpointError::DuplicateKey {
                    name: name.to_owned(),
                    key,
                    first: first.clone(),
                    second: origin,
                });
            }
            origins.insert(key.clone(), origin);
            out.push((key, tensor));
        }
    }
    Ok(out)
}

/// `path.key`, or `key` at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// One key under the rules of the module docs.
fn canonical_key(raw: &str) -> String {
    let mut rest = raw;
    while let Some(r) = rest
        .strip_prefix("module.")
        .or_else(|| rest.strip_prefix("_orig_mod."))
    {
        rest = r;
    }
    let key = if rest.contains("._orig_mod.") {
        let parts: Vec<&str> = rest.split('.').collect();
        let last = parts.len() - 1;
        parts
            .iter()
            .enumerate()
            .filter(|&(i, part)| i == last || *part != "_orig_mod")
            .map(|(_, part)| *part)
            .collect::<Vec<_>>()
            .join(".")
    } else {
        rest.to_owned()
    };
    old_densenet_key(&key).unwrap_or(key)
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

    /// The keys of these groups (path, keys), or the error.
    fn keys(groups: &[(&str, &[&str])]) -> Result<Vec<String>, CheckpointError> {
        let groups = groups
            .iter()
            .map(|(path, keys)| Group {
                path: (*path).to_owned(),
                tensors: keys.iter().map(|k| (k.to_string(), ())).collect(),
            })
            .collect();
        Ok(name_tensors("x.pth", groups)?
            .into_iter()
            .map(|(k, ())| k)
            .collect())
    }

    #[test]
    fn leading_wrappers_are_removed_and_every_other_prefix_kept() {
        let one = |k: &[&str]| keys(&[("state_dict", k)]).unwrap();
        assert_eq!(
            one(&["module.a.weight", "module.module.b", "_orig_mod.module.c"]),
            ["a.weight", "b", "c"]
        );
        // model. stays, even on every key: it may be what tells two networks apart
        assert_eq!(
            one(&["model.a", "model.module.b"]),
            ["model.a", "model.module.b"]
        );
        assert_eq!(one(&["module.model.a", "model.b"]), ["model.a", "model.b"]);
        assert_eq!(
            one(&["densenet121.features.conv0.weight", "backbone.x"]),
            ["densenet121.features.conv0.weight", "backbone.x"]
        );
    }

    #[test]
    fn orig_mod_is_removed_wherever_it_is_a_path_component() {
        let one = |k: &[&str]| keys(&[("", k)]).unwrap();
        assert_eq!(
            one(&[
                "model._orig_mod.features.conv0.weight",
                "a._orig_mod._orig_mod.b",
                "module._orig_mod.x._orig_mod.y",
                // not a component, or the tensor's own name
                "a.my_orig_mod.b",
                "a._orig_mod",
            ]),
            [
                "model.features.conv0.weight",
                "a.b",
                "x.y",
                "a.my_orig_mod.b",
                "a._orig_mod"
            ]
        );
        assert_eq!(
            one(&["model._orig_mod.features.denseblock1.denselayer2.norm.1.weight"]),
            ["model.features.denseblock1.denselayer2.norm1.weight"]
        );
    }

    #[test]
    fn several_state_dicts_are_told_apart_by_their_place_in_the_file() {
        assert_eq!(
            keys(&[
                ("model", &["module.a", "b"]),
                ("ema", &["module.a", "b"]),
                ("checkpoints.0", &["c"]),
            ])
            .unwrap(),
            ["model.a", "model.b", "ema.a", "ema.b", "checkpoints.0.c"]
        );
        // one state dict: its keys as they are, wherever it sits
        assert_eq!(keys(&[("state_dict", &["a"])]).unwrap(), ["a"]);
    }

    #[test]
    fn duplicate_keys_after_normalisation_are_an_error() {
        let err = keys(&[("", &["module.a", "a"])]).unwrap_err();
        assert!(matches!(err, CheckpointError::DuplicateKey { .. }));
        let msg = err.to_string();
        assert!(msg.starts_with("x.pth: "), "{msg}");
        assert!(msg.contains("'a'") && msg.contains("'module.a'"), "{msg}");
        let err = keys(&[(
            "",
            &["f.denselayer1.norm.1.weight", "f.denselayer1.norm1.weight"],
        )])
        .unwrap_err();
        assert!(matches!(err, CheckpointError::DuplicateKey { .. }));
        // across state dicts, the message gives each one's place in the file
        let err = keys(&[("a", &["b.c"]), ("a.b", &["module.c"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.pth: two tensors both become 'a.b.c' once prefixes like 'module.' are removed \
             ('a.b.c' and 'a.b.module.c')"
        );
    }
}
