//! Typed, `const` views into the weight blob that generated code embeds with `include_bytes!`.
//!
//! Generated code declares `static BLOB: Aligned<N> = Aligned(*include_bytes!("…"));` and builds
//! every packed-weight view as a `const`/`static` from it, so the bounds and alignment asserts
//! below run at compile time and the weights stay in read-only memory, never copied.

/// 64-byte aligned bytes: each blob section starts at a multiple of 64 so that typed views are
/// aligned and packed panels start on cache lines.
#[repr(C, align(64))]
pub struct Aligned<const N: usize>(pub [u8; N]);

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
