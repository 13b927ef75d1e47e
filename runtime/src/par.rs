//! Work splitting across threads (feature `rayon`).
//!
//! Every parallel op runs on the *current* rayon pool: inside `ThreadPool::install` that pool,
//! otherwise rayon's global pool, whose size is `RAYON_NUM_THREADS` or the number of logical
//! CPUs. With one thread (or without the feature) the helpers call the work function directly
//! on the calling thread: no pool, no task objects, no synchronisation.
//!
//! Ops split their work into *more* pieces than there are threads (about `TASKS_PER_THREAD`
//! per thread) so that rayon's work stealing balances them: on a shared machine one core is
//! often busy with another process, and a fixed half per thread would wait for it. A piece is
//! never smaller than the caller's minimum (a task hand-off costs ≈ 1 µs), so small models stay
//! single-threaded.

/// Pieces per thread when an op is split (dynamic load balancing).
pub(crate) const TASKS_PER_THREAD: usize = 4;

/// Elementwise / row-wise work (in f32 elements) below which an op stays on the calling
/// thread, and the smallest piece it is split into (≈ 5–10 µs of work for the cheapest ops).
pub const MIN_ELEMS: usize = 1 << 14;

/// Threads of the current pool (1 without the `rayon` feature).
#[inline]
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        if INLINE.with(|c| c.get()) {
            1
        } else {
            rayon::current_num_threads()
        }
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Work of a call or an op in *element-equivalents*: elements written plus MACs / `MACS_PER_ELEM`.
/// The ratio is that of the split thresholds (a GEMM splits at 2·2^20 MACs, an elementwise op
/// at 2·[`MIN_ELEMS`] elements), so an op splits at about [`SPLIT_MIN_WORK`] whatever its kind.
pub const MACS_PER_ELEM: usize = 64;

/// Work below which an op stays on the calling thread (see [`MACS_PER_ELEM`]).
pub const SPLIT_MIN_WORK: usize = 2 * MIN_ELEMS;

/// Splittable work below which a whole model call runs on the caller's thread (see
/// [`enter`]): four ops at their split threshold, ≈ 30–60 µs on one thread. Handing a call to
/// the pool costs two cross-thread wake-ups (≈ 10–20 µs); below this a second thread saves
/// less than that.
pub const ENTER_MIN_WORK: f64 = (4 * SPLIT_MIN_WORK) as f64;

#[cfg(feature = "rayon")]
std::thread_local! {
    /// Set while a call that [`enter`] judged too small runs inline: [`threads`] then reports
    /// 1, so no op inside splits from outside the pool (a cold hand-off per op).
    static INLINE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs a whole model call `f`. `work` is the call's splittable work in element-equivalents
/// (codegen's estimate from the plan: the ops big enough to split, see [`MACS_PER_ELEM`]).
///
/// Below [`ENTER_MIN_WORK`] (or with one thread, or without the `rayon` feature) `f` runs on
/// the calling thread and every op inside runs unsplit: the hand-off would cost more than a
/// second thread saves, so 2 threads are never slower than 1 on small models (the digits MLP:
/// 0.3 µs inline, 8–19 µs through the pool).
///
/// Above it, `f` runs on a worker of the current rayon pool, so that the ops inside hand work
/// to the other workers through the pool's local deques (≈ 1 µs) instead of each op waking the
/// pool from the outside and putting the caller to sleep (a cross-thread round trip of tens of
/// µs per op, measured: 2 threads were slower than 1 on MiniLM before this).
///
/// For the length of the call a second worker runs a helper that keeps taking the call's
/// pieces (`rayon::yield_now`) instead of going to sleep between ops: an idle rayon worker
/// sleeps after a few microseconds, and waking it for every op cost about what the op's second
/// half saved (the benchmark's in-pool loop measured 2 threads no faster than 1 on sub-ms
/// calls; onnxruntime's workers spin the same way). Allocates nothing.
#[inline]
pub fn enter<R: Send>(work: f64, f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "rayon")]
    if rayon::current_num_threads() > 1 && !INLINE.with(|c| c.get()) {
        if work < ENTER_MIN_WORK {
            INLINE.with(|c| c.set(true));
            // Reset even if `f` panics (a caller may catch it and run the model again).
            struct Reset;
            impl Drop for Reset {
                fn drop(&mut self) {
                    INLINE.with(|c| c.set(false));
                }
            }
            let _reset = Reset;
            return f();
        }
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
    let _ = work;
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

#[cfg(all(test, feature = "rayon"))]
mod tests {
    use super::*;

    /// A small call runs on the caller's thread with every op unsplit; a big one runs on a
    /// worker of the pool, where ops see all its threads.
    #[test]
    fn small_calls_stay_on_the_caller() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let me = rayon::current_thread_index();
            let small = enter(ENTER_MIN_WORK - 1.0, || {
                (rayon::current_thread_index(), threads())
            });
            assert_eq!(small, (me, 1));
            assert_eq!(threads(), 2, "the inline flag is reset after the call");
            let big = enter(ENTER_MIN_WORK, threads);
            assert_eq!(big, 2);
        });
        // From outside any pool (rayon's global one): a small call stays on this thread.
        assert_eq!(enter(0.0, rayon::current_thread_index), None);
    }
}
