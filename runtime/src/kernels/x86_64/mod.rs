//! x86_64 kernels: AVX2 (VPMADDUBSW fast path and exact VPMADDWD path), AVX-VNNI (ymm
//! VPDPBUSD) and AVX-512 VNNI (zmm VPDPBUSD), plus the shared 256-bit epilogue.
//!
//! Each family exposes one `pub(crate) unsafe fn run(job, out, panels)` whose only safety
//! requirement beyond the validated [`Job`] is that the CPU has the family — `gemm.rs` calls it
//! only with an `Isa` obtained from `Isa::resolve`. The `#[target_feature]` functions stay
//! private to their module.
use core::arch::x86_64::*;

use super::{Job, Out};
use crate::gemm::Activation;
use crate::pack::NR;

pub(crate) mod avx2;
// AVX-512 and AVX-VNNI intrinsics / target features need Rust >= 1.89 (the workspace MSRV).
pub(crate) mod avx512vnni;
pub(crate) mod avxvnni;

// The kernels index the packed data as `Layout::Kr4` (one 64-byte k-group = one zmm).
const _: () = assert!(matches!(
    crate::pack::Layout::NATIVE,
    crate::pack::Layout::Kr4
));

/// `act` on 8 lanes with the reference semantics: VMAXPS(a, b) is exactly `a > b ? a : b` and
/// VMINPS(a, b) is `a < b ? a : b`, as in `Activation::apply` (NaN -> bound, -0.0 -> +0.0).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn act_256(f: __m256, act: Activation) -> __m256 {
    match act {
        // Gelu is applied by `qgemm_f32` after the kernel; kernels never see it.
        Activation::None | Activation::Gelu => f,
        Activation::Relu => _mm256_max_ps(f, _mm256_setzero_ps()),
        Activation::Clip { min, max } => {
            _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(min)), _mm256_set1_ps(max))
        }
    }
}

/// Epilogue for an `R` x 16 tile held as two ymm of i32 per row (columns 0..8 and 8..16 of
/// panel `p`), rows `r0..r0+R`: zero-point correction, then (f32 output) convert, scale, bias,
/// activation, and store only the columns `< job.b.n`.
///
/// # Safety
/// CPU has AVX2; `job` validated as documented on [`Job`]; `r0 + R <= job.m`; panel `p` is
/// inside `padded_n(b.n)`; `out` points at a buffer valid for `job.m` rows of stride `ldc`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn epilogue_256<const R: usize>(
    job: &Job<'_>,
    out: Out,
    acc: &[[__m256i; 2]; R],
    r0: usize,
    p: usize,
) {
    let col0 = p * NR;
    let width = NR.min(job.b.n - col0);
    let ld = |s: &[i32], h: usize| {
        // SAFETY: the per-column arrays have padded_n(n) >= col0 + 16 entries (validated).
        unsafe { _mm256_loadu_si256(s.as_ptr().add(col0 + 8 * h).cast()) }
    };
    let za = _mm256_set1_epi32(job.za);
    let zc = [
        _mm256_mullo_epi32(za, ld(job.b.colsum, 0)),
        _mm256_mullo_epi32(za, ld(job.b.colsum, 1)),
    ];
    let zb = [ld(job.b.zero_point, 0), ld(job.b.zero_point, 1)];
    // Symmetric weights: skip the row term (multiplied by 0), as in the AVX-512 epilogue.
    let zor = _mm256_or_si256(zb[0], zb[1]);
    let symmetric = _mm256_testz_si256(zor, zor) == 1;
    let correct = |i: usize, h: usize| {
        let c = _mm256_sub_epi32(acc[i][h], zc[h]);
        if symmetric {
            c
        } else {
            let rt = _mm256_set1_epi32(job.row_term[r0 + i]);
            _mm256_sub_epi32(c, _mm256_mullo_epi32(zb[h], rt))
        }
    };
    match out {
        Out::F32 { ptr, a_scale, act } => {
            let ldf = |s: &[f32], h: usize| {
                // SAFETY: as for `ld`.
                unsafe { _mm256_loadu_ps(s.as_ptr().add(col0 + 8 * h)) }
            };
            let sa = _mm256_set1_ps(a_scale);
            let s = [
                _mm256_mul_ps(sa, ldf(job.b.scale, 0)),
                _mm256_mul_ps(sa, ldf(job.b.scale, 1)),
            ];
            let bias = job.b.bias.map(|b| [ldf(b, 0), ldf(b, 1)]);
            for i in 0..R {
                let mut f = [_mm256_setzero_ps(); 2];
                for h in 0..2 {
                    let mut v = _mm256_mul_ps(_mm256_cvtepi32_ps(correct(i, h)), s[h]);
                    if let Some(b) = bias {
                        v = _mm256_add_ps(v, b[h]);
                    }
                    f[h] = act_256(v, act);
                }
                // SAFETY: row r0+i < m and columns col0..col0+width < n are inside the output
                // (validated); the temporary is a local array of 16 floats.
                unsafe {
                    let dst = ptr.add((r0 + i) * job.ldc + col0);
                    if width == NR {
                        _mm256_storeu_ps(dst, f[0]);
                        _mm256_storeu_ps(dst.add(8), f[1]);
                    } else {
                        let mut tmp = [0f32; NR];
                        _mm256_storeu_ps(tmp.as_mut_ptr(), f[0]);
                        _mm256_storeu_ps(tmp.as_mut_ptr().add(8), f[1]);
                        core::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, width);
                    }
                }
            }
        }
        Out::I32 { ptr } => {
            for i in 0..R {
                let v = [correct(i, 0), correct(i, 1)];
                // SAFETY: as for the f32 store.
                unsafe {
                    let dst = ptr.add((r0 + i) * job.ldc + col0);
                    if width == NR {
                        _mm256_storeu_si256(dst.cast(), v[0]);
                        _mm256_storeu_si256(dst.add(8).cast(), v[1]);
                    } else {
                        let mut tmp = [0i32; NR];
                        _mm256_storeu_si256(tmp.as_mut_ptr().cast(), v[0]);
                        _mm256_storeu_si256(tmp.as_mut_ptr().add(8).cast(), v[1]);
                        core::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, width);
                    }
                }
            }
        }
    }
}
