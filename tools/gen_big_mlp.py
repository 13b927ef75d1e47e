#!/usr/bin/env python3
"""Writes a large MLP, float and onnxruntime-quantized int8, for compile-cost measurements (issue 21).

usage: python3 tools/gen_big_mlp.py [--layers 24 --hidden 768 --ffn 3072] [--out DIR]

A stack of MatMul+Add+Relu layers alternating hidden->ffn and ffn->hidden (layer i maps
hidden->ffn for even i), input `x` of shape [1, hidden]. The default is issue 21's model:
24 layers of 768<->3072, 56.7 M parameters, 227 MB float, 57 MB int8.
`--layers 16 --hidden 2048 --ffn 8192` is the 1 GB float model (268 M parameters).

Writes (outside the repository; default ${KILN_CACHE:-~/.cache/kiln}/big_mlp/L<layers>_<hidden>x<ffn>/)
  float.onnx   the float model (weights inside the protobuf, seeded random)
  int8.onnx    onnxruntime.quantization.quantize_dynamic(float.onnx) with its defaults
               (per-tensor QUInt8 weights -> MatMulInteger + DynamicQuantizeLinear), skipped
               with --float-only
Prints the directory. Files that exist are kept (delete them to regenerate).
"""

import argparse
import os
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(layers: int, hidden: int, ffn: int) -> onnx.ModelProto:
    rng = np.random.default_rng(21)
    nodes, inits = [], []
    cur = "x"
    for i in range(layers):
        k, n = (hidden, ffn) if i % 2 == 0 else (ffn, hidden)
        # He-style scale keeps activations of the deep stack in a sane range.
        w = (rng.standard_normal((k, n), dtype=np.float32) * np.float32(np.sqrt(2.0 / k)))
        b = rng.standard_normal(n, dtype=np.float32) * np.float32(0.01)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [cur, f"w{i}"], [f"mm{i}"]),
            helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"add{i}"]),
            helper.make_node("Relu", [f"add{i}"], [f"h{i}"]),
        ]
        cur = f"h{i}"
        del w
    out_dim = ffn if layers % 2 == 1 else hidden
    graph = helper.make_graph(
        nodes,
        "big_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, hidden])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, out_dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--ffn", type=int, default=3072)
    ap.add_argument("--out", type=pathlib.Path)
    ap.add_argument("--float-only", action="store_true")
    a = ap.parse_args()
    cache = pathlib.Path(os.environ.get("KILN_CACHE", pathlib.Path.home() / ".cache" / "kiln"))
    out = a.out or cache / "big_mlp" / f"L{a.layers}_{a.hidden}x{a.ffn}"
    out.mkdir(parents=True, exist_ok=True)
    f = out / "float.onnx"
    if not f.exists():
        model = build(a.layers, a.hidden, a.ffn)
        tmp = f.with_suffix(".tmp")
        onnx.save(model, str(tmp))
        del model
        tmp.rename(f)
    q = out / "int8.onnx"
    if not a.float_only and not q.exists():
        from onnxruntime.quantization import quantize_dynamic

        tmp = q.with_suffix(".tmp.onnx")
        quantize_dynamic(str(f), str(tmp))
        tmp.rename(q)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
