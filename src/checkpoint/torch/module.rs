//! The parameters and buffers of a whole module (`torch.save(model)`), read
//! from its inert record ([`Obj::Module`]) as `Module.state_dict()` gathers
//! them: the module's own `_parameters`, then its `_buffers` (without the
//! non-persistent ones, which a state dict leaves out; torchvision's DenseNet
//! has none), then each submodule of `_modules` under `name.`, in order.
//! `None` entries (a layer without bias) are skipped, as PyTorch skips them.

use std::collections::HashSet;

use super::spec::{field, is_tensor};
use crate::checkpoint::CheckpointError;
use crate::checkpoint::keys;
use crate::checkpoint::pickle::{Id, Obj, Pickle};

/// Deepest nesting of modules (torchvision's DenseNet nests 5 deep).
const MAX_DEPTH: usize = 64;
/// Most modules walked, counting a shared one each time it is reached
/// (a DenseNet-264 has about 1 000).
const MAX_MODULES: usize = 100_000;

/// The tensors of the module `root`, found at `path` in the file, under their
/// state-dict keys, in the order PyTorch gives them.
pub(super) fn tensors(
    name: &str,
    p: &Pickle,
    root: Id,
    path: &str,
) -> Result<Vec<(String, Id)>, CheckpointError> {
    let mut walk = Walk {
        name,
        p,
        path,
        ancestors: Vec::new(),
        visits: 0,
        out: Vec::new(),
    };
    walk.module(root, "")?;
    Ok(walk.out)
}

struct Walk<'a> {
    /// The file's name, for messages.
    name: &'a str,
    p: &'a Pickle,
    /// Where the root module sits in the file, for messages.
    path: &'a str,
    /// The modules being walked, outermost first (a module inside itself is damage).
    ancestors: Vec<Id>,
    visits: usize,
    out: Vec<(String, Id)>,
}

impl Walk<'_> {
    /// The module `id`, whose tensors' keys start with `prefix` (`""` or `"a.b."`).
    fn module(&mut self, id: Id, prefix: &str) -> Result<(), CheckpointError> {
        let p = self.p;
        self.visits += 1;
        if self.visits > MAX_MODULES || self.ancestors.len() >= MAX_DEPTH {
            return Err(CheckpointError::unsupported(
                self.name,
                format!(
                    "{} nests or repeats its modules far more than any model does",
                    self.place("")
                ),
            ));
        }
        if self.ancestors.contains(&id) {
            return Err(self.damaged(prefix, "contains itself"));
        }
        let Some((_, Some(state))) = p.module(id) else {
            return Err(self.damaged(prefix, "has no attributes"));
        };
        self.own_tensors(state, "_parameters", prefix, &HashSet::new())?;
        self.own_tensors(state, "_buffers", prefix, &non_persistent(p, state))?;
        let Some(children) = field(p, state, "_modules").and_then(|m| p.dict(m)) else {
            return Err(self.damaged(prefix, "has no dict of submodules"));
        };
        self.ancestors.push(id);
        for &(key, child) in children {
            let Some(child_name) = p.str(key) else {
                return Err(self.damaged(prefix, "names a submodule by something else than a name"));
            };
            let child_prefix = format!("{prefix}{child_name}.");
            match p.get(child) {
                Obj::None => {}
                Obj::Module { .. } => self.module(child, &child_prefix)?,
                _ => {
                    let what = format!(
                        "holds {} as its submodule '{child_name}'",
                        p.type_name(child)
                    );
                    return Err(self.damaged(prefix, &what));
                }
            }
        }
        self.ancestors.pop();
        Ok(())
    }

    /// The tensors of the module's `_parameters` or `_buffers` dict, but those in `skip`.
    fn own_tensors(
        &mut self,
        state: Id,
        attribute: &str,
        prefix: &str,
        skip: &HashSet<&str>,
    ) -> Result<(), CheckpointError> {
        let p = self.p;
        let Some(items) = field(p, state, attribute).and_then(|d| p.dict(d)) else {
            return Err(self.damaged(prefix, &format!("has no {attribute} dict")));
        };
        for &(key, value) in items {
            let Some(tensor_name) = p.str(key) else {
                return Err(self.damaged(
                    prefix,
                    &format!("names one of its {attribute} by something else than a name"),
                ));
            };
            if skip.contains(tensor_name) || matches!(p.get(value), Obj::None) {
                continue;
            }
            if !is_tensor(p, value) {
                let what = format!(
                    "holds {} as '{tensor_name}' in its {attribute}",
                    p.type_name(value)
                );
                return Err(self.damaged(prefix, &what));
            }
            self.out.push((format!("{prefix}{tensor_name}"), value));
        }
        Ok(())
    }

    /// The module with this key prefix, for messages: "the saved module 'a.b'".
    fn place(&self, prefix: &str) -> String {
        let inner = prefix.trim_end_matches('.');
        match (self.path.is_empty(), inner.is_empty()) {
            (true, true) => "the saved module".to_owned(),
            (false, true) => format!("the saved module '{}'", self.path),
            _ => format!("the saved module '{}'", keys::join(self.path, inner)),
        }
    }

    fn damaged(&self, prefix: &str, what: &str) -> CheckpointError {
        CheckpointError::corrupt(self.name, format!("{} {what}", self.place(prefix)))
    }
}

/// `_non_persistent_buffers_set` (absent from pickles of PyTorch < 1.6).
fn non_persistent(p: &Pickle, state: Id) -> HashSet<&str> {
    match field(p, state, "_non_persistent_buffers_set").map(|s| p.get(s)) {
        Some(Obj::Set(items)) => items.iter().filter_map(|&i| p.str(i)).collect(),
        _ => HashSet::new(),
    }
}
