//! Whole-module pickles (`torch.save(model)`): when a class outside the
//! allowlist is accepted, as the class of a model's module.
//!
//! `torch.save(model)` pickles every module (`torchvision.models.densenet.DenseNet`,
//! `torch.nn.modules.conv.Conv2d`, a user's `__main__.CheXNet`, ...) the same
//! way: `NEWOBJ(cls, ())`, which makes an instance without running any of the
//! class's code, then `BUILD` with the instance's `__dict__`, whose
//! `_parameters`, `_buffers` and `_modules` hold the weights. Protocols 0 and 1
//! write `copyreg._reconstructor(cls, object, None)` instead of `NEWOBJ`, and the
//! legacy format wraps a class's first mention in a persistent id
//! `('module', cls, source_file, source)`.
//!
//! A class cannot be judged by its name (the user's classes live in any
//! module), so it is judged by its use. A global outside the allowlist is
//! refused at once when it is no plain dotted name or lies in a module of code
//! ([`super::globals::CODE_MODULES`]). Otherwise it becomes an
//! [`Obj::ModuleClass`], and the pickle is refused, naming it, unless:
//!
//! * every instance is made by `NEWOBJ` with no arguments (or by
//!   `_reconstructor(cls, object, None)`): a `REDUCE`, `INST` or `OBJ`, or any
//!   argument, would run its code (a function "called" this way is refused too);
//! * every instance is then given, once, attributes that are a dict holding
//!   `_parameters`, `_buffers` and `_modules`, as every `torch.nn.Module` has;
//! * the class is made into an instance at least once (a bare class or function
//!   reference is refused as it always was).
//!
//! An instance is an inert [`Obj::Module`] record; nothing is ever called.
//! Its other attributes (`training`, hooks as `OrderedDict`s,
//! `_non_persistent_buffers_set` as a set, a convolution's `stride`) are plain
//! data, or they name another global, which meets the same rules.

use std::collections::HashSet;

use super::globals::{Global, may_be_module_class};
use super::value::{Id, NONE_ID, Obj, Pickle};
use super::{PResult, PickleError};

/// How the pickle asks for an object of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Making {
    /// `NEWOBJ` / `NEWOBJ_EX` without keywords: `cls.__new__(cls, *args)`.
    NewObj,
    /// `NEWOBJ_EX` with keyword arguments.
    NewObjWithKeywords,
    /// `REDUCE`: `func(*args)`.
    Call,
    /// `INST` / `OBJ`: `cls(*args)`, running its constructor.
    Construct,
}

const CALLED: &str = "called with arguments, as a function is";
const CONSTRUCTED: &str = "constructed by a call, which would run its code";
/// What every refusal of a module class adds after its `how`.
const MODULE_RULE: &str = "a saved model's module is only ever rebuilt from its attributes";
pub(super) const BUILT_TWICE: &str = "given its attributes twice";
const NOT_A_MODULE_STATE: &str =
    "given attributes that are not a module's (a dict with _parameters, _buffers and _modules)";
const NEVER_MADE: &str = "named but never made into a module";
const NO_STATE: &str = "made into an object without the attributes every module has";
const RECONSTRUCTOR: &str = "asked for something other than an instance of a module class";

/// The module classes and instances of one pickle, checked as it runs.
#[derive(Debug, Default)]
pub(super) struct Modules {
    /// Every [`Obj::ModuleClass`] object created.
    classes: Vec<Id>,
    /// The classes that have been made into an instance.
    made: HashSet<Id>,
    /// Every [`Obj::Module`] record created.
    instances: Vec<Id>,
}

fn misused(global: &str, how: &'static str) -> PickleError {
    PickleError::misused(global, how, MODULE_RULE)
}

/// What is wrong with making an object of a class `how`, with or without
/// arguments; `None` for `NEWOBJ(cls, ())`, the one way that runs none of
/// the class's code (`cls.__new__` of a plain Python class only allocates).
pub(super) fn misuse(how: Making, no_args: bool) -> Option<&'static str> {
    match how {
        Making::NewObj if no_args => None,
        Making::Construct => Some(CONSTRUCTED),
        Making::Call if no_args => Some(CONSTRUCTED),
        Making::NewObj | Making::NewObjWithKeywords | Making::Call => Some(CALLED),
    }
}

/// What a global outside the allowlist becomes: a possible module class, or a refusal.
pub(super) fn unlisted_global(module: &str, name: &str) -> PResult<Obj> {
    if may_be_module_class(module, name) {
        Ok(Obj::ModuleClass(format!("{module}.{name}")))
    } else {
        Err(PickleError::Refused(format!("{module}.{name}")))
    }
}

/// The class a legacy persistent id `('module', cls, source_file, source)`
/// stands for (torch's loader returns `cls`; the source is never looked at).
pub(super) fn legacy_module_class(pickle: &Pickle, pid: Id) -> Option<Id> {
    let items = pickle.seq(pid)?;
    let (&kind, &class) = (items.first()?, items.get(1)?);
    let is_class = matches!(pickle.get(class), Obj::ModuleClass(_));
    (pickle.str(kind) == Some("module") && is_class).then_some(class)
}

impl Modules {
    /// Remembers `id` if it is a module class, so that [`Modules::finish`] can check it was used.
    pub(super) fn note(&mut self, pickle: &Pickle, id: Id) {
        if matches!(pickle.get(id), Obj::ModuleClass(_)) {
            self.classes.push(id);
        }
    }

    /// The class of which `func(*args)`, asked for `how`, makes a module
    /// instance; `None` when `func` is no module class (an ordinary call).
    pub(super) fn class_to_make(
        &self,
        pickle: &Pickle,
        func: Id,
        args: Id,
        how: Making,
    ) -> PResult<Option<Id>> {
        let no_args = pickle.seq(args).is_some_and(<[Id]>::is_empty);
        match pickle.get(func) {
            Obj::ModuleClass(name) => match misuse(how, no_args) {
                None => Ok(Some(func)),
                Some(what) => Err(misused(name, what)),
            },
            Obj::Global(Global::Reconstructor) => {
                let class = match pickle.seq(args) {
                    Some(&[class, base, state]) if how == Making::Call && state == NONE_ID => {
                        let is_class = matches!(pickle.get(class), Obj::ModuleClass(_));
                        let from_object = matches!(pickle.get(base), Obj::Global(Global::Object));
                        (is_class && from_object).then_some(class)
                    }
                    _ => None,
                };
                class
                    .map(Some)
                    .ok_or_else(|| misused("copyreg._reconstructor", RECONSTRUCTOR))
            }
            _ => Ok(None),
        }
    }

    /// Records that `instance` (an [`Obj::Module`]) was made of `class`.
    pub(super) fn made(&mut self, class: Id, instance: Id) {
        self.made.insert(class);
        self.instances.push(instance);
    }

    /// `BUILD` of `target` with `state`: a module record takes its attributes;
    /// any other object's state is ignored (setting it would mean running
    /// `__setstate__`, and no tensor depends on it).
    pub(super) fn build(&self, pickle: &mut Pickle, target: Id, state: Id) -> PResult<()> {
        let Obj::Module { class, state: old } = pickle.get(target) else {
            return Ok(());
        };
        let name = match pickle.get(*class) {
            Obj::ModuleClass(name) => name.clone(),
            _ => String::new(),
        };
        if old.is_some() {
            return Err(misused(&name, BUILT_TWICE));
        }
        let has = |key: &str| {
            pickle
                .dict(state)
                .is_some_and(|items| items.iter().any(|&(k, _)| pickle.str(k) == Some(key)))
        };
        if !(has("_parameters") && has("_buffers") && has("_modules")) {
            return Err(misused(&name, NOT_A_MODULE_STATE));
        }
        if let Some(Obj::Module { state: slot, .. }) = pickle.objs.get_mut(target as usize) {
            *slot = Some(state);
        }
        Ok(())
    }

    /// At `STOP`: every module class was made into a module, and every module got its attributes.
    pub(super) fn finish(&self, pickle: &Pickle) -> PResult<()> {
        let name = |id: Id| match pickle.get(id) {
            Obj::ModuleClass(name) => name.as_str(),
            _ => "",
        };
        if let Some(&class) = self.classes.iter().find(|c| !self.made.contains(c)) {
            return Err(misused(name(class), NEVER_MADE));
        }
        for &instance in &self.instances {
            if let Obj::Module { class, state: None } = pickle.get(instance) {
                return Err(misused(name(*class), NO_STATE));
            }
        }
        Ok(())
    }
}
