//! Turning raw storage bytes into candle tensors: dtype conversion and
//! strided gathers, with every index checked against the storage.

use candle_core::{Device, Tensor};

use super::pickle::ScalarType;

/// Most values all the tensors of one checkpoint may hold together (4 GiB of f32).
pub(crate) const MAX_TOTAL_ELEMENTS: usize = 1 << 30;

/// Most dimensions a tensor may have (PyTorch's own limit is 64).
const MAX_DIMS: usize = 64;

/// Counts the values handed out so far, to refuse absurd sizes before allocating.
#[derive(Debug)]
pub(crate) struct Budget {
    used: usize,
    limit: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            used: 0,
            limit: MAX_TOTAL_ELEMENTS,
        }
    }
}

impl Budget {
    /// A budget for tensors made from `data_bytes` bytes of storage: views
    /// that share or repeat (stride 0) data may add up to more values than
    /// were stored, but not absurdly more (a few KB of hostile pickle must not
    /// make us allocate gigabytes).
    pub(crate) fn for_data(data_bytes: usize) -> Self {
        Budget {
            used: 0,
            limit: data_bytes
                .saturating_mul(16)
                .saturating_add(1 << 24)
                .min(MAX_TOTAL_ELEMENTS),
        }
    }

    /// Reserves `n` values; `Err` with a message when the checkpoint is too large.
    pub(crate) fn take(&mut self, n: usize) -> Result<(), String> {
        match self.used.checked_add(n) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(())
            }
            _ if self.limit == MAX_TOTAL_ELEMENTS => Err(format!(
                "its tensors hold more than {MAX_TOTAL_ELEMENTS} values in total, more than \
                 camview loads"
            )),
            _ => Err(format!(
                "its tensors repeat their stored data far more often than a real checkpoint \
                 does (more than {} values)",
                self.limit
            )),
        }
    }
}

/// Number of elements of `size`, or `None` on overflow.
pub(crate) fn numel(size: &[usize]) -> Option<usize> {
    size.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Why a tensor could not be built.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// The tensor reaches outside its storage, or similar damage.
    Corrupt(String),
    /// The tensor is legal but larger than camview loads.
    TooLarge(String),
}

/// Builds a CPU tensor from `data`, the bytes of its storage (element type
/// `dtype`), reading `size` elements starting at element `offset` with
/// element `stride`s. Floats become f32, integers and bools i64.
pub(crate) fn build(
    dtype: ScalarType,
    data: &[u8],
    offset: usize,
    size: &[usize],
    stride: &[usize],
    budget: &mut Budget,
) -> Result<Tensor, BuildError> {
    if size.len() != stride.len() {
        return Err(BuildError::Corrupt(format!(
            "it has {} sizes but {} strides",
            size.len(),
            stride.len()
        )));
    }
    if size.len() > MAX_DIMS {
        return Err(BuildError::Corrupt(format!(
            "it has {} dimensions",
            size.len()
        )));
    }
    let n =
        numel(size).ok_or_else(|| BuildError::TooLarge("its shape is absurdly large".into()))?;
    budget.take(n).map_err(BuildError::TooLarge)?;
    let el = dtype.size();
    let available = data.len() / el;
    if n > 0 {
        // Index of the last element read; it must lie inside the storage.
        let mut last = offset;
        for (&d, &s) in size.iter().zip(stride) {
            last = (d - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| BuildError::Corrupt("its strides are absurdly large".into()))?;
        }
        if last >= available {
            return Err(BuildError::Corrupt(format!(
                "it reads element {last} of a storage that holds only {available} (the data \
                 is cut short)"
            )));
        }
    }
    let shape = size.to_vec();
    let contiguous = is_contiguous(size, stride);
    let result = if dtype.is_float() {
        let v: Vec<f32> = match dtype {
            ScalarType::F32 => gather(data, offset, size, stride, contiguous, n, |c: [u8; 4]| {
                f32::from_le_bytes(c)
            }),
            ScalarType::F64 => gather(data, offset, size, stride, contiguous, n, |c: [u8; 8]| {
                f64::from_le_bytes(c) as f32
            }),
            ScalarType::F16 => gather(data, offset, size, stride, contiguous, n, |c: [u8; 2]| {
                f16_to_f32(u16::from_le_bytes(c))
            }),
            _ => gather(data, offset, size, stride, contiguous, n, |c: [u8; 2]| {
                f32::from_bits(u32::from(u16::from_le_bytes(c)) << 16)
            }),
        };
        Tensor::from_vec(v, shape, &Device::Cpu)
    } else {
        let v: Vec<i64> = match dtype {
            ScalarType::I64 => gather(
                data,
                offset,
                size,
                stride,
                contiguous,
                n,
                i64::from_le_bytes,
            ),
            ScalarType::I32 => gather(data, offset, size, stride, contiguous, n, |c: [u8; 4]| {
                i64::from(i32::from_le_bytes(c))
            }),
            ScalarType::I16 => gather(data, offset, size, stride, contiguous, n, |c: [u8; 2]| {
                i64::from(i16::from_le_bytes(c))
            }),
            ScalarType::I8 => gather(data, offset, size, stride, contiguous, n, |c: [u8; 1]| {
                i64::from(i8::from_le_bytes(c))
            }),
            // U8 and Bool
            _ => gather(data, offset, size, stride, contiguous, n, |c: [u8; 1]| {
                i64::from(c[0])
            }),
        };
        Tensor::from_vec(v, shape, &Device::Cpu)
    };
    result.map_err(|e| BuildError::Corrupt(format!("it cannot be made into a tensor ({e})")))
}

/// Row-major contiguous (dimensions of size 1 may have any stride).
fn is_contiguous(size: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in size.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// Reads `n` elements of `N` bytes each. The caller has checked that every
/// index is inside `data`; a failed read still cannot panic (it yields zeros).
fn gather<const N: usize, T>(
    data: &[u8],
    offset: usize,
    size: &[usize],
    stride: &[usize],
    contiguous: bool,
    n: usize,
    convert: impl Fn([u8; N]) -> T,
) -> Vec<T> {
    let read = |i: usize| -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(s) = i
            .checked_mul(N)
            .and_then(|start| data.get(start..start.checked_add(N)?))
        {
            a.copy_from_slice(s);
        }
        a
    };
    if n == 0 {
        return Vec::new();
    }
    if contiguous {
        let start = offset.saturating_mul(N);
        let end = n.saturating_mul(N).saturating_add(start);
        if let Some(bytes) = data.get(start..end) {
            return bytes
                .chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    convert(a)
                })
                .collect();
        }
    }
    let mut out = Vec::with_capacity(n);
    let ndim = size.len();
    let mut idx = vec![0usize; ndim];
    let mut pos = offset;
    for _ in 0..n {
        out.push(convert(read(pos)));
        // Advance the odometer from the last dimension.
        for d in (0..ndim).rev() {
            let (Some(i), Some(&len), Some(&s)) = (idx.get_mut(d), size.get(d), stride.get(d))
            else {
                break;
            };
            *i += 1;
            pos = pos.wrapping_add(s);
            if *i < len {
                break;
            }
            pos = pos.wrapping_sub(s.wrapping_mul(len));
            *i = 0;
        }
    }
    out
}

/// IEEE half to single precision, exact for every value (subnormals, inf, NaN).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let sign = if negative { 1u32 << 31 } else { 0 };
    if exp == 0 {
        // zero or subnormal: mant * 2^-24, exact in f32
        let v = mant as f32 * (1.0 / 16_777_216.0);
        return if negative { -v } else { v };
    }
    let bits = if exp == 31 {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 112) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn contiguous_and_strided_gathers() {
        let data = f32_bytes(&(0..12).map(|x| x as f32).collect::<Vec<_>>());
        let mut b = Budget::default();
        let t = build(ScalarType::F32, &data, 0, &[3, 4], &[4, 1], &mut b).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap()[2], [8., 9., 10., 11.]);
        // transposed view of the 3x4 matrix
        let t = build(ScalarType::F32, &data, 0, &[4, 3], &[1, 4], &mut b).unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            [[0., 4., 8.], [1., 5., 9.], [2., 6., 10.], [3., 7., 11.]]
        );
        // column slice [:, 1:3] with an offset
        let t = build(ScalarType::F32, &data, 1, &[3, 2], &[4, 1], &mut b).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), [[1., 2.], [5., 6.], [9., 10.]]);
        // expanded (stride 0)
        let t = build(ScalarType::F32, &data, 5, &[2, 3], &[0, 1], &mut b).unwrap();
        assert_eq!(t.to_vec2::<f32>().unwrap(), [[5., 6., 7.], [5., 6., 7.]]);
        // scalar and empty
        let t = build(ScalarType::F32, &data, 11, &[], &[], &mut b).unwrap();
        assert_eq!(t.to_scalar::<f32>().unwrap(), 11.);
        let t = build(ScalarType::F32, &[], 0, &[0, 5], &[5, 1], &mut b).unwrap();
        assert_eq!(t.dims(), [0, 5]);
    }

    #[test]
    fn out_of_bounds_is_an_error() {
        let data = f32_bytes(&[1., 2., 3., 4.]);
        let mut b = Budget::default();
        assert!(matches!(
            build(ScalarType::F32, &data, 1, &[4], &[1], &mut b),
            Err(BuildError::Corrupt(_))
        ));
        assert!(matches!(
            build(ScalarType::F32, &data, 0, &[2, 2], &[3, 1], &mut b),
            Err(BuildError::Corrupt(_))
        ));
        assert!(matches!(
            build(ScalarType::F32, &data, usize::MAX, &[1], &[1], &mut b),
            Err(BuildError::Corrupt(_))
        ));
        assert!(matches!(
            build(ScalarType::F32, &data, 0, &[2, 2], &[usize::MAX, 1], &mut b),
            Err(BuildError::Corrupt(_))
        ));
        assert!(matches!(
            build(ScalarType::F32, &data, 0, &[2], &[1, 1], &mut b),
            Err(BuildError::Corrupt(_))
        ));
        // huge expanded tensor: refused before allocating
        assert!(matches!(
            build(
                ScalarType::F32,
                &data,
                0,
                &[1 << 20, 1 << 20],
                &[0, 0],
                &mut b
            ),
            Err(BuildError::TooLarge(_))
        ));
        assert!(matches!(
            build(ScalarType::F32, &data, 0, &[usize::MAX, 3], &[0, 0], &mut b),
            Err(BuildError::TooLarge(_))
        ));
        // many stride-0 views of 16 bytes: fine up to the budget for 16 bytes
        let mut b = Budget::for_data(data.len());
        assert!(build(ScalarType::F32, &data, 0, &[1 << 24], &[0], &mut b).is_ok());
        assert!(matches!(
            build(ScalarType::F32, &data, 0, &[1024], &[0], &mut b),
            Err(BuildError::TooLarge(_))
        ));
    }

    #[test]
    fn dtype_conversions() {
        let mut b = Budget::default();
        let d: Vec<u8> = [1.5f64, -2.25]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let t = build(ScalarType::F64, &d, 0, &[2], &[1], &mut b).unwrap();
        assert_eq!(t.to_vec1::<f32>().unwrap(), [1.5, -2.25]);
        // f16: 1.0, -2.0, 65504 (max), smallest subnormal, inf
        let d: Vec<u8> = [0x3c00u16, 0xc000, 0x7bff, 0x0001, 0x7c00]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let t = build(ScalarType::F16, &d, 0, &[5], &[1], &mut b).unwrap();
        let v = t.to_vec1::<f32>().unwrap();
        assert_eq!(v[..4], [1.0, -2.0, 65504.0, 5.960_464_5e-8]);
        assert!(v[4].is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        // bf16: 1.0 = 0x3f80
        let d: Vec<u8> = [0x3f80u16, 0xc040]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let t = build(ScalarType::BF16, &d, 0, &[2], &[1], &mut b).unwrap();
        assert_eq!(t.to_vec1::<f32>().unwrap(), [1.0, -3.0]);
        let d: Vec<u8> = [7i64, -1].iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = build(ScalarType::I64, &d, 1, &[], &[], &mut b).unwrap();
        assert_eq!(t.to_scalar::<i64>().unwrap(), -1);
        let t = build(ScalarType::I8, &[0xff, 3], 0, &[2], &[1], &mut b).unwrap();
        assert_eq!(t.to_vec1::<i64>().unwrap(), [-1, 3]);
        let t = build(ScalarType::Bool, &[1, 0], 0, &[2], &[1], &mut b).unwrap();
        assert_eq!(t.to_vec1::<i64>().unwrap(), [1, 0]);
    }

    #[test]
    fn every_f16_matches_a_reference_conversion() {
        // Reference: decode by formula in f64.
        for h in 0..=u16::MAX {
            let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
            let exp = i32::from((h >> 10) & 0x1f);
            let mant = f64::from(h & 0x3ff);
            let got = f16_to_f32(h);
            if exp == 31 {
                if mant == 0.0 {
                    assert!(got.is_infinite() && got.signum() as f64 == sign);
                } else {
                    assert!(got.is_nan());
                }
                continue;
            }
            let want = if exp == 0 {
                sign * mant * 2f64.powi(-24)
            } else {
                sign * (1.0 + mant / 1024.0) * 2f64.powi(exp - 15)
            };
            assert_eq!(f64::from(got), want, "{h:#06x}");
        }
    }
}
