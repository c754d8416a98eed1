//! A small pickle interpreter that never executes anything.
//!
//! It reads the opcodes that `torch.save` emits (protocol 2, plus what
//! protocols 3-5 add) and builds an inert value tree in an arena. A `GLOBAL`
//! (or `STACK_GLOBAL`, `INST`) is accepted when it names one of the few
//! classes and functions a checkpoint of tensors needs, when it is used
//! exactly as `torch.save(model)` uses a model's module classes (made without
//! arguments, then given a module's attributes: the rule is in [`modules`]),
//! or when it is one of OmegaConf's classes or the types a saved config names
//! (Hydra users' Lightning checkpoints: the rules are in [`configs`]); any
//! other name refuses the whole pickle, naming it. `REDUCE` / `NEWOBJ` never
//! call anything: they record which allow-listed function was "called" with
//! which arguments, or which module or config class an inert record is of.
//!
//! Hostile input: every length is checked against the bytes that are really
//! left before anything is allocated, objects, memo entries, stack depth and
//! opcode count are capped, and nothing here can panic on any byte sequence.
//!
//! * [`opcode`]: the opcodes by name,
//! * [`value`]: the value tree ([`Obj`]) and its arena ([`Pickle`]),
//! * [`globals`]: the allowlist ([`Global`], [`globals::resolve_global`]),
//! * [`call`]: what a "call" of an allowed global makes,
//! * [`modules`]: when a class outside the allowlist is a model's module class,
//! * [`configs`]: OmegaConf's records, types named as values, `defaultdict`,
//! * [`input`]: bounds-checked reading of the bytes,
//! * [`vm`]: the interpreter.

mod call;
mod configs;
mod globals;
mod input;
mod modules;
mod opcode;
pub(crate) use opcode::OpCode;
mod value;
mod vm;

use std::fmt;

pub(crate) use globals::{Global, ScalarType, StorageType};
pub(crate) use value::{Id, Obj, Pickle};

/// Caps that turn a hostile pickle into an error instead of exhausting memory or time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most objects one pickle may create (a DenseNet-121 state dict needs ~40 000).
    pub(crate) objects: usize,
    /// Most memo entries.
    pub(crate) memo: usize,
    /// Deepest stack (values plus marks).
    pub(crate) stack: usize,
    /// Most opcodes run.
    pub(crate) ops: usize,
}

impl Limits {
    pub(crate) const DEFAULT: Limits = Limits {
        objects: 5_000_000,
        memo: 5_000_000,
        stack: 5_000_000,
        ops: 100_000_000,
    };
}

/// Why a pickle was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PickleError {
    /// The pickle names a global outside the allowlist, e.g. `posix.system`.
    Refused(String),
    /// The pickle uses a global otherwise than its rule allows (a class
    /// outside the allowlist otherwise than as a model's module class, an
    /// OmegaConf class otherwise than as a config, a type by calling it);
    /// `how` completes "It is ...", `rule` completes "while ...".
    Misused {
        global: String,
        how: &'static str,
        rule: &'static str,
    },
    /// The data ends before the pickle's STOP.
    Truncated,
    /// The bytes are not a valid pickle (or one camview does not accept).
    Invalid { at: usize, what: String },
    /// The pickle is larger than any checkpoint needs.
    TooLarge(&'static str),
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Refused(g) => write!(f, "refers to '{g}'"),
            PickleError::Misused { global, how, .. } => {
                write!(f, "refers to '{global}', which is {how}")
            }
            PickleError::Truncated => write!(f, "is cut short: the file ends before it does"),
            PickleError::Invalid { at, what } => write!(f, "{what} (at byte {at})"),
            PickleError::TooLarge(what) => write!(f, "has {what}"),
        }
    }
}

impl PickleError {
    fn misused(global: &str, how: &'static str, rule: &'static str) -> Self {
        PickleError::Misused {
            global: global.to_owned(),
            how,
            rule,
        }
    }
}

type PResult<T> = Result<T, PickleError>;

/// Reads one pickle starting at `start` (up to and including its STOP).
pub(crate) fn parse(data: &[u8], start: usize) -> PResult<Pickle> {
    parse_with_limits(data, start, Limits::DEFAULT)
}

/// [`parse`] with other caps.
pub(crate) fn parse_with_limits(data: &[u8], start: usize, limits: Limits) -> PResult<Pickle> {
    vm::Vm::new(data, start, limits).run()
}

#[cfg(test)]
mod tests;
