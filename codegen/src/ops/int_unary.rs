//! `Abs`, `Neg` and `Sign` on integer tensors. Exports compute shapes and index arithmetic
//! with them (T5's relative-position buckets: `Abs(memory - context)` on int64), so they must
//! compile and, above all, fold when their input is constant. Wrapping semantics, like the
//! integer binary ops: `Abs`/`Neg` of the type's minimum is the minimum (what C, numpy and
//! onnxruntime give), never a panic.
use super::OutInfo;
use super::elementwise::UnaryOp;
use crate::ir::{DType, TensorData, Value};
use proc_macro2::TokenStream;
use quote::quote;

/// Whether `op` on `dt` is one of this module's integer cases (`Neg` has no unsigned types
/// in ONNX).
pub(crate) fn supports(op: UnaryOp, dt: DType) -> bool {
    let signed = matches!(dt, DType::I8 | DType::I16 | DType::I32 | DType::I64);
    let unsigned = matches!(dt, DType::U8 | DType::U16 | DType::U32 | DType::U64);
    match op {
        UnaryOp::Abs | UnaryOp::Sign => signed || unsigned,
        UnaryOp::Neg => signed,
        _ => false,
    }
}

/// Inference and folding when `op` on `x` is an integer case, else `None` (the float path).
pub(crate) fn infer(op: UnaryOp, x: &Value) -> Option<Vec<OutInfo>> {
    if !supports(op, x.dtype) {
        return None;
    }
    if let (Some(k), Some(s)) = (&x.konst, x.static_shape())
        && let Some(d) = fold(op, k)
    {
        return Some(vec![OutInfo::konst(s, d)]);
    }
    Some(vec![OutInfo::new(x.dtype, x.shape.clone())])
}

/// The generated per-element closure when `op` on `dt` is an integer case, else `None`.
pub(crate) fn closure(op: UnaryOp, dt: DType) -> Option<TokenStream> {
    if !supports(op, dt) {
        return None;
    }
    let t: TokenStream = dt.rust().parse().unwrap();
    let signed = matches!(dt, DType::I8 | DType::I16 | DType::I32 | DType::I64);
    let body = match (op, signed) {
        (UnaryOp::Abs, true) => quote!(x.wrapping_abs()),
        (UnaryOp::Neg, true) => quote!(x.wrapping_neg()),
        (UnaryOp::Sign, true) => quote!(x.signum()),
        (UnaryOp::Abs, false) => quote!(x),
        (UnaryOp::Sign, false) => quote!(if x > 0 { 1 } else { 0 }),
        _ => unreachable!("checked by supports()"),
    };
    Some(quote!(|x: #t| #body))
}

/// Compile-time twin of [`closure`].
trait IntUnary: Copy {
    fn apply(self, op: UnaryOp) -> Self;
}
macro_rules! signed {
    ($($t:ty),*) => {$(impl IntUnary for $t {
        fn apply(self, op: UnaryOp) -> Self {
            match op {
                UnaryOp::Abs => self.wrapping_abs(),
                UnaryOp::Neg => self.wrapping_neg(),
                _ => self.signum(),
            }
        }
    })*};
}
macro_rules! unsigned {
    ($($t:ty),*) => {$(impl IntUnary for $t {
        fn apply(self, op: UnaryOp) -> Self {
            match op {
                UnaryOp::Sign => <$t>::from(self > 0),
                _ => self,
            }
        }
    })*};
}
signed!(i8, i16, i32, i64);
unsigned!(u8, u16, u32, u64);

/// `op` applied to constant integer data; `None` for other element types.
pub(crate) fn fold(op: UnaryOp, k: &TensorData) -> Option<TensorData> {
    fn map<T: IntUnary>(v: &[T], op: UnaryOp) -> Vec<T> {
        v.iter().map(|&x| x.apply(op)).collect()
    }
    use TensorData as D;
    Some(match k {
        D::I8(v) => D::I8(map(v, op)),
        D::I16(v) => D::I16(map(v, op)),
        D::I32(v) => D::I32(map(v, op)),
        D::I64(v) => D::I64(map(v, op)),
        D::U8(v) => D::U8(map(v, op)),
        D::U16(v) => D::U16(map(v, op)),
        D::U32(v) => D::U32(map(v, op)),
        D::U64(v) => D::U64(map(v, op)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_like_numpy_including_the_minimum() {
        // numpy: np.abs(np.int8(-128)) == -128, -np.int64(min) == min, np.sign(-5) == -1.
        let k = TensorData::I8(vec![-128, -5, 0, 7, 127]);
        assert_eq!(
            fold(UnaryOp::Abs, &k),
            Some(TensorData::I8(vec![-128, 5, 0, 7, 127]))
        );
        assert_eq!(
            fold(UnaryOp::Neg, &k),
            Some(TensorData::I8(vec![-128, 5, 0, -7, -127]))
        );
        assert_eq!(
            fold(UnaryOp::Sign, &k),
            Some(TensorData::I8(vec![-1, -1, 0, 1, 1]))
        );
        let u = TensorData::U32(vec![0, 3, u32::MAX]);
        assert_eq!(
            fold(UnaryOp::Sign, &u),
            Some(TensorData::U32(vec![0, 1, 1]))
        );
        assert_eq!(fold(UnaryOp::Abs, &u), Some(u.clone()));
        assert!(!supports(UnaryOp::Neg, DType::U32));
        assert!(!supports(UnaryOp::Exp, DType::I64));
    }
}
