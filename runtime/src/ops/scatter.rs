//! Indexing ops of the standard set: GatherElements, GatherND, ScatterElements (and the old
//! Scatter), ScatterND with their reductions. Scalar and generic over the element type; an
//! index out of range is an `Err` naming the op and the index, never a panic.

use crate::error::Error;

/// How a scatter combines an update with the value already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

/// Element types a scatter reduction can combine (integers wrap).
pub trait Combine: Copy {
    fn combine(self, u: Self, r: Reduction) -> Self;
}

macro_rules! combine_int {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn combine(self, u: Self, r: Reduction) -> Self {
                match r {
                    Reduction::None => u,
                    Reduction::Add => self.wrapping_add(u),
                    Reduction::Mul => self.wrapping_mul(u),
                    Reduction::Max => self.max(u),
                    Reduction::Min => self.min(u),
                }
            }
        }
    )*};
}
combine_int!(i8, u8, i16, u16, i32, u32, i64, u64);

macro_rules! combine_float {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn combine(self, u: Self, r: Reduction) -> Self {
                match r {
                    Reduction::None => u,
                    Reduction::Add => self + u,
                    Reduction::Mul => self * u,
                    Reduction::Max => self.max(u),
                    Reduction::Min => self.min(u),
                }
            }
        }
    )*};
}
combine_float!(f32, f64);

impl Combine for bool {
    fn combine(self, u: Self, r: Reduction) -> Self {
        match r {
            Reduction::None => u,
            Reduction::Add | Reduction::Max => self | u,
            Reduction::Mul | Reduction::Min => self & u,
        }
    }
}

fn out_of_range(node: &'static str, index: i64, len: usize) -> Error {
    Error::IndexOutOfRange {
        value: "indices",
        node,
        index,
        len,
    }
}

/// An index in `[-len, len)` as a position (negative ones count from the end).
fn wrap(node: &'static str, i: i64, len: usize) -> Result<usize, Error> {
    let l = len as i64;
    if i < -l || i >= l {
        return Err(out_of_range(node, i, len));
    }
    Ok(if i < 0 { (i + l) as usize } else { i as usize })
}

/// Row-major strides of `shape` (rank ≤ 8).
fn strides(shape: &[usize]) -> [usize; 8] {
    let mut s = [0; 8];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i];
    }
    s
}

/// Calls `f(flat index in idx_shape, flat index in data)` for each element of an index tensor
/// of shape `idx_shape`, where the data position equals the element's position except along
/// `axis`, where it is the element's index value.
fn each_axis_index(
    node: &'static str,
    data_shape: &[usize],
    idx_shape: &[usize],
    indices: &[impl Copy + Into<i64>],
    axis: usize,
    mut f: impl FnMut(usize, usize),
) -> Result<(), Error> {
    let ds = strides(data_shape);
    let r = idx_shape.len();
    let mut pos = [0usize; 8];
    for (k, &iv) in indices.iter().enumerate() {
        let mut off = 0;
        for d in 0..r {
            let p = if d == axis {
                wrap(node, iv.into(), data_shape[axis])?
            } else {
                pos[d]
            };
            off += p * ds[d];
        }
        f(k, off);
        for d in (0..r).rev() {
            pos[d] += 1;
            if pos[d] < idx_shape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    Ok(())
}

/// ONNX `GatherElements` (rank ≤ 8): `out` has the indices' shape.
#[allow(clippy::result_large_err)]
pub fn gather_elements<T: Copy>(
    data: &[T],
    data_shape: &[usize],
    indices: &[impl Copy + Into<i64>],
    idx_shape: &[usize],
    axis: usize,
    out: &mut [T],
) -> Result<(), Error> {
    each_axis_index(
        "GatherElements",
        data_shape,
        idx_shape,
        indices,
        axis,
        |k, off| {
            out[k] = data[off];
        },
    )
}

/// ONNX `ScatterElements` (and `Scatter`, rank ≤ 8): `out` starts as a copy of `data`, then
/// each update is combined into the position its index names, in order.
#[allow(clippy::result_large_err)]
#[allow(clippy::too_many_arguments)]
pub fn scatter_elements<T: Combine>(
    data: &[T],
    data_shape: &[usize],
    indices: &[impl Copy + Into<i64>],
    idx_shape: &[usize],
    updates: &[T],
    axis: usize,
    reduction: Reduction,
    out: &mut [T],
) -> Result<(), Error> {
    out.copy_from_slice(data);
    each_axis_index(
        "ScatterElements",
        data_shape,
        idx_shape,
        indices,
        axis,
        |k, off| {
            out[off] = out[off].combine(updates[k], reduction);
        },
    )
}

/// The data offset of one index tuple of GatherND/ScatterND: `tuple` indexes the leading
/// axes of `data_shape` from axis `first` (after the batch axes).
fn nd_offset(
    node: &'static str,
    tuple: &[impl Copy + Into<i64>],
    data_shape: &[usize],
    ds: &[usize; 8],
    first: usize,
) -> Result<usize, Error> {
    let mut off = 0;
    for (j, &i) in tuple.iter().enumerate() {
        off += wrap(node, i.into(), data_shape[first + j])? * ds[first + j];
    }
    Ok(off)
}

/// ONNX `GatherND` (data rank ≤ 8): `indices` is `[batch.., rest.., q]` with the first
/// `batch_dims` axes shared with `data`; each q-tuple selects a slice of `slice` elements.
/// `n_per_batch` is the number of tuples per batch entry; `q ≥ 1`.
#[allow(clippy::result_large_err)]
pub fn gather_nd<T: Copy>(
    data: &[T],
    data_shape: &[usize],
    indices: &[impl Copy + Into<i64>],
    q: usize,
    batch_dims: usize,
    n_per_batch: usize,
    out: &mut [T],
) -> Result<(), Error> {
    let ds = strides(data_shape);
    let slice: usize = data_shape[batch_dims + q..].iter().product();
    let batch_stride = if batch_dims == 0 {
        0
    } else {
        ds[batch_dims - 1]
    };
    for (t, tuple) in indices.chunks_exact(q).enumerate() {
        let base = (t / n_per_batch.max(1)) * batch_stride;
        let off = base + nd_offset("GatherND", tuple, data_shape, &ds, batch_dims)?;
        out[t * slice..(t + 1) * slice].copy_from_slice(&data[off..off + slice]);
    }
    Ok(())
}

/// ONNX `ScatterND` (data rank ≤ 8): `out` starts as a copy of `data`; each q-tuple of
/// `indices` names a slice that the matching `updates` slice is combined into, in order.
#[allow(clippy::result_large_err)]
pub fn scatter_nd<T: Combine>(
    data: &[T],
    data_shape: &[usize],
    indices: &[impl Copy + Into<i64>],
    q: usize,
    updates: &[T],
    reduction: Reduction,
    out: &mut [T],
) -> Result<(), Error> {
    out.copy_from_slice(data);
    let ds = strides(data_shape);
    let slice: usize = data_shape[q..].iter().product();
    for (t, tuple) in indices.chunks_exact(q).enumerate() {
        let off = nd_offset("ScatterND", tuple, data_shape, &ds, 0)?;
        for (o, &u) in out[off..off + slice]
            .iter_mut()
            .zip(&updates[t * slice..(t + 1) * slice])
        {
            *o = o.combine(u, reduction);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_elements() {
        // ONNX GatherElements example: axis 1.
        let mut o = [0; 4];
        gather_elements(&[1, 2, 3, 4], &[2, 2], &[0, 0, 1, 0], &[2, 2], 1, &mut o).unwrap();
        assert_eq!(o, [1, 1, 4, 3]);
        let mut s = [0f32; 5];
        let data = [1.0, 2.0, 3.0, 4.0, 5.0];
        let (idx, upd) = ([1i64, -2, 1], [1.1f32, 2.1, 3.0]);
        scatter_elements(
            &data,
            &[1, 5],
            &idx,
            &[1, 3],
            &upd,
            1,
            Reduction::Add,
            &mut s,
        )
        .unwrap();
        assert_eq!(s, [1.0, 2.0 + 1.1 + 3.0, 3.0, 4.0 + 2.1, 5.0]);
        let err = gather_elements(&[1, 2], &[2], &[2], &[1], 0, &mut [0]);
        assert!(err.is_err());
    }

    #[test]
    fn gather_and_scatter_nd() {
        // data [2, 2], indices [[0, 0], [1, 1]] → [0, 3]; indices [[1], [0]] → rows swapped.
        let mut o = [0; 2];
        gather_nd(&[0, 1, 2, 3], &[2, 2], &[0, 0, 1, 1], 2, 0, 2, &mut o).unwrap();
        assert_eq!(o, [0, 3]);
        let mut o = [0; 4];
        gather_nd(&[0, 1, 2, 3], &[2, 2], &[1, 0], 1, 0, 2, &mut o).unwrap();
        assert_eq!(o, [2, 3, 0, 1]);
        // batch_dims 1: data [2, 2], indices [[1], [0]] → [1, 2].
        let mut o = [0; 2];
        gather_nd(&[0, 1, 2, 3], &[2, 2], &[1, 0], 1, 1, 1, &mut o).unwrap();
        assert_eq!(o, [1, 2]);
        let mut o = [0; 4];
        scatter_nd(
            &[1, 1, 1, 1],
            &[4],
            &[3, 1, 3],
            1,
            &[5, 6, 7],
            Reduction::Mul,
            &mut o,
        )
        .unwrap();
        assert_eq!(o, [1, 6, 1, 35]);
    }
}
