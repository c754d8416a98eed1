//! The allowlist of globals: the classes and functions a checkpoint of
//! tensors needs, and what a saved OmegaConf config names (its classes, and
//! the types its metadata refers to). A name outside it is refused at once
//! when it lies in a module of code (`os.system`, `builtins.eval`, ...) or is
//! not a plain dotted name; any other name may only be a model's module
//! class, which [`super::modules`] checks by how the pickle uses it.

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
    /// `copyreg._reconstructor`: how protocols 0 and 1 make an instance
    /// without calling its class; accepted only as `(module class, object, None)`.
    Reconstructor,
    /// `builtins.object`, the base `_reconstructor` names.
    Object,
    /// One of OmegaConf's classes ([`CONFIG_CLASSES`], by its full name):
    /// accepted only as [`super::configs`] says.
    ConfigClass(&'static str),
    /// A type that may be named as a value but never called ([`TYPE_VALUES`], by its full name).
    Type(&'static str),
    /// `collections.defaultdict`: accepted only with a plain type as its default ([`super::configs`]).
    DefaultDict,
}

/// Top-level modules whose names are code, never a model's classes: a name in
/// them that is not allow-listed is refused as soon as the pickle names it.
pub(crate) const CODE_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "builtins",
    "__builtin__",
    "sys",
    "shutil",
    "socket",
    "runpy",
    "pty",
    "webbrowser",
    "importlib",
    "code",
    "pickle",
    "_pickle",
    "copyreg",
    "copy_reg",
    "functools",
    "operator",
    "types",
    // Only the types of `TYPE_VALUES` are data; the rest (`typing.cast`,
    // `typing.NamedTuple`) are functions and no model's class lives here.
    "typing",
    // Only the classes of `CONFIG_CLASSES` are data; the rest (`OmegaConf`,
    // its resolvers and grammar) is code.
    "omegaconf",
    // TorchScript's compiled classes.
    "__torch__",
];

/// Whether `module.name` may be a model's module class (`__main__.CheXNet`,
/// `torchvision.models.densenet.DenseNet`, `torch.nn.modules.conv.Conv2d`):
/// plain dotted names outside [`CODE_MODULES`]. Being one is then decided by use.
pub(crate) fn may_be_module_class(module: &str, name: &str) -> bool {
    let dotted = |s: &str| {
        s.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c == '_' || c.is_alphabetic())
                && part.chars().all(|c| c == '_' || c.is_alphanumeric())
        })
    };
    let top = module.split('.').next().unwrap_or(module);
    dotted(module) && dotted(name) && !CODE_MODULES.contains(&top)
}

/// Maps an allowed `module.name` to its [`Global`]; `None` means refused.
pub(crate) fn resolve_global(module: &str, name: &str) -> Option<Global> {
    container_or_tensor_function(module, name)
        .or_else(|| storage_class(module, name))
        .or_else(|| dtype(module, name))
        .or_else(|| inert_class(module, name))
        .or_else(|| config_class_or_type(module, name))
}

fn container_or_tensor_function(module: &str, name: &str) -> Option<Global> {
    let g = match (module, name) {
        ("collections", "OrderedDict" | "Counter") => Global::Dict,
        ("collections", "defaultdict") => Global::DefaultDict,
        ("builtins" | "__builtin__", "set" | "frozenset") => Global::Set,
        ("builtins" | "__builtin__", "bytearray") => Global::ByteArray,
        ("_codecs", "encode") => Global::Encode,
        // Protocols below 3 write Python 2's module names.
        ("copyreg" | "copy_reg", "_reconstructor") => Global::Reconstructor,
        ("builtins" | "__builtin__", "object") => Global::Object,
        ("torch", "Size") => Global::Size,
        ("torch", "Tensor") => Global::TensorClass,
        ("torch.nn.parameter", "Parameter") => Global::ParameterClass,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        _ => return None,
    };
    Some(g)
}

/// Legacy typed storages, whose class fixes the element type.
const STORAGES: &[(&str, ScalarType)] = &[
    ("FloatStorage", ScalarType::F32),
    ("DoubleStorage", ScalarType::F64),
    ("HalfStorage", ScalarType::F16),
    ("BFloat16Storage", ScalarType::BF16),
    ("LongStorage", ScalarType::I64),
    ("IntStorage", ScalarType::I32),
    ("ShortStorage", ScalarType::I16),
    ("CharStorage", ScalarType::I8),
    ("ByteStorage", ScalarType::U8),
    ("BoolStorage", ScalarType::Bool),
];

/// Real torch storages that are accepted so that the message can say what
/// camview cannot convert, instead of calling the checkpoint hostile.
const UNSUPPORTED_STORAGES: &[&str] = &[
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
];

fn storage_class(module: &str, name: &str) -> Option<Global> {
    let kind = match (module, name) {
        ("torch" | "torch.storage", "UntypedStorage") => StorageType::Untyped,
        ("torch" | "torch.cuda", _) => {
            if let Some(&(_, t)) = STORAGES.iter().find(|(n, _)| *n == name) {
                StorageType::Typed(t)
            } else {
                let &n = UNSUPPORTED_STORAGES.iter().find(|n| **n == name)?;
                StorageType::Unsupported(n)
            }
        }
        _ => return None,
    };
    Some(Global::Storage(kind))
}

/// Every `torch.<dtype>` name; `None` for those camview cannot convert, which
/// are still accepted so that the message names the dtype.
const DTYPES: &[(&str, Option<ScalarType>)] = &[
    ("float32", Some(ScalarType::F32)),
    ("float", Some(ScalarType::F32)),
    ("float64", Some(ScalarType::F64)),
    ("double", Some(ScalarType::F64)),
    ("float16", Some(ScalarType::F16)),
    ("half", Some(ScalarType::F16)),
    ("bfloat16", Some(ScalarType::BF16)),
    ("int64", Some(ScalarType::I64)),
    ("long", Some(ScalarType::I64)),
    ("int32", Some(ScalarType::I32)),
    ("int", Some(ScalarType::I32)),
    ("int16", Some(ScalarType::I16)),
    ("short", Some(ScalarType::I16)),
    ("int8", Some(ScalarType::I8)),
    ("uint8", Some(ScalarType::U8)),
    ("bool", Some(ScalarType::Bool)),
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

fn dtype(module: &str, name: &str) -> Option<Global> {
    if module != "torch" {
        return None;
    }
    let &(n, t) = DTYPES.iter().find(|(n, _)| *n == name)?;
    Some(Global::Dtype(t, n))
}

/// Classes that training scripts put next to the weights (epoch counters as
/// numpy scalars, the argparse options, ...): harmless to keep as opaque
/// values, and refusing them would refuse most real checkpoints.
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

fn inert_class(module: &str, name: &str) -> Option<Global> {
    let &(_, _, what) = INERT.iter().find(|(m, n, _)| *m == module && *n == name)?;
    Some(Global::Inert(what))
}

/// The classes a pickled OmegaConf config (`DictConfig`, as Hydra users'
/// PyTorch Lightning checkpoints store their `hyper_parameters`) is made of,
/// from omegaconf 2.0 to 2.4: the containers, the metadata dataclasses, and
/// every node class in `omegaconf/nodes.py` and `base.py`. Each is pickled as
/// `NEWOBJ(cls, ())` then `BUILD` with its `__dict__`, and is kept as an inert
/// record whose state nothing reads; a class named here may also be a value
/// (Lightning stores `hparams_type`, the class itself).
pub(crate) const CONFIG_CLASSES: &[&str] = &[
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.tupleconfig.TupleConfig",
    "omegaconf.base.Metadata",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.UnionNode",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.BytesNode",
    "omegaconf.nodes.PathNode",
    "omegaconf.nodes.EnumNode",
    "omegaconf.nodes.NoneNode",
    "omegaconf.nodes.LiteralNode",
    "omegaconf.nodes.InterpolationResultNode",
];

/// Types that OmegaConf's metadata names as values (`ref_type`,
/// `object_type`, `key_type`, `element_type`), written under Python 3's
/// module name (protocols 3 to 5) and Python 2's (protocol 2: `__builtin__`,
/// with `int` as `long` and `str` as `unicode`). Naming a type runs nothing;
/// calling one is refused ([`super::configs`]). `builtins.set` and
/// `frozenset` are containers ([`Global::Set`]); `NoneType` is absent because
/// pickle writes it as the call `builtins.type(None)`, which stays refused.
pub(crate) const TYPE_VALUES: &[&str] = &[
    "typing.Any",
    "typing.Dict",
    "typing.List",
    "typing.Tuple",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.bool",
    "builtins.bytes",
    "__builtin__.dict",
    "__builtin__.list",
    "__builtin__.tuple",
    "__builtin__.int",
    "__builtin__.long",
    "__builtin__.float",
    "__builtin__.str",
    "__builtin__.unicode",
    "__builtin__.bool",
    "__builtin__.bytes",
];

fn config_class_or_type(module: &str, name: &str) -> Option<Global> {
    let find = |table: &'static [&'static str]| {
        table
            .iter()
            .copied()
            .find(|full| full.rsplit_once('.') == Some((module, name)))
    };
    find(CONFIG_CLASSES)
        .map(Global::ConfigClass)
        .or_else(|| find(TYPE_VALUES).map(Global::Type))
}
