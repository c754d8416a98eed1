//! Saved OmegaConf configs, the types they name and `defaultdict`
//! ([`crate::checkpoint::pickle::configs`]), on pickles assembled as omegaconf
//! 2.3 writes them.

use super::super::globals::{CONFIG_CLASSES, TYPE_VALUES};
use super::*;

/// How a pickle names a global: `GLOBAL` (protocol 2) or `STACK_GLOBAL` (4 and 5).
type Naming = fn(P, &str, &str) -> P;

fn by_global(p: P, module: &str, name: &str) -> P {
    p.global(module, name)
}

fn by_stack_global(p: P, module: &str, name: &str) -> P {
    p.short_uni(module).short_uni(name).op(OpCode::StackGlobal)
}

/// How one protocol writes a config: its opcode for globals, its name of the
/// builtins module (Python 2's under protocol 2, with `int` as `long`).
#[derive(Clone, Copy)]
struct Writer {
    protocol: u8,
    naming: Naming,
    py: &'static str,
}

const PROTOCOL_2: Writer = Writer {
    protocol: 2,
    naming: by_global,
    py: "__builtin__",
};
const PROTOCOL_4: Writer = Writer {
    protocol: 4,
    naming: by_stack_global,
    py: "builtins",
};

impl Writer {
    fn global(self, p: P, module: &str, name: &str) -> P {
        (self.naming)(p, module, name)
    }

    /// `NEWOBJ(cls, ())`, then `BUILD` with the dict whose items `items` pushes.
    fn record(self, p: P, module: &str, name: &str, items: impl FnOnce(P) -> P) -> P {
        let p = self
            .global(p, module, name)
            .op(OpCode::EmptyTuple)
            .op(OpCode::NewObj)
            .op(OpCode::EmptyDict)
            .op(OpCode::Mark);
        items(p).op(OpCode::SetItems).op(OpCode::Build)
    }

    /// A `ContainerMetadata` whose `object_type` is `builtins.<object_type>`,
    /// or a node's `Metadata` (no `object_type`), as OmegaConf's dataclasses
    /// pickle: types as values, a `defaultdict(dict)` as resolver cache.
    fn metadata(self, p: P, class: &str, object_type: Option<&str>) -> P {
        let int = if self.protocol >= 3 { "int" } else { "long" };
        self.record(p.uni("_metadata"), "omegaconf.base", class, |p| {
            let p = self
                .global(p.uni("ref_type"), "typing", "Any")
                .uni("object_type");
            let p = match object_type {
                Some(t) => self.global(p, self.py, t),
                None => p.op(OpCode::None),
            };
            let p = p
                .uni("optional")
                .op(OpCode::NewTrue)
                .uni("key")
                .op(OpCode::None)
                .uni("flags")
                .op(OpCode::EmptyDict)
                .uni("flags_root")
                .op(OpCode::NewFalse)
                .uni("resolver_cache");
            let p = self.global(p, "collections", "defaultdict");
            let p = self.global(p, self.py, "dict").op(OpCode::Tuple1);
            let p = self.global(p.op(OpCode::Reduce).uni("key_type"), self.py, int);
            self.global(p.uni("element_type"), "typing", "Any")
        })
    }

    /// A `DictConfig` or `ListConfig` whose `_content` `content` pushes.
    fn container(self, p: P, module: &str, class: &str, content: impl FnOnce(P) -> P) -> P {
        let object_type = if class == "ListConfig" {
            "list"
        } else {
            "dict"
        };
        self.record(p, module, class, |p| {
            let p = self.metadata(p, "ContainerMetadata", Some(object_type));
            content(p.uni("_parent").op(OpCode::None).uni("_content"))
        })
    }

    /// An `AnyNode` holding the value `value` pushes.
    fn any_node(self, p: P, value: impl FnOnce(P) -> P) -> P {
        self.record(p, "omegaconf.nodes", "AnyNode", |p| {
            let p = self.metadata(p, "Metadata", None);
            value(p.uni("_parent").op(OpCode::None).uni("_val"))
        })
    }

    /// `{"hyper_parameters": DictConfig({"lr": AnyNode(0.001), "classes":
    /// ListConfig([AnyNode(1)])}), "hparams_type": DictConfig}` as omegaconf
    /// writes it, `_parent` links aside.
    fn config_sample(self) -> Vec<u8> {
        let list = |p: P| {
            let p = p.op(OpCode::EmptyList).op(OpCode::Mark);
            self.any_node(p, |p| p.int1(1)).op(OpCode::Appends)
        };
        let dict = |p: P| {
            let p = p.op(OpCode::EmptyDict).op(OpCode::Mark).uni("lr");
            let p = self.any_node(p, |p| p.op(OpCode::BinFloat).raw(&0.001f64.to_be_bytes()));
            let p = p.uni("classes");
            let p = self.container(p, "omegaconf.listconfig", "ListConfig", list);
            p.op(OpCode::SetItems)
        };
        let p = P::empty().proto(self.protocol).op(OpCode::EmptyDict);
        let p = p.op(OpCode::Mark).uni("hyper_parameters");
        let p = self.container(p, "omegaconf.dictconfig", "DictConfig", dict);
        let p = p.uni("hparams_type");
        self.global(p, "omegaconf.dictconfig", "DictConfig")
            .op(OpCode::SetItems)
            .stop()
    }
}

/// The value under `key` of the dict `id`.
fn field(p: &Pickle, id: Id, key: &str) -> Id {
    let items = match p.get(id) {
        Obj::Dict(items) => items,
        Obj::Config {
            state: Some(state), ..
        } => p.dict(*state).unwrap(),
        other => panic!("{key}: not a dict but {other:?}"),
    };
    items
        .iter()
        .find(|&&(k, _)| p.str(k) == Some(key))
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

fn class_of(p: &Pickle, id: Id) -> &'static str {
    match p.get(id) {
        Obj::Config {
            class,
            state: Some(_),
        } => class,
        other => panic!("not a built config record: {other:?}"),
    }
}

#[test]
fn omegaconf_configs_become_inert_records_in_protocols_2_and_4() {
    // protocol 2 names Python 2's builtins (`__builtin__.long` for int), 4 and 5 Python 3's
    for writer in [PROTOCOL_2, PROTOCOL_4] {
        let p = parse_ok(&writer.config_sample());
        let cfg = field(&p, p.root, "hyper_parameters");
        assert_eq!(class_of(&p, cfg), "omegaconf.dictconfig.DictConfig");
        assert_eq!(
            p.get(field(&p, p.root, "hparams_type")),
            &Obj::Global(Global::ConfigClass("omegaconf.dictconfig.DictConfig"))
        );
        let meta = field(&p, cfg, "_metadata");
        assert_eq!(class_of(&p, meta), "omegaconf.base.ContainerMetadata");
        let any = Obj::Global(Global::Type("typing.Any"));
        assert_eq!(p.get(field(&p, meta, "ref_type")), &any);
        let dict = format!("{}.dict", writer.py);
        assert!(
            matches!(p.get(field(&p, meta, "object_type")), Obj::Global(Global::Type(t)) if *t == dict)
        );
        assert_eq!(p.get(field(&p, meta, "resolver_cache")), &Obj::Dict(vec![]));
        let int = if writer.protocol == 2 {
            "__builtin__.long"
        } else {
            "builtins.int"
        };
        assert_eq!(
            p.get(field(&p, meta, "key_type")),
            &Obj::Global(Global::Type(int))
        );
        let content = field(&p, cfg, "_content");
        let lr = field(&p, content, "lr");
        assert_eq!(class_of(&p, lr), "omegaconf.nodes.AnyNode");
        assert_eq!(p.get(field(&p, lr, "_val")), &Obj::Float(0.001));
        let classes = field(&p, content, "classes");
        assert_eq!(class_of(&p, classes), "omegaconf.listconfig.ListConfig");
        let items = p.seq(field(&p, classes, "_content")).unwrap();
        assert_eq!(class_of(&p, items[0]), "omegaconf.nodes.AnyNode");
        assert_eq!(p.type_name(cfg), "a saved config");
    }
}

#[test]
fn the_config_allowlist_is_exact_and_code_stays_refused_at_once() {
    for &full in CONFIG_CLASSES {
        let (module, name) = full.rsplit_once('.').unwrap();
        assert_eq!(
            resolve_global(module, name),
            Some(Global::ConfigClass(full))
        );
    }
    for &full in TYPE_VALUES {
        let (module, name) = full.rsplit_once('.').unwrap();
        assert_eq!(resolve_global(module, name), Some(Global::Type(full)));
    }
    assert_eq!(
        resolve_global("collections", "defaultdict"),
        Some(Global::DefaultDict)
    );
    // every other name of builtins, typing and omegaconf is refused as soon as it is named
    for module in ["builtins", "__builtin__"] {
        for name in [
            "eval",
            "exec",
            "execfile",
            "compile",
            "getattr",
            "setattr",
            "delattr",
            "open",
            "file",
            "__import__",
            "input",
            "breakpoint",
            "globals",
            "vars",
            "type",
            "super",
            "memoryview",
            "NoneType",
        ] {
            let b = by_global(P::new(), module, name).stop();
            assert_eq!(
                parse(&b, 0).unwrap_err(),
                PickleError::Refused(format!("{module}.{name}")),
                "{module}.{name}"
            );
        }
    }
    for (module, name) in [
        ("typing", "cast"),
        ("typing", "NamedTuple"),
        ("omegaconf", "OmegaConf"),
        ("omegaconf.omegaconf", "OmegaConf"),
        ("omegaconf.nodes", "ValueNode"),
        ("omegaconf.base", "Node"),
        ("omegaconf._utils", "_resolve_forward"),
        ("omegaconf.resolvers.oc", "env"),
        ("os", "system"),
    ] {
        for naming in [by_global as Naming, by_stack_global] {
            let b = naming(P::empty().proto(4), module, name).stop();
            assert_eq!(
                parse(&b, 0).unwrap_err(),
                PickleError::Refused(format!("{module}.{name}"))
            );
        }
    }
}

/// The pickle is refused, naming `global`, with this `how` and a rule starting with `rule`.
fn assert_misused(b: Vec<u8>, want: (&str, &str, &str)) {
    match parse(&b, 0) {
        Err(PickleError::Misused { global, how, rule }) => {
            assert_eq!((global.as_str(), how), (want.0, want.1));
            assert!(rule.starts_with(want.2), "{global}: {rule}");
        }
        other => panic!("{want:?}: {other:?}"),
    }
}

const CALLED: &str = "called with arguments, as a function is";
const CONSTRUCTED: &str = "constructed by a call, which would run its code";
const DICT_CONFIG: &str = "omegaconf.dictconfig.DictConfig";
const CONFIG: &str = "a saved config";

fn dict_config() -> P {
    P::new().global("omegaconf.dictconfig", "DictConfig")
}

#[test]
fn an_omegaconf_class_made_otherwise_than_omegaconf_does_is_refused_by_name() {
    let attributes = |p: P| p.op(OpCode::EmptyDict).op(OpCode::Build);
    for (b, how) in [
        (
            attributes(dict_config().uni("x").op(OpCode::Tuple1).op(OpCode::Reduce)),
            CALLED,
        ),
        (
            attributes(dict_config().op(OpCode::EmptyTuple).op(OpCode::Reduce)),
            CONSTRUCTED,
        ),
        (
            attributes(dict_config().int1(1).op(OpCode::Tuple1).op(OpCode::NewObj)),
            CALLED,
        ),
        (
            dict_config()
                .op(OpCode::EmptyTuple)
                .op(OpCode::Mark)
                .uni("content")
                .int1(1)
                .op(OpCode::Dict)
                .op(OpCode::NewObjEx),
            CALLED,
        ),
        (
            P::new()
                .op(OpCode::Mark)
                .inst("omegaconf.dictconfig", "DictConfig"),
            CONSTRUCTED,
        ),
        (
            P::new()
                .op(OpCode::Mark)
                .global("omegaconf.dictconfig", "DictConfig")
                .op(OpCode::Obj),
            CONSTRUCTED,
        ),
    ] {
        assert_misused(b.stop(), (DICT_CONFIG, how, CONFIG));
    }
    let made = || dict_config().op(OpCode::EmptyTuple).op(OpCode::NewObj);
    assert!(parse(&made().op(OpCode::EmptyDict).op(OpCode::Build).stop(), 0).is_ok());
    for (b, how) in [
        (
            made().op(OpCode::EmptyList).op(OpCode::Build),
            "given a state that is not a dict of attributes",
        ),
        (
            made()
                .op(OpCode::EmptyDict)
                .op(OpCode::Build)
                .op(OpCode::EmptyDict)
                .op(OpCode::Build),
            "given its attributes twice",
        ),
        (made(), "made into an object without its attributes"),
    ] {
        assert_misused(b.stop(), (DICT_CONFIG, how, CONFIG));
    }
    // protocol 1's _reconstructor is for module classes only
    assert_misused(
        reconstructor_of("omegaconf.dictconfig", "DictConfig"),
        (
            "copyreg._reconstructor",
            "asked for something other than an instance of a module class",
            "a saved model's module",
        ),
    );
}

#[test]
fn a_type_is_a_value_and_any_making_of_it_is_refused_by_name() {
    let type_rule = "a type in a checkpoint is only ever named";
    for (module, name) in [
        ("builtins", "dict"),
        ("__builtin__", "list"),
        ("typing", "Any"),
        ("__builtin__", "long"),
        ("builtins", "str"),
    ] {
        let full = format!("{module}.{name}");
        let t = || P::new().global(module, name);
        for (b, how) in [
            (t().uni("x").op(OpCode::Tuple1).op(OpCode::Reduce), CALLED),
            (t().op(OpCode::EmptyTuple).op(OpCode::Reduce), CONSTRUCTED),
            (
                t().op(OpCode::EmptyTuple).op(OpCode::NewObj),
                "made into an object",
            ),
            (P::new().op(OpCode::Mark).inst(module, name), CONSTRUCTED),
        ] {
            assert_misused(b.stop(), (&full, how, type_rule));
        }
        // named as a value, as OmegaConf's metadata does
        let p = parse_ok(&t().op(OpCode::Tuple1).stop());
        assert!(matches!(
            p.get(p.seq(p.root).unwrap()[0]),
            Obj::Global(Global::Type(_))
        ));
    }
    // what was allowed before stays allowed: set() and frozenset() make sets
    let p = parse_ok(
        &P::new()
            .global("builtins", "frozenset")
            .op(OpCode::EmptyList)
            .op(OpCode::Tuple1)
            .op(OpCode::Reduce)
            .stop(),
    );
    assert_eq!(p.get(p.root), &Obj::Set(vec![]));
}

#[test]
fn a_defaultdict_of_a_plain_type_is_a_dict_and_anything_else_is_refused_by_name() {
    let defaultdict = || P::new().global("collections", "defaultdict");
    for default in [
        P::empty().op(OpCode::EmptyTuple),
        P::empty().global("__builtin__", "dict").op(OpCode::Tuple1),
        P::empty().global("builtins", "list").op(OpCode::Tuple1),
        P::empty().global("builtins", "int").op(OpCode::Tuple1),
        P::empty().global("builtins", "set").op(OpCode::Tuple1),
        P::empty().op(OpCode::None).op(OpCode::Tuple1),
    ] {
        let b = defaultdict()
            .raw(&default.0)
            .op(OpCode::Reduce)
            .op(OpCode::Mark)
            .uni("a")
            .op(OpCode::EmptyDict)
            .op(OpCode::SetItems)
            .stop();
        let p = parse_ok(&b);
        assert!(matches!(p.get(p.root), Obj::Dict(items) if items.len() == 1));
    }
    let rule = "a defaultdict is only ever made by a call";
    for default in [
        P::empty().global("__main__", "factory").op(OpCode::Tuple1),
        P::empty()
            .global("collections", "OrderedDict")
            .op(OpCode::Tuple1),
        P::empty().uni("dict").op(OpCode::Tuple1),
        P::empty()
            .global("builtins", "dict")
            .op(OpCode::EmptyDict)
            .op(OpCode::Tuple2),
    ] {
        let b = defaultdict().raw(&default.0).op(OpCode::Reduce).stop();
        let how = "given a default that is not a plain type";
        assert_misused(b, ("collections.defaultdict", how, rule));
    }
    for (b, how) in [
        (
            defaultdict().op(OpCode::EmptyTuple).op(OpCode::NewObj),
            "made into an object",
        ),
        (
            P::new().op(OpCode::Mark).inst("collections", "defaultdict"),
            CONSTRUCTED,
        ),
    ] {
        assert_misused(b.stop(), ("collections.defaultdict", how, rule));
    }
    // a default that is code is refused as soon as it is named
    let b = defaultdict()
        .global("builtins", "eval")
        .op(OpCode::Tuple1)
        .op(OpCode::Reduce)
        .stop();
    assert_eq!(
        parse(&b, 0).unwrap_err(),
        PickleError::Refused("builtins.eval".to_owned())
    );
}

#[test]
fn every_truncation_and_mutation_of_a_config_pickle_is_an_error_or_a_value() {
    for writer in [PROTOCOL_2, PROTOCOL_4] {
        let full = writer.config_sample();
        assert!(parse(&full, 0).is_ok());
        for n in 0..full.len() {
            assert!(parse(&full[..n], 0).is_err(), "cut at {n}");
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ full.len() as u64);
        for _ in 0..3000 {
            let mut b = full.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            let _ = parse(&b, 0);
        }
    }
}
