//! Borrowed input tensors and output views.
use crate::error::{Dims, ErrShape, Error};

/// Element types a model input or output can have.
pub trait Element: Copy + Default + Send + Sync + 'static {
    /// ONNX TensorProto.DataType code.
    const ONNX_TYPE: i32;
    const NAME: &'static str;
}
macro_rules! element {
    ($($t:ty => $code:expr, $name:expr;)*) => {$(
        impl Element for $t { const ONNX_TYPE: i32 = $code; const NAME: &'static str = $name; }
    )*};
}
element! {
    f32 => 1, "f32"; u8 => 2, "u8"; i8 => 3, "i8"; u16 => 4, "u16"; i16 => 5, "i16";
    i32 => 6, "i32"; i64 => 7, "i64"; bool => 9, "bool"; f64 => 11, "f64";
    u32 => 12, "u32"; u64 => 13, "u64";
}

/// An input tensor: borrowed data plus its shape (row-major, contiguous).
#[derive(Clone, Copy, Debug)]
pub struct TensorRef<'a, T> {
    data: &'a [T],
    shape: &'a [usize],
}

impl<'a, T> TensorRef<'a, T> {
    /// Fails if `data.len()` is not the product of `shape`.
    pub fn new(data: &'a [T], shape: &'a [usize]) -> Result<Self, Error> {
        let expected = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        match expected {
            Some(n) if n == data.len() => Ok(TensorRef { data, shape }),
            _ => Err(Error::DataLength {
                expected: expected.unwrap_or(usize::MAX),
                actual: data.len(),
                shape: ErrShape::new(shape),
            }),
        }
    }
    pub fn data(&self) -> &'a [T] {
        self.data
    }
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }
}

/// An output tensor borrowed from the model's workspace until the next `run`.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a, T> {
    data: &'a [T],
    shape: Dims,
}

impl<'a, T> TensorView<'a, T> {
    /// `data.len()` must equal the product of `shape` (generated code guarantees it).
    pub fn new(data: &'a [T], shape: &[usize]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        TensorView {
            data,
            shape: Dims::new(shape),
        }
    }
    pub fn data(&self) -> &'a [T] {
        self.data
    }
    pub fn shape(&self) -> &[usize] {
        self.shape.as_slice()
    }
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> alloc::vec::Vec<T>
    where
        T: Clone,
    {
        self.data.to_vec()
    }
}

/// Checks an input against its declared shape (symbolic dims match any size here; generated
/// code binds them and checks that inputs agree). The error keeps the declared shape, so that it
/// prints symbolic dims by name and says which axes differ.
pub fn check_shape(
    input: &'static str,
    actual: &[usize],
    expected: &'static [DimSpec],
) -> Result<(), Error> {
    let ok = actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(a, e)| match e {
            DimSpec::Fixed(e) => e == a,
            DimSpec::Named(_) => true,
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InputShape {
            input,
            expected,
            actual: ErrShape::new(actual),
        })
    }
}

/// One dimension of a declared input/output shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimSpec {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic dimension, decided per call (ONNX `dim_param`).
    Named(&'static str),
}

/// A fixed size prints as its number, a symbolic one as its name (`batch_size`).
impl core::fmt::Display for DimSpec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DimSpec::Fixed(n) => write!(f, "{n}"),
            DimSpec::Named(name) => f.write_str(name),
        }
    }
}
