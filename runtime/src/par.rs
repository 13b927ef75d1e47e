//! Work splitting across threads (feature `rayon`).
//!
//! Every parallel op runs on the *current* rayon pool: inside `ThreadPool::install` that pool,
//! otherwise rayon's global pool, whose size is `RAYON_NUM_THREADS` or the number of logical
//! CPUs. With one thread (or without the feature) the helpers call the work function directly
//! on the calling thread: no pool, no task objects, no synchronisation.
//!
//! Ops split their work into *more* pieces than there are threads (about [`TASKS_PER_THREAD`]
//! per thread) so that rayon's work stealing balances them: on a shared machine one core is
//! often busy with another process, and a fixed half per thread would wait for it. A piece is
//! never smaller than the caller's minimum (a task hand-off costs ≈ 1 µs), so small models stay
//! single-threaded.

/// Pieces per thread when an op is split (dynamic load balancing).
pub(crate) const TASKS_PER_THREAD: usize = 4;

/// Elementwise / row-wise work (in f32 elements) below which an op stays on the calling
/// thread, and the smallest piece it is split into (≈ 5–10 µs of work for the cheapest ops).
pub(crate) const MIN_ELEMS: usize = 1 << 14;

/// Threads of the current pool (1 without the `rayon` feature).
#[inline]
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Runs a whole model call `f` on a worker of the current rayon pool, so that the ops inside
/// hand work to the other workers through the pool's local deques (≈ 1 µs) instead of each op
/// waking the pool from the outside and putting the caller to sleep (a cross-thread round trip
/// of tens of µs per op, measured: 2 threads were slower than 1 on MiniLM before this).
///
/// For the length of the call a second worker runs a helper that keeps taking the call's
/// pieces (`rayon::yield_now`) instead of going to sleep between ops: an idle rayon worker
/// sleeps after a few microseconds, and waking it for every op cost about what the op's second
/// half saved (the benchmark's in-pool loop measured 2 threads no faster than 1 on sub-ms
/// calls; onnxruntime's workers spin the same way). Runs `f` inline with one thread or without
/// the `rayon` feature. Allocates nothing.
#[inline]
pub fn enter<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "rayon")]
    if threads() > 1 {
        use core::sync::atomic::{AtomicBool, Ordering};
        let done = AtomicBool::new(false);
        let run = || {
            let r = f();
            done.store(true, Ordering::Release);
            r
        };
        let helper = || {
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    core::hint::spin_loop();
                }
            }
        };
        return rayon::join(run, helper).0;
    }
    f()
}

/// How many pieces to split `units` units of work into, where one piece must hold at least
/// `min_units`: 1 (run inline) for small work or one thread, else up to
/// `threads · TASKS_PER_THREAD` (and at most `units`).
#[inline]
pub(crate) fn pieces(units: usize, min_units: usize) -> usize {
    let t = threads();
    if t <= 1 {
        return 1;
    }
    let by_size = units / min_units.max(1);
    by_size.min(t * TASKS_PER_THREAD).min(units).max(1)
}

/// Calls `f(i)` for every `i` in `0..n`, spread over the current pool when `n > 1` and there
/// is more than one thread, else in order on this thread.
#[inline]
pub(crate) fn for_each(n: usize, f: impl Fn(usize) + Sync + Send) {
    #[cfg(feature = "rayon")]
    if n > 1 && threads() > 1 {
        use rayon::prelude::*;
        (0..n).into_par_iter().with_max_len(1).for_each(f);
        return;
    }
    for i in 0..n {
        f(i);
    }
}

/// Splits `x` and `out` into matching groups of whole rows (`x_row` and `out_row` elements per
/// row) and calls `f(x_rows, out_rows)` on each group, in parallel when there is enough work
/// (`out_row · rows ≥ 2·MIN_ELEMS`, counted in output elements).
pub(crate) fn rows<T: Sync, U: Send>(
    x: &[T],
    x_row: usize,
    out: &mut [U],
    out_row: usize,
    f: impl Fn(&[T], &mut [U]) + Sync + Send,
) {
    let n_rows = out.len().checked_div(out_row).unwrap_or(0);
    let n = pieces(n_rows, MIN_ELEMS.div_ceil(out_row.max(1)));
    #[cfg(feature = "rayon")]
    if n > 1 {
        use rayon::prelude::*;
        let per = n_rows.div_ceil(n);
        x.par_chunks(per * x_row)
            .zip(out.par_chunks_mut(per * out_row))
            .with_max_len(1)
            .for_each(|(xa, oa)| f(xa, oa));
        return;
    }
    let _ = (n, x_row);
    f(x, out);
}

/// Splits `out` into groups of whole rows of `out_row` elements, at least `min_rows` rows per
/// group, and calls `f(first_row, rows)` on each group (in parallel when there are several).
pub(crate) fn rows_mut<U: Send>(
    out: &mut [U],
    out_row: usize,
    min_rows: usize,
    f: impl Fn(usize, &mut [U]) + Sync + Send,
) {
    let n_rows = out.len().checked_div(out_row).unwrap_or(0);
    let n = pieces(n_rows, min_rows);
    #[cfg(feature = "rayon")]
    if n > 1 {
        use rayon::prelude::*;
        let per = n_rows.div_ceil(n);
        out.par_chunks_mut(per * out_row)
            .enumerate()
            .with_max_len(1)
            .for_each(|(i, oa)| f(i * per, oa));
        return;
    }
    let _ = n;
    f(0, out);
}
