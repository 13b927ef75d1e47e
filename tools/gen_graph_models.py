"""Small hand-built float graphs for tests/api.rs and codegen/tests/generate.rs, written to
tests/graphs/. Run: python3 tools/gen_graph_models.py (needs `onnx`). The outputs are committed.

mean_pool.onnx — sentence-transformers' mean pooling exactly as torch.onnx exports it
(`Unsqueeze(mask) → Expand(Shape(tokens)) → Cast(float)`, then `Mul(tokens, ·) → ReduceSum(1)`
and `ReduceSum(1) → Clip(min=1e-9) → Div`), with symbolic batch and sequence dims: the pattern
codegen's `fold_expand` pass rewrites. Inputs: tokens [batch, seq, 24] f32, mask [batch, seq]
int64; output: [batch, 24].

t5_bias.onnx — a T5 encoder's relative-position bias as torch.onnx exports HF
`T5Attention.compute_bias` (bidirectional, 32 buckets, max_distance 128, 4 heads) for a fixed
sequence length 32, added to attention scores: `Range(Shape)` positions, `Sub`, `Greater`,
`Abs` on int64, `Cast`, `Log`, `Min` against `ConstantOfShape`, `Where`, `Gather` of the bias
table, `Transpose`. With static shapes every node but the final `Add` depends only on constants
(issue 22.3: such subgraphs fold at compile time). Input: scores [1, 4, 32, 32] f32; output:
[1, 4, 32, 32]. t5_bias.input.pb / t5_bias.output.pb: an input and onnxruntime's output.
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


def t5_bias():
    heads, seq, buckets, max_distance = 4, 32, 32, 128
    half = buckets // 2
    max_exact = half // 2
    rng = np.random.default_rng(5)
    table = rng.standard_normal((buckets, heads)).astype(np.float32)
    c = lambda name, v: numpy_helper.from_array(np.array(v), name)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["scores"], ["sshape"]),
        helper.make_node("Gather", ["sshape", "i2"], ["qlen"], axis=0),
        helper.make_node("Gather", ["sshape", "i3"], ["klen"], axis=0),
        helper.make_node("Range", ["zero", "qlen", "one"], ["ctx"]),
        helper.make_node("Range", ["zero", "klen", "one"], ["mem"]),
        helper.make_node("Unsqueeze", ["ctx", "ax1"], ["ctx2"]),
        helper.make_node("Unsqueeze", ["mem", "ax0"], ["mem2"]),
        helper.make_node("Sub", ["mem2", "ctx2"], ["rel"]),
        helper.make_node("Greater", ["rel", "zero"], ["pos"]),
        helper.make_node("Cast", ["pos"], ["pos_i"], to=TensorProto.INT64),
        helper.make_node("Mul", ["pos_i", "half"], ["base"]),
        helper.make_node("Abs", ["rel"], ["arel"]),
        helper.make_node("Less", ["arel", "max_exact"], ["small"]),
        helper.make_node("Cast", ["arel"], ["arel_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["arel_f", "max_exact_f"], ["ratio"]),
        helper.make_node("Log", ["ratio"], ["lratio"]),
        helper.make_node("Div", ["lratio", "log_span"], ["frac"]),
        helper.make_node("Mul", ["frac", "n_large"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["scaled_i"], to=TensorProto.INT64),
        helper.make_node("Add", ["scaled_i", "max_exact"], ["large"]),
        helper.make_node("Shape", ["large"], ["lshape"]),
        helper.make_node("ConstantOfShape", ["lshape"], ["cap"],
                         value=numpy_helper.from_array(np.array([half - 1], np.int64))),
        helper.make_node("Min", ["large", "cap"], ["large_c"]),
        helper.make_node("Where", ["small", "arel", "large_c"], ["pick"]),
        helper.make_node("Add", ["base", "pick"], ["bucket"]),
        helper.make_node("Gather", ["table", "bucket"], ["vals"], axis=0),
        helper.make_node("Transpose", ["vals"], ["vals_t"], perm=[2, 0, 1]),
        helper.make_node("Unsqueeze", ["vals_t", "ax0"], ["bias"]),
        helper.make_node("Add", ["scores", "bias"], ["out"]),
    ]
    g = helper.make_graph(
        nodes,
        "t5_bias",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, heads, seq, seq])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, heads, seq, seq])],
        [
            c("i2", np.array(2, np.int64)),
            c("i3", np.array(3, np.int64)),
            c("zero", np.array(0, np.int64)),
            c("one", np.array(1, np.int64)),
            c("ax0", np.array([0], np.int64)),
            c("ax1", np.array([1], np.int64)),
            c("half", np.array(half, np.int64)),
            c("max_exact", np.array(max_exact, np.int64)),
            c("max_exact_f", np.array(max_exact, np.float32)),
            c("log_span", np.array(np.log(max_distance / max_exact), np.float32)),
            c("n_large", np.array(half - max_exact, np.float32)),
            numpy_helper.from_array(table, "table"),
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def save_reference(model, name):
    """An input and onnxruntime's output for `model`, as TensorProto files."""
    import onnxruntime as ort

    x = np.random.default_rng(6).standard_normal((1, 4, 32, 32)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"scores": x})
    for kind, v in (("input", x), ("output", y)):
        with open(os.path.join(OUT, f"{name}.{kind}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(v).SerializeToString())


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    onnx.save(mean_pool(), os.path.join(OUT, "mean_pool.onnx"))
    t5 = t5_bias()
    onnx.save(t5, os.path.join(OUT, "t5_bias.onnx"))
    save_reference(t5, "t5_bias")
    print("wrote tests/graphs/mean_pool.onnx, t5_bias.onnx (+ reference)")
