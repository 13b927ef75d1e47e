#!/usr/bin/env python3
"""Writes the one-node ONNX models of kiln-bench's `ops` mode (bench/op_models/*.onnx).

    python3 bench/make_op_models.py            # (re)write every model
    python3 bench/make_op_models.py --check    # exit 1 if a committed model differs

Each model is one vision op (pooling, Resize, Pad, Concat) at a static shape taken from the
networks kiln targets (ResNet stem, MobileNet heads, DBNet's FPN in PP-OCR det, YOLO's SPP), with
input `x` and output `y`, attributes spelled the way exporters write them. kiln compiles the file
with `include_model!` (bench/src/cases.rs, `op_models!`) and onnxruntime loads the same file, so
both run exactly the same op. Keep the list in sync with the `op_models!` invocation.
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "op_models")


def pool(op, shape, kernel, strides, pads=None, auto_pad=None, ceil=0, cip=None, dtype=TensorProto.FLOAT):
    attrs = {"kernel_shape": kernel, "strides": strides}
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    elif pads:
        attrs["pads"] = pads
    if ceil:
        attrs["ceil_mode"] = 1
    if cip is not None:
        attrs["count_include_pad"] = cip
    return dict(nodes=[helper.make_node(op, ["x"], ["y"], **attrs)], inputs=[("x", dtype, shape)],
                inits=[])


def global_pool(op, shape):
    return dict(nodes=[helper.make_node(op, ["x"], ["y"])], inputs=[("x", TensorProto.FLOAT, shape)],
                inits=[])


def resize(shape, factor, mode="nearest", **attrs):
    scales = np.array([1, 1, factor, factor], dtype=np.float32)
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, **attrs)
    return dict(nodes=[node], inputs=[("x", TensorProto.FLOAT, shape)],
                inits=[numpy_helper.from_array(scales, "scales")])


def pad(shape, pads):
    p = numpy_helper.from_array(np.array(pads, dtype=np.int64), "pads")
    v = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "value")
    node = helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode="constant")
    return dict(nodes=[node], inputs=[("x", TensorProto.FLOAT, shape)], inits=[p, v])


def concat(shape, parts):
    # The input several times (a Concat of distinct tensors costs the same copies).
    node = helper.make_node("Concat", ["x"] * parts, ["y"], axis=1)
    return dict(nodes=[node], inputs=[("x", TensorProto.FLOAT, shape)], inits=[])


S112 = [1, 64, 112, 112]  # ResNet stem after the 7x7/2 convolution
S40 = [1, 128, 40, 40]
CASES = {
    # MaxPool
    "maxpool_3x3s2p1_64x112x112": pool("MaxPool", S112, [3, 3], [2, 2], pads=[1, 1, 1, 1]),
    "maxpool_2x2s2_64x112x112": pool("MaxPool", S112, [2, 2], [2, 2]),
    "maxpool_3x3s1same_128x40x40": pool("MaxPool", S40, [3, 3], [1, 1], auto_pad="SAME_UPPER"),
    "maxpool_5x5s1p2_128x20x20": pool("MaxPool", [1, 128, 20, 20], [5, 5], [1, 1], pads=[2, 2, 2, 2]),
    "maxpool_3x3s2ceil_96x55x55": pool("MaxPool", [1, 96, 55, 55], [3, 3], [2, 2], ceil=1),
    "maxpool_3x3s2p1_u8_64x112x112": pool("MaxPool", S112, [3, 3], [2, 2], pads=[1, 1, 1, 1],
                                          dtype=TensorProto.UINT8),
    # AveragePool
    "avgpool_2x2s2_64x112x112": pool("AveragePool", S112, [2, 2], [2, 2]),
    "avgpool_3x3s2p1_64x112x112": pool("AveragePool", S112, [3, 3], [2, 2], pads=[1, 1, 1, 1], cip=0),
    "avgpool_3x3s1p1_cip_128x40x40": pool("AveragePool", S40, [3, 3], [1, 1], pads=[1, 1, 1, 1], cip=1),
    # Global pools: large planes and a classifier head's small ones
    "gap_64x112x112": global_pool("GlobalAveragePool", S112),
    "gap_1280x7x7": global_pool("GlobalAveragePool", [1, 1280, 7, 7]),
    "gmp_64x112x112": global_pool("GlobalMaxPool", S112),
    "gmp_1280x7x7": global_pool("GlobalMaxPool", [1, 1280, 7, 7]),
    # Resize nearest: PyTorch's interpolate (asymmetric + floor), the ONNX defaults (half_pixel +
    # round_prefer_floor, as paddle2onnx writes Resize with scales [1, 1, 2, 2]) at DBNet's sizes
    "resize_nearest_x2_asym_128x40x40": resize(S40, 2, coordinate_transformation_mode="asymmetric",
                                               nearest_mode="floor"),
    "resize_nearest_x2_96x40x60": resize([1, 96, 40, 60], 2),
    "resize_nearest_x4_64x40x40": resize([1, 64, 40, 40], 4, coordinate_transformation_mode="asymmetric",
                                         nearest_mode="floor"),
    "resize_nearest_x8_24x20x30": resize([1, 24, 20, 30], 8),
    # Resize linear x2
    "resize_linear_x2_halfpixel_64x40x40": resize([1, 64, 40, 40], 2, mode="linear"),
    "resize_linear_x2_alignc_64x40x40": resize([1, 64, 40, 40], 2, mode="linear",
                                               coordinate_transformation_mode="align_corners"),
    # Pad (constant, spatial 1 on every side) and Concat along channels
    "pad_const_64x112x112": pad(S112, [0, 0, 1, 1, 0, 0, 1, 1]),
    "concat_4x24x80x120": concat([1, 24, 80, 120], 4),
    "concat_2x128x40x40": concat(S40, 2),
}


def build(name, spec):
    inputs = [helper.make_tensor_value_info(n, t, s) for n, t, s in spec["inputs"]]
    y = helper.make_tensor_value_info("y", spec["inputs"][0][1], None)
    g = helper.make_graph(spec["nodes"], name, inputs, [y], spec["inits"])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="kiln-bench")
    m.ir_version = 8
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    bad = 0
    for name, spec in CASES.items():
        data = build(name, spec)
        path = os.path.join(OUT, name + ".onnx")
        if a.check:
            if not os.path.exists(path) or open(path, "rb").read() != data:
                print(f"differs: {path}")
                bad += 1
        else:
            with open(path, "wb") as f:
                f.write(data)
    if bad:
        sys.exit(1)
    if not a.check:
        print(f"wrote {len(CASES)} models to {OUT}")


if __name__ == "__main__":
    main()
