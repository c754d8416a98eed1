//! Tests of the interpreter, on pickles assembled opcode by opcode.

use super::globals::resolve_global;
use super::opcode::OpCode;
use super::*;

/// A hand-assembled pickle.
#[derive(Clone)]
struct P(Vec<u8>);

impl P {
    /// Protocol 2, as `torch.save` writes.
    fn new() -> Self {
        P::empty().proto(2)
    }
    fn empty() -> Self {
        P(Vec::new())
    }
    fn op(mut self, op: OpCode) -> Self {
        self.0.push(op as u8);
        self
    }
    fn repeat(mut self, ops: &[OpCode], times: usize) -> Self {
        for _ in 0..times {
            self.0.extend(ops.iter().map(|&op| op as u8));
        }
        self
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn uni(self, s: &str) -> Self {
        let n = (s.len() as u32).to_le_bytes();
        self.op(OpCode::BinUnicode).raw(&n).raw(s.as_bytes())
    }
    fn short_uni(self, s: &str) -> Self {
        self.op(OpCode::ShortBinUnicode)
            .raw(&[s.len() as u8])
            .raw(s.as_bytes())
    }
    fn int1(self, v: u8) -> Self {
        self.op(OpCode::BinInt1).raw(&[v])
    }
    fn proto(self, version: u8) -> Self {
        self.op(OpCode::Proto).raw(&[version])
    }
    /// A protocol 0 opcode and its text line.
    fn line(self, op: OpCode, text: &str) -> Self {
        self.op(op).raw(text.as_bytes()).raw(b"\n")
    }
    fn global(self, module: &str, name: &str) -> Self {
        self.line(OpCode::Global, module)
            .raw(name.as_bytes())
            .raw(b"\n")
    }
    fn inst(self, module: &str, name: &str) -> Self {
        self.line(OpCode::Inst, module)
            .raw(name.as_bytes())
            .raw(b"\n")
    }
    fn put(self, i: u8) -> Self {
        self.op(OpCode::BinPut).raw(&[i])
    }
    fn get(self, i: u8) -> Self {
        self.op(OpCode::BinGet).raw(&[i])
    }
    fn stop(self) -> Vec<u8> {
        self.op(OpCode::Stop).0
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

/// Parses each pickle (then STOP) and compares the value it returns.
fn assert_values(cases: Vec<(P, Obj)>) {
    for (i, (p, want)) in cases.into_iter().enumerate() {
        let p = parse_ok(&p.stop());
        assert_eq!(p.get(p.root), &want, "case {i}");
    }
}

#[test]
fn numbers_and_constants() {
    assert_values(vec![
        (P::new().op(OpCode::None), Obj::None),
        (P::new().op(OpCode::NewTrue), Obj::Bool(true)),
        (P::new().op(OpCode::NewFalse), Obj::Bool(false)),
        (P::new().int1(200), Obj::Int(200)),
        (
            P::new().op(OpCode::BinInt2).raw(&[0x34, 0x12]),
            Obj::Int(0x1234),
        ),
        (
            P::new().op(OpCode::BinInt).raw(&(-5i32).to_le_bytes()),
            Obj::Int(-5),
        ),
        (P::new().op(OpCode::Long1).raw(&[0]), Obj::Int(0)),
        (P::new().op(OpCode::Long1).raw(&[1, 0xff]), Obj::Int(-1)),
        (
            P::new().op(OpCode::Long1).raw(&[2, 0x00, 0x80]),
            Obj::Int(-32768),
        ),
        (
            P::new()
                .op(OpCode::Long1)
                .raw(&[8])
                .raw(&i64::MIN.to_le_bytes()),
            Obj::Int(i64::MIN),
        ),
        // 9 bytes whose top byte is only sign extension still fit
        (
            P::new()
                .op(OpCode::Long1)
                .raw(&[9])
                .raw(&i64::MAX.to_le_bytes())
                .raw(&[0]),
            Obj::Int(i64::MAX),
        ),
        (
            P::new()
                .op(OpCode::Long4)
                .raw(&2i32.to_le_bytes())
                .raw(&[0xfe, 0xff]),
            Obj::Int(-2),
        ),
        (
            P::new().op(OpCode::BinFloat).raw(&1.5f64.to_be_bytes()),
            Obj::Float(1.5),
        ),
        (P::new().line(OpCode::Int, "42"), Obj::Int(42)),
        (P::new().line(OpCode::Int, "01"), Obj::Bool(true)),
        (P::new().line(OpCode::Long, "-7L"), Obj::Int(-7)),
        (P::new().line(OpCode::Float, "0.25"), Obj::Float(0.25)),
    ]);
}

#[test]
fn strings_bytes_and_empty_containers() {
    assert_values(vec![
        (P::new().uni("héllo"), Obj::Str("héllo".into())),
        (P::new().short_uni("ab"), Obj::Str("ab".into())),
        (
            P::new()
                .op(OpCode::BinUnicode8)
                .raw(&3u64.to_le_bytes())
                .raw(b"xyz"),
            Obj::Str("xyz".into()),
        ),
        (
            P::new()
                .op(OpCode::BinString)
                .raw(&2i32.to_le_bytes())
                .raw(b"py"),
            Obj::Str("py".into()),
        ),
        (
            P::new().op(OpCode::ShortBinString).raw(&[2]).raw(b"p2"),
            Obj::Str("p2".into()),
        ),
        (
            P::new()
                .op(OpCode::BinBytes)
                .raw(&2u32.to_le_bytes())
                .raw(&[0, 255]),
            Obj::Bytes(vec![0, 255]),
        ),
        (
            P::new().op(OpCode::ShortBinBytes).raw(&[1, 7]),
            Obj::Bytes(vec![7]),
        ),
        (
            P::new()
                .op(OpCode::BinBytes8)
                .raw(&1u64.to_le_bytes())
                .raw(&[9]),
            Obj::Bytes(vec![9]),
        ),
        (
            P::new()
                .op(OpCode::ByteArray8)
                .raw(&1u64.to_le_bytes())
                .raw(&[8]),
            Obj::Bytes(vec![8]),
        ),
        (P::new().op(OpCode::EmptyTuple), Obj::Tuple(vec![])),
        (P::new().op(OpCode::EmptyList), Obj::List(vec![])),
        (P::new().op(OpCode::EmptyDict), Obj::Dict(vec![])),
        (P::new().op(OpCode::EmptySet), Obj::Set(vec![])),
    ]);
}

#[test]
fn long1_with_12_bytes_is_a_big_int_not_a_panic() {
    let mut bytes = vec![0x11; 12];
    bytes[11] = 0x7f;
    let p = parse_ok(&P::new().op(OpCode::Long1).raw(&[12]).raw(&bytes).stop());
    assert_eq!(p.get(p.root), &Obj::BigInt(bytes));
    // the torch legacy magic number
    let magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let p = parse_ok(&P::new().op(OpCode::Long1).raw(&[10]).raw(&magic).stop());
    assert!(matches!(p.get(p.root), Obj::BigInt(b) if b.len() == 10));
    assert_eq!(p.end, 15);
    // 255-byte LONG1 and a LONG4 of 1000 bytes
    let p = parse_ok(
        &P::new()
            .op(OpCode::Long1)
            .raw(&[255])
            .raw(&[0x80; 255])
            .stop(),
    );
    assert!(matches!(p.get(p.root), Obj::BigInt(_)));
    let p = parse_ok(
        &P::new()
            .op(OpCode::Long4)
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
        .op(OpCode::EmptyList)
        .int1(1)
        .op(OpCode::Append)
        .op(OpCode::Mark)
        .int1(2)
        .int1(3)
        .op(OpCode::Appends)
        .int1(4)
        .op(OpCode::Tuple1)
        .op(OpCode::Append)
        .int1(5)
        .int1(6)
        .op(OpCode::Tuple2)
        .op(OpCode::Append)
        .int1(7)
        .int1(8)
        .int1(9)
        .op(OpCode::Tuple3)
        .op(OpCode::Append)
        .op(OpCode::Mark)
        .int1(10)
        .int1(11)
        .op(OpCode::Tuple)
        .op(OpCode::Append)
        .op(OpCode::Mark)
        .int1(12)
        .op(OpCode::List)
        .op(OpCode::Append)
        .op(OpCode::Mark)
        .int1(13)
        .int1(14)
        .op(OpCode::Dict)
        .op(OpCode::Append)
        .op(OpCode::Mark)
        .int1(15)
        .op(OpCode::FrozenSet)
        .op(OpCode::Append)
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
        .op(OpCode::EmptyDict)
        .uni("a")
        .int1(1)
        .op(OpCode::SetItem)
        .op(OpCode::Mark)
        .uni("b")
        .int1(2)
        .uni("c")
        .op(OpCode::EmptySet)
        .op(OpCode::Mark)
        .int1(3)
        .int1(4)
        .op(OpCode::AddItems)
        .op(OpCode::SetItems)
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
        .op(OpCode::Pop)
        .op(OpCode::Dup)
        .op(OpCode::Tuple2)
        .op(OpCode::Mark)
        .int1(9)
        .int1(9)
        .op(OpCode::PopMark)
        .op(OpCode::Mark)
        .op(OpCode::Pop)
        .stop();
    let p = parse_ok(&b);
    assert_eq!(ints(&p, p.root), [1, 1]);
}

#[test]
fn memo_is_shared_not_copied() {
    // d = {}; memo[0] = d; l = [d, d]; d["k"] = 1  -> both list items see "k"
    let b = P::new()
        .op(OpCode::EmptyList)
        .put(1)
        .op(OpCode::EmptyDict)
        .put(0)
        .op(OpCode::Append)
        .get(0)
        .op(OpCode::Append)
        .get(0)
        .uni("k")
        .int1(1)
        .op(OpCode::SetItem)
        .op(OpCode::Pop)
        .op(OpCode::Memoize) // the list as entry 2
        .op(OpCode::LongBinGet)
        .raw(&2u32.to_le_bytes())
        .op(OpCode::LongBinPut)
        .raw(&70000u32.to_le_bytes())
        .op(OpCode::Pop)
        .line(OpCode::Get, "70000")
        .line(OpCode::Put, "5")
        .op(OpCode::Pop)
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
    let p = parse_ok(
        &P::new()
            .op(OpCode::EmptyList)
            .put(0)
            .get(0)
            .op(OpCode::Append)
            .stop(),
    );
    assert_eq!(p.seq(p.root).unwrap(), [p.root]);
    // 200 000 nested lists: built and dropped without recursion
    let mut b = P::new();
    for _ in 0..200_000 {
        b = b.op(OpCode::EmptyList);
    }
    for _ in 0..199_999 {
        b = b.op(OpCode::Append);
    }
    let p = parse_ok(&b.stop());
    drop(p);
}

#[test]
fn an_ordered_dict_of_a_rebuilt_tensor_is_recorded_not_called() {
    // OrderedDict() via STACK_GLOBAL + REDUCE, then items
    let b = P::new()
        .short_uni("collections")
        .short_uni("OrderedDict")
        .op(OpCode::StackGlobal)
        .op(OpCode::EmptyTuple)
        .op(OpCode::Reduce)
        .uni("w")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(OpCode::Mark)
        .op(OpCode::Mark)
        .uni("storage")
        .global("torch", "FloatStorage")
        .uni("0")
        .uni("cpu")
        .int1(4)
        .op(OpCode::Tuple)
        .op(OpCode::BinPersId)
        .int1(0)
        .int1(4)
        .op(OpCode::Tuple1)
        .int1(1)
        .op(OpCode::Tuple1)
        .op(OpCode::NewFalse)
        .global("collections", "OrderedDict")
        .op(OpCode::EmptyTuple)
        .op(OpCode::Reduce)
        .op(OpCode::Tuple)
        .op(OpCode::Reduce)
        .op(OpCode::SetItem)
        // BUILD with the _metadata state is ignored
        .op(OpCode::EmptyDict)
        .op(OpCode::Build)
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
}

#[test]
fn allowed_globals_build_inert_values() {
    // bytes via _codecs.encode, a set, a numpy scalar, an argparse.Namespace (NEWOBJ + BUILD)
    let b = P::new()
        .op(OpCode::Mark)
        .global("_codecs", "encode")
        .uni("\u{e9}\u{ff}")
        .uni("latin1")
        .op(OpCode::Tuple2)
        .op(OpCode::Reduce)
        .global("builtins", "set")
        .op(OpCode::EmptyList)
        .int1(1)
        .op(OpCode::Append)
        .op(OpCode::Tuple1)
        .op(OpCode::Reduce)
        .global("numpy.core.multiarray", "scalar")
        .global("numpy", "dtype")
        .uni("f8")
        .op(OpCode::NewFalse)
        .op(OpCode::NewTrue)
        .op(OpCode::Tuple3)
        .op(OpCode::Reduce)
        .op(OpCode::Mark)
        .int1(3)
        .op(OpCode::Tuple)
        .op(OpCode::Build)
        .op(OpCode::ShortBinBytes)
        .raw(&[8])
        .raw(&1.0f64.to_le_bytes())
        .op(OpCode::Tuple2)
        .op(OpCode::Reduce)
        .global("argparse", "Namespace")
        .op(OpCode::EmptyTuple)
        .op(OpCode::NewObj)
        .op(OpCode::EmptyDict)
        .op(OpCode::Build)
        .op(OpCode::Mark)
        .inst("collections", "OrderedDict")
        .op(OpCode::Mark)
        .global("torch", "Size")
        .op(OpCode::Obj)
        .op(OpCode::List)
        .stop();
    let p = parse_ok(&b);
    let items = p.seq(p.root).unwrap();
    assert_eq!(p.get(items[0]), &Obj::Bytes(vec![0xe9, 0xff]));
    assert!(matches!(p.get(items[1]), Obj::Set(v) if v.len() == 1));
    assert_eq!(p.get(items[2]), &Obj::Opaque("a numpy scalar"));
    assert_eq!(p.get(items[3]), &Obj::Opaque("an argparse.Namespace"));
    assert_eq!(p.get(items[4]), &Obj::Dict(vec![]));
    assert_eq!(p.get(items[5]), &Obj::Tuple(vec![]));
}

#[test]
fn protocol_4_frame_memoize_and_newobj_ex() {
    let b = P::empty()
        .proto(4)
        .op(OpCode::Frame)
        .raw(&10u64.to_le_bytes())
        .global("collections", "OrderedDict")
        .op(OpCode::Memoize)
        .op(OpCode::EmptyTuple)
        .op(OpCode::EmptyDict)
        .op(OpCode::NewObjEx)
        .stop();
    let p = parse_ok(&b);
    assert_eq!(p.get(p.root), &Obj::Dict(vec![]));
}

#[test]
fn forbidden_globals_are_refused() {
    // Refused as soon as it is named, or once its use shows it is no module class.
    let refused = |b: Vec<u8>, want: &str| match parse(&b, 0) {
        Err(PickleError::Refused(g) | PickleError::Misused { global: g, .. }) => {
            assert_eq!(g, want)
        }
        other => panic!("{want}: {other:?}"),
    };
    let call = |p: P| {
        p.uni("touch /tmp/camview_pwned")
            .op(OpCode::Tuple1)
            .op(OpCode::Reduce)
            .stop()
    };
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
        call(
            P::new()
                .short_uni("posix")
                .short_uni("system")
                .op(OpCode::StackGlobal),
        ),
        "posix.system",
    );
    refused(
        call(
            P::new()
                .short_uni("builtins")
                .short_uni("eval")
                .op(OpCode::StackGlobal),
        ),
        "builtins.eval",
    );
    refused(
        P::new().op(OpCode::Mark).inst("os", "system").stop(),
        "os.system",
    );
    refused(
        P::new().op(OpCode::Ext1).raw(&[1]).stop(),
        "copyreg extension code 1",
    );
    // refused even when buried after harmless data
    refused(
        call(
            P::new()
                .op(OpCode::EmptyList)
                .int1(1)
                .op(OpCode::Append)
                .global("nt", "system"),
        ),
        "nt.system",
    );
}

/// `NEWOBJ(class, ())`, then `BUILD` with `state` (a pickle fragment pushing one value).
fn module_of(p: P, module: &str, name: &str, state: P) -> P {
    p.global(module, name)
        .op(OpCode::EmptyTuple)
        .op(OpCode::NewObj)
        .raw(&state.0)
        .op(OpCode::Build)
}

/// A module's attributes: `training`, empty `_parameters`, `_buffers`,
/// `_modules`, a hook `OrderedDict` and `_non_persistent_buffers_set`.
fn module_attributes() -> P {
    P::empty()
        .op(OpCode::EmptyDict)
        .op(OpCode::Mark)
        .uni("training")
        .op(OpCode::NewTrue)
        .uni("_parameters")
        .op(OpCode::EmptyDict)
        .uni("_buffers")
        .op(OpCode::EmptyDict)
        .uni("_non_persistent_buffers_set")
        .global("__builtin__", "set")
        .op(OpCode::EmptyList)
        .op(OpCode::Tuple1)
        .op(OpCode::Reduce)
        .uni("_forward_hooks")
        .global("collections", "OrderedDict")
        .op(OpCode::EmptyTuple)
        .op(OpCode::Reduce)
        .uni("_modules")
        .op(OpCode::EmptyDict)
        .op(OpCode::SetItems)
}

#[test]
fn module_classes_made_as_torch_save_makes_them_become_inert_records() {
    for (module, name) in [
        ("__main__", "CheXNet"),
        ("torchvision.models.densenet", "_DenseLayer"),
        ("torch.nn.modules.conv", "Conv2d"),
        ("my_project.models.v2", "net"),
    ] {
        let p = parse_ok(&module_of(P::new(), module, name, module_attributes()).stop());
        let (class, state) = p.module(p.root).unwrap();
        assert_eq!(class, format!("{module}.{name}"));
        assert!(p.dict(state.unwrap()).unwrap().len() == 6);
    }
    // An instance made by `made_by`, given a module's attributes: its class, and the pickle.
    let class_of = |made_by: P| {
        let p = parse_ok(&made_by.raw(&module_attributes().0).op(OpCode::Build).stop());
        (p.module(p.root).unwrap().0.to_owned(), p)
    };
    // protocol 1's copy_reg._reconstructor(cls, object, None) (copyreg in Python 3's
    // names), and protocol 4's NEWOBJ_EX
    for copyreg in ["copy_reg", "copyreg"] {
        let (class, _) = class_of(
            P::new()
                .global(copyreg, "_reconstructor")
                .global("__main__", "Net")
                .global("__builtin__", "object")
                .op(OpCode::None)
                .op(OpCode::Tuple3)
                .op(OpCode::Reduce),
        );
        assert_eq!(class, "__main__.Net");
    }
    let (class, _) = class_of(
        P::new()
            .global("__main__", "Net")
            .op(OpCode::EmptyTuple)
            .op(OpCode::EmptyDict)
            .op(OpCode::NewObjEx),
    );
    assert_eq!(class, "__main__.Net");
    // the legacy format's first mention of a class: ('module', cls, file, source)
    let (class, p) = class_of(
        P::new()
            .op(OpCode::Mark)
            .uni("module")
            .global("__main__", "Net")
            .put(0)
            .uni("net.py")
            .uni("class Net(nn.Module): ...")
            .op(OpCode::Tuple)
            .op(OpCode::BinPersId)
            .op(OpCode::EmptyTuple)
            .op(OpCode::NewObj),
    );
    assert_eq!(class, "__main__.Net");
    assert!(p.persids.is_empty(), "a module reference is not a storage");
}

/// Protocol 1's `copyreg._reconstructor(module.name, object, None)`.
fn reconstructor_of(module: &str, name: &str) -> Vec<u8> {
    P::new()
        .global("copyreg", "_reconstructor")
        .global(module, name)
        .global("__builtin__", "object")
        .op(OpCode::None)
        .op(OpCode::Tuple3)
        .op(OpCode::Reduce)
        .stop()
}

#[test]
fn a_module_class_used_otherwise_is_refused_by_name() {
    let misused = |b: Vec<u8>, want: &str, how: &str| match parse(&b, 0) {
        Err(PickleError::Misused { global, how: h, .. }) => {
            assert_eq!((global.as_str(), h), (want, how), "{how}")
        }
        other => panic!("{want} {how}: {other:?}"),
    };
    let net = || P::new().global("__main__", "Net");
    let called = "called with arguments, as a function is";
    let constructed = "constructed by a call, which would run its code";
    // REDUCE with arguments: the classic payload, under a name of any module
    misused(
        P::new()
            .global("evil_package", "run")
            .uni("touch /tmp/camview_pwned")
            .op(OpCode::Tuple1)
            .op(OpCode::Reduce)
            .stop(),
        "evil_package.run",
        called,
    );
    misused(
        net()
            .op(OpCode::EmptyTuple)
            .op(OpCode::Reduce)
            .raw(&module_attributes().0)
            .op(OpCode::Build)
            .stop(),
        "__main__.Net",
        constructed,
    );
    misused(
        net().int1(3).op(OpCode::Tuple1).op(OpCode::NewObj).stop(),
        "__main__.Net",
        called,
    );
    misused(
        net()
            .op(OpCode::EmptyTuple)
            .op(OpCode::Mark)
            .uni("x")
            .int1(1)
            .op(OpCode::Dict)
            .op(OpCode::NewObjEx)
            .stop(),
        "__main__.Net",
        called,
    );
    misused(
        P::new().op(OpCode::Mark).inst("__main__", "Net").stop(),
        "__main__.Net",
        constructed,
    );
    misused(
        P::new()
            .op(OpCode::Mark)
            .global("__main__", "Net")
            .op(OpCode::Obj)
            .stop(),
        "__main__.Net",
        constructed,
    );
    // made, but with other attributes, twice, or none
    misused(
        module_of(
            P::new(),
            "__main__",
            "Net",
            P::empty().op(OpCode::EmptyDict),
        )
        .stop(),
        "__main__.Net",
        "given attributes that are not a module's (a dict with _parameters, _buffers and \
         _modules)",
    );
    misused(
        module_of(P::new(), "__main__", "Net", module_attributes())
            .raw(&module_attributes().0)
            .op(OpCode::Build)
            .stop(),
        "__main__.Net",
        "given its attributes twice",
    );
    misused(
        net().op(OpCode::EmptyTuple).op(OpCode::NewObj).stop(),
        "__main__.Net",
        "made into an object without the attributes every module has",
    );
    // named, never made: a bare reference, or a tensor subclass's type
    misused(
        net().stop(),
        "__main__.Net",
        "named but never made into a module",
    );
    // _reconstructor asked for anything else
    misused(
        reconstructor_of("collections", "OrderedDict"),
        "copyreg._reconstructor",
        "asked for something other than an instance of a module class",
    );
    // names in modules of code, or that are no names, are refused as soon as they appear
    for (module, name) in [
        ("os", "Thing"),
        ("builtins", "Exception"),
        ("__torch__.torchvision", "DenseNet"),
        ("torch nn", "Conv2d"),
        ("m", "a;b"),
        ("", "X"),
    ] {
        let b = module_of(P::new(), module, name, module_attributes()).stop();
        assert_eq!(
            parse(&b, 0).unwrap_err(),
            PickleError::Refused(format!("{module}.{name}"))
        );
    }
}

#[test]
fn lengths_beyond_the_data_are_errors_not_allocations() {
    let cases = [
        P::new()
            .op(OpCode::BinUnicode)
            .raw(&u32::MAX.to_le_bytes())
            .raw(b"abc"),
        P::new()
            .op(OpCode::BinUnicode8)
            .raw(&u64::MAX.to_le_bytes())
            .raw(b"abc"),
        P::new()
            .op(OpCode::BinBytes8)
            .raw(&(1u64 << 40).to_le_bytes()),
        P::new().op(OpCode::BinBytes).raw(&u32::MAX.to_le_bytes()),
        P::new().op(OpCode::BinString).raw(&i32::MAX.to_le_bytes()),
        P::new().op(OpCode::Long4).raw(&i32::MAX.to_le_bytes()),
        P::new().op(OpCode::Frame).raw(&u64::MAX.to_le_bytes()),
        P::new().op(OpCode::Long1).raw(&[200, 1, 2]),
    ];
    for (i, c) in cases.into_iter().enumerate() {
        assert_eq!(
            parse(&c.stop(), 0).unwrap_err(),
            PickleError::Truncated,
            "case {i}"
        );
    }
    for neg in [P::new().op(OpCode::BinString), P::new().op(OpCode::Long4)] {
        let e = parse(&neg.raw(&(-1i32).to_le_bytes()).stop(), 0).unwrap_err();
        assert!(matches!(e, PickleError::Invalid { .. }));
    }
}

#[test]
fn malformed_pickles_are_errors() {
    let cases: Vec<Vec<u8>> = vec![
        P::empty().stop(),                                  // STOP on empty stack
        P::new().op(OpCode::Append).stop(),                 // APPEND on empty stack
        P::new().int1(1).int1(2).op(OpCode::Append).stop(), // APPEND to an int
        P::new().op(OpCode::Tuple).stop(),                  // TUPLE without MARK
        P::new().op(OpCode::Mark).stop(),                   // STOP with only a mark
        P::new()
            .int1(1)
            .op(OpCode::EmptyTuple)
            .op(OpCode::Reduce)
            .stop(), // call an int
        P::new()
            .global("collections", "OrderedDict")
            .int1(1)
            .op(OpCode::Reduce)
            .stop(),
        P::new()
            .op(OpCode::EmptyDict)
            .int1(1)
            .op(OpCode::SetItem)
            .stop(),
        P::new().raw(&[u8::MAX]).stop(), // no opcode has this byte
        P::new().line(OpCode::String, "'x'").stop(),
        P::empty().proto(9).op(OpCode::None).stop(),
        P::new().op(OpCode::NextBuffer).stop(),
        P::new().int1(1).int1(2).op(OpCode::StackGlobal).stop(),
        P::new().op(OpCode::Mark).int1(1).op(OpCode::Dict).stop(),
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
    let many = |op: OpCode, n: usize| P::new().repeat(&[op], n).stop();
    let too_large = |b: Vec<u8>| {
        assert!(matches!(
            parse_with_limits(&b, 0, small),
            Err(PickleError::TooLarge(_))
        ));
    };
    too_large(many(OpCode::None, 60)); // stack
    too_large(many(OpCode::Mark, 60)); // marks count towards the stack
    too_large(
        P::new()
            .op(OpCode::EmptyList)
            .repeat(&[OpCode::EmptyList, OpCode::Append], 200)
            .stop(),
    ); // objects
    too_large(
        P::new()
            .op(OpCode::None)
            .repeat(&[OpCode::Memoize], 20)
            .stop(),
    ); // memo
    too_large(
        P::new()
            .op(OpCode::None)
            .repeat(&[OpCode::Dup, OpCode::Pop], 600)
            .stop(),
    ); // ops
    // the same pickles are fine under the default limits (STOP takes the top value)
    assert!(parse(&many(OpCode::None, 60), 0).is_ok());
    assert!(
        parse(
            &P::new()
                .op(OpCode::EmptyList)
                .repeat(&[OpCode::EmptyList, OpCode::Append], 200)
                .stop(),
            0
        )
        .is_ok()
    );
}

fn valid_sample() -> Vec<u8> {
    P::new()
        .global("collections", "OrderedDict")
        .put(0)
        .op(OpCode::EmptyTuple)
        .op(OpCode::Reduce)
        .put(1)
        .op(OpCode::Mark)
        .uni("features.conv0.weight")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(OpCode::Mark)
        .op(OpCode::Mark)
        .uni("storage")
        .global("torch", "FloatStorage")
        .uni("0")
        .uni("cpu")
        .op(OpCode::BinInt2)
        .raw(&[0x30, 0x09])
        .op(OpCode::Tuple)
        .op(OpCode::BinPersId)
        .int1(0)
        .op(OpCode::Mark)
        .int1(16)
        .int1(3)
        .op(OpCode::Tuple)
        .op(OpCode::Mark)
        .int1(3)
        .int1(1)
        .op(OpCode::Tuple)
        .op(OpCode::NewFalse)
        .get(0)
        .op(OpCode::EmptyTuple)
        .op(OpCode::Reduce)
        .op(OpCode::Tuple)
        .op(OpCode::Reduce)
        .uni("epoch")
        .op(OpCode::Long1)
        .raw(&[12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        .op(OpCode::SetItems)
        .op(OpCode::EmptyDict)
        .op(OpCode::Build)
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
    // '8' is there as a digit, for the lines of text opcodes.
    let before_digit = [
        OpCode::Mark,
        OpCode::EmptyTuple,
        OpCode::Stop,
        OpCode::None,
        OpCode::BinInt1,
        OpCode::BinInt2,
        OpCode::BinInt,
        OpCode::BinFloat,
        OpCode::BinUnicode,
        OpCode::BinPut,
        OpCode::BinGet,
        OpCode::LongBinPut,
        OpCode::LongBinGet,
        OpCode::Tuple,
        OpCode::List,
        OpCode::SetItem,
        OpCode::EmptyList,
        OpCode::EmptyDict,
        OpCode::Append,
        OpCode::Appends,
        OpCode::Pop,
        OpCode::PopMark,
        OpCode::Dup,
    ];
    let after_digit = [
        OpCode::BinPersId,
        OpCode::Build,
        OpCode::SetItems,
        OpCode::Global,
        OpCode::Put,
        OpCode::Proto,
        OpCode::Tuple1,
        OpCode::Tuple2,
        OpCode::Tuple3,
        OpCode::NewTrue,
        OpCode::NewFalse,
        OpCode::Long1,
        OpCode::ShortBinUnicode,
        OpCode::EmptySet,
        OpCode::AddItems,
        OpCode::FrozenSet,
        OpCode::StackGlobal,
        OpCode::Memoize,
        OpCode::Frame,
        OpCode::NewObj,
        OpCode::NewObjEx,
    ];
    let alphabet: Vec<u8> = P::empty()
        .repeat(&before_digit, 1)
        .raw(b"8")
        .repeat(&after_digit, 1)
        .raw(&[0, 1, 2, 3, 4, 5, 6, 7])
        .0;
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

mod configs;
