//! Helpers shared by the end-to-end tests (tests/models.rs, tests/onnx_node.rs): loading the
//! reference tensors (`*.pb`, onnx.TensorProto) and comparing outputs with useful failure reports.
#![allow(dead_code)]

use std::fmt::Debug;
use std::path::{Path, PathBuf};

pub use kiln_codegen::ir::{Tensor, TensorData};

/// `<crate root>/<case>/test_data_set_0`.
pub fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(case)
        .join("test_data_set_0")
}

/// Reads one serialized onnx.TensorProto; panics with the path on failure.
pub fn load(path: impl AsRef<Path>) -> Tensor {
    let path = path.as_ref();
    kiln_codegen::onnx::read_tensor_file(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e:?}", path.display()))
}

/// Element types a reference tensor can hold; `data::<T>(&t)` borrows its elements.
pub trait Elem: Copy + Debug + PartialEq + 'static {
    const NAME: &'static str;
    fn slice(d: &TensorData) -> Option<&[Self]>;
    fn wrap(v: Vec<Self>) -> TensorData;
}

macro_rules! elem {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl Elem for $t {
            const NAME: &'static str = stringify!($t);
            fn slice(d: &TensorData) -> Option<&[Self]> {
                match d {
                    TensorData::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$v(v)
            }
        }
    )*};
}
elem!(f32 => F32, f64 => F64, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
      i64 => I64, u64 => U64, bool => Bool);

/// The elements of `t` as `T`; panics if the stored type differs.
pub fn data<T: Elem>(t: &Tensor) -> &[T] {
    T::slice(&t.data).unwrap_or_else(|| {
        panic!(
            "tensor {:?}: expected {} data, found {}",
            t.name,
            T::NAME,
            type_name(&t.data)
        )
    })
}

pub fn type_name(d: &TensorData) -> &'static str {
    match d {
        TensorData::F32(_) => "f32",
        TensorData::F64(_) => "f64",
        TensorData::I8(_) => "i8",
        TensorData::U8(_) => "u8",
        TensorData::I16(_) => "i16",
        TensorData::U16(_) => "u16",
        TensorData::I32(_) => "i32",
        TensorData::U32(_) => "u32",
        TensorData::I64(_) => "i64",
        TensorData::U64(_) => "u64",
        TensorData::Bool(_) => "bool",
    }
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise. NaN matches NaN, ±Inf must match
/// exactly. On failure reports the number of violations, the worst one (index, both values,
/// error, allowed) and the first few.
pub fn assert_close(name: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    close(name, got, want, atol, rtol);
}

/// `assert_close` for f64 outputs.
pub fn assert_close_f64(name: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) {
    close(name, got, want, atol, rtol);
}

fn close<T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp>(
    name: &str,
    got: &[T],
    want: &[T],
    atol: T,
    rtol: T,
) {
    if std::env::var_os("KILN_TEST_REPORT").is_some() && got.len() == want.len() {
        let e = errors(got, want);
        eprintln!(
            "{name}: max |got − want| = {:.3e} at [{}], mean {:.3e} (atol {:.3e})",
            e.max,
            e.at,
            e.mean,
            atol.into()
        );
    }
    if let Err(msg) = check_close(got, want, atol.into(), rtol.into()) {
        panic!("{name}: {msg}");
    }
}

/// The check of `assert_close`, returning the failure report instead of panicking (for
/// harnesses that count failures, like the node-test sweep in conformance/).
pub fn check_close<T: Copy + Into<f64> + std::fmt::Display>(
    got: &[T],
    want: &[T],
    atol: f64,
    rtol: f64,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} elements, expected {}", got.len(), want.len()));
    }
    let allowed = |w: f64| atol + rtol * w.abs();
    let mut bad = Vec::new();
    let mut worst: Option<(usize, f64)> = None; // (index, error beyond the allowed one)
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w): (f64, f64) = (g.into(), w.into());
        // `error` is finite only when both are; an infinite or NaN `want` needs an equal `got`.
        let e = error(g, w);
        let ok = e == 0.0 || (e.is_finite() && e <= allowed(w));
        if !ok {
            let excess = if (g - w).is_finite() {
                (g - w).abs() - allowed(w)
            } else {
                f64::INFINITY
            };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
            bad.push(i);
        }
    }
    let Some((i, _)) = worst else {
        return Ok(());
    };
    let first: Vec<String> = bad
        .iter()
        .take(5)
        .map(|&j| format!("[{j}] got {} want {}", got[j], want[j]))
        .collect();
    let (g, w): (f64, f64) = (got[i].into(), want[i].into());
    Err(format!(
        "{} of {} elements outside atol {atol:e} + rtol {rtol:e}·|want|; \
         worst at [{i}]: got {} want {} (error {:.3e}, allowed {:.3e}); first: {}",
        bad.len(),
        got.len(),
        got[i],
        want[i],
        (g - w).abs(),
        allowed(w),
        first.join(", ")
    ))
}

/// `|g − w|`, NaN-aware: 0 when both are NaN or both the same infinity, +∞ when exactly one
/// is NaN or an infinity differs. Every float comparison in the tests goes through this (or
/// `errors`), so a NaN output can never slip past a `max`/`fold` that skips NaN.
pub fn error(g: f64, w: f64) -> f64 {
    if g.is_nan() || w.is_nan() {
        return if g.is_nan() && w.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if g == w {
        return 0.0; // also equal infinities, whose difference is NaN
    }
    (g - w).abs() // +∞ when one side is infinite
}

/// Error statistics of `got` against `want` (see `error`): any NaN mismatch makes `max` and
/// `mean` infinite.
#[derive(Clone, Copy, Debug)]
pub struct Errors {
    /// Largest `error`, and the index where it occurs.
    pub max: f64,
    pub at: usize,
    /// Mean `error` over the elements.
    pub mean: f64,
}

pub fn errors<T: Copy + Into<f64>>(got: &[T], want: &[T]) -> Errors {
    assert_eq!(got.len(), want.len(), "errors: lengths differ");
    let mut e = Errors {
        max: 0.0,
        at: 0,
        mean: 0.0,
    };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = error(g.into(), w.into());
        if d > e.max {
            e.max = d;
            e.at = i;
        }
        e.mean += d;
    }
    e.mean /= got.len().max(1) as f64;
    e
}

/// The fraction of elements with `error ≤ atol + rtol·|want|` (NaN mismatches never count).
pub fn fraction_within(got: &[f32], want: &[f32], atol: f64, rtol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "fraction_within: lengths differ");
    let n = got
        .iter()
        .zip(want)
        .filter(|&(&g, &w)| {
            let e = error(g.into(), w.into());
            e == 0.0 || (e.is_finite() && e <= atol + rtol * (w as f64).abs())
        })
        .count();
    n as f64 / got.len().max(1) as f64
}

/// Two-tier comparison for quantized outputs: every element within the `loose` bound (atol,
/// rtol; one quantization step, where a float rounding difference upstream may legitimately
/// flip a quantized activation), and at least `min_fraction` of them within the `tight` bound
/// (float rounding only). A systematic error of a fraction of a step fails the second tier
/// even though it passes the first.
pub fn assert_two_tier(
    name: &str,
    got: &[f32],
    want: &[f32],
    tight: (f32, f32),
    min_fraction: f64,
    loose: (f32, f32),
) {
    close(name, got, want, loose.0, loose.1);
    let frac = fraction_within(got, want, tight.0.into(), tight.1.into());
    if std::env::var_os("KILN_TEST_REPORT").is_some() {
        eprintln!(
            "{name}: {frac:.6} within the tight bound {:.3e} + {:.3e}·|want| (need {min_fraction})",
            tight.0, tight.1
        );
    }
    assert!(
        frac >= min_fraction,
        "{name}: only {:.4} % of {} elements within {:e} + {:e}·|want| (need {:.4} %); the \
         worst error is {:.3e}",
        100.0 * frac,
        got.len(),
        tight.0,
        tight.1,
        100.0 * min_fraction,
        errors(got, want).max
    );
}

/// Exact comparison (integer and bool outputs); reports the count of mismatches and the first few.
pub fn assert_exact<T: PartialEq + Debug>(name: &str, got: &[T], want: &[T]) {
    if let Err(msg) = check_exact(got, want) {
        panic!("{name}: {msg}");
    }
}

/// The check of `assert_exact`, returning the failure report instead of panicking.
pub fn check_exact<T: PartialEq + Debug>(got: &[T], want: &[T]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} elements, expected {}", got.len(), want.len()));
    }
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let first: Vec<String> = bad
        .iter()
        .take(8)
        .map(|&i| format!("[{i}] got {:?} want {:?}", got[i], want[i]))
        .collect();
    Err(format!(
        "{} of {} elements differ: {}",
        bad.len(),
        got.len(),
        first.join(", ")
    ))
}

/// Compares two tensors of any element type: the same type, floats within
/// `atol + rtol·|want|` (NaN-aware, see `error`), everything else exactly.
pub fn check_data(got: &TensorData, want: &TensorData, atol: f64, rtol: f64) -> Result<(), String> {
    macro_rules! exact {
        ($($v:ident),*) => {
            match (got, want) {
                (TensorData::F32(g), TensorData::F32(w)) => check_close(g, w, atol, rtol),
                (TensorData::F64(g), TensorData::F64(w)) => check_close(g, w, atol, rtol),
                $((TensorData::$v(g), TensorData::$v(w)) => check_exact(g, w),)*
                _ => Err(format!(
                    "element type {}, expected {}",
                    type_name(got),
                    type_name(want)
                )),
            }
        };
    }
    exact!(I8, U8, I16, U16, I32, U32, I64, U64, Bool)
}

/// Asserts that kiln still refuses the model at `model` (relative to the crate root) with an
/// error containing `fragment`: an expected failure that turns into a pass, or into another
/// error, is noticed (tests/onnx_node.rs, REFUSED in tools/gen_node_tests.py).
pub fn assert_refused(model: &str, fragment: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(model);
    match kiln_codegen::compile_file(&path, &kiln_codegen::Options::default()) {
        Ok(_) => panic!(
            "{model}: kiln compiles this expected-refused case now; move it out of REFUSED in \
             tools/gen_node_tests.py and regenerate"
        ),
        Err(e) => assert!(
            e.to_string().contains(fragment),
            "{model}: refused with a different error than expected ({fragment:?}): {e}"
        ),
    }
}

/// Cross-ISA bit identity (issue 20): the first ISA's output is the reference and every later
/// ISA must reproduce it bit for bit (NaNs compared by bits too). Returns the number of elements
/// that differ so a caller can report instead of assert.
pub fn diff_bits(
    first: &mut Option<(String, Vec<u32>)>,
    isa: &str,
    got: &[f32],
) -> (String, usize) {
    let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
    match first {
        None => {
            *first = Some((isa.to_string(), bits));
            (isa.to_string(), 0)
        }
        Some((name, want)) => {
            let n = want.iter().zip(&bits).filter(|(a, b)| a != b).count()
                + want.len().abs_diff(bits.len());
            (name.clone(), n)
        }
    }
}

/// Asserts [`diff_bits`] finds no difference.
pub fn assert_same_bits(
    what: &str,
    first: &mut Option<(String, Vec<u32>)>,
    isa: &str,
    got: &[f32],
) {
    let (reference, n) = diff_bits(first, isa, got);
    assert!(
        n == 0,
        "{what}: {n} of {} outputs differ in their bits from the {reference} kernels' (issue 20: every ISA must give the same bits)",
        got.len()
    );
}
