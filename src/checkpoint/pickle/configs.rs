//! Saved OmegaConf configs, the types they name, and `defaultdict`: when the
//! allow-listed globals that are neither containers nor tensors are accepted.
//!
//! Hydra users' PyTorch Lightning checkpoints store `hyper_parameters` as an
//! OmegaConf `DictConfig` (and `hparams_type`, the class itself). A pickled
//! config is a tree of OmegaConf objects, each made by `NEWOBJ(cls, ())` and
//! given its `__dict__` by `BUILD`; their metadata names types as values
//! (`typing.Any`, `builtins.dict`, `__builtin__.long`, ...) and holds a
//! `defaultdict(dict)`. camview never reads a config (it holds no tensors),
//! but it must read past one without running anything, and without opening
//! the door to anything else:
//!
//! * a class of [`CONFIG_CLASSES`] becomes an inert [`Obj::Config`] record
//!   when made by `NEWOBJ` without arguments, and each record must then be
//!   given, once, a dict of attributes (what OmegaConf always writes); any
//!   other making (`REDUCE`, `INST`, `OBJ`, arguments, keywords) and a record
//!   left without attributes are refused by name;
//! * a type of [`TYPE_VALUES`] may be named anywhere, and is refused by name
//!   when the pickle makes anything of it;
//! * `collections.defaultdict(default)` by `REDUCE`, its default one of those
//!   types, `set`, `frozenset`, `None` or absent, is a plain dict (its items
//!   follow as `SETITEMS`); any other default or making is refused by name.
//!
//! A record's class is a name and its state a dict nobody reads: nothing of
//! OmegaConf's code (`__setstate__`, resolvers) is ever run.
//!
//! [`CONFIG_CLASSES`]: super::globals::CONFIG_CLASSES
//! [`TYPE_VALUES`]: super::globals::TYPE_VALUES

use super::globals::Global;
use super::modules::{BUILT_TWICE, Making, misuse};
use super::value::{Id, Obj, Pickle};
use super::{PResult, PickleError};

/// What every refusal of an OmegaConf class adds after its `how`.
const CONFIG_RULE: &str = "a saved config is only ever rebuilt from its attributes";
/// What every refusal of a type adds after its `how`.
const TYPE_RULE: &str = "a type in a checkpoint is only ever named, never called";
/// What every refusal of `defaultdict` adds after its `how`.
const DEFAULT_DICT_RULE: &str =
    "a defaultdict is only ever made by a call with a plain type as its default";

const MADE: &str = "made into an object";
const NOT_ATTRIBUTES: &str = "given a state that is not a dict of attributes";
const NO_STATE: &str = "made into an object without its attributes";
const NOT_A_PLAIN_DEFAULT: &str = "given a default that is not a plain type";

/// What `func(*args)`, asked for `how`, makes when `func` is an OmegaConf
/// class, a type or `defaultdict`; `None` when it is none of them.
pub(super) fn make(pickle: &Pickle, func: Id, args: Id, how: Making) -> PResult<Option<Obj>> {
    let no_args = pickle.seq(args).is_some_and(<[Id]>::is_empty);
    match *pickle.get(func) {
        Obj::Global(Global::ConfigClass(class)) => match misuse(how, no_args) {
            None => Ok(Some(Obj::Config { class, state: None })),
            Some(what) => Err(PickleError::misused(class, what, CONFIG_RULE)),
        },
        Obj::Global(Global::Type(name)) => {
            let what = misuse(how, no_args).unwrap_or(MADE);
            Err(PickleError::misused(name, what, TYPE_RULE))
        }
        Obj::Global(Global::DefaultDict) => default_dict(pickle, args, how).map(Some),
        _ => Ok(None),
    }
}

/// `defaultdict(default)`: a plain dict when the default is a plain type.
fn default_dict(pickle: &Pickle, args: Id, how: Making) -> PResult<Obj> {
    let refuse = |what| PickleError::misused("collections.defaultdict", what, DEFAULT_DICT_RULE);
    let items = pickle.seq(args).unwrap_or_default();
    if how != Making::Call {
        return Err(refuse(misuse(how, items.is_empty()).unwrap_or(MADE)));
    }
    let plain = match items {
        [] => true,
        &[default] => matches!(
            pickle.get(default),
            Obj::None | Obj::Global(Global::Type(_) | Global::Set)
        ),
        _ => false,
    };
    if plain {
        Ok(Obj::Dict(Vec::new()))
    } else {
        Err(refuse(NOT_A_PLAIN_DEFAULT))
    }
}

/// The config records of one pickle, checked as it runs.
#[derive(Debug, Default)]
pub(super) struct Configs {
    /// Every [`Obj::Config`] record created.
    records: Vec<Id>,
}

impl Configs {
    /// Remembers `id` if it is a config record, so that [`Configs::finish`] can check it.
    pub(super) fn note(&mut self, pickle: &Pickle, id: Id) {
        if matches!(pickle.get(id), Obj::Config { .. }) {
            self.records.push(id);
        }
    }

    /// `BUILD` of `target` with `state`: a config record takes its attributes
    /// once; anything else is left to the next rule.
    pub(super) fn build(pickle: &mut Pickle, target: Id, state: Id) -> PResult<()> {
        let &Obj::Config { class, state: old } = pickle.get(target) else {
            return Ok(());
        };
        if old.is_some() {
            return Err(PickleError::misused(class, BUILT_TWICE, CONFIG_RULE));
        }
        if pickle.dict(state).is_none() {
            return Err(PickleError::misused(class, NOT_ATTRIBUTES, CONFIG_RULE));
        }
        if let Some(Obj::Config { state: slot, .. }) = pickle.objs.get_mut(target as usize) {
            *slot = Some(state);
        }
        Ok(())
    }

    /// At `STOP`: every config record got its attributes.
    pub(super) fn finish(&self, pickle: &Pickle) -> PResult<()> {
        for &record in &self.records {
            if let &Obj::Config { class, state: None } = pickle.get(record) {
                return Err(PickleError::misused(class, NO_STATE, CONFIG_RULE));
            }
        }
        Ok(())
    }
}
