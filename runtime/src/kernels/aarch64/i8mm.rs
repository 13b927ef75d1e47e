//! `aarch64-u8i8i32-i8mm-4x16`: u8 activations × i8 packed weights → i32 with USMMLA
//! (FEAT_I8MM: Cortex-A510/A710/X2+, Neoverse V1/N2/V2, Graviton 3/4, Apple M2+).
//!
//! `USMMLA vacc.4s, va.16b, vb.16b` multiplies a 2×8 u8 matrix (two A rows × 8 k) by an 8×2 s8
//! matrix (8 k × two columns) into 2×2 i32 lanes `[r0c0, r0c1, r1c0, r1c1]`: 32 MACs, u8 × s8
//! natively, so no sign trick is needed.
//!
//! Why it looks like this: aarch64 packs the weights in 8-deep k-groups (`pack::Layout::Kr8`),
//! so each 16-byte vector of a group is `[c k0..8, c+1 k0..8]`, USMMLA's weight operand as it
//! sits in memory: one `LDR q` per operand and no permute. The tile is 4 rows (2 row pairs) ×
//! 16 columns (8 column pairs) = 16 accumulators, so per 8 k it issues 16 USMMLA (512 MACs)
//! from 8 weight loads, each weight vector serving both row pairs. The A row pairs
//! `[r k0..8, r+1 k0..8]` are not in memory (A rows are row-major, shared with every other
//! kernel); one 16-byte load per row covers 16 k, and `ZIP1`/`ZIP2` on 64-bit lanes of two rows
//! give the row-pair operands of both 8-k steps. Per 16 k: 16 + 4 loads, 4 ZIPs, 32 USMMLA;
//! the compiled inner loop is 54 instructions per 1024 MACs. On the 4-deep layout this kernel
//! zipped pairs of groups on every weight load: about 116 instructions per 1024 MACs, 32 of
//! them ZIPs, A-pair inserts and zeroings, against 4 ZIPs now. Registers: 16 accumulators +
//! 4 A operands + the weight vectors (8 at most, each used twice right after its load) ≤ 28
//! of 32. A K tail of one 4-deep group (`padded_k % 8 == 4`) is zipped with zeros into 8-deep
//! operands, once per tile; an odd row count runs its last pair with a zero row. The
//! accumulator de-interleave (`ZIP1`/`ZIP2` on 64-bit lanes) also runs once per tile.
use core::arch::aarch64::*;
use core::arch::asm;
use core::ops::Range;

use super::epilogue_128;
use crate::kernels::{Job, Out};
use crate::pack::{Layout, NR, padded_k};

const MR: usize = 4;

/// Runs panels `panels` of `job`, all rows.
///
/// # Safety
/// The CPU has Advanced SIMD and FEAT_I8MM (`Isa::I8mm.available()`); otherwise as
/// [`super::neon::run`].
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
    debug_assert!(crate::Isa::I8mm.available());
    // SAFETY: forwarded from the caller's contract.
    unsafe { drive(job, out, panels) }
}

#[target_feature(enable = "neon,i8mm")]
unsafe fn drive(job: &Job<'_>, out: Out, panels: Range<usize>) {
    for p in panels {
        let mut r = 0;
        while r < job.m {
            let mr = MR.min(job.m - r);
            // SAFETY: r + mr <= m and p is a valid panel, as `tile` requires.
            unsafe {
                match mr {
                    4 => tile::<4>(job, out, r, p),
                    3 => tile::<3>(job, out, r, p),
                    2 => tile::<2>(job, out, r, p),
                    _ => tile::<1>(job, out, r, p),
                }
            }
            r += mr;
        }
    }
}

/// `acc += a (2×8 u8) · b (8×2 s8)`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn usmmla(acc: int32x4_t, a: uint8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of FEAT_I8MM, which this function's target features
    // require.
    unsafe {
        asm!(
            "usmmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Row pairs of an `R`-row tile.
const fn pairs(r: usize) -> usize {
    r.div_ceil(2)
}

/// One R x 16 tile at rows `r0..r0+R`, panel `p` (a missing odd row is computed on zeros and
/// dropped).
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
unsafe fn tile<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    let full = Layout::Kr8.full_k(pk);
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().add(p * pk * NR),
        )
    };
    // [row pair][column pair]; only the first pairs(R) row pairs are used.
    let mut acc = [[vdupq_n_s32(0); 8]; 2];
    // One 8-deep group at k = 8g: 8 weight operands, loaded as they are used.
    let mut step = |g: usize, ap: &[uint8x16_t; 2]| {
        for j in 0..8 {
            // SAFETY: 16 of the 128 bytes of 8-deep group g < full/8 of panel p.
            let bj = unsafe { vld1q_s8(b.add(g * NR * 8 + 16 * j)) };
            for (acc_p, ap_p) in acc.iter_mut().zip(ap).take(pairs(R)) {
                acc_p[j] = usmmla(acc_p[j], *ap_p, bj);
            }
        }
    };
    let zero = vdupq_n_u8(0);
    let mut g = 0;
    // 16 k per iteration: one 16-byte load per row, ZIP1/ZIP2 into the two steps' row pairs.
    while 8 * g + 16 <= full {
        let rows: [uint8x16_t; 4] = core::array::from_fn(|i| {
            if i < R {
                // SAFETY: 16 bytes at 8g of row r0+i < m (8g + 16 <= full <= pk).
                unsafe { vld1q_u8(a.add(i * pk + 8 * g)) }
            } else {
                zero
            }
        });
        let pair = |pi: usize, hi: bool| {
            let (x, y) = (
                vreinterpretq_u64_u8(rows[2 * pi]),
                vreinterpretq_u64_u8(rows[2 * pi + 1]),
            );
            vreinterpretq_u8_u64(if hi {
                vzip2q_u64(x, y)
            } else {
                vzip1q_u64(x, y)
            })
        };
        step(g, &[pair(0, false), pair(1, false)]);
        step(g + 1, &[pair(0, true), pair(1, true)]);
        g += 2;
    }
    // A last 8-deep group (full % 16 == 8): 8-byte loads.
    if 8 * g < full {
        let row = |i: usize| {
            if i < R {
                // SAFETY: 8 bytes at 8g of row r0+i < m (8g + 8 <= full <= pk).
                unsafe { vld1_u8(a.add(i * pk + 8 * g)) }
            } else {
                vdup_n_u8(0)
            }
        };
        step(
            g,
            &[vcombine_u8(row(0), row(1)), vcombine_u8(row(2), row(3))],
        );
    }
    // The 4-deep tail group (pk % 8 == 4): vector q holds columns 4q..4q+4 × 4 k; ZIP1/ZIP2
    // on 32-bit lanes with zeros give the 8-deep operands [c k0..4 0000, c+1 k0..4 0000] of
    // column pairs 2q and 2q+1, and the A rows are zero-extended to 8 bytes to match.
    if full < pk {
        let row = |i: usize| {
            if i < R {
                // SAFETY: the last 4 bytes (k = full..pk) of row r0+i < m.
                let v = unsafe { core::ptr::read_unaligned(a.add(i * pk + full).cast::<u32>()) };
                vcreate_u8(v as u64)
            } else {
                vdup_n_u8(0)
            }
        };
        let ap = [vcombine_u8(row(0), row(1)), vcombine_u8(row(2), row(3))];
        let z = vdupq_n_s32(0);
        for q in 0..4 {
            // SAFETY: 16 of the 64 bytes of the tail group, which follows the full groups.
            let t = vreinterpretq_s32_s8(unsafe { vld1q_s8(b.add(full * NR + 16 * q)) });
            let bz = [vzip1q_s32(t, z), vzip2q_s32(t, z)];
            for (h, bh) in bz.iter().enumerate() {
                let j = 2 * q + h;
                for (acc_p, ap_p) in acc.iter_mut().zip(&ap).take(pairs(R)) {
                    acc_p[j] = usmmla(acc_p[j], *ap_p, vreinterpretq_s8_s32(*bh));
                }
            }
        }
    }
    // acc[pi][j] = [r(2pi) c(2j), r(2pi) c(2j+1), r(2pi+1) c(2j), r(2pi+1) c(2j+1)].
    let sums: [[int32x4_t; 4]; R] = core::array::from_fn(|i| {
        let acc_p = &acc[i / 2];
        core::array::from_fn(|q| {
            let (x, y) = (
                vreinterpretq_s64_s32(acc_p[2 * q]),
                vreinterpretq_s64_s32(acc_p[2 * q + 1]),
            );
            vreinterpretq_s32_s64(if i % 2 == 0 {
                vzip1q_s64(x, y)
            } else {
                vzip2q_s64(x, y)
            })
        })
    });
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &sums, r0, p) };
}
