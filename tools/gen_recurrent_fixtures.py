"""Fixtures for kiln's recurrent ops (LSTM, GRU, RNN) with onnxruntime's outputs as references,
written to tests/recurrent/<case>/ (model.onnx, test_data_set_0/{input,output}_<k>.pb) and the
test file tests/recurrent.rs. Run: python3 tools/gen_recurrent_fixtures.py (needs onnx,
onnxruntime, numpy from tools/requirements.txt). Outputs are committed.

Each case is one node with constant (initializer) weights, so kiln packs them at compile time,
except `lstm_raw_weights`, whose W/R/B are graph inputs (packed at run time). The references
are onnxruntime 1.32's CPU outputs; onnxruntime does not run `layout = 1`, so a batch-first
case's reference is onnxruntime on the same node with `layout = 0` and transposed inputs,
transposed back (tests/recurrent/<case>/meta.json says which).
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "tests", "recurrent")

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def case(name, op, *, seq, batch, inp, hidden, direction="forward", layout=0, outputs=0b111,
         seq_lens=None, h0=False, c0=False, peep=False, bias=True, raw=False, attrs=None,
         opset=14, seed=0):
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    w = (rng.standard_normal((dirs, g * hidden, inp)) * 0.3).astype(np.float32)
    r = (rng.standard_normal((dirs, g * hidden, hidden)) * 0.3).astype(np.float32)
    b = (rng.standard_normal((dirs, 2 * g * hidden)) * 0.2).astype(np.float32)
    x_shape = [batch, seq, inp] if layout else [seq, batch, inp]
    st_shape = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    x = rng.standard_normal(x_shape).astype(np.float32)
    feeds, inits, ins = {"x": x}, [], []

    def add(pos, nm, arr, as_input):
        while len(ins) < pos:
            ins.append("")
        ins.append(nm)
        if as_input:
            feeds[nm] = arr
        else:
            inits.append(numpy_helper.from_array(arr, nm))

    add(0, "x", x, True)
    add(1, "w", w, raw)
    add(2, "r", r, raw)
    if bias:
        add(3, "b", b, raw)
    if seq_lens is not None:
        add(4, "seq_lens", np.array(seq_lens, np.int32), True)
    if h0:
        add(5, "h0", rng.standard_normal(st_shape).astype(np.float32), True)
    if c0:
        add(6, "c0", rng.standard_normal(st_shape).astype(np.float32), True)
    if peep:
        add(7, "p", (rng.standard_normal((dirs, 3 * hidden)) * 0.3).astype(np.float32), False)
    names = ["y", "y_h", "y_c"][: (3 if op == "LSTM" else 2)]
    outs = [nm if (outputs >> i) & 1 else "" for i, nm in enumerate(names)]
    while outs and outs[-1] == "":
        outs.pop()
    kw = dict(hidden_size=hidden, direction=direction, **(attrs or {}))
    if layout:
        kw["layout"] = 1
    node = helper.make_node(op, ins, outs, **kw)
    y_shape = [batch, seq, dirs, hidden] if layout else [seq, dirs, batch, hidden]
    shapes = {"y": y_shape, "y_h": st_shape, "y_c": st_shape}
    graph_in = [helper.make_tensor_value_info(k, TensorProto.INT32 if k == "seq_lens"
                                              else TensorProto.FLOAT, list(v.shape))
                for k, v in feeds.items()]
    graph_out = [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o])
                 for o in outs if o]
    gr = helper.make_graph([node], name, graph_in, graph_out, inits)
    m = helper.make_model(gr, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return dict(name=name, model=m, feeds=feeds, outs=[o for o in outs if o], layout=layout)


CASES = [
    case("lstm_bidi_seqlens", "LSTM", seq=6, batch=3, inp=10, hidden=20,
         direction="bidirectional", seq_lens=[6, 3, 1], h0=True, c0=True, peep=True, seed=1),
    case("lstm_reverse_state_only", "LSTM", seq=5, batch=2, inp=7, hidden=16,
         direction="reverse", outputs=0b110, h0=True, c0=True, seed=2),
    case("lstm_clip_acts", "LSTM", seq=5, batch=2, inp=8, hidden=12, outputs=0b101,
         attrs=dict(clip=1.5, input_forget=1,
                    activations=["HardSigmoid", "Elu", "Softsign"],
                    activation_alpha=[0.3, 0.9], activation_beta=[0.4]), seed=3),
    case("lstm_raw_weights", "LSTM", seq=4, batch=2, inp=9, hidden=17,
         direction="bidirectional", raw=True, h0=True, seed=4),
    case("lstm_layout1", "LSTM", seq=5, batch=3, inp=6, hidden=8, layout=1,
         direction="bidirectional", seq_lens=[5, 2, 4], h0=True, c0=True, peep=True, seed=5),
    case("gru_bidi_seqlens", "GRU", seq=6, batch=3, inp=10, hidden=20,
         direction="bidirectional", seq_lens=[4, 6, 2], h0=True, seed=6),
    case("gru_lbr", "GRU", seq=5, batch=2, inp=8, hidden=24, direction="reverse",
         attrs=dict(linear_before_reset=1), h0=True, seed=7),
    case("gru_layout1", "GRU", seq=4, batch=2, inp=5, hidden=6, layout=1,
         attrs=dict(linear_before_reset=1), seed=8),
    case("rnn_bidi_relu", "RNN", seq=5, batch=3, inp=6, hidden=10,
         direction="bidirectional", seq_lens=[5, 5, 3], h0=True,
         attrs=dict(activations=["Relu", "Tanh"], clip=2.0), seed=9),
]


def ort_run(model, outs, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(outs, feeds)


def reference(c):
    """onnxruntime's outputs. onnxruntime refuses `layout = 1`, so a batch-first case is run as
    the same node with `layout = 0` on transposed inputs, and its outputs transposed back."""
    if not c["layout"]:
        return ort_run(c["model"], c["outs"], c["feeds"]), f"onnxruntime {ort.__version__}"
    m = onnx.ModelProto()
    m.CopyFrom(c["model"])
    node = m.graph.node[0]
    for a in node.attribute:
        if a.name == "layout":
            a.i = 0
    del m.graph.input[:]
    del m.graph.output[:]
    feeds = {}
    for k, v in c["feeds"].items():
        # x [batch, seq, in] -> [seq, batch, in]; h0/c0 [batch, dirs, h] -> [dirs, batch, h]
        feeds[k] = v if k == "seq_lens" else np.ascontiguousarray(v.transpose(1, 0, 2))
        m.graph.input.append(helper.make_tensor_value_info(
            k, TensorProto.INT32 if k == "seq_lens" else TensorProto.FLOAT, list(feeds[k].shape)))
    for o in c["outs"]:
        m.graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, None))
    outs = ort_run(m, c["outs"], feeds)
    back = {"y": (2, 0, 1, 3), "y_h": (1, 0, 2), "y_c": (1, 0, 2)}
    outs = [np.ascontiguousarray(v.transpose(back[o])) for o, v in zip(c["outs"], outs)]
    return outs, f"onnxruntime {ort.__version__} on the layout-0 equivalent (transposed)"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def field(name):
    return name  # every name here is already a Rust identifier and not a keyword


def rust_test(c):
    n = c["name"]
    lines = [f"mod {n} {{", f'    kiln::include_model!("tests/recurrent/{n}/model.onnx");', "}", "",
             "#[test]", f"fn {n}() {{", f'    let dir = common::case_dir("tests/recurrent/{n}");']
    for i, k in enumerate(c["feeds"]):
        lines.append(f'    let in_{i} = common::load(dir.join("input_{i}.pb"));')
    for i, o in enumerate(c["outs"]):
        lines.append(f'    let want_{i} = common::load(dir.join("output_{i}.pb"));')
    lines.append("    for isa in Isa::all_available() {")
    lines.append(f"        let mut model = {n}::Model::with_isa(isa);")
    args = []
    for i, (k, v) in enumerate(c["feeds"].items()):
        t = "i32" if v.dtype == np.int32 else "f32"
        args.append(f"{field(k)}: kiln::TensorRef::new(common::data::<{t}>(&in_{i}), &in_{i}.shape).unwrap()")
    lines.append(f"        let out = model.run({n}::Inputs {{ {', '.join(args)} }})")
    lines.append(f'            .unwrap_or_else(|e| panic!("{n} [{{}}]: {{e:?}}", isa.name()));')
    for i, o in enumerate(c["outs"]):
        lines.append(f'        let what = format!("{n} [{{}}] {o}", isa.name());')
        lines.append(f'        assert_eq!(out.{field(o)}.shape(), &want_{i}.shape[..], "{{what}}: shape");')
        lines.append(f"        common::assert_close(&what, out.{field(o)}.data(), common::data::<f32>(&want_{i}), ATOL, RTOL);")
    lines += ["    }", "}", ""]
    return "\n".join(lines)


HEADER = """//! @generated by tools/gen_recurrent_fixtures.py — do not edit; add a case there.
//!
//! LSTM, GRU and RNN nodes compiled with `include_model!`, run on every ISA this CPU has and
//! compared with onnxruntime's outputs (for `layout = 1`, which onnxruntime does not run, its
//! outputs for the transposed layout-0 equivalent): tests/recurrent/<case>/meta.json says which.
#![allow(dead_code)]

mod common;

use kiln::runtime::isa::Isa;

/// f32 GEMMs and gate functions rounded differently from onnxruntime's (its sigmoid/tanh are
/// approximations within a few ulp); the largest difference measured over all cases and ISAs is
/// about 1e-6 on values up to ~3.
const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-4;

"""


def main():
    tests = [HEADER]
    for c in CASES:
        d = os.path.join(OUT, c["name"])
        write(os.path.join(d, "model.onnx"), c["model"].SerializeToString())
        outs, source = reference(c)
        for i, v in enumerate(c["feeds"].values()):
            write(os.path.join(d, "test_data_set_0", f"input_{i}.pb"),
                  numpy_helper.from_array(v).SerializeToString())
        for i, v in enumerate(outs):
            write(os.path.join(d, "test_data_set_0", f"output_{i}.pb"),
                  numpy_helper.from_array(np.asarray(v, np.float32)).SerializeToString())
        meta = dict(reference=source, outputs=c["outs"],
                    max_abs=[float(np.abs(v).max()) for v in outs])
        write(os.path.join(d, "meta.json"), (json.dumps(meta, indent=1) + "\n").encode())
        tests.append(rust_test(c))
    write(os.path.join(ROOT, "tests", "recurrent.rs"), "\n".join(tests).rstrip().encode() + b"\n")
    print(f"wrote {len(CASES)} cases to tests/recurrent/ and tests/recurrent.rs")


if __name__ == "__main__":
    main()
