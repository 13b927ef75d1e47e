#!/usr/bin/env python3
"""Selects the ONNX backend node conformance tests for the ops kiln's first milestone supports,
copies them to tests/onnx_node/<test_name>/ and generates tests/onnx_node.rs.

usage: python tools/gen_node_tests.py [--check]
needs: pip install -r tools/requirements.txt. The node tests are read from the cache that
       tools/dump_node_tests.py writes ($KILN_NODE_TESTS, else ~/.cache/kiln/node_tests); it is
       run first (a no-op when the cache matches the installed onnx).

Selection: the name patterns in SELECT, minus `_expanded` variants and anything whose inputs or
outputs are not plain tensors of the element types kiln's API has (f32 f64 i8 u8 i16 u16 i32 u32
i64 u64 bool: no sequences/optionals/strings/float16/bfloat16/float8/int2; int4/uint4 graph
inputs are frozen into initializers, since kiln takes 4-bit tensors only as constants), or whose
graph inputs do not all have static shapes. Expected outputs are the ones shipped with onnx (computed by
the ONNX reference implementation); every selected case is also run through onnxruntime and any
disagreement is printed (it documents where onnxruntime and the spec differ).

Parameter inputs kiln needs at compile time (Resize scales/sizes, Pad pads, Split sizes: see
CONST_INPUTS) are graph inputs in the node tests; the copied model holds them as initializers with
the test data's values instead, and the generated test feeds only the remaining inputs.

Files are written only when their content changes; case directories no longer selected are removed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

warnings.filterwarnings("ignore")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "onnx_node")
DUMP = os.path.join(ROOT, "tools", "dump_node_tests.py")

SELECT = [
    r"test_matmulinteger.*",
    r"test_quantizelinear.*",
    r"test_dequantizelinear.*",
    r"test_qlinearmatmul.*",
    r"test_qlinearconv.*",
    r"test_dynamicquantizelinear.*",
    r"test_(add|sub|mul|div)(_.*)?",
    r"test_relu",  # test_relu_expanded_ver18 is an expansion into other ops
    r"test_sigmoid.*",
    r"test_tanh.*",
    r"test_softmax.*",
    r"test_reshape.*",
    r"test_flatten.*",
    r"test_transpose.*",
    r"test_if",  # test_if_seq / test_if_opt return sequences / optionals
    r"test_loop11",  # test_loop13_seq / test_loop16_seq_none carry sequences
    r"test_scan9?_.*",
    r"test_identity",  # test_identity_opt / _sequence are optional / sequence types
    r"test_cast_(FLOAT|DOUBLE|INT8|INT16|INT32|INT64|UINT8|UINT16|UINT32|UINT64|BOOL)_to_"
    r"(FLOAT|DOUBLE|INT8|INT16|INT32|INT64|UINT8|UINT16|UINT32|UINT64|BOOL)",
    r"test_matmul_(2d|3d|4d)",
    r"test_concat_.*",
    r"test_gemm.*",
    # Vision ops (pooling, resize, pad, split, activations).
    r"test_(max|average)pool_[123]d_.*",  # test_maxpool_with_argmax_*: the Indices output
    r"test_global(average|max)pool.*",
    r"test_resize_.*",
    r"test_upsample_nearest",
    r"test_(constant|edge|reflect|wrap)_pad.*",
    r"test_split_(equal|variable|zero|1d|2d).*",  # test_split_to_sequence_*: sequences
    r"test_(leakyrelu|hardsigmoid|hardswish|elu|selu|softplus)(_.*)?",
    # Convolutions (Conv, ConvInteger, ConvTranspose) and inference BatchNormalization.
    r"test_(basic_)?conv(integer|transpose)?(_.*)?",
    r"test_batchnorm_(epsilon|example)",  # the _training_mode variants need training outputs
    # Elementwise math and logic added through the op registry (issue 16's worked example and
    # the first of issue 17).
    r"test_(abs|neg|sign|ceil|floor|round|reciprocal|exp|log|softsign)(_example)?",
    r"test_(less|greater)(_equal)?(_bcast|_int8|_int16|_uint8|_uint16|_uint32|_uint64)?",
    r"test_(and|or|xor)_bcast.*",
    r"test_not_[234]d",
    r"test_isnan",  # test_isnan_float16: float16 is not an element type of kiln's API
    r"test_isinf(_positive|_negative)?",
    r"test_(max|min)_(example|one_input|two_inputs|float32|float64|u?int(8|16|32|64))",
    r"test_(mean|sum)_(example|one_input|two_inputs)",
    # Issue 25.5: every other supported op (Reshape above: its shape input is frozen).
    r"test_clip.*",
    r"test_gather_(?!elements|nd).*",  # GatherElements / GatherND are other ops
    r"test_slice.*",
    r"test_layer_normalization.*",
    r"test_erf",
    r"test_where.*",
    r"test_equal.*",  # _string: STRING inputs, skipped
    r"test_expand.*",
    r"test_pow.*",
    r"test_sqrt.*",
    r"test_reduce_(mean|sum)_(?!square).*",  # ReduceSumSquare is another op
    r"test_shape.*",
    r"test_squeeze.*",
    r"test_unsqueeze.*",
    r"test_constantofshape.*",
    # Issue 17: reductions, arg-reductions, integer and bitwise math, tensor ops, recurrent ops
    # and the indexing family.
    r"test_reduce_.*",
    r"test_arg(max|min)_.*",
    r"test_mod_.*",
    r"test_logsoftmax.*",
    r"test_bitwise_.*",
    r"test_(and|or|xor)[234]d",
    r"test_(tril|triu).*",
    r"test_castlike_.*",
    r"test_cast_.*",
    r"test_dropout.*",
    r"test_training_dropout_zero_ratio.*",
    r"test_(gru|lstm|rnn|simple_rnn)_.*",
    r"test_onehot_.*",
    r"test_(spacetodepth|depthtospace).*",
    r"test_eyelike_.*",
    r"test_range_.*",
    r"test_size.*",
    r"test_matmul_.*",
    r"test_constant",
    r"test_gather_elements.*",
    r"test_gathernd_.*",
    r"test_scatter.*",
    # Losses (issue 17): one case per reduction, weights, ignore_index and log_prob.
    r"test_nllloss_(NC|NCd1d2_with_weight_reduction_mean|NCd1d2d3_none_no_weight_negative_ii|NCd1d2_with_weight_reduction_sum_ii)",
    r"test_bitshift_.*",
    r"test_cum(sum|prod)_.*",
    # Sampling (issue 17): GridSample (every mode, padding, 4-D and 5-D), AffineGrid, RoiAlign.
    r"test_gridsample.*",
    r"test_affine_grid_(2d|3d)(_align_corners)?",
    r"test_roialign_.*",
    r"test_sce_(mean_weight_ii_log_prob|NCd1d2d3_sum_weight_high_ii|none_log_prob|mean_no_weight_ii_4d)",
    # The attention family (issue 17): ONNX Attention (opset 23-25), RMSNormalization,
    # RotaryEmbedding.
    r"test_attention_.*",
    r"test_rms_normalization.*",
    r"test_rotary_embedding.*",
    # Activations and trigonometry (issue 17): ops/activation.rs, ops/trig.rs.
    r"test_gelu_(default|tanh)_[12]",
    r"test_(swish|mish|celu)",
    r"test_thresholdedrelu(_default|_example)?",
    r"test_shrink_(hard|soft)",
    r"test_prelu_(broadcast|example)",
    r"test_swiglu(_alpha)?",  # test_swiglu_float16: float16
    r"test_(sin|cos|tan|asin|acos|atan|sinh|cosh|asinh|acosh|atanh)(_example)?",
    # Selection, Lp normalisation, Einsum (issue 17): ops/select.rs, ops/lpnorm.rs, ops/einsum.rs.
    r"test_hardmax_.*",
    r"test_top_k.*",  # K frozen (CONST_INPUTS)
    r"test_l[12p]normalization_.*",
    r"test_einsum_(batch_diagonal|batch_matmul|inner_prod|scalar|sum|transpose)",  # _bfloat16: bf16
]

# Cases kiln refuses at compile time: (name regex, fragment of kiln's error message); the first
# match counts. The generated test runs kiln_codegen on the model and asserts that it still fails
# with that message, so a fix (or a different error) is noticed and the case moved to the passing
# ones. Cases refused because a shape-like input is a graph input (SHAPE_INPUTS) are added
# automatically.
REFUSED = [
    (r"test_convtranspose_3d", "kiln supports 1-D and 2-D"),
    (r"test_resize_.*cubic.*", "Resize mode `cubic` is not supported"),
    (r"test_resize_.*antialias", "Resize with antialias is not supported"),
    (r"test_resize_tf_crop_and_resize.*", "`tf_crop_and_resize` is not supported"),
    (r"test_clip_default_int8_.*", "Clip on I8 tensors is not supported"),
    (r"test_pow_types_(float32_u?int(32|64)|int(32|64)_float32)", "inputs have different element types"),
]
# Cases kiln compiles whose results differ from the ONNX reference: name -> why. The generated test
# asserts that at least one output still differs.
WRONG = {
    "test_resize_downsample_scales_linear_align_corners": (
        "align_corners with a fractional output length (scale 0.6): the ONNX reference divides by "
        "scale*in - 1 = 1.4, kiln and onnxruntime by the integer output length - 1 = 1 (ORT differs "
        "from the expected output by 0.86 too)"),
}
# Optional outputs kiln does not compute, dropped from the copied model (node and graph outputs);
# the remaining outputs are compared as usual. op -> number of outputs kept.
DROP_OUTPUTS: dict = {}
# Shape-like inputs kiln needs at compile time and that are not frozen (a model with no inputs left
# would be the result): the case is expected to be refused with SHAPE_REASON.
SHAPE_INPUTS = {"Tile": [1], "ConstantOfShape": [0]}
# Parameter inputs that kiln needs at compile time and real models hold as initializers, but that
# the node tests feed as graph inputs (every node-test input is a graph input). They are turned
# into initializers holding exactly the test data's values; the expected outputs are unchanged.
CONST_INPUTS = {"Loop": [0, 1], "Resize": [1, 2, 3], "Upsample": [1], "Pad": [1, 2, 3], "Split": [1], "CumSum": [1], "CumProd": [1], "AffineGrid": [1],
                # Conv weights/bias as initializers select the compiled algorithms (GEMM,
                # depthwise) rather than the run-time-weights reference loops.
                "Conv": [1, 2], "ConvInteger": [3], "ConvTranspose": [1, 2], "BatchNormalization": [1, 2, 3, 4],
                # Shapes, axes, slice bounds and clip bounds (issue 25.5).
                "Reshape": [1], "Expand": [1], "Slice": [1, 2, 3, 4], "Squeeze": [1], "Unsqueeze": [1],
                "ReduceMean": [1], "ReduceSum": [1], "Clip": [1, 2],
                # The rest of conformance/build.rs's PARAMS (issue 17's ops).
                "ReduceMax": [1], "ReduceMin": [1],
                "ReduceProd": [1], "ReduceL1": [1], "ReduceL2": [1], "ReduceLogSum": [1],
                "ReduceLogSumExp": [1], "ReduceSumSquare": [1], "OneHot": [1, 2],
                "Range": [0, 1, 2], "Trilu": [1], "Dropout": [1, 2], "TopK": [1]}
SHAPE_REASON = "depends on run-time data"

# ONNX elem_type -> (Rust type, comparison kind)
TYPES = {
    TensorProto.FLOAT: ("f32", "float"), TensorProto.DOUBLE: ("f64", "float64"),
    TensorProto.INT8: ("i8", "exact"), TensorProto.UINT8: ("u8", "exact"),
    TensorProto.INT16: ("i16", "exact"), TensorProto.UINT16: ("u16", "exact"),
    TensorProto.INT32: ("i32", "exact"), TensorProto.UINT32: ("u32", "exact"),
    TensorProto.INT64: ("i64", "exact"), TensorProto.UINT64: ("u64", "exact"),
    TensorProto.BOOL: ("bool", "exact"),
}

# Float tolerances: atol + rtol·|want| elementwise. Default 1e-5 + 1e-5 (≈ 100 ulp in f32): the
# references are computed by numpy, a different evaluation order (or an exp/tanh implementation
# differing by a few ulp) stays far below it.
DEFAULT_TOL = (1e-5, 1e-5)
OP_TOL = {
    # Sums of K products: a blocked / FMA kernel rounds differently than numpy's BLAS; the error
    # scales with K·eps·Σ|a·b|, not with |result|, so allow a larger absolute part.
    "MatMul": (1e-4, 1e-5),
    "Gemm": (1e-4, 1e-5),
    "Conv": (1e-4, 1e-5),
    "ConvTranspose": (1e-4, 1e-5),
}

from kiln_names import rust_fields  # noqa: E402  (tools/ is on sys.path when run as a script)

ARGS = None
CHANGED = []


def write_bytes(path, data: bytes):
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return
    CHANGED.append(os.path.relpath(path, ROOT))
    if ARGS.check:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def tensor_type(vi):
    """(elem_type, dims or None if not static) for a plain tensor ValueInfo, else None."""
    t = vi.type
    if t.WhichOneof("value") != "tensor_type":
        return None
    dims = []
    for d in t.tensor_type.shape.dim:
        if d.WhichOneof("value") != "dim_value":
            return t.tensor_type.elem_type, None
        dims.append(d.dim_value)
    return t.tensor_type.elem_type, dims


def select(name, model, data_dir):
    """None if selected, else the reason it is skipped."""
    if "_expanded" in name:
        return "expanded variant"
    if not any(re.fullmatch(p, name) for p in SELECT):
        return "not a milestone-1 op"
    g = model.graph
    for kind, vis in (("input", g.input), ("output", g.output)):
        for vi in vis:
            tt = tensor_type(vi)
            if tt is None:
                return f"{kind} {vi.name} is not a plain tensor"
            if tt[0] not in TYPES and not (kind == "input" and tt[0] in FREEZE_TYPES):
                return f"{kind} {vi.name} has element type {TensorProto.DataType.Name(tt[0])}"
            if kind == "input" and tt[1] is None:
                return f"input {vi.name} has a symbolic shape"
    n_in = len([f for f in os.listdir(data_dir) if f.startswith("input_")])
    n_out = len([f for f in os.listdir(data_dir) if f.startswith("output_")])
    if n_in != len(g.input) or n_out != len(g.output):
        return "test data is not all plain tensors"
    return None


# Element types kiln takes only as constants (its API has no 4-bit tensors): graph inputs of these
# types are frozen into initializers holding the test data (int4/uint4 DequantizeLinear).
FREEZE_TYPES = {TensorProto.INT4, TensorProto.UINT4}


def freeze_params(model, data_dir):
    """Returns (model, kept): the model with CONST_INPUTS graph inputs (and inputs of a
    FREEZE_TYPES element type) made initializers from the test data, and the original indices of
    the graph inputs that remain."""
    names = {i.name: j for j, i in enumerate(model.graph.input)}
    frozen = {i.name for i in model.graph.input if i.type.tensor_type.elem_type in FREEZE_TYPES}
    for n in model.graph.node:
        for idx in CONST_INPUTS.get(n.op_type, []):
            if idx < len(n.input) and n.input[idx] in names:
                frozen.add(n.input[idx])
    if not frozen:
        return model, list(range(len(model.graph.input)))
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name in sorted(frozen):
        t = onnx.load_tensor(os.path.join(data_dir, f"input_{names[name]}.pb"))
        t.name = name
        m.graph.initializer.append(t)
    kept = [j for j, i in enumerate(model.graph.input) if i.name not in frozen]
    del m.graph.input[:]
    m.graph.input.extend(model.graph.input[j] for j in kept)
    return m, kept


def drop_outputs(model):
    """The model without the DROP_OUTPUTS outputs (the same object if there are none)."""
    drop = set()
    for n in model.graph.node:
        keep = DROP_OUTPUTS.get(n.op_type)
        if keep is not None:
            drop.update(o for o in n.output[keep:] if o)
    if not drop:
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in m.graph.node:
        keep = DROP_OUTPUTS.get(n.op_type)
        if keep is not None:
            del n.output[keep:]
    outs = [o for o in m.graph.output if o.name not in drop]
    del m.graph.output[:]
    m.graph.output.extend(outs)
    return m


def expected_failure(name, model):
    """("refused", message fragment), ("wrong", why) or None."""
    for pat, msg in REFUSED:
        if re.fullmatch(pat, name):
            return "refused", msg
    if name in WRONG:
        return "wrong", WRONG[name]
    reason = shape_input_reason(model)
    return ("refused", reason) if reason else None


def shape_input_reason(model):
    graph_inputs = {i.name for i in model.graph.input}
    for n in model.graph.node:
        for idx in SHAPE_INPUTS.get(n.op_type, []):
            if idx < len(n.input) and n.input[idx] in graph_inputs:
                return SHAPE_REASON
    return None


def ort_check(d, model):
    """Runs the case through onnxruntime; returns a short note if it disagrees with the expected data."""
    try:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        sess = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"])
        ds = os.path.join(d, "test_data_set_0")
        feeds = {i.name: numpy_helper.to_array(onnx.load_tensor(os.path.join(ds, f"input_{j}.pb")))
                 for j, i in enumerate(model.graph.input)}
        got = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - report, don't fail
        return f"onnxruntime cannot run it: {str(e).splitlines()[0][:120]}"
    notes = []
    for j, (o, g) in enumerate(zip(model.graph.output, got)):
        want = numpy_helper.to_array(onnx.load_tensor(os.path.join(ds, f"output_{j}.pb")))
        if want.dtype.kind == "f":
            if not np.allclose(g, want, atol=1e-5, rtol=1e-5, equal_nan=True):
                notes.append(f"{o.name}: max diff {np.max(np.abs(g.astype(np.float64) - want)):.3g}")
        elif not np.array_equal(g, want):
            notes.append(f"{o.name}: {int(np.sum(g != want))} elements differ")
    return "; ".join(notes) or None


# Per-case tolerances where the shipped expected output is itself rounded.
CASE_TOL = {
    # onnx writes this case's expected values by hand with 4 decimals (0.1511 for 0.151056…;
    # kiln and onnxruntime agree to 1e-7).
    "test_averagepool_2d_ceil_last_window_starts_on_pad": (1e-4, 0.0),
    # The same for these (0.9727 for 0.972784; onnx.reference gives kiln's values to 1 ulp).
    "test_roialign_aligned_false": (1e-4, 0.0),
    "test_roialign_aligned_true": (1e-4, 0.0),
    "test_gridsample_bicubic": (1e-4, 0.0),
}


def tol_for(model, name=""):
    atol, rtol = CASE_TOL.get(name, DEFAULT_TOL)
    for n in model.graph.node:
        a, r = OP_TOL.get(n.op_type, DEFAULT_TOL)
        atol, rtol = max(atol, a), max(rtol, r)
    return atol, rtol


def rust_float(v):
    return np.format_float_scientific(v, unique=True, trim="0", exp_digits=1).replace(".e", ".0e")



def rustfmt(src: str) -> str:
    """Formats generated Rust with the toolchain's rustfmt (unchanged if rustfmt is unavailable)."""
    import subprocess
    try:
        r = subprocess.run(["rustfmt", "--edition", "2024", "--emit", "stdout"], input=src.encode(),
                           capture_output=True, check=True)
        return r.stdout.decode()
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"warning: rustfmt failed ({e}); writing unformatted Rust", file=sys.stderr)
        return src if src.endswith("\n") else src + "\n"


def gen_rust(cases):
    L = [
        "//! @generated by tools/gen_node_tests.py — do not edit; change the selection there.",
        "//!",
        "//! ONNX backend node conformance tests for the ops kiln supports (the sweep in",
        "//! conformance/ runs all of them; this subset is committed, so it runs on a clean clone).",
        "//! Each case is compiled with `include_model!`, run on every ISA this CPU has, and compared",
        "//! with the outputs that ship with onnx: integer/bool outputs exactly, floats at",
        "//! atol + rtol·|want| (see OP_TOL in the script for the ops that get more).",
        "//!",
        "//! Expected failures are tests too: a case kiln refuses (REFUSED in the script) runs the",
        "//! compiler and asserts it still fails with that message; a case with a known wrong result",
        "//! (WRONG) asserts that an output still differs. A fix makes them fail, so it is noticed.",
        "#![allow(dead_code, non_snake_case)]",
        "",
        "mod common;",
        "",
        "use kiln::runtime::isa::Isa;",
        "",
    ]
    for c in cases:
        name, model = c["name"], c["model"]
        kind, why = c["expect"] or (None, None)
        if kind == "refused":
            L += [f"/// kiln refuses this case; the test fails when that changes.",
                  "#[test]", f"fn {name}() {{",
                  f'    common::assert_refused("tests/onnx_node/{name}/model.onnx", {rust_str(why)});',
                  "}", ""]
            continue
        L += [f"mod {name} {{", f'    kiln::include_model!("tests/onnx_node/{name}/model.onnx");', "}", ""]
        if kind == "wrong":
            L.append(f"/// Known wrong result, asserted to stay wrong: {why}")
        L += ["#[test]", f"fn {name}() {{"]
        L.append(f'    let dir = common::case_dir("tests/onnx_node/{name}");')
        for j, orig in enumerate(c["kept"]):
            L.append(f'    let input_{j} = common::load(dir.join("input_{orig}.pb"));')
        for j in range(len(model.graph.output)):
            L.append(f'    let want_{j} = common::load(dir.join("output_{j}.pb"));')
        L += ["    for isa in Isa::all_available() {", f"        let mut model = {name}::Model::with_isa(isa);"]
        fields_in = rust_fields([i.name for i in model.graph.input], "input")
        for j, vi in enumerate(model.graph.input):
            ty = TYPES[vi.type.tensor_type.elem_type][0]
            L.append(f"        let x_{j} = kiln::TensorRef::new(common::data::<{ty}>(&input_{j}), &input_{j}.shape).unwrap();")
        init = ", ".join(f"{f}: x_{j}" for j, f in enumerate(fields_in))
        # A model without graph inputs has an `Inputs` with only a private marker field.
        inputs = f"{name}::Inputs {{ {init} }}" if init else f"{name}::Inputs::default()"
        L += [f"        let out = model.run({inputs})",
              f'            .unwrap_or_else(|e| panic!("{name} [{{}}]: {{e:?}}", isa.name()));']
        fields_out = rust_fields([o.name for o in model.graph.output], "output")
        atol, rtol = c["tol"]
        if kind == "wrong":
            L.append("        let mut differs = false;")
        for j, (vi, f) in enumerate(zip(model.graph.output, fields_out)):
            ty, cmp = TYPES[vi.type.tensor_type.elem_type]
            want = f"common::data::<{ty}>(&want_{j})"
            if kind == "wrong":
                check = (f"common::check_exact(out.{f}.data(), {want})" if cmp == "exact" else
                         f"common::check_close(out.{f}.data(), {want}, {rust_float(atol)}, {rust_float(rtol)})")
                L.append(f"        differs |= out.{f}.shape() != &want_{j}.shape[..] || {check}.is_err();")
                continue
            L += [f'        let what = format!("{name} [{{}}] {vi.name}", isa.name());',
                  f'        assert_eq!(out.{f}.shape(), &want_{j}.shape[..], "{{what}}: shape");']
            if cmp == "exact":
                L.append(f"        common::assert_exact(&what, out.{f}.data(), {want});")
            elif cmp == "float":
                L.append(f"        common::assert_close(&what, out.{f}.data(), {want}, {rust_float(atol)}, {rust_float(rtol)});")
            else:
                L.append(f"        common::assert_close_f64(&what, out.{f}.data(), {want}, {rust_float(atol)}, {rust_float(rtol)});")
        if kind == "wrong":
            L += ["        assert!(",
                  "            differs,",
                  f'            "{name} [{{}}]: matches the expected output now; move it out of WRONG in \\',
                  f'             tools/gen_node_tests.py and regenerate",',
                  "            isa.name()",
                  "        );"]
        L.append("    }")
        L += ["}", ""]
    write_bytes(os.path.join(ROOT, "tests", "onnx_node.rs"), rustfmt("\n".join(L)).encode())


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if anything would change")
    ARGS = p.parse_args()

    subprocess.run([sys.executable, DUMP], check=True)
    cache = subprocess.run([sys.executable, DUMP, "--print-dir"], check=True, capture_output=True,
                           text=True).stdout.strip()
    prefilter = re.compile("^(" + "|".join(SELECT) + ")")
    cases, skipped = [], []
    names = [n for n in os.listdir(cache)
             if os.path.isdir(os.path.join(cache, n)) and prefilter.match(n)]
    for name in sorted(names):
        d = os.path.join(cache, name)
        model = onnx.load(os.path.join(d, "model.onnx"))
        why = select(name, model, os.path.join(d, "test_data_set_0"))
        if why:
            skipped.append((name, why))
            continue
        frozen, kept = freeze_params(model, os.path.join(d, "test_data_set_0"))
        frozen = drop_outputs(frozen)
        cases.append(dict(name=name, model=frozen, kept=kept, expect=expected_failure(name, frozen),
                          tol=tol_for(model, name),
                          ort=ort_check(d, model),
                          ops=sorted({n.op_type for n in model.graph.node})))
        for root, _, files in os.walk(d):
            for f in sorted(files):
                src = os.path.join(root, f)
                with open(src, "rb") as fh:
                    data = fh.read()
                if src == os.path.join(d, "model.onnx") and frozen is not model:
                    data = frozen.SerializeToString()
                write_bytes(os.path.join(OUT, name, os.path.relpath(src, d)), data)
    keep = {c["name"] for c in cases}
    if os.path.isdir(OUT):
        for d in sorted(os.listdir(OUT)):
            if d not in keep:
                CHANGED.append(f"tests/onnx_node/{d} (removed)")
                if not ARGS.check:
                    shutil.rmtree(os.path.join(OUT, d))
    gen_rust(cases)

    n_expect = sum(1 for c in cases if c["expect"])
    print(f"== {len(cases)} node tests selected ({n_expect} expected to fail, asserted) ==")
    for c in cases:
        extra = f"  [expected {c['expect'][0]}: {c['expect'][1]}]" if c["expect"] else ""
        print(f"  {c['name']:44s} {','.join(c['ops']):24s} atol {c['tol'][0]:g} rtol {c['tol'][1]:g}{extra}")
    print("== onnxruntime vs the shipped expected outputs ==")
    for c in cases:
        if c["ort"]:
            print(f"  {c['name']}: {c['ort']}")
    print(f"== {len(skipped)} candidates skipped ==")
    for name, why in skipped:
        if "expanded" not in why:
            print(f"  {name}: {why}")
    if CHANGED:
        print(f"{'would change' if ARGS.check else 'wrote'} {len(CHANGED)} files", file=sys.stderr)
    if ARGS.check and CHANGED:
        sys.exit(1)


if __name__ == "__main__":
    main()
