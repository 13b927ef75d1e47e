#!/usr/bin/env python3
"""Builds the small, deliberately broken models used by kiln's compile-error (trybuild) tests.

usage: python3 tools/gen_bad_models.py
    (run from anywhere; paths are relative to the repository root)

Writes tests/ui/models/<case>.onnx, one per failure mode that `include_model!` must report as a
clear compile error (see tests/ui/*.rs and their .stderr). Everything is deterministic: re-running
rewrites identical bytes. The models are built with onnx.helper and deliberately NOT passed
through onnx.checker (most of them would not pass it).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "ui", "models")
OPSET = [helper.make_opsetid("", 13)]


def model(nodes, inputs, outputs, inits=(), opset=OPSET, name="bad"):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=opset, producer_name="kiln-gen-bad-models")
    m.ir_version = 8
    return m


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def weight(name, shape):
    rng = np.random.default_rng(0)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def valid():
    """A tiny valid model: y = Softmax(x · W)."""
    return model(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"], name="fc"),
            helper.make_node("Softmax", ["h"], ["y"], name="probs", axis=-1),
        ],
        [f32("x", [1, 4])],
        [f32("y", [1, 3])],
        [weight("W", [4, 3])],
    )


def cases():
    yield "not_onnx", b"This is a README, not an ONNX model.\nSee https://onnx.ai for the format.\n"

    full = valid().SerializeToString()
    yield "truncated", full[: len(full) // 2]

    # onnxruntime contrib op: what `optimize_model` / ORT graph optimisation writes out.
    yield "contrib_op", model(
        [
            helper.make_node(
                "DynamicQuantizeMatMul",
                ["x", "W_q", "W_scale", "W_zp"],
                ["y"],
                name="fc_quant",
                domain="com.microsoft",
            )
        ],
        [f32("x", [1, 4])],
        [f32("y", [1, 3])],
        [
            numpy_helper.from_array(np.ones((4, 3), np.int8), "W_q"),
            numpy_helper.from_array(np.array(0.1, np.float32), "W_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "W_zp"),
        ],
        opset=OPSET + [helper.make_opsetid("com.microsoft", 1)],
    )

    yield "unknown_op", model(
        [helper.make_node("Hardmax", ["x"], ["y"], name="argmax_onehot", axis=-1)],
        [f32("x", [1, 4])],
        [f32("y", [1, 4])],
    )

    # Softmax `axis` given as a float (1.0) instead of an int.
    bad_axis = helper.make_attribute("axis", 1.0)
    sm = helper.make_node("Softmax", ["x"], ["y"], name="probs")
    sm.attribute.append(bad_axis)
    yield "bad_attr_type", model([sm], [f32("x", [1, 4])], [f32("y", [1, 4])])

    # MatMul reads `W`, which is neither an input, an initializer nor a node output.
    yield "dangling_input", model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")],
        [f32("x", [1, 4])],
        [f32("y", [1, 3])],
    )

    yield "float16_input", model(
        [helper.make_node("Relu", ["x"], ["y"], name="act")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4])],
    )

    yield "symbolic_dim", model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")],
        [f32("x", ["batch", 4])],
        [f32("y", ["batch", 3])],
        [weight("W", [4, 3])],
    )

    # [3, 4] · [5, 6]: inner dimensions differ.
    yield "shape_mismatch", model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")],
        [f32("x", [3, 4])],
        [f32("y", [3, 6])],
        [weight("W", [5, 6])],
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, m in cases():
        data = m if isinstance(m, bytes) else m.SerializeToString()
        path = os.path.join(OUT, name + ".onnx")
        old = open(path, "rb").read() if os.path.exists(path) else None
        if old != data:
            with open(path, "wb") as f:
                f.write(data)
            print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
