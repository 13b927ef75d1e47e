//! ONNX `Gather` along one axis, with negative indices; out-of-range indices are an error.

use crate::error::Error;

/// `out = data.take(indices, axis)`; the output is `data_shape[..axis] ++ indices_shape ++
/// data_shape[axis+1..]` (only the number of indices matters here). Indices in
/// `[-len, len)` are valid, negative ones count from the end. Returns
/// `Err(Error::Invalid)` for an out-of-range index, an axis beyond the rank, or a length
/// mismatch; the output is untouched on error. Never panics.
// The crate-wide `Error` is large by design (inline dims, no allocation); every generated
// `run` returns it, so boxing it here would only add an allocation.
#[allow(clippy::result_large_err)]
pub fn gather<T: Copy>(
    data: &[T],
    data_shape: &[usize],
    indices: &[i64],
    axis: usize,
    out: &mut [T],
) -> Result<(), Error> {
    let invalid = |what| {
        Err(Error::Invalid {
            node: "Gather",
            what,
        })
    };
    if axis >= data_shape.len() {
        return invalid("axis out of range");
    }
    let Some(total) = data_shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return invalid("data shape overflows usize");
    };
    if total != data.len() {
        return invalid("data length does not match its shape");
    }
    let outer: usize = data_shape[..axis].iter().product();
    let len = data_shape[axis];
    let inner: usize = data_shape[axis + 1..].iter().product();
    if outer
        .checked_mul(indices.len())
        .and_then(|v| v.checked_mul(inner))
        != Some(out.len())
    {
        return invalid("output length does not match");
    }
    let len_i = len as i64;
    if let Some(&bad) = indices.iter().find(|&&i| i < -len_i || i >= len_i) {
        return Err(Error::IndexOutOfRange {
            value: "indices",
            node: "Gather",
            index: bad,
            len,
        });
    }
    if out.is_empty() {
        return Ok(());
    }
    let mut o = 0;
    for b in 0..outer {
        let base = b * len * inner;
        for &i in indices {
            let i = if i < 0 { i + len_i } else { i } as usize;
            let src = base + i * inner;
            out[o..o + inner].copy_from_slice(&data[src..src + inner]);
            o += inner;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers() {
        let data = [0, 1, 2, 3, 4, 5]; // [3, 2]
        let mut out = [0; 4];
        gather(&data, &[3, 2], &[2, -3], 0, &mut out).unwrap();
        assert_eq!(out, [4, 5, 0, 1]);
        let mut out = [0; 6];
        gather(&data, &[3, 2], &[1, -1], 1, &mut out[..6]).unwrap();
        assert_eq!(out, [1, 1, 3, 3, 5, 5]);
        let mut out = [9; 3];
        gather(&data, &[3, 2], &[0], 1, &mut out).unwrap();
        assert_eq!(out, [0, 2, 4]);
        let mut out = [0; 2];
        assert!(matches!(
            gather(&data, &[3, 2], &[3], 0, &mut out),
            Err(Error::IndexOutOfRange {
                index: 3,
                len: 3,
                ..
            })
        ));
        assert!(matches!(
            gather(&data, &[3, 2], &[-4], 0, &mut out),
            Err(Error::IndexOutOfRange { index: -4, .. })
        ));
        assert!(gather(&data, &[3, 2], &[0], 2, &mut out).is_err());
        assert!(gather(&data, &[3, 2], &[0, 1], 0, &mut out).is_err());
        // zero-size: no indices
        let mut empty: [i32; 0] = [];
        gather(&data, &[3, 2], &[], 0, &mut empty).unwrap();
        // scalar-like data
        let mut o1 = [0; 1];
        gather(&[7], &[1], &[-1], 0, &mut o1).unwrap();
        assert_eq!(o1, [7]);
    }
}
