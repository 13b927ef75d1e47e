#!/usr/bin/env python3
"""onnxruntime side of kiln's benchmark harness (bench/).

Two ways to use it:

* One-shot (for humans):
    python3 bench/ort_driver.py model.onnx --input x=x.npy --threads 1 --warmup 20 --repeats 50
  loads the model, warms up, times `--repeats` samples and prints one JSON object:
    {"median_ms": .., "min_ms": .., "max_ms": .., "ms": [..], "inner": .., "threads": ..}
  Inputs are .npy files or ONNX TensorProto .pb files (`name=path`; the name may be omitted for
  single-input models).

* Server (what the Rust harness uses): `python3 bench/ort_driver.py --serve` reads one JSON
  command per line on stdin and answers one JSON line on stdout, so the harness can interleave
  onnxruntime with kiln and RTen in rounds without paying process start-up or model load per
  round:
    {"op": "load", "key": K, "model": PATH, "inputs": {NAME: PATH}, "threads": N}
        -> {"ok": true, "load_ms": .., "outputs": [[name, shape], ..], "checks": [{..}, ..]}
       (checks: per output, `hash` = sum of bits(y[i]) * (2i + 1) mod 2^64 over the raw
       element bits, `sum` and `abs` = sum of values and of magnitudes in f64; the harness
       compares them with kiln's output)
    {"op": "time", "key": K, "warmup": W, "samples": S, "inner": I}
        -> {"ok": true, "ms": [per-call ms of each sample]}
    {"op": "unload", "key": K} -> {"ok": true}
    {"op": "quit"}
  Errors answer {"ok": false, "error": "..."}.

Session settings (the same in both modes): intra_op_num_threads = N, inter_op_num_threads = 1,
ORT_SEQUENTIAL, ORT_ENABLE_ALL (onnxruntime's defaults otherwise, including thread spinning).
Each call goes through an IOBinding with pre-bound input and output OrtValues, so the Python cost
per call is one `run_with_iobinding` (no numpy conversion or output allocation per call). A
sample times `inner` back-to-back calls and reports the mean, so microsecond models are not
measured at timer resolution.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def load_array(path):
    if path.endswith(".npy"):
        return np.load(path)
    from onnx import TensorProto, numpy_helper  # only needed for .pb inputs

    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def fingerprint(y):
    y = np.ascontiguousarray(y).reshape(-1)
    if y.dtype.itemsize == 4:
        bits = y.view(np.uint32).astype(np.uint64)
    elif y.dtype.itemsize == 1:
        bits = y.view(np.uint8).astype(np.uint64)
    else:
        bits = y.view(np.uint64) if y.dtype.itemsize == 8 else y.astype(np.uint64)
    with np.errstate(over="ignore"):
        weights = np.arange(y.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        h = int(np.sum(bits * weights, dtype=np.uint64))
    v = y.astype(np.float64)
    return {"hash": h, "sum": float(v.sum()), "abs": float(np.abs(v).sum())}


class Case:
    def __init__(self, model, inputs, threads):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        t0 = time.perf_counter()
        self.sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.load_ms = (time.perf_counter() - t0) * 1e3
        names = [i.name for i in self.sess.get_inputs()]
        if len(inputs) == 1 and None in inputs and len(names) == 1:
            inputs = {names[0]: inputs[None]}
        missing = set(names) - set(inputs)
        if missing:
            raise ValueError(f"{model}: no data for inputs {sorted(missing)} (have {sorted(inputs)})")
        feeds = {n: np.ascontiguousarray(load_array(inputs[n])) for n in names}
        # One plain run to learn the output shapes, then bind preallocated outputs.
        outs = self.sess.run(None, feeds)
        self.outputs = [(o.name, list(v.shape)) for o, v in zip(self.sess.get_outputs(), outs)]
        self.checks = [fingerprint(v) for v in outs]
        self.binding = self.sess.io_binding()
        self._keep = []
        for n, a in feeds.items():
            v = ort.OrtValue.ortvalue_from_numpy(a)
            self._keep.append(v)
            self.binding.bind_ortvalue_input(n, v)
        for o, v in zip(self.sess.get_outputs(), outs):
            ov = ort.OrtValue.ortvalue_from_numpy(np.empty_like(v))
            self._keep.append(ov)
            self.binding.bind_ortvalue_output(o.name, ov)

    def run(self):
        self.sess.run_with_iobinding(self.binding)

    def time(self, warmup, samples, inner):
        run = self.run
        for _ in range(warmup):
            run()
        ms = []
        clock = time.perf_counter_ns
        for _ in range(samples):
            t0 = clock()
            for _ in range(inner):
                run()
            ms.append((clock() - t0) / 1e6 / inner)
        return ms


def serve():
    cases = {}
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                break
            if op == "load":
                c = Case(cmd["model"], cmd["inputs"], int(cmd["threads"]))
                cases[cmd["key"]] = c
                reply = {"ok": True, "load_ms": c.load_ms, "outputs": c.outputs, "checks": c.checks}
            elif op == "time":
                c = cases[cmd["key"]]
                ms = c.time(int(cmd["warmup"]), int(cmd["samples"]), int(cmd.get("inner", 1)))
                reply = {"ok": True, "ms": ms}
            elif op == "unload":
                cases.pop(cmd["key"], None)
                reply = {"ok": True}
            elif op == "version":
                reply = {"ok": True, "onnxruntime": ort.__version__, "numpy": np.__version__}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as e:  # report, keep serving
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?")
    ap.add_argument("--serve", action="store_true", help="JSON-lines command server on stdin")
    ap.add_argument("--input", action="append", default=[], help="[name=]path (.npy or .pb)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--inner", type=int, default=1, help="calls per timed sample")
    a = ap.parse_args()
    if a.serve:
        serve()
        return
    if not a.model:
        ap.error("a model path (or --serve) is required")
    inputs = {}
    for spec in a.input:
        name, sep, path = spec.partition("=")
        if sep:
            inputs[name] = path
        else:
            inputs[None] = spec
    c = Case(a.model, inputs, a.threads)
    ms = c.time(a.warmup, a.repeats, a.inner)
    s = sorted(ms)
    print(json.dumps({
        "model": os.path.basename(a.model), "threads": a.threads, "inner": a.inner,
        "median_ms": float(np.median(s)), "min_ms": s[0], "max_ms": s[-1], "ms": ms,
        "load_ms": c.load_ms, "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
