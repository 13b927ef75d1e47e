//! The packed int8 weight layouts: one definition shared by codegen (which packs at build time)
//! and the GEMM kernels (which read it).
//!
//! A `[K][N]` weight matrix (ONNX `MatMul` B, row-major) is stored as panels of [`NR`] = 16
//! columns; K is padded with zero weights to a multiple of [`KR`] = 4 and N to a multiple of 16,
//! so kernels never branch on the K tail inside a group and compute whole panels (the N tail is
//! masked only on store). Inside a panel, K is split into groups and each group holds its k
//! values of each of the 16 columns, column after column. The group depth is the [`Layout`]:
//!
//! * [`Layout::Kr4`] (x86_64, wasm32 and every other target but aarch64), groups of 4:
//!
//!   ```text
//!   data[((p * padded_k/4 + g) * 16 + c) * 4 + t] = w[k = 4g + t][n = 16p + c]
//!   ```
//!
//!   so one k-group of one panel is 64 contiguous bytes: exactly one zmm operand of VPDPBUSD
//!   (16 i32 lanes, each summing 4 u8×i8 products), two ymm operands of AVX-VNNI / VPMADDUBSW.
//! * [`Layout::Kr8`] (aarch64), groups of 8, and when `padded_k % 8 == 4` one last group of 4
//!   laid out as in `Kr4`. A 128-byte group is eight 16-byte vectors `[c k0..8, c+1 k0..8]`:
//!   each is exactly the 8×2 weight operand of USMMLA, an SDOT operand whose lane pairs are two
//!   columns, and two widened NEON operands of one column each (see `kernels/aarch64`).
//!
//! Both layouts put the same bytes at different places within each panel: same length, same
//! padding, same per-column arrays. So a model's weight blob has the same size and offsets on
//! every target, and codegen (which cannot see the target) writes the packed data in both
//! layouts and the generated code embeds the one of its `target_arch` (docs/design.md, 3).
//! Every build reads and packs [`Layout::NATIVE`]; only codegen asks for another one
//! ([`PackedI8Owned::data_in`]).
//!
//! Weights are always stored as i8. u8 weights are re-encoded `w - 128` with zero point
//! `zp - 128`, which leaves `(w - zp)` unchanged. Per column the packer also stores the column
//! sum of the stored weights (for the activation zero-point term), the zero point, the scale and
//! the bias, each padded to `padded_n(n)` with zeros.
#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// Columns per panel (one zmm of i32 lanes).
pub const NR: usize = 16;
/// The K padding granule, and the k values per group of [`Layout::Kr4`] (one VPDPBUSD lane)
/// and of the last group of [`Layout::Kr8`] when K is not a multiple of 8.
pub const KR: usize = 4;

/// How deep the k-groups of a panel are (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `[N/16][K/4][16][4]`: every target but aarch64.
    Kr4,
    /// `[N/16][K/8][16][8]`, then `[16][4]` for a last group of 4 k: aarch64.
    Kr8,
}

impl Layout {
    /// The layout this build's kernels read and [`PackedI8Owned::pack`] writes.
    pub const NATIVE: Layout = if cfg!(target_arch = "aarch64") {
        Layout::Kr8
    } else {
        Layout::Kr4
    };

    /// k values per group (the last group of `Kr8` may hold only [`KR`]).
    pub const fn depth(self) -> usize {
        match self {
            Layout::Kr4 => KR,
            Layout::Kr8 => 2 * KR,
        }
    }

    /// k values of a padded depth `pk` that lie in whole groups of [`Layout::depth`]; the rest
    /// (`pk - full_k`, 0 or 4) is the last, 4-deep group.
    #[inline(always)]
    pub const fn full_k(self, pk: usize) -> usize {
        pk - pk % self.depth()
    }

    /// Index into [`PackedI8::data`] of weight `(k, n)` for a matrix with padded depth `pk`.
    #[inline(always)]
    pub const fn index(self, pk: usize, k: usize, n: usize) -> usize {
        let (d, full) = (self.depth(), self.full_k(pk));
        let (panel, c) = ((n / NR) * pk * NR, n % NR);
        if k < full {
            panel + (k / d) * (NR * d) + c * d + k % d
        } else {
            panel + full * NR + c * KR + (k - full)
        }
    }
}

/// `k` rounded up to a multiple of [`KR`].
pub const fn padded_k(k: usize) -> usize {
    k.div_ceil(KR) * KR
}

/// `n` rounded up to a multiple of [`NR`].
pub const fn padded_n(n: usize) -> usize {
    n.div_ceil(NR) * NR
}

/// Index into [`PackedI8::data`] of weight `(k, n)` for a matrix with padded depth `pk`, in
/// this build's [`Layout::NATIVE`].
#[inline(always)]
pub const fn packed_index(pk: usize, k: usize, n: usize) -> usize {
    Layout::NATIVE.index(pk, k, n)
}

/// Packed int8 weights of a `[K][N]` (ONNX MatMul B, row-major) matrix, borrowed (from the
/// static blob, or from [`PackedI8Owned`]). All per-column arrays have length `padded_n(n)`,
/// padding entries 0.
#[derive(Clone, Copy, Debug)]
pub struct PackedI8<'a> {
    pub k: usize,
    pub n: usize,
    /// [`Layout::NATIVE`], `padded_k * padded_n` i8; padding (k >= K or n >= N) is 0.
    pub data: &'a [i8],
    /// per column: sum over real k of the stored (i8, already re-encoded) weights
    pub colsum: &'a [i32],
    /// per column weight zero point in the stored domain (u8 weights re-encoded: w-128, zp-128)
    pub zero_point: &'a [i32],
    /// per column weight scale (per-tensor scales replicated)
    pub scale: &'a [f32],
    /// per column bias, if any
    pub bias: Option<&'a [f32]>,
    /// true if VPMADDUBSW (u8 x i8 pairs summed in saturating i16) can never saturate for this
    /// matrix with any u8 activations: for every column and every adjacent k pair (k0,k1) of a
    /// group (pairs (0,1) and (2,3) of each KR group), 255*(max(w0,0)+max(w1,0)) <= 32767 and
    /// 255*(min(w0,0)+min(w1,0)) >= -32768. Computed at pack time (= compile time); the AVX2 path
    /// uses the fast maddubs kernel only when true, else an exact sign-extend + VPMADDWD kernel.
    pub avx2_safe: bool,
}

impl PackedI8<'_> {
    /// Panics unless every slice is long enough for `k` x `n` (the kernels rely on this; it is
    /// checked once per GEMM call, never per element).
    pub fn assert_valid(&self) {
        let (pk, pn) = (padded_k(self.k), padded_n(self.n));
        assert!(self.data.len() >= pk * pn, "PackedI8: data too short");
        assert!(self.colsum.len() >= pn, "PackedI8: colsum too short");
        assert!(
            self.zero_point.len() >= pn,
            "PackedI8: zero_point too short"
        );
        assert!(self.scale.len() >= pn, "PackedI8: scale too short");
        if let Some(b) = self.bias {
            assert!(b.len() >= pn, "PackedI8: bias too short");
        }
    }

    /// The stored (re-encoded) weight `(k, n)`; 0 in the padding.
    #[inline]
    pub fn get(&self, k: usize, n: usize) -> i8 {
        self.data[packed_index(padded_k(self.k), k, n)]
    }
}

/// Row-major `[K][N]` weights in their original ONNX type.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    I8(&'a [i8]),
    U8(&'a [u8]),
}

#[cfg(feature = "alloc")]
impl Weights<'_> {
    fn len(&self) -> usize {
        match self {
            Weights::I8(w) => w.len(),
            Weights::U8(w) => w.len(),
        }
    }
    /// Element `i`, in the stored i8 domain (u8 re-encoded `w - 128`).
    #[inline]
    fn stored(&self, i: usize) -> i8 {
        match self {
            Weights::I8(w) => w[i],
            Weights::U8(w) => (w[i] as i32 - 128) as i8,
        }
    }
    fn zp_shift(&self) -> i32 {
        match self {
            Weights::I8(_) => 0,
            Weights::U8(_) => -128,
        }
    }
}

/// The AVX2 saturation proof (see [`PackedI8::avx2_safe`]) over packed data: true if no
/// adjacent pair of a k-group can make VPMADDUBSW saturate with any u8 activations.
/// Padding weights are 0 and never matter. The pairs are k = (2j, 2j+1) of one column, which are
/// adjacent bytes in either [`Layout`] (every group is 4 or 8 deep and starts at a multiple of
/// 4), so the answer is the same for both and the flag means the same on every target; only
/// x86_64 reads it.
pub fn avx2_safe(w_packed: &[i8], k: usize, n: usize) -> bool {
    let len = padded_k(k) * padded_n(n);
    assert!(w_packed.len() >= len, "avx2_safe: packed data too short");
    w_packed[..len].chunks_exact(2).all(|p| {
        let (w0, w1) = (p[0] as i32, p[1] as i32);
        255 * (w0.max(0) + w1.max(0)) <= i16::MAX as i32
            && 255 * (w0.min(0) + w1.min(0)) >= i16::MIN as i32
    })
}

/// Owned packed weights, built at compile time by codegen (or at run time by tests / callers
/// with dynamic weights).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq)]
pub struct PackedI8Owned {
    pub k: usize,
    pub n: usize,
    pub data: Vec<i8>,
    pub colsum: Vec<i32>,
    pub zero_point: Vec<i32>,
    pub scale: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub avx2_safe: bool,
}

#[cfg(feature = "alloc")]
impl PackedI8Owned {
    /// Packs row-major `[K][N]` weights. `zero_points` / `scales` have length 1 (per tensor) or
    /// n (per column); zero points are in the original domain of the weights (i8 or u8). bias
    /// length n.
    pub fn pack(
        w: Weights<'_>,
        k: usize,
        n: usize,
        zero_points: &[i32],
        scales: &[f32],
        bias: Option<&[f32]>,
    ) -> Self {
        assert_eq!(w.len(), k * n, "pack: weights are not K x N");
        Self::pack_with(w, k, n, zero_points, scales, bias, |kk, nn| kk * n + nn)
    }

    /// Packs transposed weights given as row-major `[N][K]` (e.g. Gemm `transB = 1`); otherwise
    /// as [`PackedI8Owned::pack`].
    pub fn pack_transposed(
        w: Weights<'_>,
        k: usize,
        n: usize,
        zero_points: &[i32],
        scales: &[f32],
        bias: Option<&[f32]>,
    ) -> Self {
        assert_eq!(w.len(), k * n, "pack_transposed: weights are not N x K");
        Self::pack_with(w, k, n, zero_points, scales, bias, |kk, nn| nn * k + kk)
    }

    fn pack_with(
        w: Weights<'_>,
        k: usize,
        n: usize,
        zero_points: &[i32],
        scales: &[f32],
        bias: Option<&[f32]>,
        index: impl Fn(usize, usize) -> usize,
    ) -> Self {
        let per_col = |len: usize, what: &str| {
            assert!(len == 1 || len == n, "pack: {what} must have length 1 or n");
        };
        per_col(zero_points.len(), "zero_points");
        per_col(scales.len(), "scales");
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "pack: bias must have length n");
        }
        let (pk, pn) = (padded_k(k), padded_n(n));
        let mut data = alloc::vec![0i8; pk * pn];
        let mut colsum = alloc::vec![0i32; pn];
        for nn in 0..n {
            let mut s = 0i32;
            for kk in 0..k {
                let v = w.stored(index(kk, nn));
                data[packed_index(pk, kk, nn)] = v;
                s += v as i32;
            }
            colsum[nn] = s;
        }
        let pick = |v: &[i32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        let mut zero_point = alloc::vec![0i32; pn];
        let mut scale = alloc::vec![0f32; pn];
        for i in 0..n {
            zero_point[i] = pick(zero_points, i) + w.zp_shift();
            scale[i] = if scales.len() == 1 {
                scales[0]
            } else {
                scales[i]
            };
        }
        let bias = bias.map(|b| {
            let mut v = alloc::vec![0f32; pn];
            v[..n].copy_from_slice(b);
            v
        });
        let avx2_safe = avx2_safe(&data, k, n);
        PackedI8Owned {
            k,
            n,
            data,
            colsum,
            zero_point,
            scale,
            bias,
            avx2_safe,
        }
    }

    /// The packed data in `layout` instead of [`Layout::NATIVE`] (the same bytes, permuted
    /// within each panel; the per-column arrays do not depend on the layout). Codegen uses it
    /// to write the blob of a target it does not run on.
    pub fn data_in(&self, layout: Layout) -> Vec<i8> {
        if layout == Layout::NATIVE {
            return self.data.clone();
        }
        let (pk, pn) = (padded_k(self.k), padded_n(self.n));
        let mut out = alloc::vec![0i8; self.data.len()];
        for nn in 0..pn {
            for kk in 0..pk {
                out[layout.index(pk, kk, nn)] = self.data[Layout::NATIVE.index(pk, kk, nn)];
            }
        }
        out
    }

    /// The borrowed view the kernels take.
    pub fn as_ref(&self) -> PackedI8<'_> {
        PackedI8 {
            k: self.k,
            n: self.n,
            data: &self.data,
            colsum: &self.colsum,
            zero_point: &self.zero_point,
            scale: &self.scale,
            bias: self.bias.as_deref(),
            avx2_safe: self.avx2_safe,
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn padding() {
        assert_eq!(
            (padded_k(0), padded_k(1), padded_k(4), padded_k(5)),
            (0, 4, 4, 8)
        );
        assert_eq!(
            (padded_n(0), padded_n(1), padded_n(16), padded_n(17)),
            (0, 16, 16, 32)
        );
    }

    #[test]
    fn layout_round_trips_and_pads_with_zero() {
        for (k, n) in [(1, 1), (3, 17), (5, 16), (9, 33), (16, 5)] {
            let w: Vec<i8> = (0..k * n).map(|i| ((i * 37 + 11) % 255) as i8).collect();
            let wt: Vec<i8> = (0..k * n).map(|i| w[(i % k) * n + i / k]).collect();
            let p = PackedI8Owned::pack(Weights::I8(&w), k, n, &[3], &[0.5], None);
            let pt = PackedI8Owned::pack_transposed(Weights::I8(&wt), k, n, &[3], &[0.5], None);
            assert_eq!(p, pt);
            let r = p.as_ref();
            r.assert_valid();
            let mut nonzero = 0;
            for kk in 0..padded_k(k) {
                for nn in 0..padded_n(n) {
                    let v = r.get(kk, nn);
                    if kk < k && nn < n {
                        assert_eq!(v, w[kk * n + nn]);
                    } else {
                        assert_eq!(v, 0);
                    }
                    nonzero += (v != 0) as usize;
                }
            }
            assert_eq!(nonzero, r.data.iter().filter(|v| **v != 0).count());
            for nn in 0..padded_n(n) {
                let s: i32 = (0..k)
                    .map(|kk| if nn < n { w[kk * n + nn] as i32 } else { 0 })
                    .sum();
                assert_eq!(r.colsum[nn], s);
                assert_eq!(r.zero_point[nn], if nn < n { 3 } else { 0 });
                assert_eq!(r.scale[nn], if nn < n { 0.5 } else { 0.0 });
            }
        }
    }

    #[test]
    fn kr4_index_is_the_vpdpbusd_layout() {
        // [N/16][K/4][16][4], the formula the x86 and wasm32 kernels are written against.
        for (pk, k, n) in [(4, 0, 0), (4, 3, 15), (12, 9, 17), (20, 19, 40)] {
            let want = ((n / NR) * (pk / KR) + k / KR) * (NR * KR) + (n % NR) * KR + k % KR;
            assert_eq!(Layout::Kr4.index(pk, k, n), want);
        }
    }

    #[test]
    fn kr8_groups_are_usmmla_operands() {
        // pk = 20: two 8-deep groups (k 0..16), then one 4-deep group (k 16..20).
        let (pk, l) = (20, Layout::Kr8);
        assert_eq!((l.full_k(20), l.full_k(16), l.full_k(4)), (16, 16, 0));
        for p in 0..2 {
            let panel = p * pk * NR;
            for g in 0..2 {
                for j in 0..8 {
                    // 16 bytes at panel + 128g + 16j: [c 2j, k 8g..8g+8 | c 2j+1, the same k]
                    for t in 0..16 {
                        let (c, k) = (2 * j + t / 8, 8 * g + t % 8);
                        assert_eq!(l.index(pk, k, p * NR + c), panel + 128 * g + 16 * j + t);
                    }
                }
            }
            for c in 0..NR {
                for t in 0..KR {
                    assert_eq!(l.index(pk, 16 + t, p * NR + c), panel + 256 + 4 * c + t);
                }
            }
        }
    }

    #[test]
    fn layouts_are_permutations_within_panels() {
        for (k, n) in [
            (1, 1),
            (4, 16),
            (5, 17),
            (8, 3),
            (12, 33),
            (29, 20),
            (64, 48),
        ] {
            let (pk, pn) = (padded_k(k), padded_n(n));
            for l in [Layout::Kr4, Layout::Kr8] {
                let mut seen = alloc::vec![false; pk * pn];
                for nn in 0..pn {
                    for kk in 0..pk {
                        let i = l.index(pk, kk, nn);
                        assert!((nn / NR) * pk * NR <= i && i < (nn / NR + 1) * pk * NR);
                        assert!(!seen[i], "{l:?} k={k} n={n}: ({kk}, {nn}) collides");
                        seen[i] = true;
                    }
                }
            }
        }
    }

    #[test]
    fn data_in_either_layout() {
        for (k, n) in [(1, 1), (3, 17), (8, 16), (12, 5), (21, 33), (40, 20)] {
            let w: Vec<i8> = (0..k * n).map(|i| ((i * 53 + 7) % 255) as i8).collect();
            let p = PackedI8Owned::pack(Weights::I8(&w), k, n, &[0], &[1.0], None);
            assert_eq!(p.data_in(Layout::NATIVE), p.data);
            let pk = padded_k(k);
            for l in [Layout::Kr4, Layout::Kr8] {
                let d = p.data_in(l);
                assert_eq!(d.len(), p.data.len());
                for nn in 0..padded_n(n) {
                    for kk in 0..pk {
                        let want = if kk < k && nn < n { w[kk * n + nn] } else { 0 };
                        assert_eq!(d[l.index(pk, kk, nn)], want, "{l:?} ({kk}, {nn})");
                    }
                }
                assert_eq!(avx2_safe(&d, k, n), p.avx2_safe);
            }
        }
    }

    #[test]
    fn u8_weights_are_reencoded() {
        let w: Vec<u8> = (0..12).map(|i| (i * 23) as u8).collect();
        let p = PackedI8Owned::pack(
            Weights::U8(&w),
            3,
            4,
            &[0, 255, 128, 7],
            &[1.0, 2.0, 3.0, 4.0],
            Some(&[1.0, 2.0, 3.0, 4.0]),
        );
        let r = p.as_ref();
        for kk in 0..3 {
            for nn in 0..4 {
                assert_eq!(r.get(kk, nn) as i32, w[kk * 4 + nn] as i32 - 128);
            }
        }
        assert_eq!(&r.zero_point[..5], &[-128, 127, 0, -121, 0]);
        assert_eq!(r.bias.unwrap().len(), 16);
    }

    #[test]
    fn avx2_safety_proof() {
        // Pairs inside a k-group: (0,1) and (2,3). 127+127 saturates, 127+1 does not.
        let check = |col: [i8; 4]| {
            let p = PackedI8Owned::pack(Weights::I8(&col), 4, 1, &[0], &[1.0], None);
            p.avx2_safe
        };
        assert!(!check([127, 127, 0, 0]));
        assert!(!check([0, 0, -128, -128]));
        assert!(!check([-128, -1, 0, 0]));
        assert!(check([127, 1, 1, 127]));
        assert!(check([-128, 0, 0, -128]));
        assert!(check([127, -128, 127, -128]));
        // 255*(64+64) = 32640 fits; 255*(65+64) does not.
        assert!(check([64, 64, 0, 0]));
        assert!(!check([65, 64, 0, 0]));
        // 255*(-64-64) fits; -65-64 (-32895) does not.
        assert!(check([-64, -64, 0, 0]));
        assert!(!check([-65, -64, 0, 0]));
        // k=1 and k=3 within a group pair with padding, never with the next group.
        let p = PackedI8Owned::pack(Weights::I8(&[127, 127]), 2, 1, &[0], &[1.0], None);
        assert!(!p.avx2_safe);
        let p = PackedI8Owned::pack(Weights::I8(&[0, 127, 127, 0, 0]), 5, 1, &[0], &[1.0], None);
        assert!(p.avx2_safe, "(k1,k2) are not a maddubs pair");
    }
}
