//! A small pickle interpreter that never executes anything.
//!
//! It reads the opcodes that `torch.save` emits (protocol 2, plus what
//! protocols 3-5 add) and builds an inert value tree in an arena. A `GLOBAL`
//! (or `STACK_GLOBAL`, `INST`) is only accepted when it names one of the few
//! classes and functions a checkpoint needs; any other name refuses the whole
//! pickle. `REDUCE` / `NEWOBJ` never call anything: they record which
//! allow-listed function was "called" with which arguments.
//!
//! Hostile input: every length is checked against the bytes that are really
//! left before anything is allocated, objects, memo entries, stack depth and
//! opcode count are capped, and nothing here can panic on any byte sequence.
//! Values live in a flat arena and refer to each other by index, so memo gets
//! are free, cycles are harmless and dropping a deep structure never recurses.

use std::collections::HashMap;
use std::fmt;

/// Index of an object in [`Pickle::objs`].
pub(crate) type Id = u32;

/// The shared `None` object.
pub(crate) const NONE_ID: Id = 0;
const TRUE_ID: Id = 1;
const FALSE_ID: Id = 2;
const EMPTY_TUPLE_ID: Id = 3;

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

/// Element type of a tensor storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl ScalarType {
    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            ScalarType::F64 | ScalarType::I64 => 8,
            ScalarType::F32 | ScalarType::I32 => 4,
            ScalarType::F16 | ScalarType::BF16 | ScalarType::I16 => 2,
            ScalarType::I8 | ScalarType::U8 | ScalarType::Bool => 1,
        }
    }

    /// Whether the values are floating point (they are returned as f32).
    pub(crate) fn is_float(self) -> bool {
        matches!(
            self,
            ScalarType::F32 | ScalarType::F64 | ScalarType::F16 | ScalarType::BF16
        )
    }
}

/// The storage class named in a persistent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageType {
    Typed(ScalarType),
    /// `torch.UntypedStorage`: raw bytes.
    Untyped,
    /// A real torch storage class that camview cannot convert (complex, quantised).
    Unsupported(&'static str),
}

/// An allow-listed global. Nothing here is ever executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Global {
    /// `collections.OrderedDict` / `collections.Counter`: calling it makes a dict.
    Dict,
    /// `builtins.set` / `builtins.frozenset`.
    Set,
    /// `_codecs.encode`: how protocol 2 stores `bytes`.
    Encode,
    /// `builtins.bytearray`.
    ByteArray,
    /// `torch.Size`.
    Size,
    RebuildTensor,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    /// `torch.Tensor` (as the type argument of `_rebuild_from_type_v2`).
    TensorClass,
    /// `torch.nn.parameter.Parameter`.
    ParameterClass,
    Storage(StorageType),
    /// A `torch.<dtype>` object; `None` when camview cannot convert it.
    Dtype(Option<ScalarType>, &'static str),
    /// A harmless class kept as an opaque value (numpy scalars, argparse.Namespace, ...).
    Inert(&'static str),
}

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
}

/// Why a pickle was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PickleError {
    /// The pickle names a global outside the allowlist, e.g. `posix.system`.
    Refused(String),
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
            PickleError::Truncated => write!(f, "is cut short: the file ends before it does"),
            PickleError::Invalid { at, what } => write!(f, "{what} (at byte {at})"),
            PickleError::TooLarge(what) => write!(f, "has {what}"),
        }
    }
}

type PResult<T> = Result<T, PickleError>;

/// A fully read pickle.
#[derive(Debug)]
pub(crate) struct Pickle {
    objs: Vec<Obj>,
    /// The object STOP returned.
    pub(crate) root: Id,
    /// Every persistent id seen, in order (the pid objects, not the PersId wrappers).
    pub(crate) persids: Vec<Id>,
    /// Offset just past the STOP opcode.
    pub(crate) end: usize,
}

static NONE_OBJ: Obj = Obj::None;

impl Pickle {
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
        }
    }
}

/// Maps an allowed `module.name` to its [`Global`]; `None` means refused.
pub(crate) fn resolve_global(module: &str, name: &str) -> Option<Global> {
    use ScalarType::*;
    const STORAGES: &[(&str, ScalarType)] = &[
        ("FloatStorage", F32),
        ("DoubleStorage", F64),
        ("HalfStorage", F16),
        ("BFloat16Storage", BF16),
        ("LongStorage", I64),
        ("IntStorage", I32),
        ("ShortStorage", I16),
        ("CharStorage", I8),
        ("ByteStorage", U8),
        ("BoolStorage", Bool),
    ];
    const UNSUPPORTED_STORAGES: &[&str] = &[
        "ComplexFloatStorage",
        "ComplexDoubleStorage",
        "QInt8Storage",
        "QUInt8Storage",
        "QInt32Storage",
        "QUInt4x2Storage",
        "QUInt2x4Storage",
    ];
    const DTYPES: &[(&str, Option<ScalarType>)] = &[
        ("float32", Some(F32)),
        ("float", Some(F32)),
        ("float64", Some(F64)),
        ("double", Some(F64)),
        ("float16", Some(F16)),
        ("half", Some(F16)),
        ("bfloat16", Some(BF16)),
        ("int64", Some(I64)),
        ("long", Some(I64)),
        ("int32", Some(I32)),
        ("int", Some(I32)),
        ("int16", Some(I16)),
        ("short", Some(I16)),
        ("int8", Some(I8)),
        ("uint8", Some(U8)),
        ("bool", Some(Bool)),
        ("uint16", None),
        ("uint32", None),
        ("uint64", None),
        ("complex32", None),
        ("complex64", None),
        ("complex128", None),
        ("chalf", None),
        ("cfloat", None),
        ("cdouble", None),
        ("float8_e4m3fn", None),
        ("float8_e5m2", None),
        ("float8_e4m3fnuz", None),
        ("float8_e5m2fnuz", None),
        ("qint8", None),
        ("quint8", None),
        ("qint32", None),
        ("quint4x2", None),
        ("quint2x4", None),
    ];
    const INERT: &[(&str, &str, &str)] = &[
        ("numpy.core.multiarray", "scalar", "a numpy scalar"),
        ("numpy._core.multiarray", "scalar", "a numpy scalar"),
        ("numpy.core.multiarray", "_reconstruct", "a numpy array"),
        ("numpy._core.multiarray", "_reconstruct", "a numpy array"),
        ("numpy", "ndarray", "a numpy array"),
        ("numpy", "dtype", "a numpy dtype"),
        ("argparse", "Namespace", "an argparse.Namespace"),
        ("torch", "device", "a torch.device"),
        ("builtins", "complex", "a complex number"),
        ("__builtin__", "complex", "a complex number"),
    ];

    let g = match (module, name) {
        ("collections", "OrderedDict" | "Counter") => Global::Dict,
        ("builtins" | "__builtin__", "set" | "frozenset") => Global::Set,
        ("builtins" | "__builtin__", "bytearray") => Global::ByteArray,
        ("_codecs", "encode") => Global::Encode,
        ("torch", "Size") => Global::Size,
        ("torch", "Tensor") => Global::TensorClass,
        ("torch.nn.parameter", "Parameter") => Global::ParameterClass,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch" | "torch.storage", "UntypedStorage") => Global::Storage(StorageType::Untyped),
        ("torch" | "torch.cuda", _) if name.ends_with("Storage") => {
            if let Some((_, t)) = STORAGES.iter().find(|(n, _)| *n == name) {
                Global::Storage(StorageType::Typed(*t))
            } else if let Some(n) = UNSUPPORTED_STORAGES.iter().find(|n| **n == name) {
                Global::Storage(StorageType::Unsupported(n))
            } else {
                return None;
            }
        }
        ("torch", _) if DTYPES.iter().any(|(n, _)| *n == name) => {
            let (n, t) = DTYPES.iter().find(|(n, _)| *n == name)?;
            Global::Dtype(*t, n)
        }
        _ => {
            let (_, _, what) = INERT.iter().find(|(m, n, _)| *m == module && *n == name)?;
            Global::Inert(what)
        }
    };
    Some(g)
}

/// Reads one pickle starting at `start` (up to and including its STOP).
pub(crate) fn parse(data: &[u8], start: usize) -> PResult<Pickle> {
    parse_with_limits(data, start, Limits::DEFAULT)
}

/// [`parse`] with other caps.
pub(crate) fn parse_with_limits(data: &[u8], start: usize, limits: Limits) -> PResult<Pickle> {
    Vm::new(data, start, limits).run()
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run (for messages).
    op_at: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    persids: Vec<Id>,
    limits: Limits,
}

impl<'a> Vm<'a> {
    fn new(data: &'a [u8], start: usize, limits: Limits) -> Self {
        Vm {
            limits,
            data,
            pos: start,
            op_at: start,
            objs: vec![
                Obj::None,
                Obj::Bool(true),
                Obj::Bool(false),
                Obj::Tuple(Vec::new()),
            ],
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            persids: Vec::new(),
        }
    }

    fn invalid<T>(&self, what: impl Into<String>) -> PResult<T> {
        Err(PickleError::Invalid {
            at: self.op_at,
            what: what.into(),
        })
    }

    // ---- reading --------------------------------------------------------

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
        let s = data.get(self.pos..end).ok_or(PickleError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> PResult<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> PResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn len_u64(&mut self) -> PResult<usize> {
        let n = u64::from_le_bytes(self.array()?);
        // A length larger than the address space can never be satisfied.
        usize::try_from(n).map_err(|_| PickleError::Truncated)
    }

    /// A text line without its `\n` (protocol 0 opcodes).
    fn line(&mut self) -> PResult<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).ok_or(PickleError::Truncated)?;
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated)?;
        let line = rest.get(..n).ok_or(PickleError::Truncated)?;
        self.pos = self.pos.saturating_add(n).saturating_add(1);
        Ok(line)
    }

    fn line_str(&mut self) -> PResult<String> {
        let l = self.line()?;
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        Ok(String::from_utf8_lossy(l).into_owned())
    }

    // ---- objects and stack ----------------------------------------------

    fn alloc(&mut self, obj: Obj) -> PResult<Id> {
        if self.objs.len() >= self.limits.objects {
            return Err(PickleError::TooLarge(
                "more objects than any checkpoint needs",
            ));
        }
        let id = Id::try_from(self.objs.len())
            .map_err(|_| PickleError::TooLarge("more objects than any checkpoint needs"))?;
        self.objs.push(obj);
        Ok(id)
    }

    fn push_id(&mut self, id: Id) -> PResult<()> {
        if self.stack.len().saturating_add(self.marks.len()) >= self.limits.stack {
            return Err(PickleError::TooLarge(
                "a deeper stack than any checkpoint needs",
            ));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, obj: Obj) -> PResult<()> {
        let id = self.alloc(obj)?;
        self.push_id(id)
    }

    fn pop(&mut self) -> PResult<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.invalid("pops from an empty stack");
        }
        match self.stack.pop() {
            Some(id) => Ok(id),
            None => self.invalid("pops from an empty stack"),
        }
    }

    fn top(&self) -> PResult<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(&id) if self.stack.len() > floor => Ok(id),
            _ => self.invalid("uses the top of an empty stack"),
        }
    }

    /// Removes and returns everything above the last MARK, and the MARK.
    fn pop_mark(&mut self) -> PResult<Vec<Id>> {
        let Some(m) = self.marks.pop() else {
            return self.invalid("expects a MARK that is not there");
        };
        if m > self.stack.len() {
            return self.invalid("the stack is shorter than its MARK");
        }
        Ok(self.stack.split_off(m))
    }

    fn obj(&self, id: Id) -> &Obj {
        self.objs.get(id as usize).unwrap_or(&NONE_OBJ)
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match self.obj(id) {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    fn memo_put(&mut self, idx: u32) -> PResult<()> {
        let top = self.top()?;
        if self.memo.len() >= self.limits.memo && !self.memo.contains_key(&idx) {
            return Err(PickleError::TooLarge(
                "more memo entries than any checkpoint needs",
            ));
        }
        self.memo.insert(idx, top);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> PResult<()> {
        match self.memo.get(&idx) {
            Some(&id) => self.push_id(id),
            None => self.invalid(format!(
                "refers to memo entry {idx}, which was never stored"
            )),
        }
    }

    fn memo_index_text(&mut self) -> PResult<u32> {
        let l = self.line_str()?;
        match l.trim().parse::<u32>() {
            Ok(i) => Ok(i),
            Err(_) => self.invalid("has a bad memo index"),
        }
    }

    // ---- globals and calls ----------------------------------------------

    fn global(&mut self, module: &str, name: &str) -> PResult<Global> {
        resolve_global(module, name).ok_or_else(|| PickleError::Refused(format!("{module}.{name}")))
    }

    /// `func(*args)`, recorded but not performed.
    fn call(&mut self, func: Id, args: Id) -> PResult<Obj> {
        let Obj::Global(g) = *self.obj(func) else {
            return self.invalid("calls something that is not a class or function");
        };
        let arg_items: Vec<Id> = match self.obj(args) {
            Obj::Tuple(v) | Obj::List(v) => v.clone(),
            _ => return self.invalid("calls a function with arguments that are not a tuple"),
        };
        let obj = match g {
            Global::Dict => {
                let mut items = Vec::new();
                if let Some(&first) = arg_items.first() {
                    match self.obj(first) {
                        Obj::Dict(d) => items.clone_from(d),
                        Obj::Tuple(v) | Obj::List(v) => {
                            for &pair in v {
                                match self.obj(pair) {
                                    Obj::Tuple(kv) | Obj::List(kv) if kv.len() == 2 => {
                                        items.push((kv[0], kv[1]));
                                    }
                                    _ => {
                                        return self.invalid(
                                            "builds a dict from something that is not pairs",
                                        );
                                    }
                                }
                            }
                        }
                        _ => return self.invalid("builds a dict from something that is not pairs"),
                    }
                }
                Obj::Dict(items)
            }
            Global::Set => {
                let items = match arg_items.first().map(|&a| self.obj(a)) {
                    None => Vec::new(),
                    Some(Obj::Tuple(v) | Obj::List(v) | Obj::Set(v)) => v.clone(),
                    Some(_) => {
                        return self.invalid("builds a set from something that is not a list");
                    }
                };
                Obj::Set(items)
            }
            Global::Encode | Global::ByteArray => {
                let bytes = match arg_items.first().map(|&a| self.obj(a)) {
                    None => Vec::new(),
                    Some(Obj::Bytes(b)) => b.clone(),
                    Some(Obj::Str(s)) => {
                        let latin1 =
                            arg_items
                                .get(1)
                                .and_then(|&e| self.str_of(e))
                                .is_some_and(|e| {
                                    e.eq_ignore_ascii_case("latin1")
                                        || e.eq_ignore_ascii_case("latin-1")
                                });
                        if latin1 {
                            let mut out = Vec::with_capacity(s.len());
                            for c in s.chars() {
                                match u8::try_from(u32::from(c)) {
                                    Ok(b) => out.push(b),
                                    Err(_) => {
                                        return self
                                            .invalid("encodes a non-latin-1 character as latin-1");
                                    }
                                }
                            }
                            out
                        } else {
                            s.as_bytes().to_vec()
                        }
                    }
                    Some(_) => {
                        return self.invalid("makes bytes from something that is not a string");
                    }
                };
                Obj::Bytes(bytes)
            }
            Global::Size => match arg_items.first().map(|&a| self.obj(a)) {
                None => Obj::Tuple(Vec::new()),
                Some(Obj::Tuple(v) | Obj::List(v)) => Obj::Tuple(v.clone()),
                Some(_) => {
                    return self.invalid("makes a torch.Size from something that is not a tuple");
                }
            },
            Global::RebuildTensor
            | Global::RebuildTensorV2
            | Global::RebuildTensorV3
            | Global::RebuildParameter
            | Global::RebuildParameterWithState
            | Global::RebuildFromTypeV2 => Obj::Call { func: g, args },
            // Parameter(data, requires_grad) has the same argument layout as _rebuild_parameter.
            Global::ParameterClass => Obj::Call {
                func: Global::RebuildParameter,
                args,
            },
            Global::Inert(name) => Obj::Opaque(name),
            Global::TensorClass => Obj::Opaque("a torch.Tensor"),
            Global::Storage(_) => Obj::Opaque("a torch storage"),
            Global::Dtype(..) => return self.invalid("calls a dtype"),
        };
        Ok(obj)
    }

    // ---- the loop ---------------------------------------------------------

    fn run(mut self) -> PResult<Pickle> {
        let mut ops: usize = 0;
        loop {
            ops += 1;
            if ops > self.limits.ops {
                return Err(PickleError::TooLarge(
                    "more opcodes than any checkpoint needs",
                ));
            }
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return self
                            .invalid(format!("uses pickle protocol {v}, which does not exist"));
                    }
                }
                // FRAME: only a hint for buffering; the length must still be there.
                0x95 => {
                    let n = self.len_u64()?;
                    if n > self.data.len().saturating_sub(self.pos) {
                        return Err(PickleError::Truncated);
                    }
                }
                // STOP
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Pickle {
                        objs: self.objs,
                        root,
                        persids: self.persids,
                        end: self.pos,
                    });
                }
                // MARK
                b'(' => {
                    if self.stack.len().saturating_add(self.marks.len()) >= self.limits.stack {
                        return Err(PickleError::TooLarge(
                            "a deeper stack than any checkpoint needs",
                        ));
                    }
                    self.marks.push(self.stack.len());
                }
                // POP
                b'0' => {
                    if self.stack.len() > self.marks.last().copied().unwrap_or(0) {
                        self.pop()?;
                    } else {
                        // POP of a bare MARK discards the mark (as CPython does).
                        self.pop_mark()?;
                    }
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark()?;
                }
                // DUP
                b'2' => {
                    let t = self.top()?;
                    self.push_id(t)?;
                }
                // NONE, NEWTRUE, NEWFALSE, EMPTY_TUPLE: shared immutable objects
                b'N' => self.push_id(NONE_ID)?,
                0x88 => self.push_id(TRUE_ID)?,
                0x89 => self.push_id(FALSE_ID)?,
                b')' => self.push_id(EMPTY_TUPLE_ID)?,
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Obj::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Obj::Int(i64::from(v)))?;
                }
                // LONG1, LONG4
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    self.push(long_from_le(b))?;
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.array()?);
                    let Ok(n) = usize::try_from(n) else {
                        return self.invalid("has a negative length");
                    };
                    let b = self.take(n)?;
                    self.push(long_from_le(b))?;
                }
                // INT, LONG (text)
                b'I' | b'L' => {
                    let l = self.line_str()?;
                    let t = l.trim().trim_end_matches('L');
                    let obj = match (op, t) {
                        (b'I', "00") => Obj::Bool(false),
                        (b'I', "01") => Obj::Bool(true),
                        _ => match t.parse::<i64>() {
                            Ok(v) => Obj::Int(v),
                            Err(_)
                                if !t.is_empty()
                                    && t.trim_start_matches(['-', '+'])
                                        .bytes()
                                        .all(|c| c.is_ascii_digit()) =>
                            {
                                Obj::BigInt(t.as_bytes().to_vec())
                            }
                            Err(_) => return self.invalid("has a malformed integer"),
                        },
                    };
                    self.push(obj)?;
                }
                // BINFLOAT (big-endian), FLOAT (text)
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Obj::Float(v))?;
                }
                b'F' => {
                    let l = self.line_str()?;
                    match l.trim().parse::<f64>() {
                        Ok(v) => self.push(Obj::Float(v))?,
                        Err(_) => return self.invalid("has a malformed float"),
                    }
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => usize::from(self.u8()?),
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?;
                    self.push(Obj::Str(String::from_utf8_lossy(b).into_owned()))?;
                }
                // BINSTRING, SHORT_BINSTRING (Python 2 str, decoded as PyTorch does)
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = i32::from_le_bytes(self.array()?);
                        match usize::try_from(n) {
                            Ok(n) => n,
                            Err(_) => return self.invalid("has a negative length"),
                        }
                    } else {
                        usize::from(self.u8()?)
                    };
                    let b = self.take(n)?;
                    self.push(Obj::Str(String::from_utf8_lossy(b).into_owned()))?;
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => usize::from(self.u8()?),
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?;
                    self.push(Obj::Bytes(b.to_vec()))?;
                }
                // NEXT_BUFFER: out-of-band buffers are never in a file
                0x97 => return self.invalid("needs an out-of-band buffer"),
                // READONLY_BUFFER: a no-op on the top value
                0x98 => {
                    self.top()?;
                }
                // EMPTY_LIST, EMPTY_DICT, EMPTY_SET
                b']' => self.push(Obj::List(Vec::new()))?,
                b'}' => self.push(Obj::Dict(Vec::new()))?,
                0x8f => self.push(Obj::Set(Vec::new()))?,
                // LIST, TUPLE, FROZENSET, DICT (from MARK)
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Set(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return self.invalid("builds a dict from an odd number of items");
                    }
                    let pairs = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    self.push(Obj::Dict(pairs))?;
                }
                // TUPLE1, TUPLE2, TUPLE3
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Obj::Tuple(items))?;
                }
                // APPEND, APPENDS
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    let target = self.top()?;
                    match self.objs.get_mut(target as usize) {
                        Some(Obj::List(v)) => v.extend(items),
                        _ => return self.invalid("appends to something that is not a list"),
                    }
                }
                // ADDITEMS
                0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    match self.objs.get_mut(target as usize) {
                        Some(Obj::Set(v)) => v.extend(items),
                        _ => return self.invalid("adds items to something that is not a set"),
                    }
                }
                // SETITEM, SETITEMS
                b's' | b'u' => {
                    let items = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![k, v]
                    } else {
                        self.pop_mark()?
                    };
                    if items.len() % 2 != 0 {
                        return self.invalid("sets a dict item without a value");
                    }
                    let target = self.top()?;
                    match self.objs.get_mut(target as usize) {
                        Some(Obj::Dict(d)) => d.extend(items.chunks_exact(2).map(|c| (c[0], c[1]))),
                        _ => return self.invalid("sets items on something that is not a dict"),
                    }
                }
                // BINPUT, LONG_BINPUT, PUT, MEMOIZE
                b'q' => {
                    let i = u32::from(self.u8()?);
                    self.memo_put(i)?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                b'p' => {
                    let i = self.memo_index_text()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let Ok(i) = u32::try_from(self.memo.len()) else {
                        return Err(PickleError::TooLarge(
                            "more memo entries than any checkpoint needs",
                        ));
                    };
                    self.memo_put(i)?;
                }
                // BINGET, LONG_BINGET, GET
                b'h' => {
                    let i = u32::from(self.u8()?);
                    self.memo_get(i)?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'g' => {
                    let i = self.memo_index_text()?;
                    self.memo_get(i)?;
                }
                // GLOBAL
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let g = self.global(&module, &name)?;
                    self.push(Obj::Global(g))?;
                }
                // STACK_GLOBAL
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name))
                    else {
                        return self.invalid("STACK_GLOBAL needs two strings");
                    };
                    let (module, name) = (module.to_owned(), name.to_owned());
                    let g = self.global(&module, &name)?;
                    self.push(Obj::Global(g))?;
                }
                // EXT1, EXT2, EXT4: the copyreg extension registry
                0x82..=0x84 => {
                    let code = match op {
                        0x82 => u32::from(self.u8()?),
                        0x83 => u32::from(u16::from_le_bytes(self.array()?)),
                        _ => self.u32()?,
                    };
                    return Err(PickleError::Refused(format!(
                        "copyreg extension code {code}"
                    )));
                }
                // REDUCE
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let obj = self.call(func, args)?;
                    self.push(obj)?;
                }
                // NEWOBJ, NEWOBJ_EX
                0x81 | 0x92 => {
                    if op == 0x92 {
                        self.pop()?; // kwargs
                    }
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let obj = self.call(cls, args)?;
                    self.push(obj)?;
                }
                // INST (text module/name, arguments from MARK)
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let g = self.global(&module, &name)?;
                    let items = self.pop_mark()?;
                    let func = self.alloc(Obj::Global(g))?;
                    let args = self.alloc(Obj::Tuple(items))?;
                    let obj = self.call(func, args)?;
                    self.push(obj)?;
                }
                // OBJ (class and arguments from MARK)
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.invalid("OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let args = self.alloc(Obj::Tuple(items))?;
                    let obj = self.call(cls, args)?;
                    self.push(obj)?;
                }
                // BUILD: the state of the object on top is ignored (e.g. an
                // OrderedDict's `_metadata`, a numpy scalar's dtype flags).
                b'b' => {
                    self.pop()?;
                    self.top()?;
                }
                // BINPERSID, PERSID
                b'Q' => {
                    let pid = self.pop()?;
                    self.persids.push(pid);
                    self.push(Obj::PersId(pid))?;
                }
                b'P' => {
                    let s = self.line_str()?;
                    let pid = self.alloc(Obj::Str(s))?;
                    self.persids.push(pid);
                    self.push(Obj::PersId(pid))?;
                }
                // STRING, UNICODE (text, with escapes): never written by torch
                b'S' | b'V' => {
                    return self.invalid("uses a text string opcode that checkpoints never use");
                }
                _ => return self.invalid(format!("has an unknown opcode 0x{op:02x}")),
            }
        }
    }
}

/// A little-endian two's complement integer (LONG1/LONG4).
fn long_from_le(b: &[u8]) -> Obj {
    let negative = b.last().is_some_and(|&x| x & 0x80 != 0);
    let fill = if negative { 0xff } else { 0x00 };
    // Leading sign bytes beyond 8 do not change the value.
    let mut n = b.len();
    while n > 8
        && b.get(n - 1) == Some(&fill)
        && b.get(n - 2).is_some_and(|&x| (x & 0x80 != 0) == negative)
    {
        n -= 1;
    }
    if n > 8 {
        return Obj::BigInt(b.to_vec());
    }
    let mut a = [fill; 8];
    for (d, s) in a.iter_mut().zip(b.iter().take(n)) {
        *d = *s;
    }
    Obj::Int(i64::from_le_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-assembled pickle.
    #[derive(Clone)]
    struct P(Vec<u8>);

    impl P {
        fn new() -> Self {
            P(vec![0x80, 2])
        }
        fn op(mut self, b: u8) -> Self {
            self.0.push(b);
            self
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn uni(self, s: &str) -> Self {
            let n = (s.len() as u32).to_le_bytes();
            self.op(b'X').raw(&n).raw(s.as_bytes())
        }
        fn short_uni(self, s: &str) -> Self {
            self.op(0x8c).raw(&[s.len() as u8]).raw(s.as_bytes())
        }
        fn int1(self, v: u8) -> Self {
            self.op(b'K').raw(&[v])
        }
        fn global(self, module: &str, name: &str) -> Self {
            self.op(b'c')
                .raw(module.as_bytes())
                .raw(b"\n")
                .raw(name.as_bytes())
                .raw(b"\n")
        }
        fn put(self, i: u8) -> Self {
            self.op(b'q').raw(&[i])
        }
        fn get(self, i: u8) -> Self {
            self.op(b'h').raw(&[i])
        }
        fn stop(self) -> Vec<u8> {
            self.op(b'.').0
        }
    }

    fn parse_ok(b: &[u8]) -> Pickle {
        match parse(b, 0) {
            Ok(p) => p,
            Err(e) => panic!("pickle failed: {e:?}"),
        }
    }

    fn ints(p: &Pickle, id: Id) -> Vec<i64> {
        p.seq(id)
            .unwrap()
            .iter()
            .map(|&i| p.int(i).unwrap())
            .collect()
    }

    #[test]
    fn scalars() {
        let cases: Vec<(P, Obj)> = vec![
            (P::new().op(b'N'), Obj::None),
            (P::new().op(0x88), Obj::Bool(true)),
            (P::new().op(0x89), Obj::Bool(false)),
            (P::new().int1(200), Obj::Int(200)),
            (P::new().op(b'M').raw(&[0x34, 0x12]), Obj::Int(0x1234)),
            (P::new().op(b'J').raw(&(-5i32).to_le_bytes()), Obj::Int(-5)),
            (P::new().op(0x8a).raw(&[0]), Obj::Int(0)),
            (P::new().op(0x8a).raw(&[1, 0xff]), Obj::Int(-1)),
            (P::new().op(0x8a).raw(&[2, 0x00, 0x80]), Obj::Int(-32768)),
            (
                P::new().op(0x8a).raw(&[8]).raw(&i64::MIN.to_le_bytes()),
                Obj::Int(i64::MIN),
            ),
            // 9 bytes whose top byte is only sign extension still fit
            (
                P::new()
                    .op(0x8a)
                    .raw(&[9])
                    .raw(&i64::MAX.to_le_bytes())
                    .raw(&[0]),
                Obj::Int(i64::MAX),
            ),
            (
                P::new()
                    .op(0x8b)
                    .raw(&2i32.to_le_bytes())
                    .raw(&[0xfe, 0xff]),
                Obj::Int(-2),
            ),
            (
                P::new().op(b'G').raw(&1.5f64.to_be_bytes()),
                Obj::Float(1.5),
            ),
            (P::new().uni("héllo"), Obj::Str("héllo".into())),
            (P::new().short_uni("ab"), Obj::Str("ab".into())),
            (
                P::new().op(0x8d).raw(&3u64.to_le_bytes()).raw(b"xyz"),
                Obj::Str("xyz".into()),
            ),
            (
                P::new().op(b'T').raw(&2i32.to_le_bytes()).raw(b"py"),
                Obj::Str("py".into()),
            ),
            (
                P::new().op(b'U').raw(&[2]).raw(b"p2"),
                Obj::Str("p2".into()),
            ),
            (
                P::new().op(b'B').raw(&2u32.to_le_bytes()).raw(&[0, 255]),
                Obj::Bytes(vec![0, 255]),
            ),
            (P::new().op(b'C').raw(&[1, 7]), Obj::Bytes(vec![7])),
            (
                P::new().op(0x8e).raw(&1u64.to_le_bytes()).raw(&[9]),
                Obj::Bytes(vec![9]),
            ),
            (
                P::new().op(0x96).raw(&1u64.to_le_bytes()).raw(&[8]),
                Obj::Bytes(vec![8]),
            ),
            (P::new().raw(b"I42\n"), Obj::Int(42)),
            (P::new().raw(b"I01\n"), Obj::Bool(true)),
            (P::new().raw(b"L-7L\n"), Obj::Int(-7)),
            (P::new().raw(b"F0.25\n"), Obj::Float(0.25)),
            (P::new().op(b')'), Obj::Tuple(vec![])),
            (P::new().op(b']'), Obj::List(vec![])),
            (P::new().op(b'}'), Obj::Dict(vec![])),
            (P::new().op(0x8f), Obj::Set(vec![])),
        ];
        for (i, (p, want)) in cases.into_iter().enumerate() {
            let p = parse_ok(&p.stop());
            assert_eq!(p.get(p.root), &want, "case {i}");
        }
    }

    #[test]
    fn long1_with_12_bytes_is_a_big_int_not_a_panic() {
        let mut bytes = vec![0x11; 12];
        bytes[11] = 0x7f;
        let p = parse_ok(&P::new().op(0x8a).raw(&[12]).raw(&bytes).stop());
        assert_eq!(p.get(p.root), &Obj::BigInt(bytes));
        // the torch legacy magic number
        let p = parse_ok(&[
            0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
            0x2e,
        ]);
        assert!(matches!(p.get(p.root), Obj::BigInt(b) if b.len() == 10));
        assert_eq!(p.end, 15);
        // 255-byte LONG1 and a LONG4 of 1000 bytes
        let p = parse_ok(&P::new().op(0x8a).raw(&[255]).raw(&[0x80; 255]).stop());
        assert!(matches!(p.get(p.root), Obj::BigInt(_)));
        let p = parse_ok(
            &P::new()
                .op(0x8b)
                .raw(&1000i32.to_le_bytes())
                .raw(&[1; 1000])
                .stop(),
        );
        assert!(matches!(p.get(p.root), Obj::BigInt(_)));
    }

    #[test]
    fn containers() {
        // [1, 2, 3, (4,), (5, 6), (7, 8, 9), (10, 11), [12], {13: 14}, frozenset{15}]
        let b = P::new()
            .op(b']')
            .int1(1)
            .op(b'a')
            .op(b'(')
            .int1(2)
            .int1(3)
            .op(b'e')
            .int1(4)
            .op(0x85)
            .op(b'a')
            .int1(5)
            .int1(6)
            .op(0x86)
            .op(b'a')
            .int1(7)
            .int1(8)
            .int1(9)
            .op(0x87)
            .op(b'a')
            .op(b'(')
            .int1(10)
            .int1(11)
            .op(b't')
            .op(b'a')
            .op(b'(')
            .int1(12)
            .op(b'l')
            .op(b'a')
            .op(b'(')
            .int1(13)
            .int1(14)
            .op(b'd')
            .op(b'a')
            .op(b'(')
            .int1(15)
            .op(0x91)
            .op(b'a')
            .stop();
        let p = parse_ok(&b);
        let items = p.seq(p.root).unwrap().to_vec();
        assert_eq!(items.len(), 10);
        assert_eq!(p.int(items[0]), Some(1));
        assert_eq!(p.int(items[2]), Some(3));
        assert_eq!(ints(&p, items[3]), [4]);
        assert_eq!(ints(&p, items[4]), [5, 6]);
        assert_eq!(ints(&p, items[5]), [7, 8, 9]);
        assert_eq!(ints(&p, items[6]), [10, 11]);
        assert!(matches!(p.get(items[7]), Obj::List(v) if v.len() == 1));
        let d = p.dict(items[8]).unwrap();
        assert_eq!((p.int(d[0].0), p.int(d[0].1)), (Some(13), Some(14)));
        assert!(matches!(p.get(items[9]), Obj::Set(v) if v.len() == 1));

        // dict via SETITEM and SETITEMS, set via ADDITEMS
        let b = P::new()
            .op(b'}')
            .uni("a")
            .int1(1)
            .op(b's')
            .op(b'(')
            .uni("b")
            .int1(2)
            .uni("c")
            .op(0x8f)
            .op(b'(')
            .int1(3)
            .int1(4)
            .op(0x90)
            .op(b'u')
            .stop();
        let p = parse_ok(&b);
        let d = p.dict(p.root).unwrap();
        let keys: Vec<&str> = d.iter().map(|&(k, _)| p.str(k).unwrap()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(matches!(p.get(d[2].1), Obj::Set(v) if v.len() == 2));
    }

    #[test]
    fn stack_manipulation() {
        // POP, DUP, POP_MARK, POP of a bare mark
        let b = P::new()
            .int1(1)
            .int1(2)
            .op(b'0')
            .op(b'2')
            .op(0x86)
            .op(b'(')
            .int1(9)
            .int1(9)
            .op(b'1')
            .op(b'(')
            .op(b'0')
            .stop();
        let p = parse_ok(&b);
        assert_eq!(ints(&p, p.root), [1, 1]);
    }

    #[test]
    fn memo_is_shared_not_copied() {
        // d = {}; memo[0] = d; l = [d, d]; d["k"] = 1  -> both list items see "k"
        let b = P::new()
            .op(b']')
            .put(1)
            .op(b'}')
            .put(0)
            .op(b'a')
            .get(0)
            .op(b'a')
            .get(0)
            .uni("k")
            .int1(1)
            .op(b's')
            .op(b'0')
            .op(0x94) // MEMOIZE the list as entry 2
            .op(b'j')
            .raw(&2u32.to_le_bytes()) // LONG_BINGET 2
            .op(b'r')
            .raw(&70000u32.to_le_bytes()) // LONG_BINPUT 70000
            .op(b'0')
            .raw(b"g70000\n") // text GET
            .raw(b"p5\n") // text PUT
            .op(b'0')
            .stop();
        let p = parse_ok(&b);
        let items = p.seq(p.root).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], items[1], "the same object, not a copy");
        assert_eq!(p.dict(items[0]).unwrap().len(), 1);
        // a GET of an entry never stored is an error
        let e = parse(&P::new().get(3).stop(), 0).unwrap_err();
        assert!(matches!(e, PickleError::Invalid { .. }), "{e:?}");
    }

    #[test]
    fn cycles_and_deep_nesting_are_harmless() {
        // l = []; l.append(l)
        let p = parse_ok(&P::new().op(b']').put(0).get(0).op(b'a').stop());
        assert_eq!(p.seq(p.root).unwrap(), [p.root]);
        // 200 000 nested lists: built and dropped without recursion
        let mut b = P::new();
        for _ in 0..200_000 {
            b = b.op(b']');
        }
        for _ in 0..199_999 {
            b = b.op(b'a');
        }
        let p = parse_ok(&b.stop());
        drop(p);
    }

    #[test]
    fn allowed_globals_build_inert_values() {
        // OrderedDict() via STACK_GLOBAL + REDUCE, then items
        let b = P::new()
            .short_uni("collections")
            .short_uni("OrderedDict")
            .op(0x93)
            .op(b')')
            .op(b'R')
            .uni("w")
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b'(')
            .op(b'(')
            .uni("storage")
            .global("torch", "FloatStorage")
            .uni("0")
            .uni("cpu")
            .int1(4)
            .op(b't')
            .op(b'Q')
            .int1(0)
            .int1(4)
            .op(0x85)
            .int1(1)
            .op(0x85)
            .op(0x89)
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .op(b't')
            .op(b'R')
            .op(b's')
            // BUILD with the _metadata state is ignored
            .op(b'}')
            .op(b'b')
            .stop();
        let p = parse_ok(&b);
        let d = p.dict(p.root).unwrap();
        assert_eq!(d.len(), 1);
        let Obj::Call { func, args } = p.get(d[0].1) else {
            panic!("not a call: {:?}", p.get(d[0].1));
        };
        assert_eq!(*func, Global::RebuildTensorV2);
        let a = p.seq(*args).unwrap();
        assert!(matches!(p.get(a[0]), Obj::PersId(_)));
        assert_eq!(p.persids.len(), 1);

        // bytes via _codecs.encode, a set, a numpy scalar, an argparse.Namespace (NEWOBJ + BUILD)
        let b = P::new()
            .op(b'(')
            .global("_codecs", "encode")
            .uni("\u{e9}\u{ff}")
            .uni("latin1")
            .op(0x86)
            .op(b'R')
            .global("builtins", "set")
            .op(b']')
            .int1(1)
            .op(b'a')
            .op(0x85)
            .op(b'R')
            .global("numpy.core.multiarray", "scalar")
            .global("numpy", "dtype")
            .uni("f8")
            .op(0x89)
            .op(0x88)
            .op(0x87)
            .op(b'R')
            .op(b'(')
            .int1(3)
            .op(b't')
            .op(b'b')
            .op(b'C')
            .raw(&[8, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f])
            .op(0x86)
            .op(b'R')
            .global("argparse", "Namespace")
            .op(b')')
            .op(0x81)
            .op(b'}')
            .op(b'b')
            .op(b'(')
            .raw(b"icollections\nOrderedDict\n")
            .op(b'(')
            .global("torch", "Size")
            .op(b'o')
            .op(b'l')
            .stop();
        let p = parse_ok(&b);
        let items = p.seq(p.root).unwrap();
        assert_eq!(p.get(items[0]), &Obj::Bytes(vec![0xe9, 0xff]));
        assert!(matches!(p.get(items[1]), Obj::Set(v) if v.len() == 1));
        assert_eq!(p.get(items[2]), &Obj::Opaque("a numpy scalar"));
        assert_eq!(p.get(items[3]), &Obj::Opaque("an argparse.Namespace"));
        assert_eq!(p.get(items[4]), &Obj::Dict(vec![]));
        assert_eq!(p.get(items[5]), &Obj::Tuple(vec![]));

        // protocol 4: FRAME, MEMOIZE, NEWOBJ_EX
        let b = P(vec![0x80, 4, 0x95])
            .raw(&10u64.to_le_bytes())
            .global("collections", "OrderedDict")
            .op(0x94)
            .op(b')')
            .op(b'}')
            .op(0x92)
            .stop();
        let p = parse_ok(&b);
        assert_eq!(p.get(p.root), &Obj::Dict(vec![]));
    }

    #[test]
    fn forbidden_globals_are_refused() {
        let refused = |b: Vec<u8>, want: &str| match parse(&b, 0) {
            Err(PickleError::Refused(g)) => assert_eq!(g, want),
            other => panic!("{want}: {other:?}"),
        };
        let call = |p: P| p.uni("touch /tmp/camview_pwned").op(0x85).op(b'R').stop();
        refused(call(P::new().global("posix", "system")), "posix.system");
        refused(call(P::new().global("os", "system")), "os.system");
        refused(call(P::new().global("builtins", "eval")), "builtins.eval");
        refused(
            call(P::new().global("__builtin__", "getattr")),
            "__builtin__.getattr",
        );
        refused(
            call(P::new().global("subprocess", "Popen")),
            "subprocess.Popen",
        );
        refused(
            P::new()
                .global("torchvision.models.densenet", "DenseNet")
                .stop(),
            "torchvision.models.densenet.DenseNet",
        );
        refused(P::new().global("torch", "load").stop(), "torch.load");
        assert_eq!(
            resolve_global("torch", "device"),
            Some(Global::Inert("a torch.device"))
        );
        assert_eq!(
            resolve_global("torch", "bfloat16"),
            Some(Global::Dtype(Some(ScalarType::BF16), "bfloat16"))
        );
        assert_eq!(
            resolve_global("torch.cuda", "HalfStorage"),
            Some(Global::Storage(StorageType::Typed(ScalarType::F16)))
        );
        refused(
            P::new().global("torch", "EvilStorage").stop(),
            "torch.EvilStorage",
        );
        refused(
            call(P::new().short_uni("posix").short_uni("system").op(0x93)),
            "posix.system",
        );
        refused(
            call(P::new().short_uni("builtins").short_uni("eval").op(0x93)),
            "builtins.eval",
        );
        refused(P::new().op(b'(').raw(b"ios\nsystem\n").stop(), "os.system");
        refused(
            P::new().op(0x82).raw(&[1]).stop(),
            "copyreg extension code 1",
        );
        // refused even when buried after harmless data
        refused(
            call(P::new().op(b']').int1(1).op(b'a').global("nt", "system")),
            "nt.system",
        );
    }

    #[test]
    fn lengths_beyond_the_data_are_errors_not_allocations() {
        let cases = [
            P::new().op(b'X').raw(&u32::MAX.to_le_bytes()).raw(b"abc"),
            P::new().op(0x8d).raw(&u64::MAX.to_le_bytes()).raw(b"abc"),
            P::new().op(0x8e).raw(&(1u64 << 40).to_le_bytes()),
            P::new().op(b'B').raw(&u32::MAX.to_le_bytes()),
            P::new().op(b'T').raw(&i32::MAX.to_le_bytes()),
            P::new().op(0x8b).raw(&i32::MAX.to_le_bytes()),
            P::new().op(0x95).raw(&u64::MAX.to_le_bytes()),
            P::new().op(0x8a).raw(&[200, 1, 2]),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            assert_eq!(
                parse(&c.stop(), 0).unwrap_err(),
                PickleError::Truncated,
                "case {i}"
            );
        }
        for neg in [P::new().op(b'T'), P::new().op(0x8b)] {
            let e = parse(&neg.raw(&(-1i32).to_le_bytes()).stop(), 0).unwrap_err();
            assert!(matches!(e, PickleError::Invalid { .. }));
        }
    }

    #[test]
    fn malformed_pickles_are_errors() {
        let cases: Vec<Vec<u8>> = vec![
            vec![b'.'],                                // STOP on empty stack
            P::new().op(b'a').stop(),                  // APPEND on empty stack
            P::new().int1(1).int1(2).op(b'a').stop(),  // APPEND to an int
            P::new().op(b't').stop(),                  // TUPLE without MARK
            P::new().op(b'(').op(b'.').0,              // STOP with only a mark
            P::new().int1(1).op(b')').op(b'R').stop(), // call an int
            P::new()
                .global("collections", "OrderedDict")
                .int1(1)
                .op(b'R')
                .stop(),
            P::new().op(b'}').int1(1).op(b's').stop(),
            P::new().op(0xff).stop(),
            P::new().op(b'S').raw(b"'x'\n").stop(),
            vec![0x80, 9, b'N', b'.'],
            P::new().op(0x97).stop(),
            P::new().int1(1).int1(2).op(0x93).stop(),
            P::new().op(b'(').int1(1).op(b'd').stop(),
        ];
        for (i, c) in cases.iter().enumerate() {
            assert!(parse(c, 0).is_err(), "case {i}");
        }
    }

    #[test]
    fn limits_stop_hostile_pickles() {
        let small = Limits {
            objects: 100,
            memo: 10,
            stack: 50,
            ops: 1000,
        };
        let many = |op: u8, n: usize| P::new().raw(&vec![op; n]).stop();
        let too_large = |b: Vec<u8>| {
            assert!(matches!(
                parse_with_limits(&b, 0, small),
                Err(PickleError::TooLarge(_))
            ));
        };
        too_large(many(b'N', 60)); // stack
        too_large(many(b'(', 60)); // marks count towards the stack
        too_large(P::new().op(b']').raw(&[b']', b'a'].repeat(200)).stop()); // objects
        too_large(P::new().op(b'N').raw(&[0x94; 20]).stop()); // memo
        too_large(P::new().op(b'N').raw(&[b'2', b'0'].repeat(600)).stop()); // ops
        // the same pickles are fine under the default limits (STOP takes the top value)
        assert!(parse(&many(b'N', 60), 0).is_ok());
        assert!(parse(&P::new().op(b']').raw(&[b']', b'a'].repeat(200)).stop(), 0).is_ok());
    }

    fn valid_sample() -> Vec<u8> {
        P::new()
            .global("collections", "OrderedDict")
            .put(0)
            .op(b')')
            .op(b'R')
            .put(1)
            .op(b'(')
            .uni("features.conv0.weight")
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b'(')
            .op(b'(')
            .uni("storage")
            .global("torch", "FloatStorage")
            .uni("0")
            .uni("cpu")
            .op(b'M')
            .raw(&[0x30, 0x09])
            .op(b't')
            .op(b'Q')
            .int1(0)
            .op(b'(')
            .int1(16)
            .int1(3)
            .op(b't')
            .op(b'(')
            .int1(3)
            .int1(1)
            .op(b't')
            .op(0x89)
            .get(0)
            .op(b')')
            .op(b'R')
            .op(b't')
            .op(b'R')
            .uni("epoch")
            .op(0x8a)
            .raw(&[12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
            .op(b'u')
            .op(b'}')
            .op(b'b')
            .stop()
    }

    #[test]
    fn every_truncation_of_a_valid_pickle_is_an_error() {
        let full = valid_sample();
        assert!(parse(&full, 0).is_ok());
        for n in 0..full.len() {
            assert!(parse(&full[..n], 0).is_err(), "prefix {n}");
        }
    }

    /// xorshift64*: a tiny seeded generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x5eed_cafe_f00d_1234);
        // Opcodes and small values, so that random input gets deep into the interpreter.
        let alphabet: Vec<u8> = b"().NKMJGXqhrjtls]}ae0128Qbucp\x80\x85\x86\x87\x88\x89\x8a\x8c\x8f\x90\x91\x93\x94\x95\x81\x92"
            .iter()
            .copied()
            .chain(0u8..8)
            .collect();
        let mut accepted = 0;
        for i in 0..6000 {
            let len = rng.below(120);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if i % 2 == 0 {
                        rng.next() as u8
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect();
            if parse(&bytes, 0).is_ok() {
                accepted += 1;
            }
        }
        // mutations of a valid pickle
        let valid = valid_sample();
        for _ in 0..4000 {
            let mut b = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            if parse(&b, 0).is_ok() {
                accepted += 1;
            }
        }
        assert!(
            accepted > 0,
            "some random inputs should still be valid pickles"
        );
    }
}
