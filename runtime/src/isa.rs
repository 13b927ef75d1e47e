//! Instruction-set selection: detect the CPU once, let tests and benchmarks force a path.
//!
//! `Isa` is an ordered set of kernel families. A value of `Isa` says nothing about the CPU by
//! itself; kernels are only entered through [`Isa::resolve`], which falls back to the best
//! family the CPU really has, so a forced or stale value can never reach an illegal instruction.
//!
//! Families belong to one architecture each, and the order is per architecture: x86_64
//! `Scalar < Avx2 < AvxVnni < Avx512Vnni`, aarch64 `Scalar < Neon < Dotprod < I8mm`, wasm32
//! `Scalar < Simd128 < RelaxedSimd`. [`Isa::resolve`] walks down the requested family's own
//! chain to the best one the CPU has, and ends at `Scalar`; a family of another architecture
//! (e.g. `avx2` on an Arm CPU) therefore resolves to `Scalar`. The derived `Ord` compares the
//! discriminants, which increase along each chain, so `a <= b` is meaningful for two families of
//! the same architecture (and `Scalar` is below everything); across architectures it means
//! nothing and no code relies on it.
//!
//! Detection: x86_64 and aarch64 detect at run time with std (`is_*_feature_detected!`), else
//! from compile-time target features; wasm32 has no run-time detection (a module that contains
//! an instruction the engine lacks does not even load), so its families are the ones the build
//! enables: `-C target-feature=+simd128` and `+relaxed-simd`.
//!
//! Override: the environment variable
//! `KILN_ISA=scalar|avx2|avxvnni|avx512vnni|neon|dotprod|i8mm|simd128|relaxedsimd` (read once,
//! std only) or [`set_forced`] (any build). A forced ISA the CPU lacks falls back as above.
use core::sync::atomic::{AtomicU8, Ordering};

/// A family of kernels (an instruction set kiln has int8 kernels for). A generated `Model`
/// runs on [`Isa::current`] (the best family of this CPU, or the one `KILN_ISA` names) unless
/// built with `Model::with_isa`; any value is safe, since kernels are entered only through
/// [`Isa::resolve`], which falls back to a family the CPU has. Integer layers give the same
/// bits on every family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Isa {
    /// Portable Rust, the executable specification. Always available.
    Scalar = 1,
    /// x86_64 AVX2 + FMA (VPMADDUBSW/VPMADDWD int8 path).
    Avx2 = 2,
    /// x86_64 AVX-VNNI: 256-bit VPDPBUSD (Alder Lake+, Zen 5).
    AvxVnni = 3,
    /// x86_64 AVX-512 F/BW/VL + VNNI: 512-bit VPDPBUSD (Ice Lake+, Zen 4+).
    Avx512Vnni = 4,
    /// aarch64 Advanced SIMD without dot product (Cortex-A53/A72, Raspberry Pi 3/4): widening
    /// multiplies, exact.
    Neon = 5,
    /// aarch64 FEAT_DotProd: SDOT (Cortex-A55/A76+, Neoverse N1, Apple M1+).
    Dotprod = 6,
    /// aarch64 FEAT_I8MM: USMMLA 2×8·8×2 matrix multiply (Cortex-A510/A710+, Neoverse V1/N2+,
    /// Graviton 3+, Apple M2+).
    I8mm = 7,
    /// wasm32 simd128 (built with `-C target-feature=+simd128`).
    Simd128 = 8,
    /// wasm32 relaxed-simd `i32x4.relaxed_dot_i8x16_i7x16_add_s` (built with
    /// `-C target-feature=+simd128,+relaxed-simd`).
    RelaxedSimd = 9,
}

/// Every family, each architecture's chain in increasing order.
pub const ALL: [Isa; 9] = [
    Isa::Scalar,
    Isa::Avx2,
    Isa::AvxVnni,
    Isa::Avx512Vnni,
    Isa::Neon,
    Isa::Dotprod,
    Isa::I8mm,
    Isa::Simd128,
    Isa::RelaxedSimd,
];

/// The architecture a family runs on (`Any`: portable Rust).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arch {
    Any,
    X86_64,
    Aarch64,
    Wasm32,
}

impl Isa {
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
            Isa::I8mm => "i8mm",
            Isa::Simd128 => "simd128",
            Isa::RelaxedSimd => "relaxedsimd",
        }
    }

    const fn arch(self) -> Arch {
        match self {
            Isa::Scalar => Arch::Any,
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => Arch::X86_64,
            Isa::Neon | Isa::Dotprod | Isa::I8mm => Arch::Aarch64,
            Isa::Simd128 | Isa::RelaxedSimd => Arch::Wasm32,
        }
    }

    /// The family named `s` (case-insensitive; `relaxed-simd` is accepted too).
    pub fn parse(s: &str) -> Option<Isa> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("relaxed-simd") {
            return Some(Isa::RelaxedSimd);
        }
        ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(s))
    }

    fn from_u8(v: u8) -> Option<Isa> {
        ALL.into_iter().find(|i| *i as u8 == v)
    }

    /// Whether this CPU can run the family (std: run-time detection; no_std: compile-time
    /// target features).
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => x86::has_avxvnni(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => x86::has_avx512vnni(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => arm::has_neon(),
            #[cfg(target_arch = "aarch64")]
            Isa::Dotprod => arm::has_dotprod(),
            #[cfg(target_arch = "aarch64")]
            Isa::I8mm => arm::has_i8mm(),
            #[cfg(target_arch = "wasm32")]
            Isa::Simd128 => cfg!(target_feature = "simd128"),
            #[cfg(target_arch = "wasm32")]
            Isa::RelaxedSimd => cfg!(all(
                target_feature = "simd128",
                target_feature = "relaxed-simd"
            )),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every family this CPU can run, scalar first.
    pub fn all_available() -> impl Iterator<Item = Isa> {
        ALL.into_iter().filter(|i| i.available())
    }

    /// The best available family.
    pub fn best() -> Isa {
        ALL.into_iter()
            .rev()
            .find(|i| i.available())
            .unwrap_or(Isa::Scalar)
    }

    /// The family kernels should run: the forced one if set (env or API), else the best. Cached.
    pub fn current() -> Isa {
        let v = CURRENT.load(Ordering::Relaxed);
        if let Some(isa) = Isa::from_u8(v) {
            return isa;
        }
        let isa = initial().resolve();
        CURRENT.store(isa as u8, Ordering::Relaxed);
        isa
    }

    /// This family if the CPU has it, else the best available one below it on its own
    /// architecture's chain (see the module doc), else `Scalar`.
    pub fn resolve(self) -> Isa {
        ALL.into_iter()
            .rev()
            .find(|i| i.arch() == self.arch() && *i <= self && i.available())
            .unwrap_or(Isa::Scalar)
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// 0 = not decided yet.
static CURRENT: AtomicU8 = AtomicU8::new(0);

/// Serialises the unit tests that force a family: [`set_forced`] changes a process-wide
/// setting, and the test harness runs tests on several threads (two such tests at once made
/// each other's two calls run on different families: 1-ulp differences in bit-exact checks).
#[cfg(test)]
pub(crate) fn forced_test_lock() -> std::sync::MutexGuard<'static, ()> {
    extern crate std;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forces every later kernel call onto `isa` (resolved against the CPU), or back to automatic
/// selection with `None`. Returns the family that will actually run.
pub fn set_forced(isa: Option<Isa>) -> Isa {
    let resolved = match isa {
        Some(i) => i.resolve(),
        None => initial().resolve(),
    };
    CURRENT.store(resolved as u8, Ordering::Relaxed);
    resolved
}

#[cfg(feature = "std")]
fn initial() -> Isa {
    match std::env::var("KILN_ISA") {
        Ok(s) if !s.is_empty() => Isa::parse(&s).unwrap_or_else(Isa::best),
        _ => Isa::best(),
    }
}

#[cfg(not(feature = "std"))]
fn initial() -> Isa {
    Isa::best()
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    #[cfg(feature = "std")]
    pub fn has_avx2() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    /// FMA3 (the scalar float GEMM's hardware path, kiln-runtime ops::matmul).
    #[cfg(feature = "std")]
    pub fn has_fma() -> bool {
        std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(feature = "std"))]
    pub fn has_fma() -> bool {
        cfg!(target_feature = "fma")
    }
    #[cfg(feature = "std")]
    pub fn has_avxvnni() -> bool {
        has_avx2() && std::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(feature = "std")]
    pub fn has_avx512vnni() -> bool {
        has_avx2()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    /// VPERMB (AVX-512 VBMI): not part of [`Isa::Avx512Vnni`] (Cascade Lake has VNNI without
    /// it); kernels that use it check this as well.
    #[cfg(feature = "std")]
    pub fn has_avx512vbmi() -> bool {
        has_avx512vnni() && std::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(feature = "std"))]
    pub fn has_avx512vbmi() -> bool {
        has_avx512vnni() && cfg!(target_feature = "avx512vbmi")
    }
    #[cfg(not(feature = "std"))]
    pub fn has_avx2() -> bool {
        cfg!(all(target_feature = "avx2", target_feature = "fma"))
    }
    #[cfg(not(feature = "std"))]
    pub fn has_avxvnni() -> bool {
        has_avx2() && cfg!(target_feature = "avxvnni")
    }
    #[cfg(not(feature = "std"))]
    pub fn has_avx512vnni() -> bool {
        has_avx2()
            && cfg!(all(
                target_feature = "avx512f",
                target_feature = "avx512bw",
                target_feature = "avx512vl",
                target_feature = "avx512vnni"
            ))
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    #[cfg(feature = "std")]
    pub fn has_neon() -> bool {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(feature = "std")]
    pub fn has_dotprod() -> bool {
        has_neon() && std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(feature = "std")]
    pub fn has_i8mm() -> bool {
        has_dotprod() && std::arch::is_aarch64_feature_detected!("i8mm")
    }
    #[cfg(not(feature = "std"))]
    pub fn has_neon() -> bool {
        cfg!(target_feature = "neon")
    }
    #[cfg(not(feature = "std"))]
    pub fn has_dotprod() -> bool {
        has_neon() && cfg!(target_feature = "dotprod")
    }
    #[cfg(not(feature = "std"))]
    pub fn has_i8mm() -> bool {
        has_dotprod() && cfg!(target_feature = "i8mm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips() {
        for i in ALL {
            assert_eq!(Isa::parse(i.name()), Some(i));
        }
        assert_eq!(Isa::parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse"), None);
        assert_eq!(Isa::parse("I8MM"), Some(Isa::I8mm));
        assert_eq!(Isa::parse("relaxed-simd"), Some(Isa::RelaxedSimd));
    }

    #[test]
    fn chains_stay_on_their_architecture() {
        for i in ALL {
            let r = i.resolve();
            assert!(r == Isa::Scalar || r.arch() == i.arch(), "{i} -> {r}");
        }
        // Only one architecture's families (plus scalar) can be available.
        let archs = Isa::all_available().filter(|i| *i != Isa::Scalar);
        let mut first = None;
        for i in archs {
            assert_eq!(*first.get_or_insert(i.arch()) as u8, i.arch() as u8);
        }
        assert_eq!(Isa::Scalar.resolve(), Isa::Scalar);
        assert_eq!(Isa::best(), Isa::best().resolve());
    }

    /// CI runs the tests under emulated CPUs (qemu-aarch64 `-cpu cortex-a53|cortex-a76|max`)
    /// and says which family each must detect, so a detection bug cannot silently skip a path.
    #[cfg(feature = "std")]
    #[test]
    fn detects_the_family_ci_expects() {
        if let Ok(want) = std::env::var("KILN_EXPECT_BEST") {
            assert_eq!(Isa::best().name(), want.trim());
            assert_eq!(Isa::all_available().last(), Some(Isa::best()));
        }
    }

    /// Every x86 family the kernel reports (Linux /proc/cpuinfo flags, read independently of
    /// `is_x86_feature_detected!`) is one the tests iterate: a detection bug cannot make the
    /// `Isa::all_available()` loops silently skip AVX-VNNI or AVX-512 VNNI kernels.
    #[cfg(all(feature = "std", target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn every_family_the_cpu_reports_is_available() {
        extern crate std;
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return; // no procfs (a container without it): nothing independent to compare with
        };
        let flags: std::vec::Vec<&str> = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .and_then(|l| l.split(':').nth(1))
            .map(|f| f.split_whitespace().collect())
            .unwrap_or_default();
        let has = |names: &[&str]| names.iter().all(|n| flags.contains(n));
        let avx2 = has(&["avx2", "fma"]);
        let expect = [
            (Isa::Avx2, avx2),
            (Isa::AvxVnni, avx2 && has(&["avx_vnni"])),
            (
                Isa::Avx512Vnni,
                avx2 && has(&["avx512f", "avx512bw", "avx512vl", "avx512_vnni"]),
            ),
        ];
        for (isa, reported) in expect {
            assert_eq!(
                isa.available(),
                reported,
                "{isa}: /proc/cpuinfo says {reported}, detection says {}",
                isa.available()
            );
        }
    }

    #[test]
    fn resolve_never_exceeds_cpu() {
        for i in ALL {
            let r = i.resolve();
            assert!(r <= i && r.available());
        }
    }
}
