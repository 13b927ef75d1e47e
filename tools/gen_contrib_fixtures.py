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


def main():
    for name, model, feeds, outs in [block()]:
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
                f.write(numpy_helper.from_array(np.asarray(v, np.float32), k).SerializeToString())
            print(name, k, v.shape)


if __name__ == "__main__":
    main()
