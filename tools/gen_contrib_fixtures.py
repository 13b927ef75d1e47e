"""Fixtures for kiln's onnxruntime contrib ops (com.microsoft) with onnxruntime's outputs as
references, written to tests/contrib/<case>/ (model.onnx, test_data_set_0/{input,output}_<k>.pb).
Run: python3 tools/gen_contrib_fixtures.py (needs onnx, onnxruntime, numpy from
tools/requirements.txt). Outputs are committed; tests/contrib.rs reads them.

`block`: the normalisation/activation chain onnxruntime's transformer optimizer writes for a
BERT-like layer (SkipLayerNormalization with bias and all four outputs, FastGelu with bias,
BiasGelu, Gelu, QuickGelu, SkipSimplifiedLayerNormalization,
SimplifiedLayerNormalization in the default domain, as onnxruntime registers it), on random
inputs with constant weights. The references are onnxruntime's CPU outputs with graph
optimisations disabled (so onnxruntime runs these very nodes). onnxruntime's CPU provider has no
BiasAdd (CUDA only): it is tested against its formula in kiln_runtime::ops::bias_act.

`dyn_matmul`: dynamic quantization as onnxruntime's optimizer leaves it: DynamicQuantizeMatMul
(int8 B, per-column scale and zero point, bias), DynamicQuantizeLinear → MatMulIntegerToFloat
(uint8 B, per-tensor, bias) and a second DynamicQuantizeMatMul (uint8 B, no zero point, no
bias). int8 weights stay in [-64, 63]: onnxruntime's u8×s8 AVX2 kernel (vpmaddubsw) saturates
pairwise sums beyond ±32767 otherwise, which is the reason its quantizer has `reduce_range`.

`qoperator`: each QOperator contrib op (QLinearAdd/Mul/Sigmoid/LeakyRelu/GlobalAveragePool in
both layouts/AveragePool/Concat/Softmax, QGemm with an 8-bit and with a float output) on random
uint8 tensors. `matmul_nbits`: MatMulNBits with 4-bit weights (packed zero points and bias, K
not a multiple of the block; no zero points) and 8-bit weights, quantized here from random
floats; onnxruntime runs it with accuracy_level 0 (f32 activations).
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "contrib")
MS = "com.microsoft"


def block():
    rng = np.random.default_rng(7)
    b, s, h = 2, 5, 16
    w = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(np.float32)
    inits = {n: w(h) for n in ["gamma", "beta", "bias", "fg_bias", "bg_bias", "gamma2", "bias2", "gamma3"]}
    nodes = [
        helper.make_node("SkipLayerNormalization", ["x", "r", "gamma", "beta", "bias"],
                         ["y1", "mean1", "inv1", "sum1"], domain=MS, epsilon=1e-6),
        helper.make_node("FastGelu", ["y1", "fg_bias"], ["g1"], domain=MS),
        helper.make_node("BiasGelu", ["g1", "bg_bias"], ["g2"], domain=MS),
        helper.make_node("Gelu", ["g2"], ["g3"], domain=MS),
        helper.make_node("QuickGelu", ["g3"], ["g4"], domain=MS, alpha=1.5),
        helper.make_node("SkipSimplifiedLayerNormalization", ["g4", "y1", "gamma2", "bias2"],
                         ["y2", "", "inv2", "sum2"], domain=MS, epsilon=1e-6),
        helper.make_node("SimplifiedLayerNormalization", ["y2", "gamma3"], ["y3"], axis=-1,
                         epsilon=1e-5),
    ]
    vi = lambda n, shape: helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
    outs = [("y1", [b, s, h]), ("mean1", [b, s, 1]), ("inv1", [b, s, 1]), ("sum1", [b, s, h]),
            ("g4", [b, s, h]), ("y2", [b, s, h]), ("inv2", [b, s, 1]), ("sum2", [b, s, h]),
            ("y3", [b, s, h])]
    graph = helper.make_graph(nodes, "contrib_block", [vi("x", [b, s, h]), vi("r", [b, s, h])],
                              [vi(n, sh) for n, sh in outs],
                              [numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    feeds = {"x": w(b, s, h) * 2, "r": w(b, s, h)}
    return "block", model, feeds, [n for n, _ in outs]


def dyn_matmul():
    rng = np.random.default_rng(11)
    b, s, k, n1, n2, n3 = 2, 5, 32, 24, 16, 8
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    inits = {
        "w1": rng.integers(-64, 64, (k, n1)).astype(np.int8),
        "s1": (rng.random(n1) * 0.02 + 0.005).astype(np.float32),
        "z1": rng.integers(-3, 4, n1).astype(np.int8),
        "bias1": f(n1),
        "w2": rng.integers(0, 256, (k, n2)).astype(np.uint8),
        "s2": np.array(0.01, np.float32),
        "z2": np.array(128, np.uint8),
        "bias2": f(n2),
        "w3": rng.integers(0, 256, (n2, n3)).astype(np.uint8),
        "s3": np.array(0.003, np.float32),
    }
    nodes = [
        helper.make_node("DynamicQuantizeMatMul", ["x", "w1", "s1", "z1", "bias1"], ["y1"], domain=MS),
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulIntegerToFloat", ["xq", "w2", "xs", "s2", "xz", "z2", "bias2"], ["y2"],
                         domain=MS),
        helper.make_node("DynamicQuantizeMatMul", ["y2", "w3", "s3"], ["y3"], domain=MS),
    ]
    vi = lambda n, shape: helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
    outs = [("y1", [b, s, n1]), ("y2", [b, s, n2]), ("y3", [b, s, n3])]
    graph = helper.make_graph(nodes, "contrib_dyn_matmul", [vi("x", [b, s, k])],
                              [vi(n, sh) for n, sh in outs],
                              [numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return "dyn_matmul", model, {"x": f(b, s, k)}, [n for n, _ in outs]


def qoperator():
    rng = np.random.default_rng(13)
    shape = [1, 4, 6, 6]
    u8 = lambda *sh: rng.integers(0, 256, sh).astype(np.uint8)
    sc = lambda v: np.array(v, np.float32)
    zu = lambda v: np.array(v, np.uint8)
    inits = {
        "xs": sc(0.05), "xz": zu(120), "x2s": sc(0.03), "x2z": zu(131),
        "ys": sc(0.07), "yz": zu(125), "ms": sc(0.2), "mz": zu(100),
        "sgs": sc(1 / 256), "sgz": zu(0), "lrs": sc(0.04), "lrz": zu(140),
        "ps": sc(0.04), "pz": zu(118),
        "as": sc(0.02), "az": zu(127),
        "b": rng.integers(-64, 64, (8, 16)).astype(np.int8),
        "bs": (rng.random(8) * 0.01 + 0.005).astype(np.float32),
        "bz": np.zeros(8, np.int8),
        "c": rng.integers(-500, 500, 8).astype(np.int32),
        "gs": sc(0.3), "gz": zu(128),
        "b2": u8(16, 8), "b2s": sc(0.004), "b2z": zu(128),
    }
    nodes = [
        helper.make_node("QLinearAdd", ["x", "xs", "xz", "x2", "x2s", "x2z", "ys", "yz"], ["add"], domain=MS),
        helper.make_node("QLinearMul", ["x", "xs", "xz", "x2", "x2s", "x2z", "ms", "mz"], ["mul"], domain=MS),
        helper.make_node("QLinearSigmoid", ["x", "xs", "xz", "sgs", "sgz"], ["sig"], domain=MS),
        helper.make_node("QLinearLeakyRelu", ["x", "xs", "xz", "lrs", "lrz"], ["lrelu"], domain=MS, alpha=0.1),
        helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ps", "pz"], ["gap"], domain=MS,
                         channels_last=0),
        helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ps", "pz"], ["gapl"], domain=MS,
                         channels_last=1),
        helper.make_node("QLinearAveragePool", ["x", "xs", "xz", "ps", "pz"], ["ap"], domain=MS,
                         kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0),
        helper.make_node("QLinearConcat", ["ys", "yz", "x", "xs", "xz", "x2", "x2s", "x2z"], ["cat"],
                         domain=MS, axis=1),
        helper.make_node("QLinearSoftmax", ["x", "xs", "xz", "sgs", "sgz"], ["sm"], domain=MS,
                         opset=13, axis=-1),
        helper.make_node("QGemm", ["a", "as", "az", "b", "bs", "bz", "c", "gs", "gz"], ["qg"], domain=MS,
                         transB=1),
        helper.make_node("QGemm", ["a", "as", "az", "b2", "b2s", "b2z"], ["qgf"], domain=MS),
    ]
    vi = lambda n, t, sh: helper.make_tensor_value_info(n, t, sh)
    U8, F = TensorProto.UINT8, TensorProto.FLOAT
    outs = [("add", U8, shape), ("mul", U8, shape), ("sig", U8, shape), ("lrelu", U8, shape),
            ("gap", U8, [1, 4, 1, 1]), ("gapl", U8, [1, 1, 1, 6]), ("ap", U8, [1, 4, 3, 3]),
            ("cat", U8, [1, 8, 6, 6]), ("sm", U8, shape), ("qg", U8, [5, 8]), ("qgf", F, [5, 8])]
    graph = helper.make_graph(nodes, "contrib_qoperator",
                              [vi("x", U8, shape), vi("x2", U8, shape), vi("a", U8, [5, 16])],
                              [vi(*o) for o in outs],
                              [numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    feeds = {"x": u8(*shape), "x2": u8(*shape), "a": u8(5, 16)}
    return "qoperator", model, feeds, [o[0] for o in outs]


def quantize_nbits(w, bits, bs, rng):
    """MatMulNBits' packed B [N, k_blocks, blob], scales [N, k_blocks] and packed zero points of
    a float [K, N] weight (asymmetric min/max per block; the padding of a partial last block
    is garbage, which onnxruntime must ignore)."""
    k, n = w.shape
    kb, qmax = -(-k // bs), (1 << bits) - 1
    q = rng.integers(0, qmax + 1, (n, kb * bs)).astype(np.uint8)
    scales = np.zeros((n, kb), np.float32)
    zps = np.zeros((n, kb), np.uint8)
    for j in range(n):
        for b in range(kb):
            v = w[b * bs:(b + 1) * bs, j]
            lo, hi = min(v.min(), 0.0), max(v.max(), 0.0)
            s = np.float32((hi - lo) / qmax)
            z = int(np.clip(np.round(-lo / s), 0, qmax))
            scales[j, b], zps[j, b] = s, z
            q[j, b * bs:b * bs + len(v)] = np.clip(np.round(v / s) + z, 0, qmax)
    if bits == 8:
        return q.reshape(n, kb, bs), scales, zps
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(n, kb, bs // 2)
    zp = np.zeros((n, -(-kb // 2)), np.uint8)
    for b in range(kb):
        zp[:, b // 2] |= zps[:, b] << (4 * (b % 2))
    return packed, scales, zp


def matmul_nbits():
    rng = np.random.default_rng(17)
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    b1, s1, z1 = quantize_nbits(f(48, 24), 4, 32, rng)
    b2, s2, _ = quantize_nbits(f(64, 8), 4, 16, rng)
    b3, s3, z3 = quantize_nbits(f(48, 8), 8, 32, rng)
    inits = {"b1": b1, "s1": s1, "z1": z1, "bias1": f(24), "b2": b2, "s2": s2, "b3": b3, "s3": s3,
             "z3": z3}
    nodes = [
        helper.make_node("MatMulNBits", ["a", "b1", "s1", "z1", "", "bias1"], ["y1"], domain=MS, K=48,
                         N=24, bits=4, block_size=32),
        helper.make_node("MatMulNBits", ["a2", "b2", "s2"], ["y2"], domain=MS, K=64, N=8, bits=4,
                         block_size=16),
        helper.make_node("MatMulNBits", ["a", "b3", "s3", "z3"], ["y3"], domain=MS, K=48, N=8, bits=8,
                         block_size=32),
    ]
    vi = lambda n, shape: helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
    outs = [("y1", [2, 3, 24]), ("y2", [3, 8]), ("y3", [2, 3, 8])]
    graph = helper.make_graph(nodes, "contrib_matmul_nbits", [vi("a", [2, 3, 48]), vi("a2", [3, 64])],
                              [vi(n, sh) for n, sh in outs],
                              [numpy_helper.from_array(v, n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid(MS, 1)])
    model.ir_version = 10
    return "matmul_nbits", model, {"a": f(2, 3, 48), "a2": f(3, 64)}, [n for n, _ in outs]


CASES = [block, dyn_matmul, qoperator, matmul_nbits]


def main():
    for name, model, feeds, outs in [c() for c in CASES]:
        d = os.path.join(OUT, name)
        os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
        onnx.save(model, os.path.join(d, "model.onnx"))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        got = sess.run(outs, feeds)
        for i, (k, v) in enumerate(feeds.items()):
            with open(os.path.join(d, "test_data_set_0", f"input_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(v, k).SerializeToString())
        for i, (k, v) in enumerate(zip(outs, got)):
            with open(os.path.join(d, "test_data_set_0", f"output_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(np.asarray(v), k).SerializeToString())
            print(name, k, v.shape)


if __name__ == "__main__":
    main()
