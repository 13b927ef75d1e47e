//! The int8 GEMM against an independent i64 reference, on every kernel this CPU runs.
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
    /// Weights the AVX2 proof accepts (stored i8 within ±64: i8 in [-64, 64], u8 in
    /// [64, 192]), a quarter of them at the edges, where a pair of products reaches
    /// 255·128 = 32640, just below i16::MAX: VPMADDUBSW runs, on real shapes.
    Narrow,
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
                Fill::Random | Fill::Narrow => rng.byte(),
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
            Fill::Narrow => {
                let edge = rng.below(4) == 0;
                let v = if edge {
                    [-64, 64][rng.below(2) as usize]
                } else {
                    rng.below(129) as i32 - 64
                };
                if u8_weights { v + 128 } else { v }
            }
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

/// The fast AVX2 kernel (VPMADDUBSW) on the shapes of real layers: weights the packer
/// proves safe, at large K and N, every kernel bit-exact against the i64 reference.
#[test]
fn narrow_weights_run_the_fast_avx2_kernel_on_real_shapes() {
    let shapes = [
        (1, 384, 1536),
        (7, 1536, 384),
        (16, 768, 768),
        (3, 1025, 100),
        (33, 257, 513),
        (2, 4096, 64),
    ];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let u8w = i % 2 == 1;
        let zb = if u8w {
            [128, 131, 0][i % 3]
        } else {
            [0, -3, 5][i % 3]
        };
        let c = make(
            m,
            k,
            n,
            u8w,
            [0, 255, 128][i % 3],
            zb,
            Fill::Narrow,
            100 + i as u64,
        );
        assert!(
            c.packed.avx2_safe,
            "m={m} k={k} n={n}: narrow weights must pass the proof"
        );
        if Isa::Avx2.available() {
            assert!(!kernel_name(Isa::Avx2, &c.packed.as_ref()).contains("exact"));
        }
        check(&c);
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
    fn naive(a: &[i64], za: i64, b: &[i64], zb: &[i32], m: usize, k: usize, n: usize) -> Vec<i32> {
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
                     zsel in 0usize..3, narrow: bool, seed: u64) {
        let zb = if u8w { [0, 255, 77][zsel] } else { [-128, 127, -3][zsel] };
        // Narrow weights (half the cases) take AVX2's fast kernel, saturation edges included.
        let fill = if narrow { Fill::Narrow } else { Fill::Random };
        let c = make(m, k, n, u8w, za, zb, fill, seed);
        prop_assert!(!narrow || c.packed.avx2_safe);
        check(&c);
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
