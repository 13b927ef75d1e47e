#!/usr/bin/env python3
"""Builds the one-MatMul models of the raw int8 GEMM cases (bench/).

    python3 bench/make_gemm_model.py --m 128 --k 384 --n 1536 --out DIR

writes into DIR:
  model_f32.onnx  y[M,N] = x[M,K] @ W[K,N], W random normal (seeded by the shape)
  model.onnx      onnxruntime's quantize_dynamic of it with its defaults (QInt8 weights,
                  per-tensor, symmetric, no reduce_range): the chain
                  DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(a_scale * w_scale),
                  which onnxruntime fuses into DynamicQuantizeMatMul and kiln fuses into
                  QuantizeDyn + QGemm
  w.i8            the quantized weights exactly as stored in model.onnx, raw row-major [K][N] int8
  x.npy, x.f32    the input, [M,K] f32 (.npy for onnxruntime, raw little-endian for Rust)
  meta.json       {"m","k","n","w_scale","w_zero_point"}

The Rust harness packs w.i8 with kiln_runtime::pack::PackedI8Owned::pack and runs
quantize_pack_a + qgemm_f32 on x, so kiln, onnxruntime and RTen compute the same quantized
product from the same bytes.
"""
import argparse
import json
import logging
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing hint
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    m, k, n = a.m, a.k, a.n
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(1000003 * m + 1009 * k + n)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)

    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="matmul")],
        f"gemm_{m}x{k}x{n}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    f32_path = os.path.join(a.out, "model_f32.onnx")
    q_path = os.path.join(a.out, "model.onnx")
    onnx.save(model, f32_path)
    quantize_dynamic(f32_path, q_path, weight_type=QuantType.QInt8)

    q = onnx.load(q_path)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    ops = [nd.op_type for nd in q.graph.node]
    if "MatMulInteger" not in ops:
        raise SystemExit(f"quantize_dynamic did not produce MatMulInteger: {ops}")
    wq = inits["W_quantized"]
    assert wq.dtype == np.int8 and wq.shape == (k, n), (wq.dtype, wq.shape)
    scale = float(np.asarray(inits["W_scale"]).reshape(-1)[0])
    zp = int(np.asarray(inits["W_zero_point"]).reshape(-1)[0])

    wq.tofile(os.path.join(a.out, "w.i8"))
    np.save(os.path.join(a.out, "x.npy"), x)
    x.astype("<f4").tofile(os.path.join(a.out, "x.f32"))
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"m": m, "k": k, "n": n, "w_scale": scale, "w_zero_point": zp,
                   "op_types": ops}, f)


if __name__ == "__main__":
    main()
