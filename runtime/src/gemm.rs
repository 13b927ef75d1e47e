//! The fused int8 GEMM: u8 activations (quantized and packed by `quantize::quantize_pack_a`) ×
//! packed i8 weights ([`PackedI8`]) with the zero-point correction, dequantization, bias and
//! activation fused into the kernel epilogue; plus the integer-only variant for standalone
//! `MatMulInteger` and an unpacked scalar reference.
//!
//! Semantics (every ISA bit-identical; `kernels::generic` is the executable spec):
//!
//! ```text
//! acc[m][n] = Σ_k a[m][k] (u8) · b[k][n] (stored i8)                       wrapping i32
//! v[m][n]   = acc − za·colsum[n] − zero_point[n]·row_term[m]              wrapping i32
//! out       = act( (v as f32) · (a_scale · scale[n]) + bias[n] )          f32, in this order
//! ```
//!
//! with `row_term[m] = Σ_k a[m][k] − K·za`. Expanded, `v = Σ_k (a − za)(b − zb)`, which fits
//! i32 for K ≤ 33025 (codegen fuses only such layers; a larger K stays an unfused MatMulInteger). The scale product is computed first
//! in f32, no FMA is used, and without a bias nothing is added. `Activation` semantics are those
//! of VMAXPS/VMINPS: `Relu(x) = if x > 0 { x } else { 0 }` (NaN → 0, −0 → +0) and
//! `Clip(x) = min'(max'(x, lo), hi)` with `max'(a, b) = if a > b { a } else { b }`,
//! `min'(a, b) = if a < b { a } else { b }` (NaN → lo).
//!
//! Dispatch: every entry point calls `Isa::resolve` and then picks the kernel family
//! (AVX-512 VNNI 8×32, AVX-VNNI 6×16, AVX2 4×16 maddubs if `b.avx2_safe` else AVX2 exact
//! 2×16, scalar). With the `rayon` feature, large problems split the column panels across
//! threads. Sizes are checked once per call with `assert!`; no heap allocation per call.
//!
//! Measured (release, `gmacs` test below, Zen 5 at ≈ 4.3 GHz, 1 thread, other jobs running,
//! f32 epilogue with Relu included): AVX-512 VNNI 8×32 ≈ 500–525 GMAC/s for
//! 256³/512³/128×384×1536 (≈ 92–96 % of the 545 GMAC/s VPDPBUSD peak); AVX-VNNI 6×16 ≈ 255–265
//! (of ≈ 276); AVX2 maddubs 4×16 ≈ 95–135; AVX2 exact 2×16 ≈ 75; scalar ≈ 5. GEMV (M = 1) is
//! memory-bound: ≈ 115–140 GMAC/s (= GB/s of weights) with the weights in L2/L3, far above the
//! ≈ 34 GB/s DRAM stream, so from DRAM it runs at bandwidth.
use crate::isa::Isa;
use crate::kernels::{self, Job, Out};
use crate::pack::{NR, PackedI8, padded_k};
use crate::quantize::Range;

/// Activation fused into the epilogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    None,
    Relu,
    Clip {
        min: f32,
        max: f32,
    },
    /// GELU, erf form: `0.5·x·(1 + erf(x/√2))` (`ops::gelu`). The SIMD kernels leave
    /// it to a pass over each finished output row block (the rows are still in L1/L2).
    Gelu,
}

impl Activation {
    /// The scalar definition (matches VMAXPS/VMINPS operand semantics exactly).
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::Clip { min, max } => {
                let x = if x > min { x } else { min };
                if x < max { x } else { max }
            }
            Activation::Gelu => crate::ops::gelu::gelu_scalar(x),
        }
    }
}

/// One fused quantized GEMM: `out[m*ldc + n] = act((acc − za·colsum[n] − zero_point[n]·
/// row_term[m]) as f32 · (a_scale·scale[n]) + bias[n])`.
#[derive(Clone, Copy, Debug)]
pub struct QGemm<'a> {
    pub m: usize,
    /// `m` x `padded_k(b.k)` u8, row-major, padding zero (as written by `quantize_pack_a`).
    pub a: &'a [u8],
    /// `rowsum_m − K·za` per row (as written by `quantize_pack_a`).
    pub row_term: &'a [i32],
    pub a_zero_point: i32,
    pub a_scale: f32,
    pub b: PackedI8<'a>,
    pub act: Activation,
}

/// Which kernel a call runs, for tests, benchmarks and logs.
pub fn kernel_name(isa: Isa, b: &PackedI8<'_>) -> &'static str {
    match isa.resolve() {
        Isa::Avx512Vnni => "x86_64-u8i8i32-avx512vnni-8x32",
        Isa::AvxVnni => "x86_64-u8i8i32-avxvnni-6x16",
        Isa::Avx2 if b.avx2_safe => "x86_64-u8i8i32-avx2-4x16",
        Isa::Avx2 => "x86_64-u8i8i32-avx2exact-2x16",
        Isa::Scalar => "generic-u8i8i32-scalar",
        Isa::Neon => "aarch64-u8i8i32-neon-2x8",
        Isa::Dotprod => "aarch64-u8i8i32-dotprod-2x16",
        Isa::I8mm => "aarch64-u8i8i32-i8mm-4x16",
        // relaxed-simd builds run the simd128 kernel (kernels/wasm32/mod.rs says why).
        Isa::Simd128 | Isa::RelaxedSimd => "wasm32-u8i8i32-simd128-2x16",
    }
}

fn check(m: usize, a: &[u8], row_term: &[i32], b: &PackedI8<'_>, out_len: usize, ldc: usize) {
    b.assert_valid();
    let pk = padded_k(b.k);
    assert!(a.len() >= m * pk, "qgemm: A shorter than m x padded_k(k)");
    assert!(row_term.len() >= m, "qgemm: row_term shorter than m");
    assert!(ldc >= b.n, "qgemm: ldc < n");
    if m > 0 {
        assert!(out_len >= (m - 1) * ldc + b.n, "qgemm: output too short");
    }
}

/// Fused quantized GEMM with f32 output (see [`QGemm`]). Writes only columns `[0, n)` of
/// each of the `m` output rows (stride `ldc`).
pub fn qgemm_f32(isa: Isa, p: &QGemm<'_>, out: &mut [f32], ldc: usize) {
    qgemm_f32_range(isa, p, out, ldc, None)
}

/// [`qgemm_f32`] that also widens `range` by every value it writes (after the activation),
/// while each block of rows is still in cache: the min/max a consumer's dynamic quantization
/// needs, without its own pass over the output (see [`Range`]).
pub fn qgemm_f32_range(
    isa: Isa,
    p: &QGemm<'_>,
    out: &mut [f32],
    ldc: usize,
    range: Option<&Range>,
) {
    check(p.m, p.a, p.row_term, &p.b, out.len(), ldc);
    if p.m == 0 || p.b.n == 0 {
        return;
    }
    let job = Job {
        m: p.m,
        a: p.a,
        row_term: p.row_term,
        za: p.a_zero_point,
        b: p.b,
        ldc,
    };
    let isa = isa.resolve();
    if isa == Isa::Scalar {
        kernels::generic::gemm_f32(
            p.m,
            p.a,
            p.row_term,
            p.a_zero_point,
            p.a_scale,
            &p.b,
            p.act,
            out,
            ldc,
        );
        if let Some(r) = range {
            for row in out.chunks(ldc).take(p.m) {
                r.observe(isa, &row[..p.b.n]);
            }
        }
        return;
    }
    // GELU runs over each finished block of rows while it is in cache (`run_simd`); in the
    // AVX-512 epilogue itself it measured 1.5–2 % slower on MiniLM (register pressure).
    let gelu = p.act == Activation::Gelu;
    let dst = Out::F32 {
        ptr: out.as_mut_ptr(),
        a_scale: p.a_scale,
        act: if gelu { Activation::None } else { p.act },
    };
    run_simd(isa, &job, dst, p.b.avx2_safe, gelu, range);
}

/// Integer-only variant for standalone `MatMulInteger`:
/// `out[m*ldc + n] = acc − za·colsum[n] − zero_point[n]·row_term[m]` (wrapping i32).
#[allow(clippy::too_many_arguments)]
pub fn qgemm_i32(
    isa: Isa,
    m: usize,
    a: &[u8],
    row_term: &[i32],
    a_zero_point: i32,
    b: PackedI8<'_>,
    out: &mut [i32],
    ldc: usize,
) {
    check(m, a, row_term, &b, out.len(), ldc);
    if m == 0 || b.n == 0 {
        return;
    }
    let job = Job {
        m,
        a,
        row_term,
        za: a_zero_point,
        b,
        ldc,
    };
    let isa = isa.resolve();
    if isa == Isa::Scalar {
        kernels::generic::gemm_i32(m, a, row_term, a_zero_point, &b, out, ldc);
        return;
    }
    run_simd(
        isa,
        &job,
        Out::I32 {
            ptr: out.as_mut_ptr(),
        },
        b.avx2_safe,
        false,
        None,
    );
}

/// MACs below which a GEMM stays on the calling thread, and the least work per piece when it is
/// split (≈ 2 µs at the VNNI peak; a task hand-off costs ≈ 1 µs).
const PAR_MIN_MACS: usize = 1 << 20;

/// How a GEMM is cut into pieces for the thread pool: `row_block` rows (a multiple of 8, the
/// largest register tile) × `panel_block` column panels (a multiple of the kernels' panel group,
/// so no piece runs narrower tiles than the whole-matrix loop would). One piece = the whole
/// matrix when there is one thread or too little work.
fn split(m: usize, k: usize, panels: usize) -> (usize, usize) {
    let work = m * panels * NR * k.max(1);
    let n = crate::par::pieces(work, PAR_MIN_MACS);
    if n <= 1 {
        return (m, panels);
    }
    // GEMV-like calls use 4-panel tiles, the others 2-panel tiles.
    let group = if m <= 2 { 4 } else { 2 };
    let groups = panels.div_ceil(group);
    if groups >= n {
        // Column blocks only: every piece sweeps all rows over its own panels, like the
        // single-threaded loop (the panels stay in L1, A streams from L2).
        return (m, groups.div_ceil(n) * group);
    }
    // Few panels: one panel group per piece, and split the rows too.
    let row_blocks = n.div_ceil(groups);
    let rb = m.div_ceil(row_blocks).div_ceil(8) * 8;
    (rb.max(8), group)
}

/// Output bytes of one block of rows when a piece post-processes its result (GELU, min/max):
/// the block is finished across all the piece's panels and then post-processed while it is
/// still in L2 (tall 1×1 convolutions would otherwise sweep a multi-MB output once per panel
/// group and then once more for the min/max).
const POST_BLOCK_BYTES: usize = 96 << 10;
/// ... but at least this many rows, so the piece's panels of B are re-read from L2 at most
/// once per 64 rows of A.
const POST_BLOCK_MIN_ROWS: usize = 64;

/// Runs a resolved SIMD family over all panels, then GELU (if `gelu`) and the min/max (if
/// `range`) on each finished block of rows while it is still in cache. With `rayon` and enough
/// work the matrix is cut into several pieces per thread ([`split`]) that the pool balances
/// dynamically.
/// `fast_avx2` selects the maddubs kernel; it must only be true when `job.b.avx2_safe`
/// (tests pass `false` to force the exact kernel on safe matrices).
fn run_simd(isa: Isa, job: &Job<'_>, out: Out, fast_avx2: bool, gelu: bool, range: Option<&Range>) {
    debug_assert!(isa.available() && isa != Isa::Scalar);
    let fast_avx2 = fast_avx2 && job.b.avx2_safe;
    let panels = job.b.n.div_ceil(NR);
    let (rb, pb) = split(job.m, job.b.k, panels);
    let row_blocks = job.m.div_ceil(rb);
    let col_blocks = panels.div_ceil(pb);
    let pk = padded_k(job.b.k);
    let post = gelu || range.is_some();
    let piece = move |i: usize| {
        let (r0, p0) = ((i / col_blocks) * rb, (i % col_blocks) * pb);
        let (r1, p1) = ((r0 + rb).min(job.m), (p0 + pb).min(panels));
        let (c0, c1) = (p0 * NR, (p1 * NR).min(job.b.n));
        // Rows per kernel call: the whole piece, or blocks of POST_BLOCK_BYTES of output
        // (a multiple of 8, the register tile's height).
        let step = if post {
            (POST_BLOCK_BYTES / (4 * (c1 - c0)) / 8 * 8).max(POST_BLOCK_MIN_ROWS)
        } else {
            r1 - r0
        };
        // Without GELU the AVX-512 kernel takes the min/max from its registers.
        let kernel_mm = range.is_some() && !gelu && isa == Isa::Avx512Vnni;
        let mut b0 = r0;
        while b0 < r1 {
            let b1 = (b0 + step).min(r1);
            let mm = block(isa, job, out, fast_avx2, b0..b1, p0..p1, pk, kernel_mm);
            if let (Some(range), Some(mm)) = (range, mm) {
                range.include(mm);
            } else if let (true, Out::F32 { ptr, .. }) = (post, out) {
                // SAFETY: rows b0..b1 <= m and columns c0..c1 <= n lie inside the output
                // (validated by `check`), and this piece is the only writer of them (see
                // `block`); the kernel call has returned.
                let blk = unsafe {
                    core::slice::from_raw_parts_mut(
                        ptr.add(b0 * job.ldc + c0),
                        (b1 - b0 - 1) * job.ldc + (c1 - c0),
                    )
                };
                if let (true, Some(range)) = (gelu, range) {
                    // GELU and the min/max of its results in one pass over the block.
                    let mm =
                        crate::ops::gelu::gelu_rows_min_max(isa, blk, b1 - b0, c1 - c0, job.ldc);
                    range.include(mm);
                } else if gelu {
                    for r in 0..b1 - b0 {
                        crate::ops::gelu::gelu_inplace(isa, &mut blk[r * job.ldc..][..c1 - c0]);
                    }
                } else if let Some(range) = range {
                    let mm = crate::quantize::min_max_rows(isa, blk, b1 - b0, c1 - c0, job.ldc);
                    range.include(mm);
                }
            }
            b0 = b1;
        }
    };
    crate::par::for_each(row_blocks * col_blocks, piece);
}

/// One kernel call: rows `rows` × panels `panels` of `job` into `out`. With `min_max` (AVX-512
/// and f32 output only), returns the min/max of the values written.
#[allow(clippy::too_many_arguments)]
fn block(
    isa: Isa,
    job: &Job<'_>,
    out: Out,
    fast_avx2: bool,
    rows: core::ops::Range<usize>,
    panels: core::ops::Range<usize>,
    pk: usize,
    min_max: bool,
) -> Option<(f32, f32)> {
    let sub = Job {
        m: rows.end - rows.start,
        a: &job.a[rows.start * pk..],
        row_term: &job.row_term[rows.start..],
        ..*job
    };
    // SAFETY: row rows.start < m, so the offset stays inside the caller's output buffer (m
    // rows of stride ldc, validated by `check`).
    let out = unsafe { out.rows_from(rows.start, job.ldc) };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `isa` came from `Isa::resolve`, so the CPU has the family; sizes were validated
    // by `check` and `sub` is a row range of that job; `out` points at the caller's exclusive
    // output buffer and each piece of `run_simd` covers a disjoint block of rows × panels
    // (disjoint outputs).
    unsafe {
        use kernels::x86_64::{avx2, avx512vnni, avxvnni};
        match isa {
            Isa::Avx512Vnni if min_max => return Some(avx512vnni::run_min_max(&sub, out, panels)),
            Isa::Avx512Vnni => avx512vnni::run(&sub, out, panels),
            Isa::AvxVnni => avxvnni::run(&sub, out, panels),
            Isa::Avx2 => avx2::run(&sub, out, panels, fast_avx2),
            _ => unreachable!(),
        }
    }
    #[cfg(any(target_arch = "aarch64", target_arch = "wasm32"))]
    // SAFETY: as for x86_64: a resolved family of this architecture, validated sizes,
    // disjoint outputs per call.
    unsafe {
        let _ = fast_avx2;
        kernels::run_arch(isa, &sub, out, panels)
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "wasm32"
    )))]
    {
        let _ = (isa, panels, out, sub, fast_avx2, min_max);
        unreachable!("no SIMD family is available on this architecture")
    }
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "wasm32"
    ))]
    {
        let _ = min_max;
        None
    }
}

/// Test hook: run the AVX2 exact kernel even when the fast one would be chosen.
#[cfg(test)]
pub(crate) fn qgemm_f32_avx2_exact(p: &QGemm<'_>, out: &mut [f32], ldc: usize) {
    check(p.m, p.a, p.row_term, &p.b, out.len(), ldc);
    assert!(Isa::Avx2.available());
    if p.m == 0 || p.b.n == 0 {
        return;
    }
    let job = Job {
        m: p.m,
        a: p.a,
        row_term: p.row_term,
        za: p.a_zero_point,
        b: p.b,
        ldc,
    };
    run_simd(
        Isa::Avx2,
        &job,
        Out::F32 {
            ptr: out.as_mut_ptr(),
            a_scale: p.a_scale,
            act: p.act,
        },
        false,
        false,
        None,
    );
}

/// Test hook: i32 variant of [`qgemm_f32_avx2_exact`].
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn qgemm_i32_avx2_exact(
    m: usize,
    a: &[u8],
    row_term: &[i32],
    za: i32,
    b: PackedI8<'_>,
    out: &mut [i32],
    ldc: usize,
) {
    check(m, a, row_term, &b, out.len(), ldc);
    assert!(Isa::Avx2.available());
    if m == 0 || b.n == 0 {
        return;
    }
    let job = Job {
        m,
        a,
        row_term,
        za,
        b,
        ldc,
    };
    run_simd(
        Isa::Avx2,
        &job,
        Out::I32 {
            ptr: out.as_mut_ptr(),
        },
        false,
        false,
        None,
    );
}

/// Unpacked scalar reference for `MatMulInteger` on two activations (any u8/i8 mix):
/// `out[m][n] = Σ_k (a[m][k] − a_zp) · (b[k][n] − b_zp[n])` in wrapping i32. `a` is row-major
/// `m` x `k`, `b` row-major `k` x `n`, `b_zp` has length 1 (per tensor) or `n`, `out` is
/// `m` x `n`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_integer_ref<A: Copy + Into<i32>, B: Copy + Into<i32>>(
    a: &[A],
    a_zp: i32,
    b: &[B],
    b_zp: &[i32],
    m: usize,
    k: usize,
    n: usize,
    out: &mut [i32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && out.len() >= m * n);
    assert!(
        b_zp.len() == 1 || b_zp.len() == n,
        "matmul_integer_ref: b_zp length 1 or n"
    );
    for r in 0..m {
        for c in 0..n {
            let zb = if b_zp.len() == 1 { b_zp[0] } else { b_zp[c] };
            let mut s = 0i32;
            for kk in 0..k {
                let x: i32 = a[r * k + kk].into();
                let w: i32 = b[kk * n + c].into();
                s = s.wrapping_add((x - a_zp).wrapping_mul(w - zb));
            }
            out[r * n + c] = s;
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::pack::{PackedI8Owned, Weights, padded_k};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// splitmix64: a tiny deterministic generator for test data.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn f32(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Fill {
        Random,
        /// Every activation 255 and weights at one extreme value.
        Extreme(i32),
    }

    struct Case {
        m: usize,
        k: usize,
        n: usize,
        a: Vec<u8>,
        za: i32,
        row_term: Vec<i32>,
        /// Weights in the original domain, row-major K x N, with per-column zero points.
        w: Vec<i32>,
        zb: Vec<i32>,
        packed: PackedI8Owned,
        a_scale: f32,
        act: Activation,
    }

    #[allow(clippy::too_many_arguments)]
    fn make(
        m: usize,
        k: usize,
        n: usize,
        u8_weights: bool,
        za: i32,
        zb: i32,
        fill: Fill,
        seed: u64,
    ) -> Case {
        let mut rng = Rng(seed);
        let pk = padded_k(k);
        let mut a = std::vec![0u8; m * pk];
        let mut row_term = std::vec![0i32; m];
        for r in 0..m {
            for kk in 0..k {
                a[r * pk + kk] = match fill {
                    Fill::Random => rng.byte(),
                    Fill::Extreme(_) => 255,
                };
            }
            let s: i32 = a[r * pk..r * pk + k].iter().map(|&v| v as i32).sum();
            row_term[r] = s - k as i32 * za;
        }
        let w: Vec<i32> = (0..k * n)
            .map(|_| match fill {
                Fill::Random if u8_weights => rng.byte() as i32,
                Fill::Random => rng.byte() as i8 as i32,
                Fill::Extreme(v) => v,
            })
            .collect();
        // Per-tensor zero point half the time, else per column (zb for column 0).
        let per_col = rng.below(2) == 0;
        let lo = if u8_weights { 0 } else { -128 };
        let zbs: Vec<i32> = if per_col {
            (0..n)
                .map(|c| {
                    if c == 0 {
                        zb
                    } else {
                        lo + rng.below(256) as i32
                    }
                })
                .collect()
        } else {
            std::vec![zb]
        };
        let scales: Vec<f32> = if per_col {
            (0..n).map(|_| rng.f32(0.001, 0.1)).collect()
        } else {
            std::vec![rng.f32(0.001, 0.1)]
        };
        let bias: Option<Vec<f32>> =
            (rng.below(3) != 0).then(|| (0..n).map(|_| rng.f32(-5.0, 5.0)).collect());
        let packed = if u8_weights {
            let wb: Vec<u8> = w.iter().map(|&v| v as u8).collect();
            PackedI8Owned::pack(Weights::U8(&wb), k, n, &zbs, &scales, bias.as_deref())
        } else {
            let wb: Vec<i8> = w.iter().map(|&v| v as i8).collect();
            PackedI8Owned::pack(Weights::I8(&wb), k, n, &zbs, &scales, bias.as_deref())
        };
        let zb = (0..n)
            .map(|c| if per_col { zbs[c] } else { zbs[0] })
            .collect();
        let act = match rng.below(3) {
            0 => Activation::None,
            1 => Activation::Relu,
            _ => Activation::Clip {
                min: -1.5,
                max: 2.0,
            },
        };
        Case {
            m,
            k,
            n,
            a,
            za,
            row_term,
            w,
            zb,
            packed,
            a_scale: rng.f32(0.001, 0.05),
            act,
        }
    }

    /// Independent expectation: Σ (a − za)(w − zb) in i64, then the documented float epilogue.
    fn expected(c: &Case) -> (Vec<i32>, Vec<f32>) {
        let pk = padded_k(c.k);
        let b = c.packed.as_ref();
        let mut vi = std::vec![0i32; c.m * c.n];
        let mut vf = std::vec![0f32; c.m * c.n];
        for r in 0..c.m {
            for col in 0..c.n {
                let mut s = 0i64;
                for kk in 0..c.k {
                    s += (c.a[r * pk + kk] as i64 - c.za as i64)
                        * (c.w[kk * c.n + col] as i64 - c.zb[col] as i64);
                }
                let v = i32::try_from(s).expect("test sizes stay within i32");
                vi[r * c.n + col] = v;
                let mut f = v as f32 * (c.a_scale * b.scale[col]);
                if let Some(bias) = b.bias {
                    f += bias[col];
                }
                vf[r * c.n + col] = c.act.apply(f);
            }
        }
        (vi, vf)
    }

    /// Every kernel variant this CPU can run, by name.
    fn variants() -> Vec<(&'static str, Option<Isa>)> {
        let mut v: Vec<_> = Isa::all_available().map(|i| (i.name(), Some(i))).collect();
        if Isa::Avx2.available() {
            v.push(("avx2-exact", None));
        }
        v
    }

    fn check(c: &Case) {
        let (ei, ef) = expected(c);
        let b = c.packed.as_ref();
        let ldc = c.n + (c.m % 3);
        let len = c.m * ldc;
        for (name, isa) in variants() {
            let ctx = || {
                std::format!(
                    "{name} m={} k={} n={} za={} act={:?}",
                    c.m,
                    c.k,
                    c.n,
                    c.za,
                    c.act
                )
            };
            let mut oi = std::vec![i32::MIN; len];
            match isa {
                Some(isa) => qgemm_i32(isa, c.m, &c.a, &c.row_term, c.za, b, &mut oi, ldc),
                None => qgemm_i32_avx2_exact(c.m, &c.a, &c.row_term, c.za, b, &mut oi, ldc),
            }
            let p = QGemm {
                m: c.m,
                a: &c.a,
                row_term: &c.row_term,
                a_zero_point: c.za,
                a_scale: c.a_scale,
                b,
                act: c.act,
            };
            let mut of = std::vec![f32::from_bits(0x7fc0_1234); len];
            match isa {
                Some(isa) => qgemm_f32(isa, &p, &mut of, ldc),
                None => qgemm_f32_avx2_exact(&p, &mut of, ldc),
            }
            for r in 0..c.m {
                for col in 0..ldc {
                    let (gi, gf) = (oi[r * ldc + col], of[r * ldc + col]);
                    if col < c.n {
                        assert_eq!(gi, ei[r * c.n + col], "i32 [{r}][{col}] {}", ctx());
                        assert_eq!(
                            gf.to_bits(),
                            ef[r * c.n + col].to_bits(),
                            "f32 [{r}][{col}] {gf} {}",
                            ctx()
                        );
                    } else {
                        assert_eq!(gi, i32::MIN, "wrote past n: {}", ctx());
                        assert_eq!(gf.to_bits(), 0x7fc0_1234, "wrote past n: {}", ctx());
                    }
                }
            }
        }
    }

    const KS: [usize; 28] = [
        1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511,
        512, 513, 1023, 1024, 1025,
    ];
    const NS: [usize; 13] = [1, 3, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 100];
    const MS: [usize; 8] = [1, 2, 5, 6, 7, 8, 9, 13];

    #[test]
    fn table_of_shapes() {
        let mut i = 0u64;
        for &k in &KS {
            for &n in &NS {
                // Cycle M, weight type and zero points across the table instead of crossing them.
                let m = MS[i as usize % MS.len()];
                let u8w = i.is_multiple_of(2);
                let za = [0, 255, 128, 3][i as usize / 2 % 4];
                let zb = if u8w {
                    [0, 255, 128][i as usize % 3]
                } else {
                    [-128, 127, 0][i as usize % 3]
                };
                check(&make(m, k, n, u8w, za, zb, Fill::Random, i));
                i += 1;
            }
        }
    }

    #[test]
    fn every_m_for_small_shapes() {
        for m in 1..=17 {
            for (k, n) in [(1, 1), (4, 16), (9, 33), (20, 49)] {
                check(&make(
                    m,
                    k,
                    n,
                    m.is_multiple_of(2),
                    7,
                    3,
                    Fill::Random,
                    m as u64,
                ));
            }
        }
    }

    /// `qgemm_i32` and `qgemm_f32` (as bits) of case `c` on `isa`.
    fn outputs(isa: Isa, c: &Case) -> (Vec<i32>, Vec<u32>) {
        let b = c.packed.as_ref();
        let mut oi = std::vec![0i32; c.m * c.n];
        qgemm_i32(isa, c.m, &c.a, &c.row_term, c.za, b, &mut oi, c.n);
        let p = QGemm {
            m: c.m,
            a: &c.a,
            row_term: &c.row_term,
            a_zero_point: c.za,
            a_scale: c.a_scale,
            b,
            act: c.act,
        };
        let mut of = std::vec![0f32; c.m * c.n];
        qgemm_f32(isa, &p, &mut of, c.n);
        (oi, of.iter().map(|v| v.to_bits()).collect())
    }

    /// Every kernel against the scalar reference (`kernels::generic`), bit for bit, on the K
    /// tails of both packed layouts: padded K ≡ 0, 4, 8, 12 (mod 16) exercises the aarch64
    /// kernels' 16-k loop (i8mm), their single 8-deep step and their 4-deep last group, and the
    /// 4-deep groups of the others; odd M leaves i8mm a half row pair and every tile a row tail;
    /// N leaves column tails.
    #[test]
    fn every_kernel_equals_the_scalar_reference_on_tails() {
        let mut i = 0usize;
        for k in (1..=40).chain([61, 64, 67, 68, 72, 76, 257]) {
            for n in [1, 7, 16, 17, 33] {
                let (m, u8w) = (1 + i % 9, i.is_multiple_of(2));
                let c = make(m, k, n, u8w, [0, 255, 9][i % 3], 3, Fill::Random, i as u64);
                let want = outputs(Isa::Scalar, &c);
                for isa in Isa::all_available() {
                    let got = outputs(isa, &c);
                    assert!(got == want, "{isa} differs from scalar: m={m} k={k} n={n}");
                }
                i += 1;
            }
        }
    }

    /// The min/max gathered by `qgemm_f32_range` equals a fold over the whole output, and the
    /// output is the same as without it: tall matrices (several post-processing blocks of
    /// rows), GELU, strided output, u8/i8 weights with and without zero points, every ISA.
    #[test]
    fn range_is_the_min_max_of_the_output() {
        let mut seed = 7;
        for &(m, k, n) in &[(1, 5, 3), (9, 33, 17), (700, 40, 100), (300, 64, 1536)] {
            for (u8w, zb) in [(false, 0), (true, 131), (false, -3)] {
                seed += 1;
                let mut c = make(m, k, n, u8w, 11, zb, Fill::Random, seed);
                for act in [c.act, Activation::Gelu] {
                    c.act = act;
                    let ldc = n + 3;
                    let p = QGemm {
                        m,
                        a: &c.a,
                        row_term: &c.row_term,
                        a_zero_point: c.za,
                        a_scale: c.a_scale,
                        b: c.packed.as_ref(),
                        act,
                    };
                    for isa in Isa::all_available() {
                        let mut want = std::vec![0f32; m * ldc];
                        qgemm_f32(isa, &p, &mut want, ldc);
                        let mut got = std::vec![0f32; m * ldc];
                        let range = Range::new();
                        qgemm_f32_range(isa, &p, &mut got, ldc, Some(&range));
                        assert!(
                            got.iter()
                                .zip(&want)
                                .all(|(g, w)| g.to_bits() == w.to_bits()),
                            "{isa} m={m} k={k} n={n}: output differs with a range"
                        );
                        let fold = want
                            .chunks(ldc)
                            .flat_map(|r| &r[..n])
                            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                        assert_eq!(range.get(), fold, "{isa} m={m} k={k} n={n} {act:?}");
                    }
                }
            }
        }
    }

    /// GELU inside the GEMM (a pass over each finished block of rows) gives the same bits as
    /// the GEMM without activation followed by `ops::gelu` on the same ISA: one GELU
    /// definition, whichever way it is fused. Edge tiles (m, n not multiples of the tile) and a
    /// scale large enough to reach both tails of the table.
    #[test]
    fn fused_gelu_equals_the_gelu_op() {
        let mut seed = 40;
        for &(m, k, n) in &[(1, 7, 5), (13, 64, 47), (130, 96, 200)] {
            for (u8w, zb) in [(false, 0), (true, 131)] {
                seed += 1;
                let mut c = make(m, k, n, u8w, 11, zb, Fill::Random, seed);
                c.a_scale = 0.02;
                for isa in Isa::all_available() {
                    let p = |act| QGemm {
                        m,
                        a: &c.a,
                        row_term: &c.row_term,
                        a_zero_point: c.za,
                        a_scale: c.a_scale,
                        b: c.packed.as_ref(),
                        act,
                    };
                    let mut want = std::vec![0f32; m * n];
                    qgemm_f32(isa, &p(Activation::None), &mut want, n);
                    assert!(want.iter().any(|&v| v < -3.0) && want.iter().any(|&v| v > 3.0));
                    crate::ops::gelu::gelu_inplace(isa, &mut want);
                    let mut got = std::vec![0f32; m * n];
                    qgemm_f32(isa, &p(Activation::Gelu), &mut got, n);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), w.to_bits(), "{isa} m={m} k={k} n={n} [{i}]");
                    }
                }
            }
        }
    }

    #[test]
    fn saturation_needs_the_exact_path() {
        // 255·127 + 255·127 = 64770 > i16::MAX: maddubs would saturate to 32767.
        for (w, u8w, za, zb) in [
            (127, false, 0, 0),
            (-128, false, 255, 127),
            (255, true, 0, 0),
            (0, true, 255, 255),
        ] {
            for (m, k, n) in [(1, 2, 1), (5, 64, 17), (8, 257, 33)] {
                let c = make(m, k, n, u8w, za, zb, Fill::Extreme(w), 1);
                assert!(!c.packed.avx2_safe, "w={w} must be flagged unsafe");
                assert_eq!(
                    kernel_name(Isa::Avx2, &c.packed.as_ref()).contains("exact"),
                    Isa::Avx2.available()
                );
                check(&c);
            }
        }
        // Symmetric i8 weights in [-64, 64] (small enough) keep the fast path.
        let w: Vec<i8> = (0..64 * 8).map(|i| (i % 129 - 64) as i8).collect();
        let p = PackedI8Owned::pack(Weights::I8(&w), 64, 8, &[0], &[1.0], None);
        assert!(p.avx2_safe);
    }

    #[test]
    fn big_enough_to_split_across_threads() {
        // 3.3 M MAC and more: above the rayon threshold when that feature is on (and more than
        // one thread: RAYON_NUM_THREADS or the CPU count).
        check(&make(64, 513, 100, false, 255, -128, Fill::Random, 11));
        check(&make(2, 4096, 400, true, 0, 255, Fill::Random, 12));
        // Few panels, many rows: the split cuts rows too (blocks of 8k rows, a partial last one).
        check(&make(509, 512, 33, false, 7, 5, Fill::Random, 13));
    }

    #[test]
    fn empty_and_zero_k() {
        let c = make(3, 0, 5, false, 10, 1, Fill::Random, 9);
        check(&c);
        let b = c.packed.as_ref();
        let mut out = [1.0f32; 0];
        qgemm_f32(
            Isa::best(),
            &QGemm {
                m: 0,
                a: &[],
                row_term: &[],
                a_zero_point: 0,
                a_scale: 1.0,
                b,
                act: Activation::None,
            },
            &mut out,
            5,
        );
    }

    #[test]
    #[should_panic(expected = "output too short")]
    fn undersized_output_panics() {
        let c = make(4, 8, 20, false, 0, 0, Fill::Random, 1);
        let mut out = std::vec![0i32; 4 * 20 - 1];
        qgemm_i32(
            Isa::best(),
            4,
            &c.a,
            &c.row_term,
            0,
            c.packed.as_ref(),
            &mut out,
            20,
        );
    }

    #[test]
    fn activation_semantics() {
        let r = Activation::Relu;
        assert_eq!(r.apply(-0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(r.apply(f32::NAN), 0.0);
        assert_eq!(r.apply(2.5), 2.5);
        let c = Activation::Clip {
            min: -1.0,
            max: 1.0,
        };
        assert_eq!(
            (c.apply(f32::NAN), c.apply(-3.0), c.apply(3.0), c.apply(0.5)),
            (-1.0, -1.0, 1.0, 0.5)
        );
    }

    #[test]
    fn matmul_integer_ref_matches_naive() {
        let mut rng = Rng(5);
        let (m, k, n) = (7, 37, 11);
        let au: Vec<u8> = (0..m * k).map(|_| rng.byte()).collect();
        let ai: Vec<i8> = au.iter().map(|&v| v as i8).collect();
        let bu: Vec<u8> = (0..k * n).map(|_| rng.byte()).collect();
        let bi: Vec<i8> = bu.iter().map(|&v| v as i8).collect();
        let zps: Vec<i32> = (0..n as i32).map(|i| i * 9 - 50).collect();
        fn naive(
            a: &[i64],
            za: i64,
            b: &[i64],
            zb: &[i32],
            m: usize,
            k: usize,
            n: usize,
        ) -> Vec<i32> {
            let mut o = std::vec![0i32; m * n];
            for r in 0..m {
                for c in 0..n {
                    let z = if zb.len() == 1 { zb[0] } else { zb[c] } as i64;
                    let s: i64 = (0..k)
                        .map(|t| (a[r * k + t] - za) * (b[t * n + c] - z))
                        .sum();
                    o[r * n + c] = s as i32;
                }
            }
            o
        }
        let wide = |v: &[i32]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        let (au32, ai32): (Vec<i32>, Vec<i32>) = (
            au.iter().map(|&v| v as i32).collect(),
            ai.iter().map(|&v| v as i32).collect(),
        );
        let (bu32, bi32): (Vec<i32>, Vec<i32>) = (
            bu.iter().map(|&v| v as i32).collect(),
            bi.iter().map(|&v| v as i32).collect(),
        );
        for zb in [&[3][..], &zps[..]] {
            let mut out = std::vec![0i32; m * n];
            matmul_integer_ref(&au, 200, &bi, zb, m, k, n, &mut out);
            assert_eq!(out, naive(&wide(&au32), 200, &wide(&bi32), zb, m, k, n));
            matmul_integer_ref(&ai, -7, &bu, zb, m, k, n, &mut out);
            assert_eq!(out, naive(&wide(&ai32), -7, &wide(&bu32), zb, m, k, n));
            matmul_integer_ref(&ai, 0, &bi, zb, m, k, n, &mut out);
            assert_eq!(out, naive(&wide(&ai32), 0, &wide(&bi32), zb, m, k, n));
            matmul_integer_ref(&au, 255, &bu, zb, m, k, n, &mut out);
            assert_eq!(out, naive(&wide(&au32), 255, &wide(&bu32), zb, m, k, n));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn random_shapes(m in 1usize..20, k in 1usize..300, n in 1usize..70, u8w: bool,
                         za in prop_oneof![Just(0i32), Just(255), 0i32..256],
                         zsel in 0usize..3, seed: u64) {
            let zb = if u8w { [0, 255, 77][zsel] } else { [-128, 127, -3][zsel] };
            check(&make(m, k, n, u8w, za, zb, Fill::Random, seed));
        }
    }

    /// Rough throughput; run with
    /// `cargo test -p kiln-runtime --release -- --ignored --nocapture gmacs`.
    #[test]
    #[ignore]
    fn gmacs() {
        let shapes = [
            (256, 256, 256),
            (512, 512, 512),
            (128, 384, 1536),
            (1, 384, 1536),
            (1, 4096, 4096),
        ];
        for (m, k, n) in shapes {
            let c = make(m, k, n, false, 3, 0, Fill::Random, 1);
            // Halved weights ([-64, 63]) pass the AVX2 proof, so avx2 runs the fast kernel; the
            // full-range original runs the exact one.
            let w: Vec<i8> = c.w.iter().map(|&v| (v / 2) as i8).collect();
            let safe = PackedI8Owned::pack(Weights::I8(&w), k, n, &[0], &[0.01], None);
            assert!(safe.avx2_safe && !c.packed.avx2_safe);
            let exact = Isa::Avx2
                .available()
                .then_some((Isa::Avx2, c.packed.as_ref()));
            let mut out = std::vec![0f32; m * n];
            for (isa, b) in Isa::all_available()
                .map(|i| (i, safe.as_ref()))
                .chain(exact)
            {
                let p = QGemm {
                    m,
                    a: &c.a,
                    row_term: &c.row_term,
                    a_zero_point: c.za,
                    a_scale: c.a_scale,
                    b,
                    act: Activation::Relu,
                };
                let reps = (2e9 / (m * n * k) as f64).max(3.0) as usize;
                qgemm_f32(isa, &p, &mut out, n);
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    qgemm_f32(isa, &p, &mut out, n);
                }
                let dt = t.elapsed().as_secs_f64() / reps as f64;
                std::println!(
                    "{:32} m={m:4} k={k:5} n={n:5}: {:7.1} GMAC/s ({:.1} us)",
                    kernel_name(isa, &b),
                    (m * n * k) as f64 / dt / 1e9,
                    dt * 1e6
                );
            }
        }
    }
}
