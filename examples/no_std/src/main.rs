//! Firmware for a Cortex-M4F (thumbv7em-none-eabihf): classifies the embedded digit samples with
//! the scalar kernels, in a `static` arena, without an allocator. On the host the same code runs
//! as an ordinary program (`cargo run`) and prints what it found.
//!
//!     cargo build --release --target thumbv7em-none-eabihf
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod firmware {
    use core::sync::atomic::{AtomicU32, Ordering};

    use kiln::runtime::arena::StaticArena;
    use kiln_example_no_std::{SAMPLES, classify, digits};

    /// The arena: zero-initialised, so it lives in `.bss` (RAM) and costs no flash.
    static ARENA: StaticArena<{ digits::ARENA_BYTES }> = StaticArena::new();
    /// Correctly classified samples, readable with a debugger.
    static CORRECT: AtomicU32 = AtomicU32::new(0);

    #[cortex_m_rt::entry]
    fn main() -> ! {
        let arena = ARENA.take().unwrap();
        // Scalar kernels: the only family on Cortex-M (Model::new() would pick it too).
        let model = digits::Model::with_isa(kiln::Isa::Scalar);
        loop {
            let mut correct = 0;
            for (pixels, label) in &SAMPLES {
                let pixels = core::hint::black_box(pixels);
                if let Ok((digit, _)) = classify(&model, arena, pixels) {
                    correct += (digit == *label) as u32;
                }
            }
            CORRECT.store(correct, Ordering::Relaxed);
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    use kiln_example_no_std::{SAMPLES, classify, digits};
    let model = digits::Model::new();
    let mut arena = digits::Arena::new();
    println!(
        "digits: arena {} bytes (naive {}), isa {}",
        digits::ARENA_BYTES,
        digits::NAIVE_WORKSPACE_BYTES,
        model.isa()
    );
    for (pixels, label) in &SAMPLES {
        let (digit, logit) = classify(&model, &mut arena, pixels).unwrap();
        println!("label {label}: predicted {digit} (logit {logit:.3})");
    }
}
