//! ONNX `Cast` between f32, f64, i8, u8, i16, u16, i32, u32, i64, u64 and bool.
//!
//! Semantics (those of Rust `as`, which match onnxruntime's `static_cast` on x86_64 except
//! where C++ is undefined): float → int truncates toward zero and saturates, NaN → 0;
//! int → int wraps (two's complement); int/float → float rounds to nearest; anything → bool is
//! `!= 0` (so NaN → true); bool → number is 0 or 1.

/// Conversion with ONNX `Cast` semantics; implemented for every pair of supported types.
pub trait CastTo<U> {
    fn cast_to(self) -> U;
}

macro_rules! num_to_num {
    ($($t:ty),*) => { num_to_num!(@outer [$($t),*] [$($t),*]); };
    (@outer [$($t:ty),*] $all:tt) => { $( num_to_num!(@inner $t $all); )* };
    (@inner $t:ty [$($u:ty),*]) => {
        $(
            impl CastTo<$u> for $t {
                #[inline(always)]
                fn cast_to(self) -> $u {
                    self as $u
                }
            }
        )*
        impl CastTo<bool> for $t {
            #[inline(always)]
            #[allow(clippy::float_cmp)]
            fn cast_to(self) -> bool {
                self != (0 as $t)
            }
        }
        impl CastTo<$t> for bool {
            #[inline(always)]
            fn cast_to(self) -> $t {
                u8::from(self) as $t
            }
        }
    };
}

num_to_num!(f32, f64, i8, u8, i16, u16, i32, u32, i64, u64);

impl CastTo<bool> for bool {
    #[inline(always)]
    fn cast_to(self) -> bool {
        self
    }
}

/// `out[i] = x[i].cast_to()`. Panics if the lengths differ.
pub fn cast<T: CastTo<U> + Copy, U: Copy>(x: &[T], out: &mut [U]) {
    assert_eq!(x.len(), out.len(), "cast: length mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v.cast_to();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_to_int_truncates_and_saturates() {
        let x = [1.9f32, -1.9, 300.0, -300.0, f32::NAN, f32::INFINITY, -0.5];
        let mut o = [0u8; 7];
        cast(&x, &mut o);
        assert_eq!(o, [1, 0, 255, 0, 0, 255, 0]);
        let mut o = [0i8; 7];
        cast(&x, &mut o);
        assert_eq!(o, [1, -1, 127, -128, 0, 127, 0]);
        let mut o = [0i64; 7];
        cast(&x, &mut o);
        assert_eq!(o, [1, -1, 300, -300, 0, i64::MAX, 0]);
    }

    #[test]
    fn bool_and_int_casts() {
        let x = [0.0f32, -0.0, 2.0, f32::NAN];
        let mut b = [false; 4];
        cast(&x, &mut b);
        assert_eq!(b, [false, false, true, true]);
        let mut f = [0.0f64; 4];
        cast(&b, &mut f);
        assert_eq!(f, [0.0, 0.0, 1.0, 1.0]);
        let mut bb = [false; 4];
        cast(&b, &mut bb);
        assert_eq!(bb, b);
        let i = [-1i32, 256, 0, 70000];
        let mut u = [0u16; 4];
        cast(&i, &mut u);
        assert_eq!(u, [65535, 256, 0, 4464]);
        let mut ib = [true; 4];
        cast(&i, &mut ib);
        assert_eq!(ib, [true, true, false, true]);
        let big = [u64::MAX, 1 << 53];
        let mut g = [0f32; 2];
        cast(&big, &mut g);
        assert_eq!(g, [1.8446744e19, 9007199254740992.0]);
        assert_eq!(CastTo::<f32>::cast_to(0.1f64), 0.1f32);
    }
}
