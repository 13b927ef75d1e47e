#!/usr/bin/env python3
"""Builds the small, deliberately broken models used by kiln's compile-error (trybuild) tests.

usage: python3 tools/gen_bad_models.py
    (run from anywhere; paths are relative to the repository root)

Writes tests/ui/models/<case>.onnx, one per failure mode that `include_model!` must report as a
clear compile error (see tests/ui/*.rs and their .stderr), and
codegen/tests/fuzz_regressions/<case>.onnx, inputs that crashed the compiler before the fixes
recorded in fuzz/README.md (see codegen/tests/fuzz_regressions.rs). Everything is deterministic:
re-running rewrites identical bytes. The models are built with onnx.helper and deliberately NOT passed
through onnx.checker (most of them would not pass it).
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "ui", "models")
FUZZ_OUT = os.path.join(ROOT, "codegen", "tests", "fuzz_regressions")
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

    # An onnxruntime contrib op kiln lacks (QOrderedMatMul: onnxruntime's CUDA-only int8 GEMM in
    # its column-ordered layouts).
    yield "contrib_op", model(
        [
            helper.make_node(
                "QOrderedMatMul",
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
        [helper.make_node("Det", ["x"], ["y"], name="determinant")],
        [f32("x", [4, 4])],
        [f32("y", [])],
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

    # No shape at all (unknown rank). Symbolic dims are fine; a missing shape is not.
    yield "unknown_rank", model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")],
        [f32("x", None)],
        [f32("y", None)],
        [weight("W", [4, 3])],
    )

    # [3, 4] · [5, 6]: inner dimensions differ.
    yield "shape_mismatch", model(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")],
        [f32("x", [3, 4])],
        [f32("y", [3, 6])],
        [weight("W", [5, 6])],
    )


def qdq_cases():
    """Malformed static quantization: each must be a compile error naming the node and tensor."""
    u8 = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.UINT8, shape)  # noqa: E731
    arr = numpy_helper.from_array
    # A QuantizeLinear whose scale is 0 (a calibration of an all-zero tensor, hand-edited model).
    yield "qdq_zero_scale", model(
        [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["y"], name="x_quant")],
        [f32("x", [1, 4])], [u8("y", [1, 4])],
        [arr(np.array(0.0, np.float32), "x_scale"), arr(np.array(128, np.uint8), "x_zp")])
    # Per-axis weight scales that do not match the axis (4 scales for 3 columns).
    yield "qdq_scale_shape", model(
        [helper.make_node("DequantizeLinear", ["W_q", "W_scale"], ["W"], name="W_dequant", axis=1),
         helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")],
        [f32("x", [1, 4])], [f32("y", [1, 3])],
        [arr(np.ones((4, 3), np.int8), "W_q"), arr(np.full(4, 0.1, np.float32), "W_scale")])
    # A float8 weight (DequantizeLinear of FLOAT8E4M3FN, opset 19+): not supported.
    f8 = helper.make_tensor("W_f8", TensorProto.FLOAT8E4M3FN, [4, 3], [1.0] * 12)
    yield "qdq_float8", model(
        [helper.make_node("DequantizeLinear", ["W_f8", "W_scale"], ["W"], name="W_dequant"),
         helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")],
        [f32("x", [1, 4])], [f32("y", [1, 3])],
        [f8, arr(np.array(0.1, np.float32), "W_scale")], opset=[helper.make_opsetid("", 21)])
    # An onnxruntime QOperator extension kiln lacks (quantize_static(..., QuantFormat.QOperator)
    # on a ReduceMean).
    yield "qlinear_contrib", model(
        [helper.make_node("QLinearReduceMean", ["a", "s", "z", "s", "z"], ["y"], name="mean_quant",
                          domain="com.microsoft")],
        [u8("a", [1, 4])], [u8("y", [1, 4])],
        [arr(np.array(0.1, np.float32), "s"), arr(np.array(128, np.uint8), "z")],
        opset=OPSET + [helper.make_opsetid("com.microsoft", 1)])


def i64(name, v):
    return numpy_helper.from_array(np.array(v, np.int64), name)


def fuzz_regressions():
    vi = helper.make_tensor_value_info
    # NaN alpha / infinite beta with a run-time B: the emitter's float literal panicked.
    yield "gemm_nan_alpha", model(
        [helper.make_node("Gemm", ["a", "b"], ["y"], alpha=float("nan"), beta=float("inf"))],
        [f32("a", [2, 3]), f32("b", [3, 4])],
        [f32("y", [2, 4])],
    )
    # alpha given as an int: the float fusion read it as 1.0.
    yield "gemm_int_alpha", model(
        [helper.make_node("Gemm", ["a", "b"], ["y"], alpha=2)],
        [f32("a", [2, 3])],
        [f32("y", [2, 4])],
        [numpy_helper.from_array(np.ones((3, 4), np.float32), "b")],
    )
    # DynamicQuantizeLinear declaring one output: the quantization fusion indexed the third.
    yield "dql_one_output", model(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["xq"]),
            helper.make_node("MatMulInteger", ["xq", "W"], ["y"]),
        ],
        [f32("x", [2, 3])],
        [vi("y", TensorProto.INT32, [2, 4])],
        [numpy_helper.from_array(np.ones((3, 4), np.uint8), "W")],
    )
    # Dims whose product overflows usize (the tensor itself is empty or never materialised).
    yield "huge_empty_const", model(
        [helper.make_node("Identity", ["c"], ["y"])],
        [f32("x", [1])],
        [f32("y", None)],
        [helper.make_tensor("c", TensorProto.FLOAT, [1 << 40, 1 << 40, 0], [])],
    )
    yield "huge_input", model(
        [helper.make_node("Relu", ["x"], ["y"])], [f32("x", [1 << 40, 1 << 40])], [f32("y", None)]
    )
    yield "reshape_huge_allowzero", model(
        [helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1)],
        [f32("x", [0])],
        [f32("y", None)],
        [i64("s", [1 << 40, 1 << 40, 0])],
    )

    # a[n,1] + b[1,n] folds to [n,n]; reshaped to a column and a row, their sum is [n², n²].
    def chain(n):
        return model(
            [
                helper.make_node("Add", ["a", "b"], ["s1"]),
                helper.make_node("Reshape", ["s1", "col"], ["c"]),
                helper.make_node("Reshape", ["s1", "row"], ["r"]),
                helper.make_node("Add", ["c", "r"], ["s2"]),
                helper.make_node("Mul", ["x", "s2"], ["y"]),
            ],
            [vi("x", TensorProto.UINT8, [1])],
            [vi("y", TensorProto.UINT8, None)],
            [
                numpy_helper.from_array(np.ones((n, 1), np.uint8), "a"),
                numpy_helper.from_array(np.ones((1, n), np.uint8), "b"),
                i64("col", [n * n, 1]),
                i64("row", [1, n * n]),
            ],
        )

    yield "fold_over_limit", chain(256)  # 2^32 elements: rejected
    yield "fold_too_big_to_fold", chain(128)  # 2^28 elements: left to run time
    # Slice steps of ±i64::MAX / i64::MIN: the length arithmetic overflowed.
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min

    def slice_model(x, starts, ends, step, inits=()):
        return model(
            [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
            [x] if x is not None else [],
            [f32("y", None)],
            list(inits)
            + [i64("st", [starts]), i64("en", [ends]), i64("ax", [0]), i64("sp", [step])],
        )

    yield "slice_step_max", slice_model(f32("x", [4]), 0, 3, big)
    yield "slice_step_min", slice_model(f32("x", [4]), 3, 0, small)
    yield "slice_step_neg_max", slice_model(f32("x", [4]), 3, -10, -big)
    yield "slice_fold_step_max", slice_model(
        None, 0, 3, big, [numpy_helper.from_array(np.ones(4, np.float32), "x")]
    )
    # The last -start elements of a symbolic axis, with start = i64::MIN: -start overflowed.
    yield "slice_symbolic_min_start", slice_model(f32("x", ["n"]), small, big, 1)
    # Shape arithmetic n·MIN / -1: the symbolic division's remainder overflowed.
    yield "symbolic_div_overflow", model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Mul", ["s", "m"], ["t"]),
            helper.make_node("Div", ["t", "z"], ["y"]),
        ],
        [f32("x", ["n"])],
        [vi("y", TensorProto.INT64, None)],
        [i64("z", [-1]), i64("m", [small])],
    )
    # K = 0 weights: the float packer panicked.
    yield "matmul_empty_k", model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [f32("x", [2, 0])],
        [f32("y", None)],
        [numpy_helper.from_array(np.zeros((0, 3), np.float32), "W")],
    )


def external(location):
    """y = x + W, with W's 8 bytes "stored" at `location`: a hostile model trying to make the
    build copy another file of the machine into the binary (issue 24)."""
    w = numpy_helper.from_array(np.zeros(2, np.float32), "W")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "8")):
        w.external_data.add(key=k, value=v)
    return model([helper.make_node("Add", ["x", "W"], ["y"], name="add")],
                 [f32("x", [2])], [f32("y", [2])], [w])


def external_cases():
    yield "ext_traversal", external("../../../../../../etc/passwd")
    yield "ext_absolute", external("/etc/passwd")
    # A symlink committed beside the model (ext_escape.bin, made by symlinks() below) that
    # points out of the directory, at the repository's Cargo.toml.
    yield "ext_symlink", external("ext_escape.bin")
    # With the user's opt-in for /dev (tests/ui/ext_device.rs), a device is still refused.
    yield "ext_device", external("/dev/zero")


def symlinks():
    """Symbolic links the external-data cases point at (git stores them as links)."""
    link = os.path.join(OUT, "ext_escape.bin")
    target = os.path.join("..", "..", "..", "Cargo.toml")
    if not (os.path.islink(link) and os.readlink(link) == target):
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
        print("linked", os.path.relpath(link, ROOT), "->", target)


def write_all(out, items):
    os.makedirs(out, exist_ok=True)
    for name, m in items:
        data = m if isinstance(m, bytes) else m.SerializeToString()
        path = os.path.join(out, name + ".onnx")
        old = open(path, "rb").read() if os.path.exists(path) else None
        if old != data:
            with open(path, "wb") as f:
                f.write(data)
            print("wrote", os.path.relpath(path, ROOT))


def main():
    write_all(OUT, list(cases()) + list(qdq_cases()) + list(external_cases()))
    symlinks()
    write_all(FUZZ_OUT, fuzz_regressions())


if __name__ == "__main__":
    main()
