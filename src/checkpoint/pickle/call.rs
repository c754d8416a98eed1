//! What "calling" an allowed global makes. Nothing is ever called: a
//! container class yields the container, a tensor rebuild function a record
//! of its arguments, an inert class an opaque value.

use super::globals::Global;
use super::value::{Id, Obj, Pickle};

/// `func(*args)`, recorded but not performed.
pub(super) fn call(pickle: &Pickle, func: Id, args: Id) -> Result<Obj, &'static str> {
    let Obj::Global(g) = *pickle.get(func) else {
        return Err("calls something that is not a class or function");
    };
    let Some(arg_items) = pickle.seq(args) else {
        return Err("calls a function with arguments that are not a tuple");
    };
    let first = arg_items.first().map(|&a| pickle.get(a));
    match g {
        Global::Dict => make_dict(pickle, first),
        Global::Set => make_set(first),
        Global::Encode | Global::ByteArray => {
            let encoding = arg_items.get(1).and_then(|&e| pickle.str(e));
            make_bytes(first, encoding).map(Obj::Bytes)
        }
        Global::Size => make_size(first),
        Global::RebuildTensor
        | Global::RebuildTensorV2
        | Global::RebuildTensorV3
        | Global::RebuildParameter
        | Global::RebuildParameterWithState
        | Global::RebuildFromTypeV2 => Ok(Obj::Call { func: g, args }),
        // Parameter(data, requires_grad) has the same argument layout as _rebuild_parameter.
        Global::ParameterClass => Ok(Obj::Call {
            func: Global::RebuildParameter,
            args,
        }),
        Global::Inert(name) => Ok(Obj::Opaque(name)),
        Global::TensorClass => Ok(Obj::Opaque("a torch.Tensor")),
        Global::Storage(_) => Ok(Obj::Opaque("a torch storage")),
        Global::Dtype(..) => Err("calls a dtype"),
        // `_reconstructor` is handled with the module classes it makes instances of.
        Global::Object | Global::Reconstructor => Err("makes a bare object"),
        // Their rules are applied before anything is "called" (`configs::make`).
        Global::ConfigClass(_) | Global::Type(_) | Global::DefaultDict => {
            Err("makes an object of a config class or a type")
        }
    }
}

/// `OrderedDict()`, `OrderedDict(dict)` or `OrderedDict([(k, v), ...])`.
fn make_dict(pickle: &Pickle, first: Option<&Obj>) -> Result<Obj, &'static str> {
    const NOT_PAIRS: &str = "builds a dict from something that is not pairs";
    let items = match first {
        None => Vec::new(),
        Some(Obj::Dict(d)) => d.clone(),
        Some(Obj::Tuple(v) | Obj::List(v)) => {
            let mut items = Vec::new();
            for &pair in v {
                match pickle.get(pair) {
                    Obj::Tuple(kv) | Obj::List(kv) if kv.len() == 2 => {
                        items.push((kv[0], kv[1]));
                    }
                    _ => return Err(NOT_PAIRS),
                }
            }
            items
        }
        Some(_) => return Err(NOT_PAIRS),
    };
    Ok(Obj::Dict(items))
}

fn make_set(first: Option<&Obj>) -> Result<Obj, &'static str> {
    match first {
        None => Ok(Obj::Set(Vec::new())),
        Some(Obj::Tuple(v) | Obj::List(v) | Obj::Set(v)) => Ok(Obj::Set(v.clone())),
        Some(_) => Err("builds a set from something that is not a list"),
    }
}

/// `_codecs.encode(text, "latin1")` is how protocol 2 stores `bytes`, so
/// latin-1 must map each character back to its byte exactly.
fn make_bytes(first: Option<&Obj>, encoding: Option<&str>) -> Result<Vec<u8>, &'static str> {
    let s = match first {
        None => return Ok(Vec::new()),
        Some(Obj::Bytes(b)) => return Ok(b.clone()),
        Some(Obj::Str(s)) => s,
        Some(_) => return Err("makes bytes from something that is not a string"),
    };
    let latin1 = encoding
        .is_some_and(|e| e.eq_ignore_ascii_case("latin1") || e.eq_ignore_ascii_case("latin-1"));
    if !latin1 {
        return Ok(s.as_bytes().to_vec());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => return Err("encodes a non-latin-1 character as latin-1"),
        }
    }
    Ok(out)
}

fn make_size(first: Option<&Obj>) -> Result<Obj, &'static str> {
    match first {
        None => Ok(Obj::Tuple(Vec::new())),
        Some(Obj::Tuple(v) | Obj::List(v)) => Ok(Obj::Tuple(v.clone())),
        Some(_) => Err("makes a torch.Size from something that is not a tuple"),
    }
}
