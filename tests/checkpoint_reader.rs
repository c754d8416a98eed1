//! `camview::checkpoint` against checkpoints written by real PyTorch
//! (tests/fixtures/models, made by tests/fixtures/make_fixtures.py), plus
//! damaged and hostile files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use camview::checkpoint::{CheckpointError, read_state_dict, read_state_dict_from_bytes};
use candle_core::{DType, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn load(name: &str) -> Vec<(String, Tensor)> {
    match read_state_dict(&fixture(name)) {
        Ok(t) => t,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn keys(sd: &[(String, Tensor)]) -> Vec<&str> {
    sd.iter().map(|(k, _)| k.as_str()).collect()
}

/// The reference: what safetensors (written by the safetensors library) holds.
fn reference() -> HashMap<String, Tensor> {
    load("tiny.safetensors").into_iter().collect()
}

/// Same dtype, shape and values, exactly.
fn assert_same(ctx: &str, key: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dtype(), want.dtype(), "{ctx}: {key} dtype");
    assert_eq!(got.dims(), want.dims(), "{ctx}: {key} shape");
    match want.dtype() {
        DType::F32 => assert_eq!(
            got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{ctx}: {key} values"
        ),
        DType::I64 => assert_eq!(
            got.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
            "{ctx}: {key} values"
        ),
        other => panic!("{ctx}: {key} has unexpected dtype {other:?}"),
    }
}

fn assert_matches_reference(name: &str, with_nbt: bool) {
    let reference = reference();
    let sd = load(name);
    let mut want: Vec<&str> = reference
        .keys()
        .map(String::as_str)
        .filter(|k| with_nbt || !k.ends_with("num_batches_tracked"))
        .collect();
    want.sort_unstable();
    let mut got = keys(&sd);
    got.sort_unstable();
    assert_eq!(got, want, "{name}: key set");
    for (k, t) in &sd {
        assert_same(name, k, t, &reference[k]);
    }
}

#[test]
fn safetensors_reference_looks_like_a_tiny_densenet() {
    let sd = load("tiny.safetensors");
    let r: HashMap<_, _> = sd.iter().map(|(k, t)| (k.as_str(), t)).collect();
    assert_eq!(r["features.conv0.weight"].dims(), [16, 3, 7, 7]);
    assert_eq!(r["features.conv0.weight"].dtype(), DType::F32);
    assert_eq!(r["classifier.bias"].dims(), [3]);
    let nbt = r["features.norm0.num_batches_tracked"];
    assert_eq!(nbt.dtype(), DType::I64);
    assert_eq!(nbt.dims(), [] as [usize; 0]);
    assert!(nbt.to_scalar::<i64>().unwrap() >= 1000);
    assert!(
        r.keys()
            .any(|k| k.starts_with("features.denseblock4.denselayer2.conv2"))
    );
}

#[test]
fn every_pytorch_layout_gives_the_same_tensors() {
    for name in [
        "tiny.pth",
        "tiny_dataparallel.pth",
        "tiny_nested.pth",
        "tiny_model_key.pth",
        "tiny_model_state_dict_key.pth",
        "tiny_legacy.pth",
        "tiny_legacy_nested.pth",
    ] {
        assert_matches_reference(name, true);
    }
}

#[test]
fn pytorch_files_keep_the_state_dict_order() {
    let order = keys(&load("tiny.pth"))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(order[0], "features.conv0.weight");
    assert_eq!(order.last().map(String::as_str), Some("classifier.bias"));
    for name in [
        "tiny_dataparallel.pth",
        "tiny_nested.pth",
        "tiny_legacy.pth",
        "tiny_legacy_nested.pth",
        "tiny_model_key.pth",
    ] {
        assert_eq!(keys(&load(name)), order, "{name}");
    }
}

#[test]
fn old_torchvision_densenet_keys_are_renamed() {
    assert_matches_reference("tiny_oldkeys.pth", false);
    let raw = std::fs::read(fixture("tiny_oldkeys.pth")).unwrap();
    // the file really has the old names
    assert!(
        raw.windows(b"denselayer1.norm.1.weight".len())
            .any(|w| w == b"denselayer1.norm.1.weight")
    );
}

#[test]
fn float64_and_float16_are_converted_to_f32() {
    assert_matches_reference("tiny_f64.pth", true);

    let reference = reference();
    let sd = load("tiny_f16.pth");
    assert_eq!(sd.len(), reference.len());
    for (k, t) in &sd {
        let want = &reference[k];
        assert_eq!(t.dims(), want.dims(), "{k}");
        if want.dtype() == DType::I64 {
            assert_same("tiny_f16.pth", k, t, want);
            continue;
        }
        assert_eq!(t.dtype(), DType::F32, "{k}");
        let got = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            // half precision: 11 significant bits, subnormals below 2^-14
            let tol = (w.abs() * 2f32.powi(-11)).max(2f32.powi(-24));
            assert!((g - w).abs() <= tol, "{k}: {g} vs {w}");
        }
        assert!(
            got.iter().zip(&want).any(|(g, w)| g != w),
            "{k}: really f16?"
        );
    }
}

#[test]
fn other_state_dicts_load_as_they_are() {
    let tiny3 = load("tiny3.pth");
    let r: HashMap<_, _> = tiny3.iter().map(|(k, t)| (k.as_str(), t)).collect();
    assert_eq!(r["features.conv0.weight"].dims(), [8, 3, 7, 7]);
    assert_eq!(r["classifier.weight"].dims()[0], 2);

    let resnet = load("resnet_like.pth");
    assert_eq!(
        keys(&resnet),
        [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "fc.weight",
            "fc.bias"
        ]
    );

    // (whether these fit a DenseNet is the network module's business)
    let n = reference().len();
    assert_eq!(load("tiny_missing.pth").len(), n - 2);
    assert_eq!(load("tiny_unexpected.pth").len(), n + 1);
    let bad = load("tiny_badshape.pth");
    let norm5 = bad
        .iter()
        .find(|(k, _)| k == "features.norm5.weight")
        .unwrap();
    assert_eq!(
        norm5.1.dims()[0] + 1,
        reference()["features.norm5.weight"].dims()[0]
    );
}

#[test]
fn bytes_and_path_give_the_same_result() {
    for name in ["tiny.pth", "tiny_legacy.pth", "tiny.safetensors"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let a = read_state_dict_from_bytes(name, &bytes).unwrap();
        let b = load(name);
        assert_eq!(keys(&a), keys(&b));
        for ((k, x), (_, y)) in a.iter().zip(&b) {
            assert_same(name, k, x, y);
        }
    }
}

const PWNED: &str = "/tmp/camview_pwned";

#[test]
fn malicious_checkpoints_are_refused_without_running_anything() {
    let existed_before = Path::new(PWNED).exists();
    for name in ["evil.pth", "evil_legacy.pth"] {
        let path = fixture(name);
        let err = read_state_dict(&path).unwrap_err();
        let msg = err.to_string();
        let CheckpointError::Refused { global, .. } = &err else {
            panic!("{name}: expected a refusal, got {msg}");
        };
        assert!(global.ends_with(".system"), "{name}: {global}");
        assert!(
            msg.starts_with(&format!("{}: refused to load: ", path.display())),
            "{msg}"
        );
        assert!(msg.contains("a checkpoint must never run code"), "{msg}");
        // the same from memory
        let bytes = std::fs::read(&path).unwrap();
        assert!(matches!(
            read_state_dict_from_bytes(name, &bytes),
            Err(CheckpointError::Refused { .. })
        ));
    }
    if !existed_before {
        assert!(!Path::new(PWNED).exists(), "the payload ran!");
    }
}

/// A seeded xorshift64 generator, so that failures reproduce.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(bytes).unwrap();
    p
}

#[test]
fn truncated_files_give_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "tiny.pth",
        "tiny_legacy.pth",
        "tiny.safetensors",
        "tiny_nested.pth",
        "layouts/chexnet_module.pth",
        "layouts/chexnet_module_legacy.pth",
    ] {
        let full = std::fs::read(fixture(name)).unwrap();
        let n = full.len();
        let mut cuts = vec![
            1,
            2,
            8,
            9,
            15,
            16,
            40,
            100,
            500,
            5000,
            n / 4,
            n / 2,
            n - 1000,
            n - 100,
            n - 22,
            n - 1,
        ];
        // every byte of the first pickles of the legacy stream
        cuts.extend(0..300);
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            let file_name = format!("cut_{cut}_{}", name.replace('/', "_"));
            let path = write_temp(dir.path(), &file_name, &full[..cut]);
            let err = match read_state_dict(&path) {
                Ok(sd) => panic!("{name} cut at {cut}/{n} loaded {} tensors", sd.len()),
                Err(e) => e,
            };
            let msg = err.to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            assert!(
                matches!(
                    err,
                    CheckpointError::Corrupt { .. }
                        | CheckpointError::NotACheckpoint { .. }
                        | CheckpointError::Empty { .. }
                ),
                "{name} cut at {cut}: {msg}"
            );
            if cut >= 5000 {
                assert!(
                    matches!(err, CheckpointError::Corrupt { .. }),
                    "{name} cut at {cut}: {msg}"
                );
            }
            // A legacy file cut inside the header pickle `torch.save` writes first.
            if name == "tiny_legacy.pth" && (3..15).contains(&cut) {
                assert!(
                    msg.ends_with("the file ends inside the PyTorch header"),
                    "{name} cut at {cut}: {msg}"
                );
            }
        }
    }
}

#[test]
fn corrupted_storage_bytes_are_caught_by_the_zip_checksum() {
    let mut bytes = std::fs::read(fixture("tiny.pth")).unwrap();
    // flip a byte in the middle of the first storage (tiny/data/0 starts after data.pkl)
    let at = bytes.len() / 3;
    bytes[at] ^= 0x55;
    let err = read_state_dict_from_bytes("flipped.pth", &bytes).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
}

#[test]
fn empty_missing_and_random_files() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_temp(dir.path(), "empty.pth", b"");
    let err = read_state_dict(&empty).unwrap_err();
    assert!(matches!(err, CheckpointError::Empty { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the file is empty (0 bytes), so it holds no model weights",
            empty.display()
        )
    );

    let missing = dir.path().join("nope.pth");
    let err = read_state_dict(&missing).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read the file", missing.display()))
    );

    let err = read_state_dict(dir.path()).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");

    let text = write_temp(dir.path(), "notes.pth", b"this is not a model\n");
    let err = read_state_dict(&text).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a PyTorch or safetensors checkpoint"),
        "{err}"
    );

    // seeded random bytes, including ones that start like each format
    let mut next = xorshift(0x0123_4567_89ab_cdef);
    let prefixes: [&[u8]; 5] = [
        b"",
        b"PK\x03\x04",
        b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e",
        b"\x40\x00\x00\x00\x00\x00\x00\x00{",
        b"\x80\x02",
    ];
    for i in 0..2000 {
        let len = (next() % 3000) as usize;
        let mut bytes = prefixes[i % prefixes.len()].to_vec();
        bytes.extend((0..len).map(|_| next() as u8));
        let err = read_state_dict_from_bytes("random.bin", &bytes).unwrap_err();
        assert!(err.to_string().starts_with("random.bin: "), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Hand-made archives for layouts the fixtures do not cover
// ---------------------------------------------------------------------------

/// A pickle assembled by hand.
#[derive(Default)]
struct Pk(Vec<u8>);

impl Pk {
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn s(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn i(&mut self, v: u8) -> &mut Self {
        self.op(&[b'K', v])
    }
    fn ints(&mut self, v: &[u8]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.i(x);
        }
        self.op(b"t")
    }
    /// `_rebuild_tensor_v2(('storage', <storage_class>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`
    fn tensor(
        &mut self,
        storage_class: &str,
        key: &str,
        numel: u8,
        offset: u8,
        size: &[u8],
        stride: &[u8],
    ) -> &mut Self {
        self.op(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        self.op(b"(").s("storage");
        self.op(format!("ctorch\n{storage_class}\n").as_bytes());
        self.s(key).s("cpu").i(numel).op(b"tQ");
        self.i(offset).ints(size).ints(stride);
        self.op(b"\x89ccollections\nOrderedDict\n)R");
        self.op(b"tR")
    }
    /// A float tensor of `numel` elements, all of the storage `key`.
    fn t(&mut self, key: &str, numel: u8) -> &mut Self {
        self.tensor("FloatStorage", key, numel, 0, &[numel], &[1])
    }
    /// A float scalar (no dimension), the storage `key`.
    fn scalar(&mut self, key: &str) -> &mut Self {
        self.tensor("FloatStorage", key, 1, 0, &[], &[])
    }
    /// `NEWOBJ(module.name, ())` and its attributes, up to the items of `_parameters`.
    fn module_begin(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
            .op(b")\x81}(");
        self.s("training").op(b"\x88").s("_parameters").op(b"}(")
    }
    /// Ends one attribute dict and starts the next (`_buffers`, then `_modules`).
    fn then(&mut self, attribute: &str) -> &mut Self {
        self.op(b"u").s(attribute).op(b"}(")
    }
    /// Ends `_modules` and the attributes, and gives them to the module (BUILD).
    fn module_end(&mut self) -> &mut Self {
        self.op(b"uub")
    }
}

fn zip_checkpoint(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opts).unwrap();
        z.write_all(pickle).unwrap();
        z.start_file("archive/byteorder", opts).unwrap();
        z.write_all(b"little").unwrap();
        for (key, data) in storages {
            z.start_file(format!("archive/data/{key}"), opts).unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }
    out.into_inner()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn strided_and_shared_storages() {
    // one storage of 12 floats, viewed as a 3x4 matrix, its transpose, a column
    // slice, and a parameter-wrapped view; plus a bf16 tensor
    let mut p = Pk::default();
    p.op(b"\x80\x02}(");
    p.s("module.m")
        .tensor("FloatStorage", "0", 12, 0, &[3, 4], &[4, 1]);
    p.s("module.mt")
        .tensor("FloatStorage", "0", 12, 0, &[4, 3], &[1, 4]);
    p.s("module.cols")
        .tensor("FloatStorage", "0", 12, 1, &[3, 2], &[4, 1]);
    p.s("module.param")
        .op(b"ctorch._utils\n_rebuild_parameter\n(");
    p.tensor("FloatStorage", "0", 12, 8, &[4], &[1]);
    p.op(b"\x88ccollections\nOrderedDict\n)RtR");
    p.s("module.half")
        .tensor("BFloat16Storage", "1", 2, 0, &[2], &[1]);
    p.op(b"u.");
    let bf16: Vec<u8> = [0x3f80u16, 0xc040]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let data = f32_bytes(&(0..12).map(|x| x as f32).collect::<Vec<_>>());
    let bytes = zip_checkpoint(&p.0, &[("0", data), ("1", bf16)]);
    let sd = read_state_dict_from_bytes("strided.pth", &bytes).unwrap();
    assert_eq!(keys(&sd), ["m", "mt", "cols", "param", "half"]);
    let get = |k: &str| sd.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(
        get("mt").to_vec2::<f32>().unwrap(),
        [[0., 4., 8.], [1., 5., 9.], [2., 6., 10.], [3., 7., 11.]]
    );
    assert_eq!(
        get("cols").to_vec2::<f32>().unwrap(),
        [[1., 2.], [5., 6.], [9., 10.]]
    );
    assert_eq!(get("param").to_vec1::<f32>().unwrap(), [8., 9., 10., 11.]);
    assert_eq!(get("half").to_vec1::<f32>().unwrap(), [1.0, -3.0]);
    assert_eq!(get("m").to_vec2::<f32>().unwrap()[1], [4., 5., 6., 7.]);
}

#[test]
fn a_view_past_its_storage_is_corrupt_not_a_panic() {
    let mut p = Pk::default();
    p.op(b"\x80\x02}(");
    p.s("w").tensor("FloatStorage", "0", 4, 2, &[2, 2], &[2, 1]);
    p.op(b"u.");
    let bytes = zip_checkpoint(&p.0, &[("0", f32_bytes(&[1., 2., 3., 4.]))]);
    let err = read_state_dict_from_bytes("short.pth", &bytes).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("'w'"), "{err}");

    // the storage entry is shorter than the pickle says
    let mut p = Pk::default();
    p.op(b"\x80\x02}(");
    p.s("w").tensor("FloatStorage", "0", 4, 0, &[4], &[1]);
    p.op(b"u.");
    let bytes = zip_checkpoint(&p.0, &[("0", f32_bytes(&[1., 2.]))]);
    let err = read_state_dict_from_bytes("short.pth", &bytes).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");

    // the storage entry is missing
    let bytes = zip_checkpoint(&p.0, &[]);
    let err = read_state_dict_from_bytes("short.pth", &bytes).unwrap_err();
    assert!(err.to_string().contains("archive/data/0"), "{err}");
}

#[test]
fn no_state_dict_lists_the_top_level_keys() {
    let mut p = Pk::default();
    p.op(b"\x80\x02}(").s("epoch").i(7).s("optimizer").op(b"}");
    p.s("best_acc").op(b"G").op(&0.5f64.to_be_bytes());
    p.op(b"u.");
    let bytes = zip_checkpoint(&p.0, &[]);
    let err = read_state_dict_from_bytes("ckpt.pth", &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ckpt.pth: no state dict found; top-level keys are: epoch, optimizer, best_acc"
    );

    let bytes = zip_checkpoint(b"\x80\x02]K\x01a.", &[]);
    let err = read_state_dict_from_bytes("list.pth", &bytes).unwrap_err();
    assert!(matches!(err, CheckpointError::NoStateDict { .. }), "{err}");
    assert!(err.to_string().contains("a list"), "{err}");
}

#[test]
fn a_module_class_given_other_attributes_than_a_modules_is_refused_by_name() {
    let mut p = Pk::default();
    p.op(b"\x80\x02ctorchvision.models.densenet\nDenseNet\n)\x81}b.");
    let bytes = zip_checkpoint(&p.0, &[]);
    let err = read_state_dict_from_bytes("model.pth", &bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model.pth: refused to load: the checkpoint references \
         'torchvision.models.densenet.DenseNet', which is not a tensor, a plain container, a \
         module of a saved model or a saved config (a checkpoint must never run code). It is given \
         attributes \
         that are not a module's (a dict with _parameters, _buffers and _modules), while a \
         saved model's module is only ever rebuilt from its attributes"
    );
}

#[test]
fn a_container_with_a_stray_tensor_still_finds_the_nested_state_dict() {
    let mut p = Pk::default();
    p.op(b"\x80\x02}(").s("state_dict").op(b"}(");
    p.s("module.w")
        .tensor("FloatStorage", "0", 4, 0, &[4], &[1]);
    p.op(b"u");
    p.s("ema").tensor("FloatStorage", "0", 4, 0, &[2], &[1]);
    p.op(b"u.");
    let bytes = zip_checkpoint(&p.0, &[("0", f32_bytes(&[1., 2., 3., 4.]))]);
    let sd = read_state_dict_from_bytes("c.pth", &bytes).unwrap();
    assert_eq!(keys(&sd), ["w"]);
}

#[test]
fn endless_views_of_a_little_data_are_refused_before_allocating() {
    let mut p = Pk::default();
    p.op(b"\x80\x02}(");
    for i in 0..2000 {
        p.s(&format!("t{i}"));
        p.op(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.op(b"(").s("storage").op(b"ctorch\nFloatStorage\n");
        p.s("0").s("cpu").i(4).op(b"tQ").i(0);
        p.op(b"J").op(&(1i32 << 14).to_le_bytes()).op(b"\x85");
        p.i(0).op(b"\x85\x89ccollections\nOrderedDict\n)RtR");
    }
    p.op(b"u.");
    let bytes = zip_checkpoint(&p.0, &[("0", f32_bytes(&[1., 2., 3., 4.]))]);
    let err = read_state_dict_from_bytes("bomb.pth", &bytes).unwrap_err();
    assert!(matches!(err, CheckpointError::Unsupported { .. }), "{err}");
}

/// Storages that declare 2^40 floats (4 TiB) over 16 bytes, in a zip and in a legacy file: each
/// is refused with a message naming the file, before anything of that size is allocated (an
/// allocation of 4 TiB would abort this test's process).
#[test]
fn storages_declaring_more_bytes_than_the_file_holds_are_refused_before_allocating() {
    const HUGE: [u8; 8] = (1u64 << 40).to_le_bytes();
    // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 2**40), 0, (2**40,), (1,), False, OrderedDict())}
    let mut p = Pk::default();
    p.op(b"\x80\x02}(").s("w");
    p.op(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.op(b"(")
        .s("storage")
        .op(b"ctorch\nFloatStorage\n")
        .s("0")
        .s("cpu");
    p.op(b"\x8a\x08").op(&HUGE).op(b"tQ").i(0);
    p.op(b"(\x8a\x08").op(&HUGE).op(b"t").ints(&[1]);
    p.op(b"\x89ccollections\nOrderedDict\n)RtRu.");
    let zip = zip_checkpoint(&p.0, &[("0", f32_bytes(&[1., 2., 3., 4.]))]);
    let err = read_state_dict_from_bytes("declares_4_tib.pth", &zip).unwrap_err();
    assert!(err.to_string().starts_with("declares_4_tib.pth: "), "{err}");

    // The legacy container: the storage's own header declares 2^40 elements.
    let mut main = Pk::default();
    main.op(b"\x80\x02}(")
        .s("w")
        .op(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    main.op(b"(")
        .s("storage")
        .op(b"ctorch\nFloatStorage\n")
        .s("root")
        .s("cpu")
        .i(4)
        .op(b"tQ");
    main.i(0).ints(&[4]).ints(&[1]);
    main.op(b"\x89ccollections\nOrderedDict\n)RtRu.");
    let legacy = legacy_file(
        true,
        &main.0,
        &[("root", 1i64 << 40, f32_bytes(&[1., 2., 3., 4.]))],
    );
    let err = read_state_dict_from_bytes("declares_4_tib.pt", &legacy).unwrap_err();
    assert!(err.to_string().starts_with("declares_4_tib.pt: "), "{err}");
}

/// A legacy (pre-1.6) stream written by hand: the header pickles, `main`,
/// the list of storage keys, then each storage as (key, element count, bytes).
fn legacy_file(little_endian: bool, main: &[u8], storages: &[(&str, i64, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
    ];
    b.extend_from_slice(b"\x80\x02M\xe9\x03.");
    let mut sys = Pk::default();
    sys.op(b"\x80\x02}(").s("little_endian");
    sys.op(if little_endian { b"\x88" } else { b"\x89" });
    sys.op(b"u.");
    b.extend_from_slice(&sys.0);
    b.extend_from_slice(main);
    let mut keys = Pk::default();
    keys.op(b"\x80\x02](");
    for (key, _, _) in storages {
        keys.s(key);
    }
    keys.op(b"e.");
    b.extend_from_slice(&keys.0);
    for (_, count, data) in storages {
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(data);
    }
    b
}

/// A legacy stream with an old-style storage view.
fn legacy_checkpoint(little_endian: bool) -> Vec<u8> {
    // {'w': _rebuild_tensor(('storage', FloatStorage, 'root', 'cpu', 6, ('view', 2, 3)), 1, (2,), (1,))}
    let mut main = Pk::default();
    main.op(b"\x80\x02}(")
        .s("w")
        .op(b"ctorch._utils\n_rebuild_tensor\n(");
    main.op(b"(")
        .s("storage")
        .op(b"ctorch\nFloatStorage\n")
        .s("root")
        .s("cpu")
        .i(6);
    main.op(b"(").s("view").i(2).i(3).op(b"t").op(b"tQ");
    main.i(1).ints(&[2]).ints(&[1]).op(b"tRu.");
    let data = f32_bytes(&[0., 1., 2., 3., 4., 5.]);
    legacy_file(little_endian, &main.0, &[("root", 6, data)])
}

#[test]
fn legacy_storage_views_are_honoured() {
    let bytes = legacy_checkpoint(true);
    let sd = read_state_dict_from_bytes("old.pth", &bytes).unwrap();
    assert_eq!(keys(&sd), ["w"]);
    assert_eq!(sd[0].1.to_vec1::<f32>().unwrap(), [3., 4.]);
    // every truncation is a clean error
    for cut in 0..bytes.len() {
        assert!(read_state_dict_from_bytes("old.pth", &bytes[..cut]).is_err());
    }
    let err = read_state_dict_from_bytes("be.pth", &legacy_checkpoint(false)).unwrap_err();
    assert!(err.to_string().contains("big-endian"), "{err}");
}

/// The `data.pkl` of a zip checkpoint, and its storages (key, bytes).
fn unzip_checkpoint(path: &Path) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let raw = std::fs::read(path).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&raw[..])).unwrap();
    let mut pkl = Vec::new();
    let mut storages = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        if name.ends_with("/data.pkl") {
            pkl = data;
        } else if let Some((_, key)) = name.split_once("/data/") {
            storages.push((key.to_owned(), data));
        }
    }
    (pkl, storages)
}

/// The storages as [`zip_checkpoint`] takes them.
fn borrowed(storages: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
    storages
        .iter()
        .map(|(k, d)| (k.as_str(), d.clone()))
        .collect()
}

/// Reads 300 copies of `data`, each with 1 to 4 random bytes of `data[..end]`
/// changed, through `read` (which must never panic); how many gave tensors.
fn mutations_that_load(
    next: &mut impl FnMut() -> u64,
    data: &[u8],
    end: usize,
    read: impl Fn(&[u8]) -> Result<Vec<(String, Tensor)>, CheckpointError>,
) -> usize {
    let mut loaded = 0;
    for _ in 0..300 {
        let mut b = data.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % end;
            b[at] = next() as u8;
        }
        if read(&b).is_ok_and(|sd| !sd.is_empty()) {
            loaded += 1;
        }
    }
    loaded
}

/// [`mutations_that_load`] on the `data.pkl` of the zip checkpoint `path`,
/// re-packed with its real storages each time.
fn zip_mutations_that_load(next: &mut impl FnMut() -> u64, path: &Path) -> usize {
    let (pkl, storages) = unzip_checkpoint(path);
    let storages = borrowed(&storages);
    assert!(read_state_dict_from_bytes("z.pth", &zip_checkpoint(&pkl, &storages)).is_ok());
    mutations_that_load(next, &pkl, pkl.len(), |b| {
        read_state_dict_from_bytes("z.pth", &zip_checkpoint(b, &storages))
    })
}

/// Random byte changes inside the pickles of real checkpoints: any result but a panic.
#[test]
fn mutated_real_checkpoints_never_panic() {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    // legacy: the pickles are the first ~28 KB of the stream
    let legacy = std::fs::read(fixture("tiny_legacy.pth")).unwrap();
    let pickles_end = 28_600.min(legacy.len());
    let mut loaded = mutations_that_load(&mut next, &legacy, pickles_end, |b| {
        read_state_dict_from_bytes("m.pth", b)
    });
    loaded += zip_mutations_that_load(&mut next, &fixture("tiny.pth"));
    // (some mutations hit only names or values and still load)
    assert!(loaded > 0);
}

#[test]
fn big_endian_and_torchscript_are_explained() {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default();
        z.start_file("m/data.pkl", opts).unwrap();
        z.write_all(b"\x80\x02}.").unwrap();
        z.start_file("m/byteorder", opts).unwrap();
        z.write_all(b"big").unwrap();
        z.finish().unwrap();
    }
    let err = read_state_dict_from_bytes("be.pth", &out.into_inner()).unwrap_err();
    assert!(matches!(err, CheckpointError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("big-endian"), "{err}");

    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default();
        for entry in ["m/data.pkl", "m/constants.pkl", "m/code/__torch__.py"] {
            z.start_file(entry, opts).unwrap();
            z.write_all(b"\x80\x02}.").unwrap();
        }
        z.finish().unwrap();
    }
    let err = read_state_dict_from_bytes("scripted.pt", &out.into_inner()).unwrap_err();
    assert!(err.to_string().contains("TorchScript"), "{err}");
}

/// Extra checks against checkpoints made ad hoc with PyTorch: for every
/// `X.pth` in `$CAMVIEW_EXTRA_CHECKPOINTS` that has an `X.expected.safetensors`
/// beside it, the tensors must be identical; every `X.bin` there must be
/// refused (its message is printed). Run in release to see load times:
/// `CAMVIEW_EXTRA_CHECKPOINTS=dir cargo test --release --test checkpoint_reader -- --ignored --nocapture`
#[test]
#[ignore = "needs CAMVIEW_EXTRA_CHECKPOINTS"]
fn extra_checkpoints_match_their_expected_tensors() {
    let dir = PathBuf::from(std::env::var("CAMVIEW_EXTRA_CHECKPOINTS").unwrap());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut checked = 0;
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".bin") {
            match read_state_dict(&path) {
                Ok(sd) => panic!("{name}: loaded {} tensors", sd.len()),
                Err(e) => eprintln!("{e}"),
            }
            continue;
        }
        let Some(stem) = name.strip_suffix(".pth") else {
            continue;
        };
        let expected = dir.join(format!("{stem}.expected.safetensors"));
        if !expected.exists() {
            continue;
        }
        let start = std::time::Instant::now();
        let got = read_state_dict(&path).unwrap_or_else(|e| panic!("{e}"));
        let elapsed = start.elapsed();
        let start = std::time::Instant::now();
        let want: HashMap<String, Tensor> =
            read_state_dict(&expected).unwrap().into_iter().collect();
        let elapsed_st = start.elapsed();
        assert_eq!(got.len(), want.len(), "{name}");
        for (k, t) in &got {
            assert_same(&name, k, t, &want[k]);
        }
        checked += 1;
        eprintln!(
            "{name}: {} tensors match; {:.1} ms (its safetensors twin {:.1} ms)",
            got.len(),
            elapsed.as_secs_f64() * 1e3,
            elapsed_st.as_secs_f64() * 1e3
        );
    }
    assert!(checked > 0);
}

// ---------------------------------------------------------------------------
// Layouts found in the wild (tests/fixtures/make_layout_fixtures.py)
// ---------------------------------------------------------------------------

fn layout_fixture(name: &str) -> PathBuf {
    fixture("layouts").join(name)
}

fn layouts_expected() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expected/layouts")
}

/// One tensor the generator says a layout gives.
struct ExpectedTensor {
    key: String,
    shape: Vec<usize>,
    /// camview returns floats as f32 and integers as i64.
    dtype: DType,
}

/// The manifest entry of the layout fixture `name`: make_layout_fixtures.py's
/// `manifest.json`, or make_hydra_fixtures.py's `hydra_manifest.json`.
fn layout_manifest(name: &str) -> serde_json::Value {
    ["manifest.json", "hydra_manifest.json"]
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(layouts_expected().join(file)).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        })
        .find(|manifest| manifest["files"].get(name).is_some())
        .unwrap_or_else(|| panic!("{name} is in no manifest"))
}

/// What the generator says `name` must give: its tensors in order, and their
/// values, read by candle's own safetensors loader.
fn layout_expectation(name: &str) -> (Vec<ExpectedTensor>, HashMap<String, Tensor>) {
    let manifest = layout_manifest(name);
    let reference = manifest["files"][name]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not in the manifest"));
    let keys = manifest["references"][reference]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let key = entry[0].as_str().unwrap().to_owned();
            let shape: Vec<usize> = entry[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let dtype = if entry[2].as_str().unwrap().starts_with("int") {
                DType::I64
            } else {
                DType::F32
            };
            ExpectedTensor { key, shape, dtype }
        })
        .collect();
    let tensors = candle_core::safetensors::load(
        layouts_expected().join(reference),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    (keys, tensors)
}

/// `name` gives exactly the expected keys, in order, with the expected shapes,
/// dtypes and values.
fn assert_layout(name: &str) -> Vec<(String, Tensor)> {
    let (want, reference) = layout_expectation(name);
    let got = read_state_dict(&layout_fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want_keys: Vec<&str> = want.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys(&got), want_keys, "{name}: keys and their order");
    for ((key, tensor), w) in got.iter().zip(&want) {
        assert_eq!(tensor.dims(), w.shape.as_slice(), "{name}: {key} shape");
        assert_eq!(tensor.dtype(), w.dtype, "{name}: {key} dtype");
        assert_same(name, key, tensor, &reference[key]);
    }
    got
}

#[test]
fn a_chexnet_style_legacy_file_gives_its_network_under_todays_names() {
    let sd = assert_layout("chexnet_legacy.pth");
    // DataParallel's module. is gone, the wrapper's attribute stays, norm.1 is norm1
    assert_eq!(sd[0].0, "densenet121.features.conv0.weight");
    let names = keys(&sd);
    assert!(names.contains(&"densenet121.features.denseblock1.denselayer1.norm1.weight"));
    assert!(names.contains(&"densenet121.classifier.0.weight"));
    assert!(!names.iter().any(|k| k.contains("num_batches_tracked")));
    let raw = std::fs::read(layout_fixture("chexnet_legacy.pth")).unwrap();
    let has = |s: &[u8]| raw.windows(s.len()).any(|w| w == s);
    assert!(has(
        b"module.densenet121.features.denseblock1.denselayer1.norm.1.weight"
    ));
    assert!(
        has(b"exp_avg_sq") && has(b"param_groups"),
        "the file has no optimizer"
    );
}

#[test]
fn a_lightning_style_file_gives_its_state_dict_and_nothing_else() {
    let sd = assert_layout("lightning.ckpt");
    assert_eq!(sd[0].0, "model.features.conv0.weight");
}

#[test]
fn torch_compile_prefixes_are_removed_at_the_front_and_inside() {
    let sd = assert_layout("compiled.pth");
    assert_eq!(sd[0].0, "features.conv0.weight");
    let sd = assert_layout("lightning_compiled.ckpt");
    assert_eq!(sd[0].0, "model.features.conv0.weight");
}

#[test]
fn two_weight_sets_in_one_file_are_both_returned_under_their_place() {
    let sd = assert_layout("model_and_ema.pth");
    let get = |k: &str| &sd.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(sd[0].0, "model.features.conv0.weight");
    let (a, b) = (
        get("model.features.conv0.weight"),
        get("ema.features.conv0.weight"),
    );
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    assert!(
        diff.to_scalar::<f32>().unwrap() > 0.0,
        "the two sets are the same"
    );
}

#[test]
fn whole_module_pickles_give_the_modules_state_dict() {
    for name in [
        "densenet_module.pth",
        "densenet_module_legacy.pth",
        "chexnet_module.pth",
        "chexnet_module_legacy.pth",
        "module_in_dict.pth",
    ] {
        let sd = assert_layout(name);
        let first = if name.starts_with("densenet") {
            "features.conv0.weight"
        } else {
            "densenet121.features.conv0.weight"
        };
        assert_eq!(sd[0].0, first, "{name}");
    }
    // the wrapper is the user's own class, named as the training script named it
    let raw = std::fs::read(layout_fixture("chexnet_module.pth")).unwrap();
    assert!(raw.windows(16).any(|w| w == b"__main__\nCheXNet"));
}

#[test]
fn only_the_storages_of_the_tensors_found_are_read() {
    // The damaged twins of two real files: the optimizer's element counts and
    // bytes overwritten (legacy), everything outside state_dict left out (zip).
    assert_layout("chexnet_legacy_optimizer_damaged.pth");
    let (intact, damaged) = (
        std::fs::read(layout_fixture("chexnet_legacy.pth")).unwrap(),
        std::fs::read(layout_fixture("chexnet_legacy_optimizer_damaged.pth")).unwrap(),
    );
    assert_eq!(intact.len(), damaged.len());
    let changed = intact.iter().zip(&damaged).filter(|(a, b)| a != b).count();
    assert!(changed > 1000, "only {changed} bytes damaged");
    assert_layout("lightning_model_data_only.ckpt");
    let entries = |name: &str| {
        let bytes = std::fs::read(layout_fixture(name)).unwrap();
        zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .unwrap()
            .len()
    };
    assert!(entries("lightning_model_data_only.ckpt") + 100 < entries("lightning.ckpt"));

    // The same damage on a storage that is used is caught: a hand-made legacy
    // file whose optimizer storage 'b' comes before the model's 'a'.
    let mut main = Pk::default();
    main.op(b"\x80\x02}(")
        .s("state_dict")
        .op(b"}(")
        .s("w")
        .t("a", 2)
        .op(b"u");
    main.s("optimizer")
        .op(b"}(")
        .s("state")
        .op(b"}(")
        .i(0)
        .op(b"}(");
    main.s("exp_avg")
        .t("b", 2)
        .op(b"uu")
        .s("param_groups")
        .op(b"](}(");
    main.s("params").op(b"](").i(0).op(b"eueuu.");
    let file = |optimizer_count: i64, model_count: i64| {
        let storages = [
            ("b", optimizer_count, vec![0xff; 8]),
            ("a", model_count, f32_bytes(&[1., 2.])),
        ];
        legacy_file(true, &main.0, &storages)
    };
    let sd = read_state_dict_from_bytes("opt.pth", &file(-12345, 2)).unwrap();
    assert_eq!(keys(&sd), ["w"]);
    assert_eq!(sd[0].1.to_vec1::<f32>().unwrap(), [1., 2.]);
    let err = read_state_dict_from_bytes("opt.pth", &file(2, -12345)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "opt.pth: the checkpoint is truncated or corrupt: storage 'a' has a negative size"
    );
}

#[test]
fn state_dicts_are_found_by_their_content_at_any_depth() {
    let load = |p: &Pk, storages: &[&str]| {
        let data: Vec<(&str, Vec<u8>)> = storages
            .iter()
            .map(|&k| (k, f32_bytes(&[1., 2., 3., 4.])))
            .collect();
        read_state_dict_from_bytes("c.pth", &zip_checkpoint(&p.0, &data))
    };
    // Metrics (scalars), hyper-parameters (mixed), numbered dicts (an
    // optimizer's per-parameter state), an optimizer, None and extra state:
    // one state dict, whose storages alone are in the archive.
    let mut p = Pk::default();
    p.op(b"\x80\x02}(")
        .s("metrics")
        .op(b"}(")
        .s("auc")
        .scalar("1");
    p.s("loss").scalar("1").op(b"u");
    p.s("hyper_parameters")
        .op(b"}(")
        .s("lr")
        .i(3)
        .s("pos_weight")
        .t("2", 4)
        .op(b"u");
    p.s("per_parameter")
        .op(b"}(")
        .i(0)
        .op(b"}(")
        .s("exp_avg")
        .t("3", 4)
        .op(b"uu");
    p.s("optimizer")
        .op(b"}(")
        .s("state")
        .op(b"}(")
        .s("features.w")
        .op(b"}(");
    p.s("exp_avg")
        .t("4", 4)
        .op(b"uu")
        .s("param_groups")
        .op(b"]u");
    p.s("weights")
        .op(b"}(")
        .s("module.a.w")
        .t("0", 4)
        .s("a.b")
        .op(b"N");
    p.s("a._extra_state").op(b"}(").s("x").i(1).op(b"u");
    p.s("_orig_mod.b.running_mean").t("0", 2).op(b"uu.");
    let sd = load(&p, &["0"]).unwrap();
    assert_eq!(keys(&sd), ["a.w", "b.running_mean"]);

    // several: each under its place, dict keys and list indices alike
    let mut p = Pk::default();
    p.op(b"\x80\x02}(")
        .s("runs")
        .op(b"](}(")
        .s("w")
        .t("0", 4)
        .op(b"u}(");
    p.s("w")
        .t("0", 2)
        .op(b"ue")
        .s("ema")
        .op(b"}(")
        .s("state_dict")
        .op(b"}(");
    p.s("module.w").t("0", 4).op(b"uuu.");
    let sd = load(&p, &["0"]).unwrap();
    assert_eq!(keys(&sd), ["runs.0.w", "runs.1.w", "ema.state_dict.w"]);

    // the same dict twice (the memo shares it) is one state dict; a cycle is harmless
    let mut p = Pk::default();
    p.op(b"\x80\x02}(")
        .s("model")
        .op(b"}q\x00(")
        .s("w")
        .t("0", 4)
        .op(b"u");
    p.s("best")
        .op(b"h\x00")
        .s("loop")
        .op(b"]q\x01h\x01a")
        .op(b"u.");
    assert_eq!(keys(&load(&p, &["0"]).unwrap()), ["w"]);

    // deeper than any checkpoint nests (32 levels): not searched
    let mut p = Pk::default();
    p.op(b"\x80\x02");
    for _ in 0..40 {
        p.op(b"](");
    }
    p.op(b"}(").s("w").t("0", 4).op(b"u");
    for _ in 0..40 {
        p.op(b"e");
    }
    p.op(b".");
    let err = load(&p, &["0"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.pth: no state dict found; the checkpoint holds a list, not a dict of tensors"
    );

    // an optimizer alone: the message names what the file holds, as it always did
    let mut p = Pk::default();
    p.op(b"\x80\x02}(").s("state").op(b"}(").i(0).op(b"}(");
    p.s("exp_avg")
        .t("0", 4)
        .op(b"uu")
        .s("param_groups")
        .op(b"]u.");
    let err = load(&p, &["0"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.pth: no state dict found; top-level keys are: state, param_groups"
    );
}

#[test]
fn a_whole_module_gives_parameters_then_persistent_buffers_then_submodules() {
    let mut p = Pk::default();
    p.op(b"\x80\x02}(").s("model");
    p.module_begin("__main__", "Net")
        .s("w")
        .t("0", 2)
        .s("bias")
        .op(b"N");
    p.then("_buffers")
        .s("b")
        .t("1", 2)
        .s("np")
        .t("2", 2)
        .op(b"u");
    p.s("_non_persistent_buffers_set");
    p.op(b"c__builtin__\nset\n](").s("np").op(b"e\x85R");
    p.s("_modules").op(b"}(").s("sub");
    p.module_begin("torch.nn.modules.linear", "Linear")
        .s("weight")
        .t("3", 2);
    p.then("_buffers").then("_modules").module_end();
    p.s("gone").op(b"N").module_end();
    p.s("epoch").i(3).op(b"u.");
    // the non-persistent buffer's storage is not in the archive: it is never read
    let storages: Vec<(&str, Vec<u8>)> = ["0", "1", "3"]
        .iter()
        .map(|&k| (k, f32_bytes(&[1., 2.])))
        .collect();
    let sd = read_state_dict_from_bytes("m.pth", &zip_checkpoint(&p.0, &storages)).unwrap();
    assert_eq!(keys(&sd), ["w", "b", "sub.weight"]);

    // a submodule that is not a module is damage, named by its place
    let mut p = Pk::default();
    p.op(b"\x80\x02");
    p.module_begin("__main__", "Net")
        .then("_buffers")
        .then("_modules");
    p.s("features")
        .op(b"}(")
        .s("conv0")
        .i(1)
        .op(b"u")
        .module_end()
        .op(b".");
    let err = read_state_dict_from_bytes("m.pth", &zip_checkpoint(&p.0, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m.pth: the checkpoint is truncated or corrupt: the saved module holds a dict as its \
         submodule 'features'"
    );
}

#[test]
fn a_whole_module_whose_class_is_called_like_a_function_is_refused_by_name() {
    // The real CheXNet pickle, its wrapper made by REDUCE with an argument
    // (`CheXNet(14)`, which would run its code) instead of NEWOBJ.
    let (pkl, storages) = unzip_checkpoint(&layout_fixture("chexnet_module.pth"));
    let storages = borrowed(&storages);
    let made = b"c__main__\nCheXNet\nq\x00)\x81";
    assert_eq!(&pkl[2..2 + made.len()], made);
    assert!(read_state_dict_from_bytes("c.pth", &zip_checkpoint(&pkl, &storages)).is_ok());
    let mut called = pkl[..2 + made.len() - 2].to_vec();
    called.extend_from_slice(b"K\x0e\x85R");
    called.extend_from_slice(&pkl[2 + made.len()..]);
    let err = read_state_dict_from_bytes("c.pth", &zip_checkpoint(&called, &storages)).unwrap_err();
    assert!(matches!(err, CheckpointError::Refused { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "c.pth: refused to load: the checkpoint references '__main__.CheXNet', which is not a \
         tensor, a plain container, a module of a saved model or a saved config (a checkpoint \
         must never run code). It is called with arguments, as a function is, while a saved \
         model's module is only ever rebuilt from its attributes"
    );
}

/// Random byte changes inside whole-module pickles (zip and legacy): any result but a panic.
#[test]
fn mutated_whole_module_pickles_never_panic() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let mut loaded = zip_mutations_that_load(&mut next, &layout_fixture("chexnet_module.pth"));
    // legacy: the pickles (with the classes' source code) fill most of the file
    let legacy = std::fs::read(layout_fixture("chexnet_module_legacy.pth")).unwrap();
    loaded += mutations_that_load(&mut next, &legacy, legacy.len() * 2 / 3, |b| {
        read_state_dict_from_bytes("m.pth", b)
    });
    assert!(
        loaded > 0,
        "some mutations hit only names or values and still load"
    );
}

#[test]
fn a_module_inside_itself_or_shared_without_end_is_refused_not_followed() {
    // `me` is the module itself (a memo reference)
    let mut p = Pk::default();
    p.op(b"\x80\x02c__main__\nNet\n)\x81q\x00}(")
        .s("training")
        .op(b"\x88");
    p.s("_parameters")
        .op(b"}(")
        .then("_buffers")
        .then("_modules");
    p.s("me").op(b"h\x00").module_end().op(b".");
    let err = read_state_dict_from_bytes("m.pth", &zip_checkpoint(&p.0, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m.pth: the checkpoint is truncated or corrupt: the saved module 'me' contains itself"
    );
    // 21 levels, each holding the next twice: 2^21 paths from a few KB
    let mut p = Pk::default();
    p.op(b"\x80\x02");
    for level in (0..=20u8).rev() {
        p.module_begin("__main__", "Net")
            .then("_buffers")
            .then("_modules");
        if level < 20 {
            p.s("a")
                .op(&[b'h', level + 1])
                .s("b")
                .op(&[b'h', level + 1]);
        }
        p.module_end().op(&[b'q', level]);
        if level > 0 {
            p.op(b"0");
        }
    }
    p.op(b".");
    let err = read_state_dict_from_bytes("m.pth", &zip_checkpoint(&p.0, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m.pth: unsupported checkpoint: the saved module nests or repeats its modules far more \
         than any model does"
    );
}

// ---------------------------------------------------------------------------
// Lightning checkpoints of Hydra users (tests/fixtures/make_hydra_fixtures.py)
// ---------------------------------------------------------------------------

const HYDRA_FILES: [&str; 3] = [
    "lightning_hydra.ckpt",
    "lightning_hydra_protocol5.ckpt",
    "lightning_hydra_legacy.ckpt",
];

#[test]
fn lightning_checkpoints_with_a_hydra_config_give_their_state_dict() {
    for name in HYDRA_FILES {
        let sd = assert_layout(name);
        assert_eq!(sd[0].0, "model.features.conv0.weight", "{name}");
        // the files are what they claim: configs of every kind of node, in each protocol
        let manifest = layout_manifest(name);
        let entry = &manifest["files"][name];
        let named: Vec<&str> = entry["globals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        for global in [
            "omegaconf.dictconfig.DictConfig",
            "omegaconf.listconfig.ListConfig",
            "omegaconf.base.ContainerMetadata",
            "omegaconf.nodes.AnyNode",
            "omegaconf.nodes.StringNode",
            "omegaconf.nodes.BooleanNode",
            "typing.Any",
            "typing.List",
            "collections.defaultdict",
        ] {
            assert!(named.contains(&global), "{name} names no {global}");
        }
        let python3 = entry["protocol"].as_u64().unwrap() >= 3;
        let int = if python3 {
            "builtins.int"
        } else {
            "__builtin__.long"
        };
        assert!(named.contains(&int), "{name} names no {int}");
        let raw = std::fs::read(layout_fixture(name)).unwrap();
        assert!(raw.windows(20).any(|w| w == b"omegaconf.dictconfig"));
    }
}

/// The `data.pkl` of lightning_hydra.ckpt with its first `DictConfig`, made by
/// `NEWOBJ(DictConfig, ())`, made by `made` instead; and the storages.
fn hydra_pickle_with_config_made_by(made: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let (pkl, storages) = unzip_checkpoint(&layout_fixture("lightning_hydra.ckpt"));
    let class = b"comegaconf.dictconfig\nDictConfig\n";
    let at = pkl.windows(class.len()).position(|w| w == class).unwrap() + class.len();
    // LONG_BINPUT (5 bytes), then EMPTY_TUPLE NEWOBJ
    assert_eq!(&pkl[at + 5..at + 7], b")\x81");
    let mut changed = pkl[..at + 5].to_vec();
    changed.extend_from_slice(made);
    changed.extend_from_slice(&pkl[at + 7..]);
    (changed, storages)
}

#[test]
fn a_hydra_config_made_by_a_call_is_refused_by_name() {
    // As OmegaConf writes it, the real file loads.
    let (pkl, storages) = hydra_pickle_with_config_made_by(b")\x81");
    let storages = borrowed(&storages);
    assert!(read_state_dict_from_bytes("h.ckpt", &zip_checkpoint(&pkl, &storages)).is_ok());
    // `DictConfig(1)` (BININT1 1, TUPLE1, REDUCE), which would run its constructor
    let (pkl, _) = hydra_pickle_with_config_made_by(b"K\x01\x85R");
    let err = read_state_dict_from_bytes("h.ckpt", &zip_checkpoint(&pkl, &storages)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "h.ckpt: refused to load: the checkpoint references 'omegaconf.dictconfig.DictConfig', \
         which is not a tensor, a plain container, a module of a saved model or a saved config (a \
         checkpoint must never run code). It is called with arguments, as a function is, while a \
         saved config is only ever rebuilt from its attributes"
    );
    // `DictConfig()` by REDUCE: a call, even without arguments
    let (pkl, _) = hydra_pickle_with_config_made_by(b")R");
    let err = read_state_dict_from_bytes("h.ckpt", &zip_checkpoint(&pkl, &storages)).unwrap_err();
    assert!(
        err.to_string()
            .contains("It is constructed by a call, which would run its code"),
        "{err}"
    );
}

/// `{"state_dict": {"w": tensor}, "hyper_parameters": <value>}` (protocol 2),
/// read as a zip checkpoint.
fn beside_a_state_dict(value: &[u8]) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let mut p = Pk::default();
    p.op(b"\x80\x02}(")
        .s("state_dict")
        .op(b"}(")
        .s("w")
        .t("0", 2);
    p.op(b"u").s("hyper_parameters").op(value).op(b"u.");
    read_state_dict_from_bytes(
        "h.ckpt",
        &zip_checkpoint(&p.0, &[("0", f32_bytes(&[1., 2.]))]),
    )
}

#[test]
fn calling_a_type_is_refused_by_name_and_naming_one_is_harmless() {
    // named, as OmegaConf's metadata does: the state dict loads
    let sd = beside_a_state_dict(b"c__builtin__\ndict\nctyping\nAny\n\x86").unwrap();
    assert_eq!(keys(&sd), ["w"]);
    // called: dict([("a", 1)]), Any(), long("1")
    let err =
        beside_a_state_dict(b"c__builtin__\ndict\n]X\x01\x00\x00\x00aK\x01\x86a\x85R").unwrap_err();
    assert_eq!(
        err.to_string(),
        "h.ckpt: refused to load: the checkpoint references '__builtin__.dict', which is not a \
         tensor, a plain container, a module of a saved model or a saved config (a checkpoint \
         must never run code). It is called with arguments, as a function is, while a type in a \
         checkpoint is only ever named, never called"
    );
    for (value, global) in [
        (&b"ctyping\nAny\n)R"[..], "typing.Any"),
        (
            b"c__builtin__\nlong\nX\x01\x00\x00\x001\x85R",
            "__builtin__.long",
        ),
        (b"(ibuiltins\nlist\n", "builtins.list"),
        (
            b"comegaconf.nodes\nAnyNode\nK\x01\x85\x81}b",
            "omegaconf.nodes.AnyNode",
        ),
        (
            b"ccollections\ndefaultdict\nc__main__\nf\n\x85R",
            "collections.defaultdict",
        ),
    ] {
        let err = beside_a_state_dict(value).unwrap_err();
        let CheckpointError::Refused { global: g, .. } = &err else {
            panic!("{global}: {err}");
        };
        assert_eq!(g, global, "{err}");
    }
}

#[test]
fn code_beside_or_inside_a_hydra_config_is_still_refused_by_name() {
    let existed_before = Path::new(PWNED).exists();
    let payload = |module: &str, name: &str| {
        let mut v = format!("c{module}\n{name}\n").into_bytes();
        v.extend_from_slice(b"X\x18\x00\x00\x00touch /tmp/camview_pwned\x85R");
        v
    };
    for (module, name) in [
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("__builtin__", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("os", "system"),
        ("posix", "system"),
    ] {
        let err = beside_a_state_dict(&payload(module, name)).unwrap_err();
        let CheckpointError::Refused { global, .. } = &err else {
            panic!("{module}.{name}: {err}");
        };
        assert_eq!(global, &format!("{module}.{name}"));
        assert!(
            err.to_string()
                .contains(&format!("references '{module}.{name}'")),
            "{err}"
        );
    }
    // inside the real config: a type of its metadata, a node class, renamed to code
    let (pkl, storages) = unzip_checkpoint(&layout_fixture("lightning_hydra.ckpt"));
    let storages = borrowed(&storages);
    for (from, to, global) in [
        (
            &b"c__builtin__\ndict\n"[..],
            &b"c__builtin__\neval\n"[..],
            "__builtin__.eval",
        ),
        (
            b"ctyping\nAny\n",
            b"cbuiltins\ngetattr\n",
            "builtins.getattr",
        ),
        (
            b"comegaconf.nodes\nAnyNode\n",
            b"cbuiltins\n__import__\n",
            "builtins.__import__",
        ),
        (
            b"comegaconf.nodes\nAnyNode\n",
            b"cos\nsystem\n",
            "os.system",
        ),
    ] {
        let at = pkl.windows(from.len()).position(|w| w == from).unwrap();
        let mut changed = pkl[..at].to_vec();
        changed.extend_from_slice(to);
        changed.extend_from_slice(&pkl[at + from.len()..]);
        let err =
            read_state_dict_from_bytes("h.ckpt", &zip_checkpoint(&changed, &storages)).unwrap_err();
        let CheckpointError::Refused { global: g, .. } = &err else {
            panic!("{global}: {err}");
        };
        assert_eq!(g, global);
    }
    if !existed_before {
        assert!(!Path::new(PWNED).exists(), "the payload ran!");
    }
}

/// Random byte changes inside the Hydra checkpoints' pickles (zip protocols 2
/// and 5, legacy): any result but a panic.
#[test]
fn mutated_hydra_checkpoints_never_panic() {
    let mut next = xorshift(0x0dd_ba11_cafe_f00d);
    let mut loaded = zip_mutations_that_load(&mut next, &layout_fixture(HYDRA_FILES[0]));
    loaded += zip_mutations_that_load(&mut next, &layout_fixture(HYDRA_FILES[1]));
    // legacy: the config and the state dict's pickle come before the storages
    let legacy = std::fs::read(layout_fixture(HYDRA_FILES[2])).unwrap();
    let storages_start = legacy.len() - 28_000;
    loaded += mutations_that_load(&mut next, &legacy, storages_start, |b| {
        read_state_dict_from_bytes("m.ckpt", b)
    });
    assert!(
        loaded > 0,
        "some mutations hit only names or values and still load"
    );
}
