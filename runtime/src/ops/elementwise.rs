//! Elementwise ops with numpy/ONNX multidirectional broadcasting: [`binary`], [`unary`],
//! [`unary_inplace`], [`where_select`].
//!
//! Why this shape: the broadcast is planned once per call by *coalescing* dimensions — output
//! dims of size 1 are dropped and neighbouring dims merge whenever every input is broadcast (or
//! not) along both — so the common cases (`[M,N] + [N]`, `[M,1] * [1,N]`, scalar, identical
//! shapes) become one or two dims, and the inner loop runs over contiguous rows with one of four
//! stride patterns (each input's inner stride is 0 or 1), which the compiler vectorizes. The
//! outer dims are walked with an index counter on the stack; nothing allocates. A shape that
//! still has more than [`MAX_DIMS`] dims after coalescing (pathological alternation) takes a
//! slower path that recomputes offsets per row by division, so no valid shape panics.

/// Dims kept by the coalesced broadcast plan (ONNX models rarely exceed rank 6).
pub const MAX_DIMS: usize = 8;

/// Number of elements of a shape (1 for rank 0).
#[inline]
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Dim `d` of `shape` right-aligned against a shape of rank `rank` (missing leading dims are 1).
#[inline]
fn aligned(shape: &[usize], rank: usize, d: usize) -> usize {
    let pad = rank - shape.len();
    if d < pad { 1 } else { shape[d - pad] }
}

/// Coalesced iteration plan over `N` inputs broadcast to one output shape.
struct Plan<const N: usize> {
    rank: usize,
    dims: [usize; MAX_DIMS],
    strides: [[usize; MAX_DIMS]; N],
}

impl<const N: usize> Plan<N> {
    /// `None` when more than `MAX_DIMS` dims survive coalescing.
    fn new(out_shape: &[usize], ins: [&[usize]; N]) -> Option<Self> {
        let r = out_shape.len();
        let mut dims = [1usize; MAX_DIMS];
        let mut bcast = [[false; N]; MAX_DIMS];
        let mut rank = 0usize;
        for (d, &o) in out_shape.iter().enumerate() {
            if o == 1 {
                continue;
            }
            let mut kind = [false; N];
            for (k, s) in kind.iter_mut().zip(ins) {
                *k = aligned(s, r, d) == 1;
            }
            if rank > 0 && bcast[rank - 1] == kind {
                dims[rank - 1] *= o;
            } else {
                if rank == MAX_DIMS {
                    return None;
                }
                dims[rank] = o;
                bcast[rank] = kind;
                rank += 1;
            }
        }
        let mut strides = [[0usize; MAX_DIMS]; N];
        for (i, st) in strides.iter_mut().enumerate() {
            let mut p = 1;
            for d in (0..rank).rev() {
                if !bcast[d][i] {
                    st[d] = p;
                    p *= dims[d];
                }
            }
        }
        Some(Plan {
            rank,
            dims,
            strides,
        })
    }
}

/// Panics unless every input shape broadcasts to `out_shape` (a codegen bug, not a data error).
fn check_broadcast(out_shape: &[usize], ins: &[&[usize]]) {
    let r = out_shape.len();
    for s in ins {
        assert!(
            s.len() <= r,
            "broadcast: input rank {} > output rank {r}",
            s.len()
        );
        for (d, &o) in out_shape.iter().enumerate() {
            let i = aligned(s, r, d);
            assert!(
                i == o || i == 1,
                "broadcast: shape {s:?} does not broadcast to {out_shape:?}"
            );
        }
    }
}

/// Calls `f(out_offset, in_offsets, row_len, in_inner_strides)` for every output row, in output
/// order. Inner strides are 0 (broadcast) or 1. Does nothing for an empty output.
pub(crate) fn broadcast_rows<const N: usize>(
    out_shape: &[usize],
    ins: [&[usize]; N],
    mut f: impl FnMut(usize, [usize; N], usize, [usize; N]),
) {
    check_broadcast(out_shape, &ins);
    let total = numel(out_shape);
    if total == 0 {
        return;
    }
    let Some(plan) = Plan::new(out_shape, ins) else {
        return slow_rows(out_shape, ins, total, f);
    };
    if plan.rank == 0 {
        return f(0, [0; N], 1, [0; N]);
    }
    let inner = plan.dims[plan.rank - 1];
    let mut inner_st = [0; N];
    for (s, st) in inner_st.iter_mut().zip(&plan.strides) {
        *s = st[plan.rank - 1];
    }
    let outer_rank = plan.rank - 1;
    let mut idx = [0usize; MAX_DIMS];
    let mut offs = [0usize; N];
    let mut o = 0;
    loop {
        f(o, offs, inner, inner_st);
        o += inner;
        // Advance the outer counter (innermost outer dim first).
        let mut d = outer_rank;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            for (off, st) in offs.iter_mut().zip(&plan.strides) {
                *off += st[d];
            }
            if idx[d] < plan.dims[d] {
                break;
            }
            for (off, st) in offs.iter_mut().zip(&plan.strides) {
                *off -= st[d] * plan.dims[d];
            }
            idx[d] = 0;
        }
    }
}

/// Fallback for shapes that do not coalesce to `MAX_DIMS`: offsets by division per row.
fn slow_rows<const N: usize>(
    out_shape: &[usize],
    ins: [&[usize]; N],
    total: usize,
    mut f: impl FnMut(usize, [usize; N], usize, [usize; N]),
) {
    let r = out_shape.len();
    let inner = out_shape[r - 1];
    let mut inner_st = [0; N];
    for (s, shape) in inner_st.iter_mut().zip(ins) {
        *s = usize::from(aligned(shape, r, r - 1) != 1);
    }
    for row in 0..total / inner {
        let mut offs = [0usize; N];
        let mut rem = row;
        let mut prod = [0usize; N];
        for (p, shape) in prod.iter_mut().zip(ins) {
            *p = aligned(shape, r, r - 1);
        }
        for d in (0..r - 1).rev() {
            let o = out_shape[d];
            let i = rem % o;
            rem /= o;
            for ((off, p), shape) in offs.iter_mut().zip(prod.iter_mut()).zip(ins) {
                let s = aligned(shape, r, d);
                if s != 1 {
                    *off += i * *p;
                }
                *p *= s;
            }
        }
        f(row * inner, offs, inner, inner_st);
    }
}

/// Runs `body` inside a function compiled for AVX-512 (AVX2 on CPUs without it) when the CPU
/// has it, so that simple loops in `body` — with the op's closure inlined — vectorise at full
/// width instead of the baseline build's SSE2. Each lane does the same IEEE operation at any
/// width (Rust never contracts to FMA), so results do not change.
#[inline(always)]
fn wide(body: impl FnOnce()) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::isa::Isa;
        let isa = Isa::current().resolve();
        if isa == Isa::Avx512Vnni {
            // SAFETY: the resolved family has avx512f/bw/vl and avx2.
            unsafe { wide_x86::avx512(body) };
            return;
        }
        if matches!(isa, Isa::Avx2 | Isa::AvxVnni) {
            // SAFETY: both families have avx2 and fma.
            unsafe { wide_x86::avx2(body) };
            return;
        }
    }
    body()
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod wide_x86 {
    /// # Safety
    /// CPU has avx512f, avx512bw, avx512vl and avx2.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn avx512(body: impl FnOnce()) {
        body()
    }

    /// # Safety
    /// CPU has avx2 and fma.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(body: impl FnOnce()) {
        body()
    }

    /// `super::rows2` compiled for AVX-512.
    ///
    /// # Safety
    /// CPU has avx512f, avx512bw, avx512vl and avx2.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows_avx512<T: Copy, U: Copy, F: Fn(T, T) -> U>(
        a: &[T],
        b: &[T],
        f: &F,
        out: &mut [U],
        inner: usize,
        r0: usize,
        st: [usize; 4],
    ) {
        super::rows2(a, b, f, out, inner, r0, st)
    }

    /// `super::rows2` compiled for AVX2.
    ///
    /// # Safety
    /// CPU has avx2 and fma.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn rows_avx2<T: Copy, U: Copy, F: Fn(T, T) -> U>(
        a: &[T],
        b: &[T],
        f: &F,
        out: &mut [U],
        inner: usize,
        r0: usize,
        st: [usize; 4],
    ) {
        super::rows2(a, b, f, out, inner, r0, st)
    }
}

/// `out = f(a, b)` with multidirectional broadcasting; `out_shape` is the broadcast shape.
///
/// Panics if a slice length does not match its shape or the shapes do not broadcast (codegen
/// guarantees both).
pub fn binary<T: Copy + Sync, U: Copy + Send, F: Fn(T, T) -> U + Sync>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [U],
    out_shape: &[usize],
    f: F,
) {
    let n = numel(out_shape);
    assert_eq!(out.len(), n, "binary: output length");
    assert_eq!(a.len(), numel(a_shape), "binary: a length");
    assert_eq!(b.len(), numel(b_shape), "binary: b length");
    if n == 0 {
        return;
    }
    // Large ops are split into pieces of whole rows (of `PAR_ROW` elements for the flat
    // cases) across threads; small ones run inline (`par::rows_mut`).
    const PAR_ROW: usize = 1024;
    let min_rows = crate::par::MIN_ELEMS / PAR_ROW;
    if a.len() == n && b.len() == n {
        check_broadcast(out_shape, &[a_shape, b_shape]);
        crate::par::rows_mut(out, PAR_ROW, min_rows, |r0, out| {
            let i0 = r0 * PAR_ROW;
            let (a, b) = (&a[i0..i0 + out.len()], &b[i0..i0 + out.len()]);
            wide(|| {
                for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                    *o = f(x, y);
                }
            });
        });
        return;
    }
    if a.len() == 1 && b.len() == n {
        check_broadcast(out_shape, &[a_shape, b_shape]);
        let x = a[0];
        crate::par::rows_mut(out, PAR_ROW, min_rows, |r0, out| {
            let i0 = r0 * PAR_ROW;
            let b = &b[i0..i0 + out.len()];
            wide(|| {
                for (o, &y) in out.iter_mut().zip(b) {
                    *o = f(x, y);
                }
            });
        });
        return;
    }
    if b.len() == 1 && a.len() == n {
        check_broadcast(out_shape, &[a_shape, b_shape]);
        let y = b[0];
        crate::par::rows_mut(out, PAR_ROW, min_rows, |r0, out| {
            let i0 = r0 * PAR_ROW;
            let a = &a[i0..i0 + out.len()];
            wide(|| {
                for (o, &x) in out.iter_mut().zip(a) {
                    *o = f(x, y);
                }
            });
        });
        return;
    }
    // Two coalesced dims (`[M, N] + [N]`, the attention mask `[B·H·S, S] + [S]`, …): whole
    // rows (in parallel when large), each input's offset a multiple of the row index.
    check_broadcast(out_shape, &[a_shape, b_shape]);
    if let Some(plan) = Plan::new(out_shape, [a_shape, b_shape])
        && plan.rank == 2
    {
        let inner = plan.dims[1];
        let [sa, sb] = plan.strides;
        let min_rows = crate::par::MIN_ELEMS.div_ceil(inner);
        let st = [sa[0], sb[0], sa[1], sb[1]];
        crate::par::rows_mut(out, inner, min_rows, |r0, out| {
            #[cfg(target_arch = "x86_64")]
            {
                use crate::isa::Isa;
                let isa = Isa::current().resolve();
                if isa == Isa::Avx512Vnni {
                    // SAFETY: the resolved family has avx512f/bw/vl and avx2.
                    unsafe { wide_x86::rows_avx512(a, b, &f, out, inner, r0, st) };
                    return;
                }
                if matches!(isa, Isa::Avx2 | Isa::AvxVnni) {
                    // SAFETY: both families have avx2 and fma.
                    unsafe { wide_x86::rows_avx2(a, b, &f, out, inner, r0, st) };
                    return;
                }
            }
            rows2(a, b, &f, out, inner, r0, st)
        });
        return;
    }
    broadcast_rows(out_shape, [a_shape, b_shape], |o, [oa, ob], len, st| {
        row2(a, b, &f, &mut out[o..o + len], oa, ob, st)
    });
}

/// Rows `r0..` of [`binary`]'s two-dim plan into `out` (whole rows of `inner`); `st` holds the
/// outer strides of a and b, then their inner strides. Always inlined into the wide wrappers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows2<T: Copy, U: Copy, F: Fn(T, T) -> U>(
    a: &[T],
    b: &[T],
    f: &F,
    out: &mut [U],
    inner: usize,
    r0: usize,
    st: [usize; 4],
) {
    for (i, o) in out.chunks_exact_mut(inner).enumerate() {
        let r = r0 + i;
        row2(a, b, f, o, r * st[0], r * st[1], [st[2], st[3]]);
    }
}

/// One output row of [`binary`]: inputs at offsets `oa`, `ob` with inner strides `st` (0 or 1).
/// Always inlined, so that inside [`wide`] it is compiled for the wide ISA.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row2<T: Copy, U: Copy, F: Fn(T, T) -> U>(
    a: &[T],
    b: &[T],
    f: &F,
    out: &mut [U],
    oa: usize,
    ob: usize,
    st: [usize; 2],
) {
    let len = out.len();
    match st {
        [1, 1] => {
            for ((o, &x), &y) in out.iter_mut().zip(&a[oa..oa + len]).zip(&b[ob..ob + len]) {
                *o = f(x, y);
            }
        }
        [1, _] => {
            let y = b[ob];
            for (o, &x) in out.iter_mut().zip(&a[oa..oa + len]) {
                *o = f(x, y);
            }
        }
        [_, 1] => {
            let x = a[oa];
            for (o, &y) in out.iter_mut().zip(&b[ob..ob + len]) {
                *o = f(x, y);
            }
        }
        _ => {
            let v = f(a[oa], b[ob]);
            out.fill(v);
        }
    }
}

/// `out[i] = f(x[i])`. Panics if the lengths differ.
/// `out = a + b` over equal-length f32 tensors that also widens `range` by every sum (NaN
/// skipped): a residual Add whose result a quantized convolution reads next gathers that
/// convolution's range while it writes (design decision 20). Panics if a length differs.
pub fn add_range(
    isa: crate::isa::Isa,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    range: &crate::quantize::Range,
) {
    assert!(
        a.len() == out.len() && b.len() == out.len(),
        "add_range: lengths differ"
    );
    const PAR_ROW: usize = 1024;
    let isa = isa.resolve();
    crate::par::rows_mut(out, PAR_ROW, crate::par::MIN_ELEMS / PAR_ROW, |r0, o| {
        let i0 = r0 * PAR_ROW;
        let (a, b) = (&a[i0..i0 + o.len()], &b[i0..i0 + o.len()]);
        #[cfg(target_arch = "x86_64")]
        if isa == crate::isa::Isa::Avx512Vnni {
            // SAFETY: the resolved family has AVX-512 F; the three slices have equal lengths.
            range.include(unsafe { add_x86::add_min_max_avx512(a, b, o) });
            return;
        }
        for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
            *o = x + y;
        }
        range.observe(isa, o);
    });
}

#[cfg(target_arch = "x86_64")]
mod add_x86 {
    use core::arch::x86_64::*;

    /// `o = a + b` and `(min(0, min o), max(0, max o))`, NaN skipped, from the registers.
    ///
    /// # Safety
    /// CPU has avx512f; `a`, `b` and `o` have the same length.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_min_max_avx512(a: &[f32], b: &[f32], o: &mut [f32]) -> (f32, f32) {
        let n = o.len();
        let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i < n {
            let k = ((1u32 << (n - i).min(16)) - 1) as __mmask16;
            // SAFETY: the mask covers lanes i..min(i + 16, n) of the equal-length slices.
            unsafe {
                let v = _mm512_add_ps(
                    _mm512_maskz_loadu_ps(k, a.as_ptr().add(i)),
                    _mm512_maskz_loadu_ps(k, b.as_ptr().add(i)),
                );
                _mm512_mask_storeu_ps(o.as_mut_ptr().add(i), k, v);
                // VMINPS(v, acc) keeps acc for a NaN v; masked-off lanes are 0 + 0 = 0.
                lo = _mm512_min_ps(v, lo);
                hi = _mm512_max_ps(v, hi);
            }
            i += 16;
        }
        (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi))
    }
}

pub fn unary<T: Copy + Sync, U: Copy + Send, F: Fn(T) -> U + Sync>(x: &[T], out: &mut [U], f: F) {
    assert_eq!(x.len(), out.len(), "unary: length mismatch");
    // Like `binary`: rows of PAR_ROW elements across threads when large, each loop compiled
    // for the widest vector family (the closures are the fused elementwise regions and
    // activations; compiled at the crate's baseline they ran scalar).
    const PAR_ROW: usize = 1024;
    crate::par::rows_mut(out, PAR_ROW, crate::par::MIN_ELEMS / PAR_ROW, |r0, out| {
        let x = &x[r0 * PAR_ROW..r0 * PAR_ROW + out.len()];
        wide(|| {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = f(v);
            }
        });
    });
}

/// Broadcast copy: `out` (shape `out_shape`) takes `x` (shape `x_shape`, unidirectionally
/// broadcast). Used by Expand.
pub fn unary_broadcast<T: Copy>(x: &[T], x_shape: &[usize], out: &mut [T], out_shape: &[usize]) {
    assert_eq!(out.len(), numel(out_shape), "expand: output length");
    assert_eq!(x.len(), numel(x_shape), "expand: input length");
    if x.len() == out.len() {
        out.copy_from_slice(x);
        return;
    }
    broadcast_rows(out_shape, [x_shape], |o, [ox], len, [sx]| {
        let dst = &mut out[o..o + len];
        if sx == 1 {
            dst.copy_from_slice(&x[ox..ox + len]);
        } else {
            dst.fill(x[ox]);
        }
    });
}

/// `out[i] = f(out[i], x[i])` with `x` (shape `x_shape`) broadcast to `out_shape`: folds one
/// more operand of a variadic op (Max, Min, Sum, Mean) into the output, after the first was
/// broadcast into it with [`unary_broadcast`].
pub fn accumulate<T: Copy, F: Fn(T, T) -> T>(
    out: &mut [T],
    out_shape: &[usize],
    x: &[T],
    x_shape: &[usize],
    f: F,
) {
    assert_eq!(out.len(), numel(out_shape), "accumulate: output length");
    assert_eq!(x.len(), numel(x_shape), "accumulate: input length");
    broadcast_rows(out_shape, [x_shape], |o, [ox], len, [sx]| {
        for (i, d) in out[o..o + len].iter_mut().enumerate() {
            *d = f(*d, x[ox + i * sx]);
        }
    });
}

/// `x[i] = f(x[i])`.
pub fn unary_inplace<T: Copy, F: Fn(T) -> T>(x: &mut [T], f: F) {
    for v in x.iter_mut() {
        *v = f(*v);
    }
}

/// ONNX `Where`: `out = cond ? a : b`, all three broadcast to `out_shape`.
#[allow(clippy::too_many_arguments)]
pub fn where_select<T: Copy>(
    cond: &[bool],
    c_shape: &[usize],
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
    out_shape: &[usize],
) {
    let n = numel(out_shape);
    assert_eq!(out.len(), n, "where: output length");
    assert_eq!(cond.len(), numel(c_shape), "where: cond length");
    assert_eq!(a.len(), numel(a_shape), "where: a length");
    assert_eq!(b.len(), numel(b_shape), "where: b length");
    if n == 0 {
        return;
    }
    if cond.len() == n && a.len() == n && b.len() == n {
        check_broadcast(out_shape, &[c_shape, a_shape, b_shape]);
        for (((o, &c), &x), &y) in out.iter_mut().zip(cond).zip(a).zip(b) {
            *o = if c { x } else { y };
        }
        return;
    }
    broadcast_rows(
        out_shape,
        [c_shape, a_shape, b_shape],
        |o, [oc, oa, ob], len, [sc, sa, sb]| {
            for (j, dst) in out[o..o + len].iter_mut().enumerate() {
                *dst = if cond[oc + j * sc] {
                    a[oa + j * sa]
                } else {
                    b[ob + j * sb]
                };
            }
        },
    );
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// `add_range`: the sums have a + b's bits and the range is the min/max of the sums (NaN
    /// skipped, 0 included), for lengths around the vector width and the parallel split.
    #[test]
    fn add_range_is_add_and_its_min_max() {
        for n in [0usize, 1, 15, 16, 17, 100, 5000, 70_001] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3)
                .collect();
            let mut b: Vec<f32> = (0..n)
                .map(|i| ((i * 53 % 89) as f32 - 20.0) * 0.7)
                .collect();
            if n > 3 {
                b[n / 2] = f32::NAN;
                b[n - 1] = 1e30;
            }
            for isa in crate::isa::Isa::all_available() {
                let r = crate::quantize::Range::new();
                let mut out = std::vec![0f32; n];
                add_range(isa, &a, &b, &mut out, &r);
                let mut lo_hi = (0f32, 0f32);
                for i in 0..n {
                    let want = a[i] + b[i];
                    assert_eq!(out[i].to_bits(), want.to_bits(), "{isa} n={n} i={i}");
                    if want < lo_hi.0 {
                        lo_hi.0 = want;
                    }
                    if want > lo_hi.1 {
                        lo_hi.1 = want;
                    }
                }
                assert_eq!(r.get(), lo_hi, "{isa} n={n}");
            }
        }
    }

    fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
        let r = a.len().max(b.len());
        (0..r)
            .map(|d| {
                let x = aligned(a, r, d);
                let y = aligned(b, r, d);
                if x == 1 { y } else { x }
            })
            .collect()
    }

    /// Naive reference: unravel every output index and re-ravel into each input.
    fn src_index(shape: &[usize], out_shape: &[usize], mut lin: usize) -> usize {
        let r = out_shape.len();
        let mut idx = vec![0; r];
        for d in (0..r).rev() {
            idx[d] = lin % out_shape[d];
            lin /= out_shape[d];
        }
        let mut off = 0;
        for d in 0..r {
            let s = aligned(shape, r, d);
            off = off * s + if s == 1 { 0 } else { idx[d] };
        }
        off
    }

    fn check(a_shape: &[usize], b_shape: &[usize]) {
        let out_shape = broadcast_shape(a_shape, b_shape);
        let a: Vec<i64> = (0..numel(a_shape) as i64).collect();
        let b: Vec<i64> = (0..numel(b_shape) as i64).map(|v| v * 1000 + 7).collect();
        let n = numel(&out_shape);
        let mut out = vec![0i64; n];
        binary(&a, a_shape, &b, b_shape, &mut out, &out_shape, |x, y| {
            x * 3 + y
        });
        for (i, &o) in out.iter().enumerate() {
            let want =
                a[src_index(a_shape, &out_shape, i)] * 3 + b[src_index(b_shape, &out_shape, i)];
            assert_eq!(o, want, "{a_shape:?} vs {b_shape:?} at {i}");
        }
        let cond: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let mut w = vec![0i64; n];
        where_select(
            &cond, &out_shape, &a, a_shape, &b, b_shape, &mut w, &out_shape,
        );
        for i in 0..n {
            let want = if cond[i] {
                a[src_index(a_shape, &out_shape, i)]
            } else {
                b[src_index(b_shape, &out_shape, i)]
            };
            assert_eq!(w[i], want);
        }
        // cond broadcast too (a row of conds against everything).
        let c_shape = [*out_shape.last().unwrap_or(&1)];
        let c: Vec<bool> = (0..c_shape[0]).map(|i| i % 2 == 1).collect();
        if !out_shape.is_empty() {
            where_select(&c, &c_shape, &a, a_shape, &b, b_shape, &mut w, &out_shape);
            for i in 0..n {
                let ci = c[src_index(&c_shape, &out_shape, i)];
                let want = if ci {
                    a[src_index(a_shape, &out_shape, i)]
                } else {
                    b[src_index(b_shape, &out_shape, i)]
                };
                assert_eq!(w[i], want);
            }
        }
    }

    #[test]
    fn broadcasting_cases() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[], &[]),
            (&[], &[3, 4]),
            (&[3, 4], &[1]),
            (&[3, 4], &[3, 4]),
            (&[4], &[3, 4]),
            (&[3, 4], &[4]),
            (&[3, 1], &[1, 4]),
            (&[3, 1], &[3, 4]),
            (&[2, 3, 4, 5], &[3, 1, 5]),
            (&[2, 1, 4, 1], &[1, 3, 1, 5]),
            (&[1, 3, 1, 5], &[2, 1, 4, 1]),
            (&[2, 3, 4, 5], &[2, 1, 1, 5]),
            (&[0, 4], &[4]),
            (&[3, 0], &[3, 1]),
            (&[1, 0, 2], &[5, 1, 1]),
            (&[1, 1, 1], &[2, 1, 3]),
            // 10 alternating dims: 10 dims survive coalescing -> slow path.
            (
                &[2, 1, 2, 1, 2, 1, 2, 1, 2, 1],
                &[1, 2, 1, 2, 1, 2, 1, 2, 1, 2],
            ),
            (
                &[2, 1, 2, 1, 2, 1, 2, 1, 2, 3],
                &[1, 2, 1, 2, 1, 2, 1, 2, 1, 1],
            ),
            // rank 9 that coalesces below 8.
            (&[2, 2, 2, 2, 2, 2, 2, 2, 3], &[3]),
            // Large enough to be split across threads (feature `rayon`): same shape, scalar,
            // the attention mask's [B,H,S,S] + [B,1,1,S] and a column broadcast.
            (&[3, 100, 129], &[3, 100, 129]),
            (&[3, 100, 129], &[]),
            (&[1, 12, 64, 64], &[1, 1, 1, 64]),
            (&[2, 12, 40, 40], &[2, 1, 1, 40]),
            (&[1201, 77], &[1201, 1]),
        ];
        for (a, b) in cases {
            check(a, b);
            check(b, a);
        }
    }

    #[test]
    fn unary_ops() {
        let x = [1.0f32, -2.0, 3.0];
        let mut o = [0i32; 3];
        unary(&x, &mut o, |v| v as i32 * 2);
        assert_eq!(o, [2, -4, 6]);
        let mut y = x;
        unary_inplace(&mut y, |v| v * v);
        assert_eq!(y, [1.0, 4.0, 9.0]);
    }

    #[test]
    #[should_panic]
    fn incompatible_shapes_panic() {
        let mut out = [0; 6];
        binary(
            &[1, 2],
            &[2],
            &[1, 2, 3],
            &[3],
            &mut out,
            &[2, 3],
            |x: i32, y| x + y,
        );
    }
}
