//! The firmware's model code, `#![no_std]` and without an allocator: the digits classifier
//! (an int8 MLP, 64 → 32 → 10) compiled by kiln, run in a caller-provided arena.
#![no_std]

/// The int8 digits model. Its weights go to the linker section `.rodata.kiln_weights`, which
/// cortex-m-rt's linker script keeps in flash with the rest of `.rodata`; a custom linker
/// script could map it to external flash instead.
pub mod digits {
    kiln::include_model!(
        "../digits/digits.quant.onnx",
        link_section = ".rodata.kiln_weights"
    );
}

// The first test images of examples/digits with their labels: `SAMPLES: [([u8; 64], u8); 8]`.
include!(concat!(env!("OUT_DIR"), "/samples.rs"));

/// The digit in an 8×8 image (pixel values 0..16), and its logit. Needs an arena of
/// `digits::ARENA_BYTES` aligned to `digits::ARENA_ALIGN`; allocates nothing.
pub fn classify(
    model: &digits::Model,
    arena: &mut [u8],
    pixels: &[u8; 64],
) -> Result<(u8, f32), kiln::Error> {
    let mut x = [0f32; 64];
    for (x, &p) in x.iter_mut().zip(pixels) {
        *x = p as f32;
    }
    let out = model.run_in(
        arena,
        digits::Inputs {
            x: kiln::TensorRef::new(&x, &[1, 64])?,
        },
    )?;
    let logits = out.logits.data();
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    Ok((best as u8, logits[best]))
}
