//! Run-time errors returned by generated `Model::run`.
use crate::tensor::DimSpec;
use core::fmt;

/// Shapes in errors are kept inline so that building an error never allocates.
pub const MAX_RANK: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    len: usize,
    dims: [usize; MAX_RANK],
}

impl Dims {
    /// Records up to `MAX_RANK` dimensions; longer shapes keep their rank and first dims.
    pub fn new(shape: &[usize]) -> Self {
        let mut dims = [0; MAX_RANK];
        for (d, s) in dims.iter_mut().zip(shape) {
            *d = *s;
        }
        Dims {
            len: shape.len(),
            dims,
        }
    }
    pub fn as_slice(&self) -> &[usize] {
        &self.dims[..self.len.min(MAX_RANK)]
    }
    pub fn rank(&self) -> usize {
        self.len
    }
}

impl fmt::Debug for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Dims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.len > MAX_RANK {
            f.write_str(", …")?;
        }
        f.write_str("]")
    }
}

/// A shape inside an error: inline and compact (u32 dims, which every real tensor fits; larger
/// values saturate), so that `Result<_, Error>` stays small.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ErrShape {
    len: u8,
    dims: [u32; MAX_RANK],
}

impl ErrShape {
    pub fn new(shape: &[usize]) -> Self {
        let mut dims = [0; MAX_RANK];
        for (d, s) in dims.iter_mut().zip(shape) {
            *d = u32::try_from(*s).unwrap_or(u32::MAX);
        }
        ErrShape {
            len: shape.len().min(u8::MAX as usize) as u8,
            dims,
        }
    }
    pub fn rank(&self) -> usize {
        self.len as usize
    }
    /// The recorded dims (the first `MAX_RANK` of a longer shape).
    pub fn dims(&self) -> impl Iterator<Item = usize> + '_ {
        self.dims[..self.rank().min(MAX_RANK)]
            .iter()
            .map(|&d| d as usize)
    }
}

impl fmt::Debug for ErrShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ErrShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.rank() > MAX_RANK {
            f.write_str(", …")?;
        }
        f.write_str("]")
    }
}

/// Everything that can go wrong when running a compiled model.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `TensorRef::new` was given a data slice whose length does not match the shape.
    DataLength {
        expected: usize,
        actual: usize,
        shape: ErrShape,
    },
    /// An input's shape does not match what the model declares (`expected`, with its symbolic
    /// dims by name, as in the generated `INPUT_SHAPES`).
    InputShape {
        input: &'static str,
        expected: &'static [DimSpec],
        actual: ErrShape,
    },
    /// A symbolic dimension was bound to two different values by two inputs.
    DimMismatch {
        dim: &'static str,
        first: usize,
        second: usize,
        input: &'static str,
    },
    /// A caller-provided arena is too small for the model (`needed` is `ARENA_BYTES`).
    ArenaTooSmall { needed: usize, actual: usize },
    /// A caller-provided arena does not start at a multiple of `align` (`ARENA_ALIGN`); it
    /// starts `offset` bytes past one.
    ArenaMisaligned { align: usize, offset: usize },
    /// `run_in` was called on a model with symbolic dims (`dims`), whose buffer sizes are only
    /// known per call; the caller-provided arena needs static shapes.
    StaticShapesRequired { dims: &'static str },
    /// An index tensor holds a value outside the valid range of the axis it indexes
    /// (`value` names the model input or intermediate holding the indices).
    IndexOutOfRange {
        value: &'static str,
        node: &'static str,
        index: i64,
        len: usize,
    },
    /// A symbolic dimension is larger than the model allows (e.g. a sequence longer than the
    /// position-embedding table).
    DimTooLarge {
        dim: &'static str,
        value: usize,
        max: usize,
        node: &'static str,
    },
    /// An input dimension is too small for a window (convolution kernel or pooling window,
    /// after padding): `expr` (a size expression over the input's dims, e.g. `height - 3`)
    /// evaluated to `value` < 0.
    DimTooSmall {
        expr: &'static str,
        value: i64,
        node: &'static str,
    },
    /// Two sizes a node needs equal differ for these input dims (e.g. an upsampled feature map
    /// and a skip connection when the image size is not a multiple of the network's stride).
    DimsDiffer {
        node: &'static str,
        left: &'static str,
        left_value: usize,
        right: &'static str,
        right_value: usize,
    },
    /// A value computed at run time is invalid for an op (e.g. an index out of range).
    Invalid {
        node: &'static str,
        what: &'static str,
    },
}

impl Error {
    /// Fills in which value and node an `IndexOutOfRange` came from (generated code knows them,
    /// the kernels do not).
    pub fn at(self, value: &'static str, node: &'static str) -> Self {
        match self {
            Error::IndexOutOfRange { index, len, .. } => Error::IndexOutOfRange {
                value,
                node,
                index,
                len,
            },
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DataLength {
                expected,
                actual,
                shape,
            } => write!(
                f,
                "tensor data has {actual} elements but shape {shape} needs {expected}"
            ),
            Error::InputShape {
                input,
                expected,
                actual,
            } => input_shape(f, input, expected, actual),
            Error::DimMismatch {
                dim,
                first,
                second,
                input,
            } => write!(
                f,
                "dimension `{dim}` is {first} in an earlier input but {second} in input `{input}`"
            ),
            Error::ArenaTooSmall { needed, actual } => {
                write!(f, "arena has {actual} bytes but the model needs {needed}")
            }
            Error::ArenaMisaligned { align, offset } => write!(
                f,
                "arena must be aligned to {align} bytes but starts {offset} bytes past a multiple of {align}"
            ),
            Error::StaticShapesRequired { dims } => write!(
                f,
                "run_in needs static shapes, but the model has symbolic dims ({dims}); use run() \
                 (feature `alloc`) or export the model with fixed dims"
            ),
            Error::IndexOutOfRange {
                value,
                node,
                index,
                len,
            } => write!(
                f,
                "`{value}` contains {index}, outside the valid range [-{len}, {len}) of node `{node}`"
            ),
            Error::DimTooLarge {
                dim,
                value,
                max,
                node,
            } => write!(
                f,
                "{dim} = {value} is larger than the model allows ({max}, node `{node}`)"
            ),
            Error::DimTooSmall { expr, value, node } => write!(
                f,
                "node `{node}`: an input is smaller than its window (kernel or pool size after \
                 padding): `{expr}` is {value}, must be at least 0"
            ),
            Error::DimsDiffer {
                node,
                left,
                left_value,
                right,
                right_value,
            } => write!(
                f,
                "node `{node}`: `{left}` = {left_value} and `{right}` = {right_value} must be \
                 equal for these input sizes (e.g. the image size is not a multiple of the \
                 network's total stride)"
            ),
            Error::Invalid { node, what } => write!(f, "node `{node}`: {what}"),
        }
    }
}

/// `input `x` has shape [1, 224, 224, 3] but the model expects [N, 3, 224, 224]: axis 1 is 224,
/// expected 3; …`, plus a layout hint when the fixed sizes are all there in another order.
fn input_shape(
    f: &mut fmt::Formatter<'_>,
    input: &str,
    expected: &[DimSpec],
    actual: &ErrShape,
) -> fmt::Result {
    write!(
        f,
        "input `{input}` has shape {actual} but the model expects ["
    )?;
    for (i, d) in expected.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{d}")?;
    }
    f.write_str("]")?;
    if actual.rank() != expected.len() {
        let (a, e) = (actual.rank(), expected.len());
        let axes = if a == 1 { "axis" } else { "axes" };
        return write!(f, ": it has {a} {axes} where the model has {e}");
    }
    let mut sep = ": ";
    for (axis, (a, e)) in actual.dims().zip(expected).enumerate() {
        if let DimSpec::Fixed(e) = *e
            && a != e
        {
            write!(f, "{sep}axis {axis} is {a}, expected {e}")?;
            sep = "; ";
        }
    }
    if fixed_sizes_present(expected, actual) {
        f.write_str(" (the same sizes in another order: check the layout, e.g. NHWC vs NCHW)")?;
    }
    Ok(())
}

/// Whether every fixed size of `expected` occurs in `actual` at least as often (then the input
/// likely has the right sizes in the wrong order).
fn fixed_sizes_present(expected: &[DimSpec], actual: &ErrShape) -> bool {
    let count_exp = |v: usize| expected.iter().filter(|d| **d == DimSpec::Fixed(v)).count();
    expected.iter().all(|d| match *d {
        DimSpec::Fixed(v) => actual.dims().filter(|&a| a == v).count() >= count_exp(v),
        DimSpec::Named(_) => true,
    })
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
