//! The weight blob's declaration ([`__kiln_blob!`](crate::__kiln_blob)) and typed, `const`
//! views into it.
//!
//! Generated code declares `BLOB: Aligned<N>` with `__kiln_blob!` and builds every
//! packed-weight view as a `const`/`static` from it, so the bounds and alignment asserts below
//! run at compile time and the weights stay in read-only memory, never copied.
//!
//! How the bytes get into the binary is the one switch below (issue 21). On ELF targets whose
//! inline assembly is stable (x86, x86_64, aarch64, arm; Linux, Android, BSDs, bare metal) the
//! assembler embeds the file with `.incbin` and the blob is an `extern` static, so rustc and
//! LLVM never hold the bytes: a 227 MB float model no longer costs gigabytes of compiler memory.
//! Elsewhere (wasm32, Apple, Windows, …), or with `RUSTFLAGS="--cfg kiln_include_bytes"`, it is
//! `static BLOB: Aligned<N> = Aligned(*include_bytes!("…"))` as before.

/// 64-byte aligned bytes: each blob section starts at a multiple of 64 so that typed views are
/// aligned and packed panels start on cache lines.
#[repr(C, align(64))]
pub struct Aligned<const N: usize>(pub [u8; N]);

/// Declares the weight blob: `__kiln_blob!(static BLOB: N = "path", asm("symbol", "incbin
/// path", "section") [, link_section = "name"]);` where `path` is the blob file (absolute),
/// `symbol` a name unique to its content and section, `incbin path` the path escaped for the
/// assembler, `section` the ELF section (the `link_section` option's, or `.rodata.<symbol>`).
/// Without `asm(…)` it always uses `include_bytes!` (for relative paths, which `.incbin`
/// would resolve against the compiler's working directory instead of the source file).
#[cfg(all(
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm"
    ),
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "none"
    ),
    not(kiln_include_bytes)
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __kiln_blob {
    (static $name:ident: $len:literal = $path:literal, asm($sym:literal, $incbin:literal, $section:literal) $(, link_section = $ls:literal)?) => {
        // A COMDAT group named after the symbol: another object (another crate, or another
        // codegen unit) embedding the same bytes in the same section keeps one copy; within one
        // object `.ifndef` skips the second definition. `.hidden`: not exported from cdylibs.
        ::core::arch::global_asm!(
            ::core::concat!(".ifndef ", $sym),
            ::core::concat!(".pushsection ", $section, ",\"aG\",%progbits,", $sym, ",comdat"),
            ".balign 64",
            ::core::concat!(".globl ", $sym),
            ::core::concat!(".hidden ", $sym),
            ::core::concat!(".type ", $sym, ",%object"),
            ::core::concat!($sym, ":"),
            ::core::concat!(".incbin \"", $incbin, "\""),
            ::core::concat!(".size ", $sym, ", ", $len),
            ".popsection",
            ".endif",
            options(raw)
        );
        // SAFETY: the `global_asm!` above defines `$sym` as the bytes of `$path`, which are
        // `$len` bytes long: kiln wrote the file at compile time under a name holding its
        // content hash and length (`kiln-<hash><len in hex>.bin`, never rewritten with other
        // bytes), and measured `$len` from the same bytes. It is 64-byte aligned as `Aligned`
        // requires, in an allocated section that nothing writes to (no code refers to it but
        // through this shared static). `Aligned<N>` is `repr(C)` over `[u8; N]`: any bytes are valid. The
        // symbol name carries the blob's content hash, so a same-named definition that the
        // linker keeps instead (COMDAT) or that `.ifndef` found first has the same bytes.
        unsafe extern "C" {
            #[link_name = $sym]
            safe static $name: $crate::blob::Aligned<$len>;
        }
    };
    (static $name:ident: $len:literal = $path:literal $(, link_section = $ls:literal)?) => {
        $(#[unsafe(link_section = $ls)])?
        static $name: $crate::blob::Aligned<$len> = $crate::blob::Aligned(*include_bytes!($path));
    };
}
/// Declares the weight blob with `include_bytes!` (this target has no `.incbin` path; see the
/// other definition for the syntax).
#[cfg(not(all(
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm"
    ),
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "none"
    ),
    not(kiln_include_bytes)
)))]
#[doc(hidden)]
#[macro_export]
macro_rules! __kiln_blob {
    (static $name:ident: $len:literal = $path:literal $(, asm($sym:literal, $incbin:literal, $section:literal))? $(, link_section = $ls:literal)?) => {
        $(#[unsafe(link_section = $ls)])?
        static $name: $crate::blob::Aligned<$len> = $crate::blob::Aligned(*include_bytes!($path));
    };
}

macro_rules! view {
    ($(#[$m:meta])* $name:ident, $t:ty) => {
        $(#[$m])*
        pub const fn $name<const N: usize>(blob: &'static Aligned<N>, offset: usize, len: usize) -> &'static [$t] {
            let size = core::mem::size_of::<$t>();
            assert!(offset % 64 == 0, "blob section offsets are 64-byte aligned");
            assert!(len <= (N - offset) / size && offset <= N, "blob section out of bounds");
            // SAFETY: `blob` is 64-byte aligned and `offset` is a multiple of 64, so the pointer
            // is aligned for `$t` (align <= 8). The asserts keep `offset + len*size <= N`, inside
            // the `'static` array. `$t` is a plain integer/float type: every bit pattern is
            // valid. The blob was written little-endian and big-endian targets are rejected.
            unsafe { core::slice::from_raw_parts(blob.0.as_ptr().add(offset).cast::<$t>(), len) }
        }
    };
}

view!(
    /// `len` i8 values at byte `offset`.
    i8s, i8
);
view!(
    /// `len` u8 values at byte `offset`.
    u8s, u8
);
view!(
    /// `len` i32 values at byte `offset`.
    i32s, i32
);
view!(
    /// `len` i64 values at byte `offset`.
    i64s, i64
);
view!(
    /// `len` f32 values at byte `offset`.
    f32s, f32
);
view!(
    /// `len` f64 values at byte `offset`.
    f64s, f64
);
view!(
    /// `len` i16 values at byte `offset`.
    i16s, i16
);
view!(
    /// `len` u16 values at byte `offset`.
    u16s, u16
);
view!(
    /// `len` u32 values at byte `offset`.
    u32s, u32
);
view!(
    /// `len` u64 values at byte `offset`.
    u64s, u64
);

#[cfg(test)]
mod tests {
    use super::*;

    static B: Aligned<128> = {
        let mut b = [0u8; 128];
        b[64] = 0x00;
        b[65] = 0x00;
        b[66] = 0x80;
        b[67] = 0x3f; // 1.0f32 little-endian
        Aligned(b)
    };

    #[test]
    fn typed_views() {
        const F: &[f32] = f32s(&B, 64, 1);
        assert_eq!(F, &[1.0]);
        assert_eq!(i8s(&B, 0, 128).len(), 128);
    }

    #[test]
    #[should_panic]
    fn out_of_bounds_is_rejected() {
        let _ = f32s(&B, 64, 17);
    }
}
