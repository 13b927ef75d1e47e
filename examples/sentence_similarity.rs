//! Sentence similarity with paraphrase-MiniLM-L3-v2, int8-quantized and compiled into this
//! binary by kiln.
//!
//! Tokenizes a few sentences with the `tokenizers` crate (the model's tokenizer.json), embeds
//! each one with the quantized model (mean pooling over the tokens, then L2 normalisation, as
//! sentence-transformers does), and prints the cosine similarity matrix, the float model's
//! matrix from onnxruntime for comparison, and the latency per sentence.
//!
//!     python3 tools/fetch_minilm.py        # once: fetches and quantizes the model
//!     cargo run --release --example sentence_similarity
//!
//! Without models/minilm/ it prints how to fetch them and exits with an error (the model is
//! compiled in, so the build itself needs it: build.rs turns on `cfg(kiln_minilm)` when it is
//! there).

// Without the model, say what to run and fail (a script must not mistake this for a result).
#[cfg(not(kiln_minilm))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "error: sentence_similarity: the MiniLM model is not fetched (models/minilm/ is missing); \
         run `python3 tools/fetch_minilm.py`, then `cargo run --release --example \
         sentence_similarity`"
    );
    std::process::ExitCode::FAILURE
}

#[cfg(kiln_minilm)]
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    app::main()
}

#[cfg(kiln_minilm)]
mod app {
    use std::path::Path;
    use std::time::Instant;
    use tokenizers::Tokenizer;

    /// The recommended quantization: per-channel int8 MatMul weights, reduce_range.
    mod minilm {
        kiln::include_model!("models/minilm/q_recommended.onnx");
    }

    const HIDDEN: usize = 384;
    /// Timed runs per sentence (after one warm-up run); the median is reported.
    const REPEATS: usize = 20;

    /// The same list as tools/fetch_minilm.py's SENTENCES (its refs/sentences.txt).
    const SENTENCES: [&str; 8] = [
        "A man is playing a guitar on stage.",
        "Someone performs music with a guitar in front of an audience.",
        "The cat sleeps on the warm windowsill.",
        "A kitten is napping in the sun by the window.",
        "Quantized matrix multiplication keeps the weights in eight-bit integers.",
        "Stock markets fell sharply after the interest rate announcement.",
        "How do I bake sourdough bread at home?",
        "It's raining.",
    ];

    /// Mean of the token rows (every mask value is 1 here), then L2 normalisation.
    fn sentence_embedding(tokens: &[f32]) -> Vec<f32> {
        let n = tokens.len() / HIDDEN;
        let mut e = vec![0f32; HIDDEN];
        for row in tokens.chunks_exact(HIDDEN) {
            for (a, &x) in e.iter_mut().zip(row) {
                *a += x;
            }
        }
        for a in e.iter_mut() {
            *a /= n as f32;
        }
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        e.iter().map(|x| x / norm).collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn print_matrix(title: &str, m: &[Vec<f32>]) {
        println!("\n{title}");
        print!("     ");
        for j in 0..m.len() {
            print!("{:>7}", format!("[{j}]"));
        }
        println!();
        for (i, row) in m.iter().enumerate() {
            print!("{:>5}", format!("[{i}]"));
            for v in row {
                print!("{v:>7.3}");
            }
            println!();
        }
    }

    /// models/minilm/refs/similarity_float.txt: one row per line (written by fetch_minilm.py).
    fn reference(path: &Path) -> Option<Vec<Vec<f32>>> {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .map(|l| l.split_whitespace().map(|v| v.parse().ok()).collect())
            .collect()
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/minilm");
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
        // tokenizer.json pads and truncates to 128; embed each sentence at its own length.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None)?;

        let mut model = minilm::Model::new();
        println!(
            "sentence_similarity: paraphrase-MiniLM-L3-v2, int8 (q_recommended), ISA {:?}",
            model.isa()
        );
        let mut embeddings = Vec::new();
        println!("\n  #  tokens  median latency  sentence");
        for (i, sentence) in SENTENCES.iter().enumerate() {
            let enc = tokenizer.encode(*sentence, true)?;
            let ids: Vec<i64> = enc.get_ids().iter().map(|&t| t as i64).collect();
            let mask: Vec<i64> = enc.get_attention_mask().iter().map(|&m| m as i64).collect();
            let shape = [1, ids.len()];
            let mut times = Vec::with_capacity(REPEATS);
            let mut embedding = Vec::new();
            for r in 0..=REPEATS {
                let t = Instant::now();
                let out = model.run(minilm::Inputs {
                    input_ids: kiln::TensorRef::new(&ids, &shape)?,
                    attention_mask: kiln::TensorRef::new(&mask, &shape)?,
                })?;
                embedding = sentence_embedding(out.onnx_shape_422.data());
                if r > 0 {
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{i:>3}  {:>6}  {:>11.3} ms  {sentence}",
                ids.len(),
                times[times.len() / 2]
            );
            embeddings.push(embedding);
        }

        let sim: Vec<Vec<f32>> = embeddings
            .iter()
            .map(|a| embeddings.iter().map(|b| dot(a, b)).collect())
            .collect();
        print_matrix("cosine similarity (kiln, int8)", &sim);
        match reference(&dir.join("refs/similarity_float.txt")) {
            Some(want) if want.len() == sim.len() => {
                print_matrix("cosine similarity (onnxruntime, float model)", &want);
                let worst = sim
                    .iter()
                    .flatten()
                    .zip(want.iter().flatten())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, |m, d| if d.is_nan() { d } else { m.max(d) });
                println!("\nlargest difference from the float model: {worst:.4}");
            }
            _ => println!("\n(no float reference: rerun `python3 tools/fetch_minilm.py`)"),
        }
        Ok(())
    }
}
