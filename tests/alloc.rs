//! Steady-state `run` calls make no heap allocation: a counting global allocator checks it
//! (one test binary of its own, so other tests' allocations cannot interfere).
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

mod mlp {
    kiln::include_model!("tests/models/block_ln_gelu_q_s8/model.onnx");
}

#[cfg(kiln_minilm)]
mod minilm {
    kiln::include_model!("models/minilm/q_recommended.onnx");
}

#[test]
fn no_allocation_after_the_first_call() {
    // Threads (feature `rayon`, on by default): the calls run inside one rayon pool of 2
    // threads, so the parallel paths are exercised on any machine. Inside a pool, kiln's
    // parallel ops push their pieces onto the calling worker's own deque; called from outside
    // any pool, each op would hand its job over through rayon's injector queue, which allocates
    // a block per 63 hand-offs (docs/kernels.md, "Threads").
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(steady_state_calls);
}

fn steady_state_calls() {
    let x: Vec<f32> = (0..6 * 48).map(|i| (i as f32 * 0.37).sin()).collect();
    for isa in kiln::runtime::isa::Isa::all_available() {
        let mut model = mlp::Model::with_isa(isa);
        let run = |m: &mut mlp::Model| {
            let out = m
                .run(mlp::Inputs {
                    x: kiln::TensorRef::new(&x, &[6, 48]).unwrap(),
                })
                .unwrap();
            std::hint::black_box(out.y.data()[0]);
        };
        run(&mut model);
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..5 {
            run(&mut model);
        }
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed) - before,
            0,
            "{isa}: run() allocated"
        );
    }

    // Symbolic dims: buffers grow with the largest call, then never again.
    #[cfg(kiln_minilm)]
    {
        let mut model = minilm::Model::new();
        let mut run = |b: usize, s: usize| {
            let ids = vec![2023i64; b * s];
            let mask = vec![1i64; b * s];
            let out = model
                .run(minilm::Inputs {
                    input_ids: kiln::TensorRef::new(&ids, &[b, s]).unwrap(),
                    attention_mask: kiln::TensorRef::new(&mask, &[b, s]).unwrap(),
                })
                .unwrap();
            std::hint::black_box(out.onnx_shape_422.data()[0]);
        };
        run(2, 64);
        // Inputs are allocated by the test itself: count only inside run via a snapshot taken
        // after building them is not possible here, so compare against a no-op baseline.
        let base = ALLOCS.load(Ordering::Relaxed);
        run(1, 16);
        run(2, 64);
        run(1, 1);
        let per_call_inputs = 2 * 3; // two Vec allocations per call above
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed) - base,
            per_call_inputs,
            "MiniLM run() allocated"
        );
    }
}
