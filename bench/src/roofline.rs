//! Machine limits measured by microbenchmarks: int8 multiply-accumulate peaks of the three x86
//! families kiln has kernels for, and read bandwidth. Each figure is the best of several trials
//! (noise on a shared machine only ever makes a trial slower).
use std::hint::black_box;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub struct Roofline {
    /// int8 GMAC/s per core: VPDPBUSD zmm (AVX-512 VNNI), 12 independent accumulators.
    pub vnni512: Option<f64>,
    /// int8 GMAC/s per core: VPDPBUSD ymm (AVX-VNNI, VEX encoding).
    pub avxvnni: Option<f64>,
    /// int8 GMAC/s per core: VPMADDUBSW + VPMADDWD + VPADDD ymm (AVX2).
    pub avx2: Option<f64>,
    /// read bandwidth in GB/s (1e9 B/s) over a 256 MiB buffer, per thread count: (threads, GB/s).
    pub read_bw: Vec<(usize, f64)>,
    /// aggregate GMAC/s of kiln's ISA's loop run on `threads` threads at once (threads > 1):
    /// (threads, GMAC/s). Shows whether the cores really are separate (2 × the 1-core figure)
    /// or share execution units / are busy with other tenants.
    pub compute_mt: Vec<(usize, f64)>,
}

impl Roofline {
    /// Compute peak (GMAC/s) of the kernel family kiln dispatches to, on `threads` threads: the
    /// measured multi-thread aggregate if there is one, else threads × the one-core figure.
    pub fn peak_for(&self, isa: kiln::Isa, threads: usize) -> Option<f64> {
        if let Some(&(_, p)) = self.compute_mt.iter().find(|(t, _)| *t == threads) {
            return Some(p);
        }
        self.peak1(isa).map(|p| p * threads as f64)
    }

    /// One-core compute peak of a family.
    pub fn peak1(&self, isa: kiln::Isa) -> Option<f64> {
        match isa {
            kiln::Isa::Avx512Vnni => self.vnni512,
            kiln::Isa::AvxVnni => self.avxvnni,
            kiln::Isa::Avx2 => self.avx2,
            // Scalar, and the Arm / WebAssembly families (no microbenchmark for them here).
            _ => None,
        }
    }
    pub fn bw_for(&self, threads: usize) -> Option<f64> {
        self.read_bw
            .iter()
            .find(|(t, _)| *t == threads)
            .map(|&(_, b)| b)
    }
}

/// Runs every microbenchmark the CPU supports, `trials` times each (≥ 1). Compute trials are
/// short (≈ 3 ms at peak), so on a busy machine some of them run without being preempted.
pub fn measure(threads: &[usize], trials: usize) -> Roofline {
    let mut r = Roofline::default();
    #[cfg(target_arch = "x86_64")]
    {
        let best = |f: &dyn Fn() -> f64| (0..trials).map(|_| f()).fold(0.0, f64::max);
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512bw") {
            // SAFETY: the features were just detected.
            r.vnni512 = Some(best(&|| unsafe { x86::vpdpbusd_zmm(ITERS) }));
        }
        if is_x86_feature_detected!("avxvnni") {
            // SAFETY: the feature was just detected.
            r.avxvnni = Some(best(&|| unsafe { x86::vpdpbusd_ymm(ITERS) }));
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the feature was just detected.
            r.avx2 = Some(best(&|| unsafe { x86::maddubs_ymm(ITERS) }));
        }
    }
    for &t in threads.iter().filter(|&&t| t > 1) {
        let agg = (0..trials)
            .map(|_| {
                std::thread::scope(|s| {
                    let hs: Vec<_> = (0..t).map(|_| s.spawn(compute_loop)).collect();
                    hs.into_iter().map(|h| h.join().unwrap()).sum::<f64>()
                })
            })
            .fold(0.0, f64::max);
        if agg > 0.0 {
            r.compute_mt.push((t, agg));
        }
    }
    let buf = bandwidth_buffer();
    for &t in threads {
        let bw = (0..trials.div_ceil(2).max(2))
            .map(|_| read_bandwidth(&buf, t))
            .fold(0.0, f64::max);
        r.read_bw.push((t, bw));
    }
    r
}

/// One trial of the best int8 loop this CPU has (kiln's ISA), GMAC/s; 0 if none.
fn compute_loop() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (each arm): the features were just detected.
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512bw") {
            return unsafe { x86::vpdpbusd_zmm(ITERS) };
        }
        if is_x86_feature_detected!("avxvnni") {
            return unsafe { x86::vpdpbusd_ymm(ITERS) };
        }
        if is_x86_feature_detected!("avx2") {
            return unsafe { x86::maddubs_ymm(ITERS) };
        }
    }
    0.0
}

/// Iterations of the compute loops (each iteration is 12 (AVX2: 6) independent chains).
const ITERS: u64 = 2_000_000;
const BW_BYTES: usize = 256 << 20;

fn bandwidth_buffer() -> Vec<u64> {
    // Non-zero contents, written once so every page is really backed.
    (0..BW_BYTES / 8).map(|i| i as u64 ^ 0x9e37_79b9).collect()
}

/// GB/s of summing `buf`, split into `threads` contiguous parts on as many scoped threads.
fn read_bandwidth(buf: &[u64], threads: usize) -> f64 {
    let part = buf.len().div_ceil(threads);
    let t0 = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = buf
            .chunks(part)
            .map(|c| s.spawn(move || sum_u64(c)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .fold(0, u64::wrapping_add)
    });
    let dt = t0.elapsed().as_secs_f64();
    black_box(total);
    std::mem::size_of_val(buf) as f64 / dt / 1e9
}

fn sum_u64(c: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was just detected.
        return unsafe { x86::sum_avx512(c) };
    }
    // Eight independent lanes; the compiler vectorises this.
    let mut acc = [0u64; 8];
    let mut it = c.chunks_exact(8);
    for ch in &mut it {
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(ch[i]);
        }
    }
    it.remainder()
        .iter()
        .chain(acc.iter())
        .fold(0, |a, &b| a.wrapping_add(b))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    // The compute loops are inline assembly so the compiler can neither hoist the
    // loop-invariant multiplies nor spill accumulators: exactly `per_iter` instructions per
    // iteration on fixed registers, plus the loop counter.

    /// GMAC/s of VPDPBUSD zmm: 12 independent accumulators (≥ latency 4 × 2 per cycle), each
    /// instruction 64 u8×i8 multiply-accumulates.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn vpdpbusd_zmm(iters: u64) -> f64 {
        let a = _mm512_set1_epi8(black_box(3));
        let b = _mm512_set1_epi8(black_box(-5));
        let t0 = Instant::now();
        // SAFETY: register-only arithmetic; every register written is declared clobbered.
        unsafe {
            std::arch::asm!(
                "2:",
                "vpdpbusd zmm0, zmm12, zmm13",
                "vpdpbusd zmm1, zmm12, zmm13",
                "vpdpbusd zmm2, zmm12, zmm13",
                "vpdpbusd zmm3, zmm12, zmm13",
                "vpdpbusd zmm4, zmm12, zmm13",
                "vpdpbusd zmm5, zmm12, zmm13",
                "vpdpbusd zmm6, zmm12, zmm13",
                "vpdpbusd zmm7, zmm12, zmm13",
                "vpdpbusd zmm8, zmm12, zmm13",
                "vpdpbusd zmm9, zmm12, zmm13",
                "vpdpbusd zmm10, zmm12, zmm13",
                "vpdpbusd zmm11, zmm12, zmm13",
                "dec {n}",
                "jnz 2b",
                n = inout(reg) iters => _,
                in("zmm12") a, in("zmm13") b,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _,
                out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _,
                out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                options(nomem, nostack),
            );
        }
        let dt = t0.elapsed().as_secs_f64();
        (iters * 12 * 64) as f64 / dt / 1e9
    }

    /// GMAC/s of VPDPBUSD ymm, VEX-encoded (AVX-VNNI): 12 accumulators, 32 MACs each.
    ///
    /// # Safety
    /// The CPU supports AVX-VNNI.
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn vpdpbusd_ymm(iters: u64) -> f64 {
        let a = _mm256_set1_epi8(black_box(3));
        let b = _mm256_set1_epi8(black_box(-5));
        let t0 = Instant::now();
        // SAFETY: register-only arithmetic; every register written is declared clobbered.
        unsafe {
            std::arch::asm!(
                "2:",
                "{{vex}} vpdpbusd ymm0, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm1, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm2, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm3, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm4, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm5, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm6, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm7, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm8, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm9, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm10, ymm12, ymm13",
                "{{vex}} vpdpbusd ymm11, ymm12, ymm13",
                "dec {n}",
                "jnz 2b",
                n = inout(reg) iters => _,
                in("ymm12") a, in("ymm13") b,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                options(nomem, nostack),
            );
        }
        let dt = t0.elapsed().as_secs_f64();
        (iters * 12 * 32) as f64 / dt / 1e9
    }

    /// GMAC/s of the AVX2 int8 sequence VPMADDUBSW → VPMADDWD(·, 1) → VPADDD: 6 independent
    /// chains (all 16 VEX-addressable ymm registers in use), 32 MACs per sequence.
    ///
    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn maddubs_ymm(iters: u64) -> f64 {
        let a = _mm256_set1_epi8(black_box(3));
        let b = _mm256_set1_epi8(black_box(-5));
        let ones = _mm256_set1_epi16(1);
        let t0 = Instant::now();
        // SAFETY: register-only arithmetic; every register written is declared clobbered.
        unsafe {
            std::arch::asm!(
                "2:",
                "vpmaddubsw ymm0, ymm12, ymm13",
                "vpmaddubsw ymm1, ymm12, ymm13",
                "vpmaddubsw ymm2, ymm12, ymm13",
                "vpmaddubsw ymm3, ymm12, ymm13",
                "vpmaddubsw ymm4, ymm12, ymm13",
                "vpmaddubsw ymm5, ymm12, ymm13",
                "vpmaddwd ymm0, ymm0, ymm14",
                "vpmaddwd ymm1, ymm1, ymm14",
                "vpmaddwd ymm2, ymm2, ymm14",
                "vpmaddwd ymm3, ymm3, ymm14",
                "vpmaddwd ymm4, ymm4, ymm14",
                "vpmaddwd ymm5, ymm5, ymm14",
                "vpaddd ymm6, ymm6, ymm0",
                "vpaddd ymm7, ymm7, ymm1",
                "vpaddd ymm8, ymm8, ymm2",
                "vpaddd ymm9, ymm9, ymm3",
                "vpaddd ymm10, ymm10, ymm4",
                "vpaddd ymm11, ymm11, ymm5",
                "dec {n}",
                "jnz 2b",
                n = inout(reg) iters => _,
                in("ymm12") a, in("ymm13") b, in("ymm14") ones,
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                options(nomem, nostack),
            );
        }
        let dt = t0.elapsed().as_secs_f64();
        (iters * 6 * 32) as f64 / dt / 1e9
    }

    /// Sum of `c` with 8 zmm accumulators (512 bytes per iteration, unaligned loads).
    ///
    /// # Safety
    /// The CPU supports AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum_avx512(c: &[u64]) -> u64 {
        let mut acc = [_mm512_setzero_si512(); 8];
        let mut it = c.chunks_exact(64);
        for ch in &mut it {
            let p = ch.as_ptr();
            for (i, v) in acc.iter_mut().enumerate() {
                // SAFETY: `ch` holds 64 u64 = 8 vectors of 8; vector i is in bounds.
                *v = _mm512_add_epi64(*v, unsafe { _mm512_loadu_si512(p.add(8 * i).cast()) });
            }
        }
        let s = acc[1..].iter().fold(acc[0], |a, &b| _mm512_add_epi64(a, b));
        let lanes = _mm512_reduce_add_epi64(s) as u64;
        it.remainder().iter().fold(lanes, |a, &b| a.wrapping_add(b))
    }
}
