//! Where the tensors are in a checkpoint's value tree: every state dict and
//! whole module, found through plain dicts, lists and tuples (the rule is in
//! the docs of [`crate::checkpoint`]), and nothing else.

use std::collections::HashSet;

use super::module;
use super::spec::{TensorSpec, has_dimensions, is_tensor, tensor_spec_of};
use crate::checkpoint::CheckpointError;
use crate::checkpoint::keys::{self, Group};
use crate::checkpoint::pickle::{Id, Obj, Pickle};

/// Deepest nesting of plain containers searched (real checkpoints use 3 or 4).
const MAX_DEPTH: usize = 32;

/// torch's suffix for a module's extra state (`get_extra_state`), which may be any value.
const EXTRA_STATE: &str = "_extra_state";

/// Finds every state dict and module and describes each of their tensors,
/// under the keys callers get, in file order.
pub(super) fn state_dict(
    name: &str,
    p: &Pickle,
) -> Result<Vec<(String, TensorSpec)>, CheckpointError> {
    let mut search = Search {
        p,
        seen: HashSet::new(),
        found: Vec::new(),
    };
    search.visit(p.root, String::new(), 0);
    if search.found.is_empty() {
        return Err(CheckpointError::NoStateDict {
            name: name.to_owned(),
            detail: describe_root(p),
        });
    }
    let mut groups = Vec::with_capacity(search.found.len());
    for (path, found) in search.found {
        let tensors = match found {
            Found::StateDict(items) => state_dict_tensors(p, items),
            Found::Module(id) => module::tensors(name, p, id, &path)?,
        };
        groups.push(Group { path, tensors });
    }
    let named = keys::name_tensors(name, groups)?;
    let mut out = Vec::with_capacity(named.len());
    for (key, id) in named {
        let spec = tensor_spec_of(name, p, &key, id)?;
        out.push((key, spec));
    }
    Ok(out)
}

/// What holds tensors.
enum Found<'p> {
    /// The items of a state dict.
    StateDict(&'p [(Id, Id)]),
    /// A module record.
    Module(Id),
}

/// A depth-first search of the value tree, in file order.
struct Search<'p> {
    p: &'p Pickle,
    /// Containers already searched (the memo shares objects; cycles are possible).
    seen: HashSet<Id>,
    /// Each state dict or module, with its path.
    found: Vec<(String, Found<'p>)>,
}

impl<'p> Search<'p> {
    fn visit(&mut self, id: Id, path: String, depth: usize) {
        let p = self.p;
        if depth > MAX_DEPTH {
            return;
        }
        match p.get(id) {
            Obj::Module { .. } if self.seen.insert(id) => {
                self.found.push((path, Found::Module(id)))
            }
            Obj::Dict(items) if self.seen.insert(id) => {
                let keys: Option<Vec<&str>> = items.iter().map(|&(k, _)| p.str(k)).collect();
                // Numbered dicts are an optimizer's per-parameter state.
                let Some(keys) = keys else { return };
                if is_optimizer(&keys) {
                    return;
                }
                if is_state_dict(p, items, &keys) {
                    self.found.push((path, Found::StateDict(items)));
                    return;
                }
                for (key, &(_, value)) in keys.iter().zip(items) {
                    self.visit(value, keys::join(&path, key), depth + 1);
                }
            }
            Obj::Tuple(items) | Obj::List(items) if self.seen.insert(id) => {
                for (i, &value) in items.iter().enumerate() {
                    self.visit(value, keys::join(&path, &i.to_string()), depth + 1);
                }
            }
            _ => {}
        }
    }
}

/// `torch.optim.Optimizer.state_dict()`: `{"state": ..., "param_groups": [...]}`.
fn is_optimizer(keys: &[&str]) -> bool {
    keys.contains(&"state") && keys.contains(&"param_groups")
}

/// A dict of tensors (the rule is in the docs of [`crate::checkpoint`]); its
/// keys are already known to be strings.
fn is_state_dict(p: &Pickle, items: &[(Id, Id)], keys: &[&str]) -> bool {
    let only_tensors = keys.iter().zip(items).all(|(key, &(_, value))| {
        matches!(p.get(value), Obj::Call { .. } | Obj::None) || key.ends_with(EXTRA_STATE)
    });
    only_tensors
        && items
            .iter()
            .any(|&(_, value)| is_tensor(p, value) && has_dimensions(p, value))
}

/// The tensors of a state dict, under their keys (`None` and extra state skipped).
fn state_dict_tensors(p: &Pickle, items: &[(Id, Id)]) -> Vec<(String, Id)> {
    items
        .iter()
        .filter(|&&(_, value)| is_tensor(p, value))
        .filter_map(|&(key, value)| Some((p.str(key)?.to_owned(), value)))
        .collect()
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
