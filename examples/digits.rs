//! Handwritten digits with a tiny MLP, compiled by kiln in two flavours: the float model and the
//! int8 model `quantize_dynamic` made from it. Both run the 450-image test set one image per call.
//!
//! The model (64 → 32 → 10, ReLU) is scikit-learn's `MLPClassifier` trained on `load_digits`,
//! exported to ONNX by `tools/gen_fixtures.py`, which also wrote the test set and onnxruntime's
//! accuracies to `examples/digits/`. The input is the raw 8×8 image, pixel values 0..16: the
//! x/16 scaling used in training is folded into the first layer's weights (exact, a power of two).
//!
//!     cargo run --release --example digits
use std::time::Instant;

mod int8 {
    kiln::include_model!("examples/digits/digits.quant.onnx");
}
mod float {
    kiln::include_model!("examples/digits/digits.f32.onnx");
}

const TEST_X: &[u8] = include_bytes!("digits/test_x.f32");
const TEST_Y: &[u8] = include_bytes!("digits/test_y.u8");
const REFERENCE: &str = include_str!("digits/reference.json");
const PIXELS: usize = 64;

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// A number from reference.json (`"key": 0.97,`) — flat, so no JSON parser needed.
fn reference(key: &str) -> Option<f64> {
    let start = REFERENCE.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = REFERENCE[start..].trim_start().strip_prefix(':')?;
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn median_us(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Runs `run` on every image; returns the predictions and per-call times in µs.
fn evaluate(images: &[f32], mut run: impl FnMut(&[f32]) -> usize) -> (Vec<usize>, Vec<f64>) {
    let mut preds = Vec::new();
    let mut times = Vec::new();
    for img in images.chunks_exact(PIXELS) {
        let t = Instant::now();
        preds.push(run(img));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (preds, times)
}

fn main() -> Result<(), kiln::Error> {
    let images: Vec<f32> = TEST_X
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let labels: Vec<usize> = TEST_Y.iter().map(|&y| y as usize).collect();
    assert_eq!(
        images.len(),
        labels.len() * PIXELS,
        "test_x.f32 and test_y.u8 disagree"
    );
    let shape = [1, PIXELS];

    let mut q = int8::Model::new();
    let mut f = float::Model::new();
    // Warm up (first call sizes the workspace) and surface errors before timing.
    q.run(int8::Inputs {
        x: kiln::TensorRef::new(&images[..PIXELS], &shape)?,
    })?;
    f.run(float::Inputs {
        x: kiln::TensorRef::new(&images[..PIXELS], &shape)?,
    })?;

    let (pq, tq) = evaluate(&images, |img| {
        let x = kiln::TensorRef::new(img, &shape).expect("64 pixels");
        argmax(q.run(int8::Inputs { x }).expect("int8 model").logits.data())
    });
    let (pf, tf) = evaluate(&images, |img| {
        let x = kiln::TensorRef::new(img, &shape).expect("64 pixels");
        argmax(f.run(float::Inputs { x }).expect("f32 model").logits.data())
    });

    let n = labels.len() as f64;
    let acc = |p: &[usize]| p.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / n;
    let agree = pq.iter().zip(&pf).filter(|(a, b)| a == b).count() as f64 / n;
    let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.2} %", 100.0 * v));

    println!(
        "digits: {} test images, batch 1, ISA {:?}",
        labels.len(),
        q.isa()
    );
    println!();
    println!("                 kiln        onnxruntime   median latency");
    println!(
        "  int8 model   {:>9}   {:>12}   {:8.2} µs",
        pct(Some(acc(&pq))),
        pct(reference("ort_int8_accuracy")),
        median_us(tq)
    );
    println!(
        "  f32 model    {:>9}   {:>12}   {:8.2} µs",
        pct(Some(acc(&pf))),
        pct(reference("ort_f32_accuracy")),
        median_us(tf)
    );
    println!();
    println!(
        "  int8 and f32 predictions agree on {} of images (onnxruntime: {})",
        pct(Some(agree)),
        pct(reference("ort_int8_f32_agreement"))
    );
    Ok(())
}
