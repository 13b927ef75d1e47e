"""The rule kiln's code generator uses to turn ONNX input/output names into Rust field names
(codegen/src/emit/names.rs), for the scripts that generate Rust test files."""
import re

RUST_KEYWORDS = set("""as break const continue crate else enum extern false fn for if impl in let loop
match mod move mut pub ref return self Self static struct super trait true type unsafe use where while
async await dyn abstract become box do final macro override priv typeof unsized virtual yield try gen
union""".split())


def rust_fields(names, kind):
    """ONNX names -> Rust field names (the rule the code generator implements; kind: input|output)."""
    out, seen = [], {}
    for n in names:
        s = re.sub(r"[^a-z0-9]+", "_", n.lower()).strip("_")
        if not s or s[0].isdigit():
            s = f"{kind}_{s}"  # an empty name becomes "input_" / "output_"
        if s in RUST_KEYWORDS:
            s += "_"
        base = s
        if base in seen:
            seen[base] += 1
            s = f"{base}_{seen[base]}"
            while s in seen:  # pathological: "a_2" already taken by a real name
                seen[base] += 1
                s = f"{base}_{seen[base]}"
        seen.setdefault(s, 1)
        out.append(s)
    return out


assert rust_fields(["onnx::Shape_422"], "input") == ["onnx_shape_422"]
assert rust_fields(["463"], "output") == ["output_463"]
assert rust_fields(["::", "a.b"], "input") == ["input_", "a_b"]
assert rust_fields(["type", "X", "x", "x"], "input") == ["type_", "x", "x_2", "x_3"]
