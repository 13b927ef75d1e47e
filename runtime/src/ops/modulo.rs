//! ONNX `Mod` on one pair of elements, for every element type: `fmod` (the attribute
//! `fmod = 1`: the remainder of truncated division, the sign of the dividend, like C's `fmod`
//! and Rust's `%`) and `floor_mod` (`fmod = 0`: the sign of the divisor, like numpy's `mod` and
//! Python's `%`). Integer division by zero gives 0 (ONNX leaves it undefined, and generated code
//! must not trap); the most negative integer modulo -1 gives 0. Floats follow numpy: a zero
//! remainder takes the divisor's sign under `floor_mod`, `x mod ±inf` is `x` when the signs
//! agree and `±inf` otherwise, and `x mod 0` is NaN.
//! Generated code and the compiler's constant folding both call these.

/// The two `Mod` semantics of one element type.
pub trait Modulo: Copy {
    fn fmod(a: Self, b: Self) -> Self;
    fn floor_mod(a: Self, b: Self) -> Self;
}

macro_rules! modulo_float {
    ($($t:ty),*) => {$(
        impl Modulo for $t {
            #[inline(always)]
            fn fmod(a: Self, b: Self) -> Self {
                a % b
            }
            #[inline(always)]
            fn floor_mod(a: Self, b: Self) -> Self {
                let r = a % b;
                if r == 0.0 {
                    if b.is_sign_negative() { -0.0 } else { 0.0 }
                } else if (r < 0.0) != (b < 0.0) {
                    r + b
                } else {
                    r
                }
            }
        }
    )*};
}
modulo_float!(f32, f64);

macro_rules! modulo_int {
    ($($t:ty),*) => {$(
        impl Modulo for $t {
            #[inline(always)]
            fn fmod(a: Self, b: Self) -> Self {
                if b == 0 { 0 } else { a.wrapping_rem(b) }
            }
            #[inline(always)]
            #[allow(unused_comparisons)]
            fn floor_mod(a: Self, b: Self) -> Self {
                let r = Self::fmod(a, b);
                if r != 0 && ((r < 0) != (b < 0)) { r.wrapping_add(b) } else { r }
            }
        }
    )*};
}
modulo_int!(i8, i16, i32, i64, u8, u16, u32, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_semantics_match_python_and_c() {
        // Python: -7 % 3 == 2, 7 % -3 == -2; C: -7 % 3 == -1, 7 % -3 == 1.
        assert_eq!(i32::floor_mod(-7, 3), 2);
        assert_eq!(i32::floor_mod(7, -3), -2);
        assert_eq!(i32::floor_mod(-6, 3), 0);
        assert_eq!(i32::fmod(-7, 3), -1);
        assert_eq!(i32::fmod(7, -3), 1);
        assert_eq!(i8::floor_mod(i8::MIN, -1), 0);
        assert_eq!(u8::floor_mod(7, 0), 0);
        assert_eq!(u64::floor_mod(u64::MAX, 10), 5);
    }

    #[test]
    fn float_semantics_match_numpy() {
        assert_eq!(f32::floor_mod(-7.5, 2.0), 0.5);
        assert_eq!(f32::fmod(-7.5, 2.0), -1.5);
        assert!(f32::floor_mod(0.0, -2.0).is_sign_negative());
        assert!(f32::floor_mod(-0.0, 2.0).is_sign_positive());
        assert_eq!(f32::floor_mod(-3.0, f32::INFINITY), f32::INFINITY);
        assert_eq!(f32::floor_mod(3.0, f32::INFINITY), 3.0);
        assert_eq!(f32::floor_mod(1.0, f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(f32::floor_mod(f32::INFINITY, 2.0).is_nan());
        assert!(f64::floor_mod(1.0, 0.0).is_nan());
    }
}
