//! Instruction-set selection: detect the CPU once, let tests and benchmarks force a path.
//!
//! `Isa` is an ordered set of kernel families. A value of `Isa` says nothing about the CPU by
//! itself; kernels are only entered through [`Isa::resolve`], which falls back to the best
//! family the CPU really has, so a forced or stale value can never reach an illegal instruction.
//!
//! Override: the environment variable `KILN_ISA=scalar|avx2|avxvnni|avx512vnni` (read once, std
//! only) or [`set_forced`] (any build). A forced ISA the CPU lacks falls back as above.
use core::sync::atomic::{AtomicU8, Ordering};

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
}

pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

impl Isa {
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    pub fn parse(s: &str) -> Option<Isa> {
        ALL.into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
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
            #[cfg(not(target_arch = "x86_64"))]
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

    /// This family if the CPU has it, else the best available one below it.
    pub fn resolve(self) -> Isa {
        ALL.into_iter()
            .rev()
            .find(|i| *i <= self && i.available())
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
mod x86 {
    #[cfg(feature = "std")]
    pub fn has_avx2() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
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
    }

    #[test]
    fn resolve_never_exceeds_cpu() {
        for i in ALL {
            let r = i.resolve();
            assert!(r <= i && r.available());
        }
    }
}
