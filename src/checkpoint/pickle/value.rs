//! The value tree a pickle describes, kept in a flat arena.
//!
//! Values refer to each other by index rather than by pointer, so memo gets
//! are free, cycles are harmless and dropping a deep structure never recurses.

use super::globals::Global;

/// Index of an object in the arena of a [`Pickle`].
pub(crate) type Id = u32;

// The shared immutable objects every arena starts with.
pub(super) const NONE_ID: Id = 0;
pub(super) const TRUE_ID: Id = 1;
pub(super) const FALSE_ID: Id = 2;
pub(super) const EMPTY_TUPLE_ID: Id = 3;

/// One value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64, as little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Items in insertion order (a repeated key is kept twice; readers decide).
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(Global),
    /// The recorded, never performed, call `func(*args)` of a rebuild function.
    Call {
        func: Global,
        args: Id,
    },
    /// An instance of an inert class.
    Opaque(&'static str),
    /// A persistent id (`BINPERSID`): the loader resolves it to a storage.
    PersId(Id),
    /// A global outside the allowlist, `module.name`, which is accepted only
    /// as the class of a model's modules ([`super::modules`]).
    ModuleClass(String),
    /// An instance of a [`Obj::ModuleClass`], never constructed: the class and
    /// the attributes (`__dict__`) that `BUILD` gave it.
    Module {
        class: Id,
        state: Option<Id>,
    },
    /// An object of one of OmegaConf's classes (a config, a node, their
    /// metadata), never constructed: the class's full name and the
    /// attributes `BUILD` gave it ([`super::configs`]).
    Config {
        class: &'static str,
        state: Option<Id>,
    },
}

/// A fully read pickle (while the interpreter runs: the one being built).
#[derive(Debug)]
pub(crate) struct Pickle {
    /// Written only by the interpreter, which enforces the object limit.
    pub(super) objs: Vec<Obj>,
    /// The object STOP returned.
    pub(crate) root: Id,
    /// Every persistent id seen, in order (the pid objects, not the PersId wrappers).
    pub(crate) persids: Vec<Id>,
    /// Offset just past the STOP opcode.
    pub(crate) end: usize,
}

static NONE_OBJ: Obj = Obj::None;

impl Pickle {
    /// An arena holding only the shared immutable objects, which every
    /// pickle pushes often and which therefore are never allocated twice.
    pub(super) fn with_shared_objects() -> Self {
        Pickle {
            objs: vec![
                Obj::None,
                Obj::Bool(true),
                Obj::Bool(false),
                Obj::Tuple(Vec::new()),
            ],
            root: NONE_ID,
            persids: Vec::new(),
            end: 0,
        }
    }

    /// The object with this id (`None` for an id that does not exist, which cannot happen).
    pub(crate) fn get(&self, id: Id) -> &Obj {
        self.objs.get(id as usize).unwrap_or(&NONE_OBJ)
    }

    /// The elements of a tuple or list.
    pub(crate) fn seq(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Obj::Tuple(v) | Obj::List(v) => Some(v),
            _ => None,
        }
    }

    /// The items of a dict.
    pub(crate) fn dict(&self, id: Id) -> Option<&[(Id, Id)]> {
        match self.get(id) {
            Obj::Dict(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The class name and attributes of a module record.
    pub(crate) fn module(&self, id: Id) -> Option<(&str, Option<Id>)> {
        let Obj::Module { class, state } = self.get(id) else {
            return None;
        };
        match self.get(*class) {
            Obj::ModuleClass(name) => Some((name, *state)),
            _ => None,
        }
    }

    pub(crate) fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Obj::Int(i) => Some(*i),
            Obj::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A short description of a value's type, for messages.
    pub(crate) fn type_name(&self, id: Id) -> &'static str {
        match self.get(id) {
            Obj::None => "None",
            Obj::Bool(_) => "a bool",
            Obj::Int(_) | Obj::BigInt(_) => "an integer",
            Obj::Float(_) => "a float",
            Obj::Str(_) => "a string",
            Obj::Bytes(_) => "bytes",
            Obj::Tuple(_) => "a tuple",
            Obj::List(_) => "a list",
            Obj::Dict(_) => "a dict",
            Obj::Set(_) => "a set",
            Obj::Global(_) => "a class or function",
            Obj::Call { .. } => "a tensor",
            Obj::Opaque(name) => name,
            Obj::PersId(_) => "a storage",
            Obj::ModuleClass(_) => "a class",
            Obj::Module { .. } => "a module of a model",
            Obj::Config { .. } => "a saved config",
        }
    }
}
