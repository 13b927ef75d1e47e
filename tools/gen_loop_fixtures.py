"""Fixtures for kiln's Loop and Scan with onnxruntime's outputs as references, written to
tests/loops/<case>/ (model.onnx, test_data_set_0/{input,output}_<k>.pb).
Run: python3 tools/gen_loop_fixtures.py (needs onnx, onnxruntime, numpy from
tools/requirements.txt). Outputs are committed; tests/loops.rs reads them.

`loop_grow`: a Loop with a constant trip count (an initializer) and a condition computed in the
body from the iteration number (stops after 4 of 6 iterations), a carried value that grows by
one row per iteration (Concat), a carried accumulator, a scan output that slices an outer
value at the iteration number, and a capture of a graph input.
`scan_axes`: an opset-16 Scan with two scan inputs (one along axis 1 read in reverse), two
states, and two scan outputs (one along axis 1, one along axis -1 written in reverse).
`scan8`: an opset-8 batched Scan (batch 2).
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "loops")
F = TensorProto.FLOAT
vi = lambda n, t, shape: helper.make_tensor_value_info(n, t, shape)
rng = np.random.default_rng(18)


def loop_grow():
    k = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v)))
    body = helper.make_graph(
        [
            k("three", np.int64(3)),
            helper.make_node("Less", ["i", "three"], ["cond_out"]),
            helper.make_node("Concat", ["rows_in", "x"], ["rows_out"], axis=0),
            helper.make_node("Unsqueeze", ["i", "ax0"], ["i1"]),
            k("one", np.array([1], np.int64)),
            helper.make_node("Add", ["i1", "one"], ["i2"]),
            helper.make_node("Slice", ["table", "i1", "i2"], ["row"]),
            helper.make_node("Mul", ["row", "x"], ["scan"]),
            helper.make_node("Add", ["acc_in", "scan"], ["acc_out"]),
        ],
        "body",
        [vi("i", TensorProto.INT64, []), vi("cond", TensorProto.BOOL, []),
         vi("rows_in", F, [None, 3]), vi("acc_in", F, [1, 3])],
        [vi("cond_out", TensorProto.BOOL, []), vi("rows_out", F, [None, 3]), vi("acc_out", F, [1, 3]),
         vi("scan", F, [1, 3])],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "", "rows0", "acc0"], ["rows", "acc", "scans"], body=body)],
        "loop_grow",
        [vi("x", F, [1, 3]), vi("rows0", F, [2, 3]), vi("acc0", F, [1, 3])],
        [vi("rows", F, [None, 3]), vi("acc", F, [1, 3]), vi("scans", F, [None, 1, 3])],
        [numpy_helper.from_array(np.array(6, np.int64), "M"),
         numpy_helper.from_array(np.array([0], np.int64), "ax0"),
         numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in
             [("x", (1, 3)), ("rows0", (2, 3)), ("acc0", (1, 3))]}
    return "loop_grow", model, feeds, ["rows", "acc", "scans"]


def scan_axes():
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s_in", "a"], ["s_out"]),
            helper.make_node("Mul", ["p_in", "b"], ["p_out"]),
            helper.make_node("Sub", ["s_out", "p_out"], ["y1"]),
            helper.make_node("Tanh", ["s_out"], ["y2"]),
        ],
        "body",
        [vi("s_in", F, [2, 3]), vi("p_in", F, [2, 3]), vi("a", F, [2, 3]), vi("b", F, [2, 3])],
        [vi("s_out", F, [2, 3]), vi("p_out", F, [2, 3]), vi("y1", F, [2, 3]), vi("y2", F, [2, 3])],
    )
    node = helper.make_node(
        "Scan", ["s0", "p0", "a", "b"], ["s", "p", "y1", "y2"], body=body, num_scan_inputs=2,
        scan_input_axes=[0, 1], scan_input_directions=[0, 1], scan_output_axes=[1, -1],
        scan_output_directions=[0, 1])
    graph = helper.make_graph(
        [node], "scan_axes",
        [vi("s0", F, [2, 3]), vi("p0", F, [2, 3]), vi("a", F, [4, 2, 3]), vi("b", F, [2, 4, 3])],
        [vi("s", F, [2, 3]), vi("p", F, [2, 3]), vi("y1", F, [2, 4, 3]), vi("y2", F, [2, 3, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    feeds = {"s0": rng.standard_normal((2, 3)).astype(np.float32),
             "p0": rng.standard_normal((2, 3)).astype(np.float32),
             "a": rng.standard_normal((4, 2, 3)).astype(np.float32),
             "b": (rng.standard_normal((2, 4, 3)) * 0.5 + 1).astype(np.float32)}
    return "scan_axes", model, feeds, ["s", "p", "y1", "y2"]


def scan8():
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "x"], ["y"])],
        "body",
        [vi("s_in", F, [3]), vi("x", F, [3])],
        [vi("s_out", F, [3]), vi("y", F, [3])],
    )
    node = helper.make_node("Scan", ["", "s0", "x"], ["s", "y"], body=body, num_scan_inputs=1,
                            directions=[1])
    graph = helper.make_graph(
        [node], "scan8", [vi("s0", F, [2, 3]), vi("x", F, [2, 5, 3])],
        [vi("s", F, [2, 3]), vi("y", F, [2, 5, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    feeds = {"s0": rng.standard_normal((2, 3)).astype(np.float32),
             "x": rng.standard_normal((2, 5, 3)).astype(np.float32)}
    return "scan8", model, feeds, ["s", "y"]


def main():
    for name, model, feeds, outs in [loop_grow(), scan_axes(), scan8()]:
        d = os.path.join(OUT, name)
        os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
        onnx.checker.check_model(model)
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
