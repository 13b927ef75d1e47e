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
mod tests;
