//! The interpreter: runs the opcodes, building values in the arena.
//!
//! Every allocation, memo entry, stack slot and opcode counts against
//! [`Limits`], so a hostile pickle meets an error long before it exhausts
//! memory or time.

use std::collections::HashMap;

use super::call;
use super::configs::{self, Configs};
use super::globals::resolve_global;
use super::input::Input;
use super::modules::{self, Making, Modules};
use super::opcode::OpCode;
use super::value::{EMPTY_TUPLE_ID, FALSE_ID, Id, NONE_ID, Obj, Pickle, TRUE_ID};
use super::{Limits, PResult, PickleError};

/// How an opcode stores a length in front of its data.
#[derive(Clone, Copy)]
enum Len {
    U8,
    U32,
    /// Signed, so a negative length must be refused rather than wrapped.
    I32,
    U64,
}

/// How an opcode stores a memo index.
#[derive(Clone, Copy)]
enum MemoIndex {
    U8,
    U32,
    /// Decimal on a text line (protocol 0).
    Line,
}

const TOO_MANY_OBJECTS: &str = "more objects than any checkpoint needs";
const TOO_DEEP: &str = "a deeper stack than any checkpoint needs";
const TOO_MANY_MEMO_ENTRIES: &str = "more memo entries than any checkpoint needs";

pub(super) struct Vm<'a> {
    input: Input<'a>,
    /// Offset of the opcode being run (for messages).
    op_at: usize,
    pickle: Pickle,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    limits: Limits,
    modules: Modules,
    configs: Configs,
}

impl<'a> Vm<'a> {
    pub(super) fn new(data: &'a [u8], start: usize, limits: Limits) -> Self {
        Vm {
            limits,
            input: Input::new(data, start),
            op_at: start,
            pickle: Pickle::with_shared_objects(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            modules: Modules::default(),
            configs: Configs::default(),
        }
    }

    fn invalid<T>(&self, what: impl Into<String>) -> PResult<T> {
        Err(PickleError::Invalid {
            at: self.op_at,
            what: what.into(),
        })
    }

    fn len(&mut self, len: Len) -> PResult<usize> {
        match len {
            Len::U8 => Ok(usize::from(self.input.u8()?)),
            Len::U32 => Ok(self.input.u32()? as usize),
            Len::I32 => {
                let n = i32::from_le_bytes(self.input.array()?);
                match usize::try_from(n) {
                    Ok(n) => Ok(n),
                    Err(_) => self.invalid("has a negative length"),
                }
            }
            Len::U64 => {
                let n = u64::from_le_bytes(self.input.array()?);
                // A length larger than the address space can never be satisfied.
                usize::try_from(n).map_err(|_| PickleError::Truncated)
            }
        }
    }

    /// The bytes after a length field.
    fn counted(&mut self, len: Len) -> PResult<&'a [u8]> {
        let n = self.len(len)?;
        self.input.take(n)
    }

    // ---- objects and stack ----------------------------------------------

    fn alloc(&mut self, obj: Obj) -> PResult<Id> {
        let objs = &mut self.pickle.objs;
        if objs.len() >= self.limits.objects {
            return Err(PickleError::TooLarge(TOO_MANY_OBJECTS));
        }
        let id = Id::try_from(objs.len()).map_err(|_| PickleError::TooLarge(TOO_MANY_OBJECTS))?;
        objs.push(obj);
        Ok(id)
    }

    /// Marks count towards the stack limit too: a run of MARKs must not be free.
    fn check_depth(&self) -> PResult<()> {
        if self.stack.len().saturating_add(self.marks.len()) >= self.limits.stack {
            return Err(PickleError::TooLarge(TOO_DEEP));
        }
        Ok(())
    }

    fn push_id(&mut self, id: Id) -> PResult<()> {
        self.check_depth()?;
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, obj: Obj) -> PResult<()> {
        let id = self.alloc(obj)?;
        self.push_id(id)
    }

    /// Where the values above the last MARK start.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> PResult<Id> {
        if self.stack.len() <= self.floor() {
            return self.invalid("pops from an empty stack");
        }
        match self.stack.pop() {
            Some(id) => Ok(id),
            None => self.invalid("pops from an empty stack"),
        }
    }

    fn top(&self) -> PResult<Id> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
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

    fn mark(&mut self) -> PResult<()> {
        self.check_depth()?;
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// POP of a bare MARK discards the mark, as CPython does.
    fn pop_value_or_mark(&mut self) -> PResult<()> {
        if self.stack.len() > self.floor() {
            self.pop()?;
        } else {
            self.pop_mark()?;
        }
        Ok(())
    }

    fn dup(&mut self) -> PResult<()> {
        let top = self.top()?;
        self.push_id(top)
    }

    // ---- the memo --------------------------------------------------------

    fn memo_index(&mut self, index: MemoIndex) -> PResult<u32> {
        match index {
            MemoIndex::U8 => Ok(u32::from(self.input.u8()?)),
            MemoIndex::U32 => self.input.u32(),
            MemoIndex::Line => {
                let l = self.input.line_str()?;
                match l.trim().parse::<u32>() {
                    Ok(i) => Ok(i),
                    Err(_) => self.invalid("has a bad memo index"),
                }
            }
        }
    }

    fn memo_put(&mut self, index: MemoIndex) -> PResult<()> {
        let idx = self.memo_index(index)?;
        self.memo_store(idx)
    }

    /// MEMOIZE: the next index is the number of entries so far.
    fn memoize(&mut self) -> PResult<()> {
        let Ok(idx) = u32::try_from(self.memo.len()) else {
            return Err(PickleError::TooLarge(TOO_MANY_MEMO_ENTRIES));
        };
        self.memo_store(idx)
    }

    fn memo_store(&mut self, idx: u32) -> PResult<()> {
        let top = self.top()?;
        if self.memo.len() >= self.limits.memo && !self.memo.contains_key(&idx) {
            return Err(PickleError::TooLarge(TOO_MANY_MEMO_ENTRIES));
        }
        self.memo.insert(idx, top);
        Ok(())
    }

    /// Pushes the stored object itself, never a copy: sharing is what makes
    /// memo gets free, however often a hostile pickle repeats them.
    fn memo_get(&mut self, index: MemoIndex) -> PResult<()> {
        let idx = self.memo_index(index)?;
        match self.memo.get(&idx) {
            Some(&id) => self.push_id(id),
            None => self.invalid(format!(
                "refers to memo entry {idx}, which was never stored"
            )),
        }
    }

    // ---- scalars ---------------------------------------------------------

    fn push_int(&mut self, v: impl Into<i64>) -> PResult<()> {
        self.push(Obj::Int(v.into()))
    }

    fn push_long(&mut self, len: Len) -> PResult<()> {
        let b = self.counted(len)?;
        self.push(long_from_le(b))
    }

    /// Text is decoded leniently (as PyTorch decodes Python 2 `str`): a
    /// stray byte in a key must not make the whole checkpoint unreadable.
    fn push_str(&mut self, len: Len) -> PResult<()> {
        let b = self.counted(len)?;
        self.push(Obj::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn push_bytes(&mut self, len: Len) -> PResult<()> {
        let b = self.counted(len)?;
        self.push(Obj::Bytes(b.to_vec()))
    }

    /// INT and LONG: a decimal line; protocol 0 wrote booleans as `I01`/`I00`.
    fn text_int(&mut self, op: OpCode) -> PResult<()> {
        let l = self.input.line_str()?;
        let t = l.trim().trim_end_matches('L');
        let obj = match (op, t) {
            (OpCode::Int, "00") => Obj::Bool(false),
            (OpCode::Int, "01") => Obj::Bool(true),
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
        self.push(obj)
    }

    fn text_float(&mut self) -> PResult<()> {
        let l = self.input.line_str()?;
        match l.trim().parse::<f64>() {
            Ok(v) => self.push(Obj::Float(v)),
            Err(_) => self.invalid("has a malformed float"),
        }
    }

    // ---- containers ------------------------------------------------------

    /// LIST, TUPLE, FROZENSET: one container of everything above the MARK.
    fn collect_mark(&mut self, make: fn(Vec<Id>) -> Obj) -> PResult<()> {
        let items = self.pop_mark()?;
        self.push(make(items))
    }

    fn dict_from_mark(&mut self) -> PResult<()> {
        let items = self.pop_mark()?;
        if !items.len().is_multiple_of(2) {
            return self.invalid("builds a dict from an odd number of items");
        }
        let pairs = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        self.push(Obj::Dict(pairs))
    }

    /// TUPLE1, TUPLE2, TUPLE3.
    fn tuple_of_top(&mut self, n: usize) -> PResult<()> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop()?);
        }
        items.reverse();
        self.push(Obj::Tuple(items))
    }

    fn append(&mut self) -> PResult<()> {
        let item = self.pop()?;
        self.extend_list(vec![item])
    }

    fn appends(&mut self) -> PResult<()> {
        let items = self.pop_mark()?;
        self.extend_list(items)
    }

    /// The container on top, which APPEND(S), ADDITEMS and SETITEM(S) fill in place.
    fn top_mut(&mut self) -> PResult<Option<&mut Obj>> {
        let target = self.top()?;
        Ok(self.pickle.objs.get_mut(target as usize))
    }

    fn extend_list(&mut self, items: Vec<Id>) -> PResult<()> {
        match self.top_mut()? {
            Some(Obj::List(v)) => v.extend(items),
            _ => return self.invalid("appends to something that is not a list"),
        }
        Ok(())
    }

    fn add_items(&mut self) -> PResult<()> {
        let items = self.pop_mark()?;
        match self.top_mut()? {
            Some(Obj::Set(v)) => v.extend(items),
            _ => return self.invalid("adds items to something that is not a set"),
        }
        Ok(())
    }

    fn set_item(&mut self) -> PResult<()> {
        let v = self.pop()?;
        let k = self.pop()?;
        self.set_items(vec![k, v])
    }

    fn set_items_from_mark(&mut self) -> PResult<()> {
        let items = self.pop_mark()?;
        self.set_items(items)
    }

    /// `items` alternate key, value, key, value.
    fn set_items(&mut self, items: Vec<Id>) -> PResult<()> {
        if !items.len().is_multiple_of(2) {
            return self.invalid("sets a dict item without a value");
        }
        match self.top_mut()? {
            Some(Obj::Dict(d)) => d.extend(items.chunks_exact(2).map(|c| (c[0], c[1]))),
            _ => return self.invalid("sets items on something that is not a dict"),
        }
        Ok(())
    }

    // ---- globals and calls -----------------------------------------------

    /// An allow-listed global, or a possible module class; any other name is refused.
    fn global(&mut self, module: &str, name: &str) -> PResult<Id> {
        let obj = match resolve_global(module, name) {
            Some(g) => Obj::Global(g),
            None => modules::unlisted_global(module, name)?,
        };
        let id = self.alloc(obj)?;
        self.modules.note(&self.pickle, id);
        Ok(id)
    }

    /// GLOBAL: module and name on two text lines.
    fn global_from_lines(&mut self) -> PResult<Id> {
        let module = self.input.line_str()?;
        let name = self.input.line_str()?;
        self.global(&module, &name)
    }

    fn push_global(&mut self) -> PResult<()> {
        let id = self.global_from_lines()?;
        self.push_id(id)
    }

    fn stack_global(&mut self) -> PResult<()> {
        let name = self.pop()?;
        let module = self.pop()?;
        let (Some(module), Some(name)) = (self.pickle.str(module), self.pickle.str(name)) else {
            return self.invalid("STACK_GLOBAL needs two strings");
        };
        let (module, name) = (module.to_owned(), name.to_owned());
        let id = self.global(&module, &name)?;
        self.push_id(id)
    }

    /// EXT1, EXT2, EXT4: the copyreg registry maps codes to arbitrary
    /// callables, so a code is refused like a global outside the allowlist.
    fn refuse_extension<T>(&mut self, code_bytes: usize) -> PResult<T> {
        let code = self
            .input
            .take(code_bytes)?
            .iter()
            .rev()
            .fold(0u32, |code, &b| (code << 8) | u32::from(b));
        Err(PickleError::Refused(format!(
            "copyreg extension code {code}"
        )))
    }

    /// REDUCE and NEWOBJ: the callable and its argument tuple on top.
    fn apply(&mut self, how: Making) -> PResult<()> {
        let args = self.pop()?;
        let func = self.pop()?;
        self.make(func, args, how)
    }

    /// NEWOBJ_EX: NEWOBJ with keyword arguments, which nothing we build takes.
    fn apply_with_keywords(&mut self) -> PResult<()> {
        let kwargs = self.pop()?;
        let none = self.pickle.dict(kwargs).is_some_and(<[_]>::is_empty);
        self.apply(if none {
            Making::NewObj
        } else {
            Making::NewObjWithKeywords
        })
    }

    /// INST: the class on two text lines, its arguments above the MARK.
    fn inst(&mut self) -> PResult<()> {
        let func = self.global_from_lines()?;
        let items = self.pop_mark()?;
        let args = self.alloc(Obj::Tuple(items))?;
        self.make(func, args, Making::Construct)
    }

    /// OBJ: the class and its arguments above the MARK.
    fn obj_from_mark(&mut self) -> PResult<()> {
        let mut items = self.pop_mark()?;
        if items.is_empty() {
            return self.invalid("OBJ without a class");
        }
        let cls = items.remove(0);
        let args = self.alloc(Obj::Tuple(items))?;
        self.make(cls, args, Making::Construct)
    }

    /// Pushes what `func(*args)` stands for: an inert module record, a config
    /// record or dict ([`configs::make`]), or what [`call::call`] records.
    fn make(&mut self, func: Id, args: Id, how: Making) -> PResult<()> {
        if let Some(class) = self.modules.class_to_make(&self.pickle, func, args, how)? {
            let instance = self.alloc(Obj::Module { class, state: None })?;
            self.modules.made(class, instance);
            return self.push_id(instance);
        }
        let obj = match configs::make(&self.pickle, func, args, how)? {
            Some(obj) => obj,
            None => self.call(func, args)?,
        };
        let id = self.alloc(obj)?;
        self.configs.note(&self.pickle, id);
        self.push_id(id)
    }

    /// BUILD: a module or config record takes its attributes
    /// ([`Modules::build`], [`Configs::build`]); the state of anything else
    /// is ignored.
    fn build(&mut self) -> PResult<()> {
        let state = self.pop()?;
        let target = self.top()?;
        Configs::build(&mut self.pickle, target, state)?;
        self.modules.build(&mut self.pickle, target, state)
    }

    fn bin_persistent_id(&mut self) -> PResult<()> {
        let pid = self.pop()?;
        self.persistent_id(pid)
    }

    fn text_persistent_id(&mut self) -> PResult<()> {
        let s = self.input.line_str()?;
        let pid = self.alloc(Obj::Str(s))?;
        self.persistent_id(pid)
    }

    /// Recorded so that the loader can find every storage without walking
    /// the tree; a legacy module reference stands for its class.
    fn persistent_id(&mut self, pid: Id) -> PResult<()> {
        if let Some(class) = modules::legacy_module_class(&self.pickle, pid) {
            return self.push_id(class);
        }
        self.pickle.persids.push(pid);
        self.push(Obj::PersId(pid))
    }

    /// `func(*args)`, recorded but not performed.
    fn call(&self, func: Id, args: Id) -> PResult<Obj> {
        call::call(&self.pickle, func, args).or_else(|what| self.invalid(what))
    }

    // ---- the loop ---------------------------------------------------------

    fn next_op(&mut self) -> PResult<OpCode> {
        self.op_at = self.input.pos();
        let byte = self.input.u8()?;
        match OpCode::from_byte(byte) {
            Some(op) => Ok(op),
            None => self.invalid(format!("has an unknown opcode 0x{byte:02x}")),
        }
    }

    fn proto(&mut self) -> PResult<()> {
        let v = self.input.u8()?;
        if v > 5 {
            return self.invalid(format!("uses pickle protocol {v}, which does not exist"));
        }
        Ok(())
    }

    /// FRAME is only a hint for buffering, but the length it announces must
    /// still be there.
    fn frame(&mut self) -> PResult<()> {
        let n = self.len(Len::U64)?;
        if n > self.input.remaining() {
            return Err(PickleError::Truncated);
        }
        Ok(())
    }

    fn stop(mut self) -> PResult<Pickle> {
        self.pickle.root = self.pop()?;
        self.modules.finish(&self.pickle)?;
        self.configs.finish(&self.pickle)?;
        self.pickle.end = self.input.pos();
        Ok(self.pickle)
    }

    pub(super) fn run(mut self) -> PResult<Pickle> {
        let mut ops: usize = 0;
        loop {
            ops += 1;
            if ops > self.limits.ops {
                return Err(PickleError::TooLarge(
                    "more opcodes than any checkpoint needs",
                ));
            }
            let op = self.next_op()?;
            match op {
                OpCode::Proto => self.proto()?,
                OpCode::Frame => self.frame()?,
                OpCode::Stop => return self.stop(),

                OpCode::Mark => self.mark()?,
                OpCode::Pop => self.pop_value_or_mark()?,
                OpCode::PopMark => {
                    self.pop_mark()?;
                }
                OpCode::Dup => self.dup()?,

                OpCode::None => self.push_id(NONE_ID)?,
                OpCode::NewTrue => self.push_id(TRUE_ID)?,
                OpCode::NewFalse => self.push_id(FALSE_ID)?,
                OpCode::EmptyTuple => self.push_id(EMPTY_TUPLE_ID)?,

                OpCode::BinInt => {
                    let v = i32::from_le_bytes(self.input.array()?);
                    self.push_int(v)?;
                }
                OpCode::BinInt1 => {
                    let v = self.input.u8()?;
                    self.push_int(v)?;
                }
                OpCode::BinInt2 => {
                    let v = u16::from_le_bytes(self.input.array()?);
                    self.push_int(v)?;
                }
                OpCode::Long1 => self.push_long(Len::U8)?,
                OpCode::Long4 => self.push_long(Len::I32)?,
                OpCode::Int | OpCode::Long => self.text_int(op)?,

                OpCode::BinFloat => {
                    let v = f64::from_be_bytes(self.input.array()?);
                    self.push(Obj::Float(v))?;
                }
                OpCode::Float => self.text_float()?,

                OpCode::ShortBinUnicode | OpCode::ShortBinString => self.push_str(Len::U8)?,
                OpCode::BinUnicode => self.push_str(Len::U32)?,
                OpCode::BinString => self.push_str(Len::I32)?,
                OpCode::BinUnicode8 => self.push_str(Len::U64)?,
                OpCode::String | OpCode::Unicode => {
                    return self.invalid("uses a text string opcode that checkpoints never use");
                }

                OpCode::ShortBinBytes => self.push_bytes(Len::U8)?,
                OpCode::BinBytes => self.push_bytes(Len::U32)?,
                OpCode::BinBytes8 | OpCode::ByteArray8 => self.push_bytes(Len::U64)?,
                OpCode::NextBuffer => return self.invalid("needs an out-of-band buffer"),
                // A no-op, on a value that must be there.
                OpCode::ReadOnlyBuffer => {
                    self.top()?;
                }

                OpCode::EmptyList => self.push(Obj::List(Vec::new()))?,
                OpCode::EmptyDict => self.push(Obj::Dict(Vec::new()))?,
                OpCode::EmptySet => self.push(Obj::Set(Vec::new()))?,
                OpCode::List => self.collect_mark(Obj::List)?,
                OpCode::Tuple => self.collect_mark(Obj::Tuple)?,
                OpCode::FrozenSet => self.collect_mark(Obj::Set)?,
                OpCode::Dict => self.dict_from_mark()?,
                OpCode::Tuple1 => self.tuple_of_top(1)?,
                OpCode::Tuple2 => self.tuple_of_top(2)?,
                OpCode::Tuple3 => self.tuple_of_top(3)?,

                OpCode::Append => self.append()?,
                OpCode::Appends => self.appends()?,
                OpCode::AddItems => self.add_items()?,
                OpCode::SetItem => self.set_item()?,
                OpCode::SetItems => self.set_items_from_mark()?,

                OpCode::BinPut => self.memo_put(MemoIndex::U8)?,
                OpCode::LongBinPut => self.memo_put(MemoIndex::U32)?,
                OpCode::Put => self.memo_put(MemoIndex::Line)?,
                OpCode::Memoize => self.memoize()?,
                OpCode::BinGet => self.memo_get(MemoIndex::U8)?,
                OpCode::LongBinGet => self.memo_get(MemoIndex::U32)?,
                OpCode::Get => self.memo_get(MemoIndex::Line)?,

                OpCode::Global => self.push_global()?,
                OpCode::StackGlobal => self.stack_global()?,
                OpCode::Ext1 => return self.refuse_extension(1),
                OpCode::Ext2 => return self.refuse_extension(2),
                OpCode::Ext4 => return self.refuse_extension(4),

                OpCode::Reduce => self.apply(Making::Call)?,
                OpCode::NewObj => self.apply(Making::NewObj)?,
                OpCode::NewObjEx => self.apply_with_keywords()?,
                OpCode::Inst => self.inst()?,
                OpCode::Obj => self.obj_from_mark()?,
                OpCode::Build => self.build()?,

                OpCode::BinPersId => self.bin_persistent_id()?,
                OpCode::PersId => self.text_persistent_id()?,
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
