//! The safetensors format: an 8-byte little-endian header length, a JSON
//! header `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...}`,
//! then the raw little-endian data. Parsed here (with serde_json) so that
//! every offset is checked and the tensors come out in file order.

use candle_core::Tensor;
use serde_json::{Map, Value};

use super::CheckpointError;
use super::pickle::ScalarType;
use super::tensor::{self, Budget, BuildError};

/// The safetensors crate's own limit on the JSON header.
const MAX_HEADER: u64 = 100 << 20;

/// An 8-byte length that fits, followed by a JSON object.
pub(crate) fn looks_like(bytes: &[u8]) -> bool {
    let Some(len) = bytes.get(..8) else {
        return false;
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(len);
    let n = u64::from_le_bytes(a);
    (2..=MAX_HEADER).contains(&n) && bytes.get(8) == Some(&b'{')
}

pub(crate) fn read(name: &str, bytes: &[u8]) -> Result<Vec<(String, Tensor)>, CheckpointError> {
    let (header, data) = split_header(name, bytes)?;
    let mut entries = Vec::with_capacity(header.len());
    for (key, info) in &header {
        if key == "__metadata__" {
            continue;
        }
        entries.push(entry(name, key, info, data.len())?);
    }
    // File order: by position of the data.
    entries.sort_by(|a, b| (a.begin, a.end, a.key).cmp(&(b.begin, b.end, b.key)));

    let mut budget = Budget::for_data(data.len());
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let bytes = data.get(e.begin..e.end).unwrap_or_default();
        let stride = contiguous_strides(&e.shape);
        let t =
            tensor::build(e.dtype, bytes, 0, &e.shape, &stride, &mut budget).map_err(|err| {
                match err {
                    BuildError::Corrupt(d) => {
                        CheckpointError::corrupt(name, format!("tensor '{}': {d}", e.key))
                    }
                    BuildError::TooLarge(d) => CheckpointError::unsupported(name, d),
                }
            })?;
        out.push((e.key.to_owned(), t));
    }
    Ok(out)
}

/// The JSON header as an object, and the data after it.
fn split_header<'a>(
    name: &str,
    bytes: &'a [u8],
) -> Result<(Map<String, Value>, &'a [u8]), CheckpointError> {
    let corrupt = |d: String| CheckpointError::corrupt(name, d);
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes.get(..8).unwrap_or(&[0; 8]));
    let header_len = usize::try_from(u64::from_le_bytes(a)).unwrap_or(usize::MAX);
    let header_end = header_len.saturating_add(8);
    let Some(header) = bytes.get(8..header_end) else {
        return Err(corrupt(format!(
            "the safetensors header should be {header_len} bytes but the file ends before"
        )));
    };
    let data = bytes.get(header_end..).unwrap_or_default();
    let json: Value = serde_json::from_slice(header)
        .map_err(|e| corrupt(format!("the safetensors header is not valid JSON ({e})")))?;
    let Value::Object(map) = json else {
        return Err(corrupt(
            "the safetensors header is not a JSON object".to_owned(),
        ));
    };
    Ok((map, data))
}

/// One tensor as the header describes it; `begin..end` is within the data.
struct Entry<'a> {
    key: &'a str,
    dtype: ScalarType,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// Checks one header entry against itself and against the `data_len` bytes
/// of data, so that building the tensor can no longer go out of bounds.
fn entry<'a>(
    name: &str,
    key: &'a str,
    info: &Value,
    data_len: usize,
) -> Result<Entry<'a>, CheckpointError> {
    let corrupt = |d: String| CheckpointError::corrupt(name, d);
    let bad = |what: &str| {
        corrupt(format!(
            "tensor '{key}' has {what} in the safetensors header"
        ))
    };
    let dtype = match info.get("dtype").and_then(Value::as_str) {
        Some(code) => dtype(code).ok_or_else(|| {
            CheckpointError::unsupported(
                name,
                format!("tensor '{key}' has dtype {code}, which camview cannot convert"),
            )
        })?,
        None => return Err(bad("no dtype")),
    };
    let shape = usizes(info, "shape").ok_or_else(|| bad("no valid shape"))?;
    let (begin, end) = match usizes(info, "data_offsets").as_deref() {
        Some(&[b, e]) if b <= e => (b, e),
        _ => return Err(bad("no valid data_offsets")),
    };
    let expected = tensor::numel(&shape).and_then(|n| n.checked_mul(dtype.size()));
    if expected != Some(end - begin) {
        return Err(corrupt(format!(
            "tensor '{key}' has {} bytes of data but its shape needs {}",
            end - begin,
            expected.map_or_else(|| "more".to_owned(), |n| n.to_string())
        )));
    }
    if end > data_len {
        return Err(corrupt(format!(
            "the data of tensor '{key}' goes past the end of the file"
        )));
    }
    Ok(Entry {
        key,
        dtype,
        shape,
        begin,
        end,
    })
}

fn dtype(code: &str) -> Option<ScalarType> {
    let t = match code {
        "F32" => ScalarType::F32,
        "F64" => ScalarType::F64,
        "F16" => ScalarType::F16,
        "BF16" => ScalarType::BF16,
        "I64" => ScalarType::I64,
        "I32" => ScalarType::I32,
        "I16" => ScalarType::I16,
        "I8" => ScalarType::I8,
        "U8" => ScalarType::U8,
        "BOOL" => ScalarType::Bool,
        _ => return None,
    };
    Some(t)
}

/// `info[field]` as an array of sizes; `None` unless every one fits in usize.
fn usizes(info: &Value, field: &str) -> Option<Vec<usize>> {
    info.get(field)?
        .as_array()?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect()
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut stride = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (s, &d) in stride.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d);
    }
    stride
}
