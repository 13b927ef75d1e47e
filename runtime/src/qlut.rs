//! 8-bit → 8-bit lookup tables (issue 19.3). A static-QDQ chain of per-element float ops
//! between DequantizeLinear and QuantizeLinear (BatchNorm, HardSwish, bias Adds, Clip…) has
//! only 256 possible inputs per channel, so codegen evaluates the whole chain on each of them
//! once (`codegen/src/passes/qdq_lut.rs`, with the f32 operations of
//! [`crate::qlinear::qdq_map`]) and the run-time pass is one table lookup per element: the
//! result is the same bytes as the float chain, on every ISA.
use crate::isa::Isa;
use crate::qlinear::QAct;

/// `y[i] = lut[c][x[i]]` over an `outer × ch × inner` tensor, where `c` is the element's
/// channel and `lut` holds `ch` tables of 256 bytes indexed by the raw bits of `x` (an i8 `x`
/// indexes with `x as u8`) and holding the raw bits of `y`.
#[allow(clippy::too_many_arguments)]
pub fn qdq_lut<A: QAct, Y: QAct>(
    isa: Isa,
    x: &[A],
    outer: usize,
    ch: usize,
    inner: usize,
    lut: &[u8],
    y: &mut [Y],
) {
    let n = outer * ch * inner;
    assert!(x.len() >= n && y.len() >= n, "qdq_lut: buffers too short");
    assert!(lut.len() >= ch * 256, "qdq_lut: table too short");
    let (x, y) = (&A::as_bytes(x)[..n], &mut Y::as_bytes_mut(y)[..n]);
    if inner == 1 {
        // Channels innermost (NHWC): one table per element.
        for (xr, yr) in x.chunks_exact(ch).zip(y.chunks_exact_mut(ch)) {
            for (c, (&a, b)) in xr.iter().zip(yr.iter_mut()).enumerate() {
                *b = lut[c * 256 + a as usize];
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    let vbmi = isa.resolve() == Isa::Avx512Vnni && crate::isa::x86::has_avx512vbmi() && inner >= 64;
    #[cfg(not(target_arch = "x86_64"))]
    let vbmi = {
        let _ = isa;
        false
    };
    for (j, (xr, yr)) in x
        .chunks_exact(inner)
        .zip(y.chunks_exact_mut(inner))
        .enumerate()
    {
        let t: &[u8; 256] = lut[(j % ch) * 256..][..256].try_into().unwrap();
        if vbmi {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `vbmi` is true only when the CPU has AVX-512 F/BW/VBMI (checked above).
            unsafe {
                x86::lookup_vbmi(t, xr, yr)
            };
        } else {
            lookup_scalar(t, xr, yr);
        }
    }
}

fn lookup_scalar(t: &[u8; 256], x: &[u8], y: &mut [u8]) {
    for (&a, b) in x.iter().zip(y.iter_mut()) {
        *b = t[a as usize];
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// 64 lookups: two VPERMI2B each cover 128 entries (index bits 0–6), VPMOVB2M takes bit 7
    /// and a masked blend picks the half. A function with the target features, not a closure,
    /// so that it inlines with one codegen unit (tools/check_inlining.sh).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn look(t0: __m512i, t1: __m512i, t2: __m512i, t3: __m512i, v: __m512i) -> __m512i {
        let lo = _mm512_permutex2var_epi8(t0, v, t1);
        let hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi)
    }

    /// `y[i] = t[x[i]]`, 64 bytes per step ([`look`]), the tail masked.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) fn lookup_vbmi(t: &[u8; 256], x: &[u8], y: &mut [u8]) {
        assert_eq!(x.len(), y.len());
        let tp = t.as_ptr();
        // SAFETY: `t` has 256 bytes: four unaligned 64-byte loads at 0, 64, 128, 192.
        let (t0, t1, t2, t3) = unsafe {
            (
                _mm512_loadu_si512(tp.cast()),
                _mm512_loadu_si512(tp.add(64).cast()),
                _mm512_loadu_si512(tp.add(128).cast()),
                _mm512_loadu_si512(tp.add(192).cast()),
            )
        };
        let n = x.len();
        let mut i = 0;
        while i + 64 <= n {
            // SAFETY: `i + 64 <= n` = `x.len()` = `y.len()`: both 64-byte accesses are in
            // bounds (unaligned load/store).
            unsafe {
                let v = _mm512_loadu_si512(x.as_ptr().add(i).cast());
                _mm512_storeu_si512(y.as_mut_ptr().add(i).cast(), look(t0, t1, t2, t3, v));
            }
            i += 64;
        }
        if i < n {
            let m: __mmask64 = (1u64 << (n - i)) - 1;
            // SAFETY: the mask covers only the `n − i < 64` bytes left in both slices; masked
            // lanes are neither read nor written (AVX-512BW masked byte load/store).
            unsafe {
                let v = _mm512_maskz_loadu_epi8(m, x.as_ptr().add(i).cast());
                _mm512_mask_storeu_epi8(y.as_mut_ptr().add(i).cast(), m, look(t0, t1, t2, t3, v));
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Every ISA gives the scalar table's bytes, for long runs (vector body + masked tail),
    /// channels-innermost and i8 in/out.
    #[test]
    fn lut_matches_direct_lookup_on_every_isa() {
        let ch = 3;
        let lut: Vec<u8> = (0..ch * 256)
            .map(|i| (i * 37 + i / 256 * 11) as u8)
            .collect();
        for &(outer, inner) in &[(2usize, 200usize), (1, 64), (3, 1), (1, 7), (2, 130)] {
            let n = outer * ch * inner;
            let x: Vec<u8> = (0..n).map(|i| (i * 101 + 7) as u8).collect();
            let want: Vec<u8> = (0..n)
                .map(|i| lut[(i / inner) % ch * 256 + x[i] as usize])
                .collect();
            for isa in Isa::all_available() {
                let mut y = std::vec![0u8; n];
                qdq_lut(isa, &x, outer, ch, inner, &lut, &mut y);
                assert_eq!(y, want, "{isa:?} outer {outer} inner {inner}");
                let xi: Vec<i8> = x.iter().map(|&v| v as i8).collect();
                let mut yi = std::vec![0i8; n];
                qdq_lut(isa, &xi, outer, ch, inner, &lut, &mut yi);
                assert!(
                    yi.iter().zip(&want).all(|(&a, &b)| a as u8 == b),
                    "{isa:?} i8"
                );
            }
        }
    }
}
