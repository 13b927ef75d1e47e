"""Small hand-built float graphs for tests/api.rs and codegen/tests/generate.rs, written to
tests/graphs/. Run: python3 tools/gen_graph_models.py (needs `onnx`). The outputs are committed.

mean_pool.onnx — sentence-transformers' mean pooling exactly as torch.onnx exports it
(`Unsqueeze(mask) → Expand(Shape(tokens)) → Cast(float)`, then `Mul(tokens, ·) → ReduceSum(1)`
and `ReduceSum(1) → Clip(min=1e-9) → Div`), with symbolic batch and sequence dims: the pattern
codegen's `fold_expand` pass rewrites. Inputs: tokens [batch, seq, 24] f32, mask [batch, seq]
int64; output: [batch, 24].
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "graphs")


def mean_pool():
    hidden = 24
    c = lambda name, v: numpy_helper.from_array(np.array(v), name)  # noqa: E731
    nodes = [
        helper.make_node("Unsqueeze", ["mask", "axes_last"], ["mask3"]),
        helper.make_node("Shape", ["tokens"], ["tshape"]),
        helper.make_node("Expand", ["mask3", "tshape"], ["mask_x"]),
        helper.make_node("Cast", ["mask_x"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["tokens", "mask_f"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes_seq"], ["sum_emb"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axes_seq"], ["sum_mask"], keepdims=0),
        helper.make_node("Clip", ["sum_mask", "tiny", ""], ["sum_mask_c"]),
        helper.make_node("Div", ["sum_emb", "sum_mask_c"], ["pooled"]),
    ]
    g = helper.make_graph(
        nodes,
        "mean_pool",
        [
            helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", hidden]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden])],
        [
            c("axes_last", np.array([-1], np.int64)),
            c("axes_seq", np.array([1], np.int64)),
            c("tiny", np.array(1e-9, np.float32)),
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    onnx.save(mean_pool(), os.path.join(OUT, "mean_pool.onnx"))
    print("wrote tests/graphs/mean_pool.onnx")
