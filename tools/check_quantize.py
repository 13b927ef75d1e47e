#!/usr/bin/env python3
"""Checks `kiln quantize` against onnxruntime (CI runs it; needs tools/requirements.txt).

For every committed quantized fixture tests/models/<arch>_<cfg> whose float model
tests/models/<arch>_f32 exists, with the settings its meta.json records:

1. `kiln quantize` quantizes the float model;
2. onnx.checker accepts the result;
3. onnxruntime (CPU, 1 thread) runs it on the fixture's input, and its output must match the
   fixture's reference output (onnxruntime running onnxruntime's own quantize_dynamic model) within
   the tolerance the fixture's meta.json states;
4. onnxruntime.quantization.quantize_dynamic is run afresh with the same settings on the same float
   model, and every weight, scale and zero point kiln wrote must equal onnxruntime's exactly.

usage: python3 tools/check_quantize.py [path/to/kiln]   (default: target/debug/kiln, built if missing)
"""
import glob
import json
import logging
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing advice
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_pb(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def run(model_path, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def main():
    kiln = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "kiln")
    if not os.path.exists(kiln):
        subprocess.run(["cargo", "build", "-q", "-p", "kiln-cli"], cwd=ROOT, check=True)
    failures, cases = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        dirs = glob.glob(os.path.join(ROOT, "tests", "models", "*_q_*"))
        dirs += glob.glob(os.path.join(ROOT, "tests", "models", "*_qc_*"))  # Conv too (--conv)
        dirs += glob.glob(os.path.join(ROOT, "tests", "models", "*_qm_*"))  # CNNs, MatMul/Gemm only
        for case_dir in sorted(dirs):
            case = os.path.basename(case_dir)
            conv = "_qc_" in case
            arch = re.split("_q[cm]?_", case)[0]
            src = os.path.join(ROOT, "tests", "models", f"{arch}_f32", "model.onnx")
            if not os.path.exists(src):
                continue  # built from inputs that are not committed as a float model
            meta = json.load(open(os.path.join(case_dir, "meta.json")))
            q = meta["quantization"]
            flags = ["--weight-type", "uint8" if q["weight_type"] == "QUInt8" else "int8"]
            if not q["per_channel"]:
                flags.append("--per-tensor")
            if q["reduce_range"]:
                flags.append("--reduce-range")
            # Conv is quantized by default; --conv stays accepted, --no-conv keeps it float.
            flags.append("--conv" if conv else "--no-conv")
            out = os.path.join(tmp, case + ".onnx")
            subprocess.run([kiln, "quantize", src, "-o", out, "-q", *flags], check=True)
            cases += 1
            model = onnx.load(out)
            onnx.checker.check_model(model, full_check=True)

            # Outputs, run by onnxruntime, against the fixture's onnxruntime reference.
            data = os.path.join(case_dir, "test_data_set_0")
            x = load_pb(os.path.join(data, "input_0.pb"))
            expected = load_pb(os.path.join(data, "output_0.pb"))
            name = model.graph.input[0].name
            got = run(out, {name: x})[0]
            diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
            if diff > meta["atol"]:
                failures.append(f"{case}: output differs by {diff:.3g} > atol {meta['atol']}")

            # Parameters against a fresh onnxruntime quantize_dynamic with the same settings.
            ref_path = os.path.join(tmp, case + ".ort.onnx")
            quantize_dynamic(
                src, ref_path,
                weight_type=QuantType.QUInt8 if q["weight_type"] == "QUInt8" else QuantType.QInt8,
                per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                **(dict(op_types_to_quantize=["Conv", "MatMul"]) if conv else
                   dict(op_types_to_quantize=["MatMul", "Gemm"]) if "_qm_" in case else {}),
            )
            ref = {t.name: numpy_helper.to_array(t) for t in onnx.load(ref_path).graph.initializer}
            mine = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            if set(ref) != set(mine):
                failures.append(f"{case}: initializers differ: {sorted(set(ref) ^ set(mine))}")
            for k in set(ref) & set(mine):
                a, b = mine[k], ref[k]
                if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                    failures.append(f"{case}: `{k}` differs from onnxruntime's")
            print(f"{case:24} ok  max|diff| vs onnxruntime reference {diff:.2e} (atol {meta['atol']:.2e})")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        sys.exit(1)
    print(f"{cases} cases: kiln quantize matches onnxruntime quantize_dynamic")


if __name__ == "__main__":
    main()
