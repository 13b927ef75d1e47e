//! Caller-provided memory for the allocation-free `Model::run_in` path.
//!
//! For a model whose shapes are all static, codegen lays every intermediate tensor out at a
//! constant byte offset in one arena (`ARENA_BYTES` long, `ARENA_ALIGN` aligned), reusing bytes
//! between tensors whose lifetimes do not overlap. Generated code never holds two views of the
//! same bytes: for each node it [`carve`]s the disjoint regions the node reads and writes out of
//! the arena with `split_at_mut`, turns each into a typed slice with [`cast`], and lets the
//! views go before the next node. Both functions are safe; the borrow checker sees one
//! `&mut [u8]` split into disjoint pieces. The `unsafe` needed to view bytes as `f32` is here,
//! behind alignment and length checks.
//!
//! Where the arena lives is the caller's choice:
//! - [`ArenaBuf`]: an aligned byte array, on the stack or inside a struct;
//! - [`StaticArena`]: a `static` (in `.bss`) that hands out its `&'static mut [u8]` once;
//! - [`OwnedArena`] (feature `alloc`): a heap buffer, what `Model::new()` owns for `run()`.
use core::ops::{Deref, DerefMut};

use crate::error::Error;

/// Alignment of [`ArenaBuf`] and [`StaticArena`]: enough for every element type (at most 8).
pub const BUF_ALIGN: usize = 16;

/// Element types that can be viewed in an arena. Every bit pattern of the numeric types is a
/// valid value; `bool` views first turn bytes other than 0 and 1 into 0.
pub trait ArenaElem: Copy + sealed::Sealed {
    #[doc(hidden)]
    fn view_mut(bytes: &mut [u8]) -> &mut [Self];
}

mod sealed {
    pub trait Sealed {}
}

/// Reinterprets `bytes` as `[T]`. Callers guarantee that every bit pattern of the bytes is a
/// valid `T`.
///
/// # Safety
/// Every bit pattern of `size_of::<T>()` initialised bytes must be a valid `T`.
#[inline]
unsafe fn reinterpret<T>(bytes: &mut [u8]) -> &mut [T] {
    let size = core::mem::size_of::<T>();
    assert!(
        (bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<T>())
            && bytes.len().is_multiple_of(size),
        "kiln arena: misaligned or partial region"
    );
    // SAFETY: the pointer is aligned for T and the region holds exactly len/size values of T,
    // inside the borrowed slice; the `&mut` borrow of `bytes` moves to the result, so no other
    // view of these bytes exists while it lives. Validity of the values is the caller's promise.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), bytes.len() / size) }
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl ArenaElem for $t {
            #[inline]
            fn view_mut(bytes: &mut [u8]) -> &mut [$t] {
                // SAFETY: a plain integer/float: every bit pattern is a valid value.
                unsafe { reinterpret::<$t>(bytes) }
            }
        }
    )*};
}
plain!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

impl sealed::Sealed for bool {}
impl ArenaElem for bool {
    #[inline]
    fn view_mut(bytes: &mut [u8]) -> &mut [bool] {
        for b in bytes.iter_mut() {
            if *b > 1 {
                *b = 0;
            }
        }
        // SAFETY: every byte is now 0 or 1, the two valid bit patterns of `bool`.
        unsafe { reinterpret::<bool>(bytes) }
    }
}

/// Checks a caller's arena and returns its first `bytes` bytes: `Err(ArenaTooSmall)` if it is
/// shorter than `bytes`, `Err(ArenaMisaligned)` if it does not start at a multiple of `align`.
#[inline]
pub fn prepare(arena: &mut [u8], bytes: usize, align: usize) -> Result<&mut [u8], Error> {
    if arena.len() < bytes {
        return Err(Error::ArenaTooSmall {
            needed: bytes,
            actual: arena.len(),
        });
    }
    let misalignment = (arena.as_ptr() as usize) % align.max(1);
    if misalignment != 0 {
        return Err(Error::ArenaMisaligned {
            align,
            offset: misalignment,
        });
    }
    Ok(&mut arena[..bytes])
}

/// Splits `arena` into the disjoint byte regions `(offset, len)`, which must be given in
/// increasing offset order without overlap (codegen sorts them). Panics otherwise, and if a
/// region ends past the arena: a kiln bug, never an out-of-bounds access.
#[inline]
pub fn carve<const N: usize>(arena: &mut [u8], regions: [(usize, usize); N]) -> [&mut [u8]; N] {
    let mut rest = arena;
    let mut pos = 0usize;
    core::array::from_fn(|i| {
        let (offset, len) = regions[i];
        let skip = offset
            .checked_sub(pos)
            .expect("kiln arena: regions overlap or are out of order");
        let (_, tail) = core::mem::take(&mut rest).split_at_mut(skip);
        let (region, tail) = tail.split_at_mut(len);
        rest = tail;
        pos = offset + len;
        region
    })
}

/// Views a carved region as `[T]` (its offset is a multiple of `T`'s alignment by
/// construction; checked).
#[inline]
pub fn cast<T: ArenaElem>(bytes: &mut [u8]) -> &mut [T] {
    T::view_mut(bytes)
}

/// `N` bytes aligned to [`BUF_ALIGN`]: an arena for `run_in` on the stack or in a struct.
/// Generated modules export `type Arena = ArenaBuf<ARENA_BYTES>`.
/// `model.run_in(&mut arena, inputs)` works through `DerefMut<Target = [u8]>`.
#[derive(Clone)]
#[repr(C, align(16))]
pub struct ArenaBuf<const N: usize>(pub [u8; N]);

const _: () = assert!(core::mem::align_of::<ArenaBuf<1>>() == BUF_ALIGN);

impl<const N: usize> ArenaBuf<N> {
    /// A zeroed buffer.
    pub const fn new() -> Self {
        ArenaBuf([0; N])
    }
}

impl<const N: usize> Default for ArenaBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deref for ArenaBuf<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> DerefMut for ArenaBuf<N> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// An arena in a `static` (zero-initialised, so it goes to `.bss` and costs no flash), handed
/// out once as `&'static mut [u8]`:
/// ```
/// use kiln_runtime::arena::StaticArena;
/// static ARENA: StaticArena<1024> = StaticArena::new();
/// let arena: &'static mut [u8] = ARENA.take().unwrap();
/// assert!(ARENA.take().is_none()); // a second `take` gets nothing
/// # let _ = arena;
/// ```
/// Needs an atomic swap (`target_has_atomic = "8"`: Cortex-M3 and up, not Cortex-M0).
#[cfg(target_has_atomic = "8")]
pub struct StaticArena<const N: usize> {
    taken: core::sync::atomic::AtomicBool,
    buf: core::cell::UnsafeCell<ArenaBuf<N>>,
}

// SAFETY: the buffer is only reachable through `take`, which hands out at most one `&mut`
// (guarded by an atomic swap), so sharing the static between threads or interrupts is sound.
#[cfg(target_has_atomic = "8")]
unsafe impl<const N: usize> Sync for StaticArena<N> {}

#[cfg(target_has_atomic = "8")]
impl<const N: usize> StaticArena<N> {
    pub const fn new() -> Self {
        StaticArena {
            taken: core::sync::atomic::AtomicBool::new(false),
            buf: core::cell::UnsafeCell::new(ArenaBuf::new()),
        }
    }
    /// The buffer, the first time; `None` after that.
    // A `&mut` out of `&self` is the point: the atomic flag makes it unique.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut [u8]> {
        if self.taken.swap(true, core::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the swap above returned `false` exactly once, so this is the only reference
        // ever created to the buffer, and it lives in a `'static`.
        Some(unsafe { &mut (&mut (*self.buf.get()).0)[..] })
    }
}

#[cfg(target_has_atomic = "8")]
impl<const N: usize> Default for StaticArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The arena a `Model` owns for `run()`: a heap buffer of the planned size, aligned to 64 bytes
/// (cache lines). Without the `alloc` feature it is an empty placeholder (only `run_in`
/// exists then).
pub struct OwnedArena {
    #[cfg(feature = "alloc")]
    buf: alloc::vec::Vec<u8>,
    #[cfg(feature = "alloc")]
    start: usize,
    #[cfg(feature = "alloc")]
    len: usize,
}

/// Alignment of [`OwnedArena`].
pub const OWNED_ALIGN: usize = 64;

impl OwnedArena {
    /// Allocates `bytes` (with `alloc`); a no-op without it.
    #[allow(unused_variables)]
    pub fn new(bytes: usize) -> Self {
        #[cfg(feature = "alloc")]
        {
            let buf = alloc::vec![0u8; bytes + OWNED_ALIGN - 1];
            // `align_offset` may in principle give up (usize::MAX); then `prepare` reports the
            // misalignment instead of anything going wrong.
            let start = match buf.as_ptr().align_offset(OWNED_ALIGN) {
                s if s < OWNED_ALIGN => s,
                _ => 0,
            };
            OwnedArena {
                buf,
                start,
                len: bytes,
            }
        }
        #[cfg(not(feature = "alloc"))]
        OwnedArena {}
    }
    /// The aligned arena bytes.
    #[cfg(feature = "alloc")]
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

impl core::fmt::Debug for OwnedArena {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        #[cfg(feature = "alloc")]
        return write!(f, "OwnedArena({} bytes)", self.len);
        #[cfg(not(feature = "alloc"))]
        f.write_str("OwnedArena(none)")
    }
}

/// Expands its input only when kiln-runtime has the `alloc` feature (generated code cannot test
/// the runtime's features with `cfg`, which would look at the user's crate).
#[cfg(feature = "alloc")]
#[doc(hidden)]
#[macro_export]
macro_rules! __kiln_if_alloc {
    ($($t:tt)*) => { $($t)* };
}
#[cfg(not(feature = "alloc"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __kiln_if_alloc {
    ($($t:tt)*) => {};
}

/// Expands its input only when kiln-runtime lacks the `alloc` feature.
#[cfg(feature = "alloc")]
#[doc(hidden)]
#[macro_export]
macro_rules! __kiln_if_no_alloc {
    ($($t:tt)*) => {};
}
#[cfg(not(feature = "alloc"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __kiln_if_no_alloc {
    ($($t:tt)*) => { $($t)* };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carve_and_cast() {
        let mut buf = ArenaBuf::<64>::new();
        let [a, b, c] = carve(&mut buf, [(0, 0), (0, 16), (32, 8)]);
        assert!(a.is_empty());
        let f: &mut [f32] = cast(b);
        f.copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        let i: &mut [i64] = cast(c);
        i[0] = -1;
        assert_eq!(buf.0[32..40], [0xff; 8]);
        assert_eq!(buf.0[4..8], 2.0f32.to_le_bytes());
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn overlapping_regions_panic() {
        let mut buf = ArenaBuf::<64>::new();
        let _ = carve(&mut buf, [(0, 16), (8, 8)]);
    }

    #[test]
    #[should_panic]
    fn region_past_the_end_panics() {
        let mut buf = ArenaBuf::<64>::new();
        let _ = carve(&mut buf, [(60, 8)]);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_cast_panics() {
        let mut buf = ArenaBuf::<64>::new();
        let [b] = carve(&mut buf, [(2, 8)]);
        let _: &mut [f32] = cast(b);
    }

    #[test]
    fn bools_are_sanitised() {
        let mut buf = ArenaBuf::<16>::new();
        buf.0[..4].copy_from_slice(&[0, 1, 2, 255]);
        let [b] = carve(&mut buf, [(0, 4)]);
        let v: &mut [bool] = cast(b);
        assert_eq!(v, &[false, true, false, false]);
    }

    #[test]
    fn prepare_checks_size_and_alignment() {
        let mut buf = ArenaBuf::<64>::new();
        assert_eq!(prepare(&mut buf, 32, 8).unwrap().len(), 32);
        assert_eq!(
            prepare(&mut buf, 65, 8).unwrap_err(),
            Error::ArenaTooSmall {
                needed: 65,
                actual: 64
            }
        );
        assert_eq!(
            prepare(&mut buf[4..], 32, 8).unwrap_err(),
            Error::ArenaMisaligned {
                align: 8,
                offset: 4
            }
        );
    }

    #[test]
    fn static_arena_is_taken_once() {
        static A: StaticArena<32> = StaticArena::new();
        let a = A.take().unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(a.as_ptr() as usize % BUF_ALIGN, 0);
        assert!(A.take().is_none());
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn owned_arena_is_aligned() {
        let mut a = OwnedArena::new(100);
        assert_eq!(a.bytes_mut().len(), 100);
        assert_eq!(a.bytes_mut().as_ptr() as usize % OWNED_ALIGN, 0);
    }
}
