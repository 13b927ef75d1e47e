//! ONNX `Pad`: constant, reflect, edge and wrap modes, negative pads (cropping) included.
use super::elementwise::MAX_DIMS;

/// How positions outside the input are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// The fill value.
    Constant,
    /// Mirror without repeating the edge element (`[1,2,3]` → `…3,2,[1,2,3],2,1…`).
    Reflect,
    /// Repeat the edge element.
    Edge,
    /// Wrap around (`[1,2,3]` → `…2,3,[1,2,3],1,2…`).
    Wrap,
}

/// The input index that output position `i` (relative to the input's start, so it may be
/// negative or ≥ `len`) reads, or `None` for the fill value.
#[inline]
fn source(i: i64, len: usize, mode: PadMode) -> Option<usize> {
    let n = len as i64;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    if n == 0 {
        return None;
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
        PadMode::Wrap => Some(i.rem_euclid(n) as usize),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            let p = 2 * (n - 1);
            let m = i.rem_euclid(p);
            Some(if m < n { m } else { p - m } as usize)
        }
    }
}

/// Pads `x` (shape `shape`) into `out` (shape `out_shape`): output index `o` on axis `d` reads
/// input index `o - begin[d]`, mapped by `mode` when outside the input (`begin` may be
/// negative: that crops). Panics if the lengths do not match the shapes or the rank exceeds
/// `MAX_DIMS` (codegen checks both).
pub fn pad<T: Copy>(
    x: &[T],
    shape: &[usize],
    begin: &[i64],
    out: &mut [T],
    out_shape: &[usize],
    mode: PadMode,
    value: T,
) {
    let r = shape.len();
    assert!(
        r <= MAX_DIMS && begin.len() == r && out_shape.len() == r,
        "pad: rank"
    );
    assert_eq!(
        x.len(),
        shape.iter().product::<usize>(),
        "pad: input length"
    );
    assert_eq!(
        out.len(),
        out_shape.iter().product::<usize>(),
        "pad: output length"
    );
    if out.is_empty() {
        return;
    }
    if r == 0 {
        out[0] = x[0];
        return;
    }
    let mut strides = [0usize; MAX_DIMS];
    let mut s = 1;
    for d in (0..r).rev() {
        strides[d] = s;
        s *= shape[d];
    }
    let (iw, ow, pb) = (shape[r - 1], out_shape[r - 1], begin[r - 1]);
    // Output columns that copy the input row contiguously.
    let lo = pb.clamp(0, ow as i64) as usize;
    let hi = (pb + iw as i64).clamp(lo as i64, ow as i64) as usize;
    if mode == PadMode::Constant
        && r >= 2
        && (0..r - 2).all(|d| begin[d] == 0 && shape[d] == out_shape[d])
        && ow > 0
    {
        // Constant padding of the last two axes only (images: N·C planes): per output row, the
        // fill, the input row's segment, the fill, with no per-row index arithmetic.
        let (ih, oh, pt) = (shape[r - 2], out_shape[r - 2], begin[r - 2]);
        let first = (lo as i64 - pb) as usize;
        let in_plane = (ih * iw).max(1);
        for (p, op) in out.chunks_exact_mut(oh * ow).enumerate() {
            for (o, row) in op.chunks_exact_mut(ow).enumerate() {
                let i = o as i64 - pt;
                if (0..ih as i64).contains(&i) && iw > 0 {
                    let at = p * in_plane + i as usize * iw;
                    let src = &x[at..at + iw];
                    row[..lo].fill(value);
                    row[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                    row[hi..].fill(value);
                } else {
                    row.fill(value);
                }
            }
        }
        return;
    }
    let mut idx = [0usize; MAX_DIMS];
    for row in out.chunks_exact_mut(ow) {
        // Source row of this output row, or None when it is all fill.
        let mut off = Some(0usize);
        for d in 0..r - 1 {
            off = match (off, source(idx[d] as i64 - begin[d], shape[d], mode)) {
                (Some(o), Some(i)) => Some(o + i * strides[d]),
                _ => None,
            };
        }
        match off {
            None => row.fill(value),
            Some(base) => {
                let src = &x[base..base + iw];
                let (left, rest) = row.split_at_mut(lo);
                let (mid, right) = rest.split_at_mut(hi - lo);
                if hi > lo {
                    let first = (lo as i64 - pb) as usize;
                    mid.copy_from_slice(&src[first..first + (hi - lo)]);
                }
                let fill = |o: usize| match source(o as i64 - pb, iw, mode) {
                    Some(i) => src[i],
                    None => value,
                };
                for (o, v) in left.iter_mut().enumerate() {
                    *v = fill(o);
                }
                for (j, v) in right.iter_mut().enumerate() {
                    *v = fill(hi + j);
                }
            }
        }
        // Next output row.
        let mut d = r - 1;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// numpy.pad semantics, written out per element.
    fn reference(
        x: &[i32],
        shape: [usize; 2],
        pb: [i64; 2],
        os: [usize; 2],
        mode: PadMode,
    ) -> Vec<i32> {
        let map = |i: i64, n: usize| -> Option<usize> {
            let n = n as i64;
            if (0..n).contains(&i) {
                return Some(i as usize);
            }
            match mode {
                PadMode::Constant => None,
                PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
                PadMode::Wrap => Some((((i % n) + n) % n) as usize),
                PadMode::Reflect => {
                    // Bounce off the ends until inside.
                    let mut j = i;
                    while !(0..n).contains(&j) {
                        j = if j < 0 { -j } else { 2 * (n - 1) - j };
                    }
                    Some(j as usize)
                }
            }
        };
        let mut out = vec![];
        for a in 0..os[0] {
            for b in 0..os[1] {
                out.push(
                    match (
                        map(a as i64 - pb[0], shape[0]),
                        map(b as i64 - pb[1], shape[1]),
                    ) {
                        (Some(i), Some(j)) => x[i * shape[1] + j],
                        _ => -7,
                    },
                );
            }
        }
        out
    }

    #[test]
    fn modes_match_reference() {
        let x: Vec<i32> = (1..=12).collect(); // [3, 4]
        for mode in [
            PadMode::Constant,
            PadMode::Reflect,
            PadMode::Edge,
            PadMode::Wrap,
        ] {
            for (pb, pe) in [
                ([1, 2], [2, 1]),
                ([0, 3], [0, 3]),
                ([2, 0], [0, 2]),
                ([-1, 1], [1, -2]),
            ] {
                let os = [(3 + pb[0] + pe[0]) as usize, (4 + pb[1] + pe[1]) as usize];
                let mut out = vec![0; os[0] * os[1]];
                pad(&x, &[3, 4], &pb, &mut out, &os, mode, -7);
                assert_eq!(
                    out,
                    reference(&x, [3, 4], pb, os, mode),
                    "{mode:?} {pb:?} {pe:?}"
                );
            }
        }
    }

    /// Constant padding of the last two axes of a 4-D tensor (the row-copy path), padding and
    /// cropping, against the definition per element.
    #[test]
    fn constant_planes_match_definition() {
        let shape = [2, 3, 5, 7];
        let x: Vec<i32> = (0..2 * 3 * 5 * 7).collect();
        for (pt, pl, pbot, pr) in [(1, 1, 1, 1), (0, 2, 3, 0), (-1, 1, 2, -2), (2, -3, -1, 4)] {
            let os = [2, 3, (5 + pt + pbot) as usize, (7 + pl + pr) as usize];
            let mut out = vec![0; os.iter().product()];
            pad(
                &x,
                &shape,
                &[0, 0, pt, pl],
                &mut out,
                &os,
                PadMode::Constant,
                -1,
            );
            let mut want = vec![];
            for n in 0..2 {
                for c in 0..3 {
                    for h in 0..os[2] as i64 {
                        for w in 0..os[3] as i64 {
                            let (i, j) = (h - pt, w - pl);
                            want.push(if (0..5).contains(&i) && (0..7).contains(&j) {
                                x[((n * 3 + c) * 5 + i as usize) * 7 + j as usize]
                            } else {
                                -1
                            });
                        }
                    }
                }
            }
            assert_eq!(out, want, "pads {pt} {pl} {pbot} {pr}");
        }
    }

    #[test]
    fn one_d_and_edge_cases() {
        let mut out = [0.0f32; 7];
        pad(
            &[1.0, 2.0, 3.0],
            &[3],
            &[2],
            &mut out,
            &[7],
            PadMode::Reflect,
            0.0,
        );
        assert_eq!(out, [3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        let mut out = [0.0f32; 4];
        pad(&[5.0], &[1], &[2], &mut out, &[4], PadMode::Reflect, 0.0);
        assert_eq!(out, [5.0; 4]);
        // Cropping to nothing on one axis.
        let mut out: [f32; 0] = [];
        pad(
            &[1.0, 2.0],
            &[1, 2],
            &[0, -2],
            &mut out,
            &[1, 0],
            PadMode::Constant,
            0.0,
        );
    }
}
