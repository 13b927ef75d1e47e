#!/usr/bin/env python3
"""Writes every ONNX backend node test of the installed onnx wheel (tools/requirements.txt pins
the version) to a cache directory outside the repository, for the conformance sweep (conformance/)
and tools/gen_node_tests.py.

usage: python3 tools/dump_node_tests.py [--force] [--print-dir] [OUT]
OUT defaults to $KILN_NODE_TESTS, else ~/.cache/kiln/node_tests.

onnx ships its node tests as Python generators (onnx/backend/test/case/node/*.py: each builds a
one-node model, runs numpy or the ONNX reference implementation on example inputs and records the
outputs). This collects them and writes, per case:

    OUT/<case>/model.onnx
    OUT/<case>/test_data_set_<i>/input_<j>.pb, output_<j>.pb   (onnx.TensorProto)

Inputs/outputs that are not plain tensors (sequences, optionals, maps) get no .pb file; a reader
treats a missing file as "not a plain tensor". OUT/INDEX lists one case per line:
`<name> <rtol> <atol> <n_inputs> <n_outputs>` (the tolerances the onnx backend runner uses for it).
OUT/STAMP records the onnx version and the layout version; when it matches, nothing is rewritten
(so a second run takes a second). The directory is replaced atomically.
"""
import os

# The generators compute expected outputs with numpy, whose OpenBLAS picks kernels by CPU and
# rounds differently (the attention cases' matmuls differed between machines): pin one, as
# .ci/run and tools/gen_fixtures.py do, before numpy is imported.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import argparse
import shutil
import sys
import tempfile
import warnings

FORMAT = 2  # bump when the layout or the numbers change, so stale caches are rewritten


def default_dir():
    return os.environ.get("KILN_NODE_TESTS") or os.path.join(
        os.path.expanduser("~"), ".cache", "kiln", "node_tests")


def tensor_proto(value, name):
    """A TensorProto for a plain tensor (numpy array or TensorProto), else None."""
    from onnx import TensorProto, numpy_helper
    import numpy as np
    if isinstance(value, TensorProto):
        t = TensorProto()
        t.CopyFrom(value)
        t.name = name
        return t
    if isinstance(value, np.ndarray) or np.isscalar(value):
        try:
            return numpy_helper.from_array(np.asarray(value), name)
        except Exception:  # noqa: BLE001 - dtypes TensorProto cannot hold (e.g. object)
            return None
    return None  # list (sequence), None (empty optional), dict (map)


def dump(out):
    import onnx
    from onnx.backend.test.case import node
    # Checked before collecting the cases (which runs every generator, ~8 s).
    stamp = f"onnx {onnx.__version__} format {FORMAT}\n"
    stamp_path = os.path.join(out, "STAMP")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        with open(os.path.join(out, "INDEX")) as f:
            return sum(1 for _ in f), False
    cases = node.collect_testcases(None)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".node_tests.", dir=parent)
    index = []
    for case in cases:
        d = os.path.join(tmp, case.name)
        os.makedirs(d)
        onnx.save(case.model, os.path.join(d, "model.onnx"))
        g = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(ds)
            for kind, values, infos in (("input", inputs, g.input), ("output", outputs, g.output)):
                for j, v in enumerate(values):
                    t = tensor_proto(v, infos[j].name if j < len(infos) else f"{kind}_{j}")
                    if t is not None:
                        with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                            f.write(t.SerializeToString())
        index.append(f"{case.name} {case.rtol!r} {case.atol!r} {len(g.input)} {len(g.output)}\n")
    with open(os.path.join(tmp, "INDEX"), "w") as f:
        f.writelines(sorted(index))
    with open(os.path.join(tmp, "STAMP"), "w") as f:
        f.write(stamp)
    # Swap in the new directory: rename the old one away first so a reader never sees a mix.
    old = None
    if os.path.exists(out):
        old = out + f".old{os.getpid()}"
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old)
    return len(cases), True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", default=None, help="cache directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="rewrite even if STAMP matches")
    p.add_argument("--print-dir", action="store_true", help="print the directory and exit")
    args = p.parse_args()
    out = args.out or default_dir()
    if args.print_dir:
        print(out)
        return
    if args.force and os.path.exists(os.path.join(out, "STAMP")):
        os.remove(os.path.join(out, "STAMP"))
    warnings.filterwarnings("ignore")  # the generators' numpy overflow warnings are intended
    n, wrote = dump(out)
    print(f"{n} node tests {'written to' if wrote else 'up to date in'} {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
