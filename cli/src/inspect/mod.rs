//! `kiln inspect`: what a model is, how it was quantized, and what kiln will make of it.
//!
//! The analysis has two halves. The first reads the ONNX graph as stored (it works on models
//! kiln cannot compile): the summary, the quantization forms, one record per quantized
//! matmul/conv, and unsupported ops. The second runs kiln's compiler and reports its decisions:
//! fusions, the kernel per layer and the workspace.
use std::collections::BTreeMap;

use kiln_codegen::ir::{DType, KilnOp, TensorData};
use kiln_codegen::onnx::proto::NodeProto;
use kiln_runtime::Isa;
use kiln_runtime::gemm::Activation;

use crate::model::{
    GraphIndex, ModelFile, attr_i, dims_text, domain, elem_bits, elem_name, node_name, numel, op,
    tensor_type,
};

mod layers;
mod plan;
mod text;

use layers::*;
use plan::*;
pub use text::{Style, bytes, to_json, to_text};

// ---- the report ---------------------------------------------------------------------------

pub struct Report {
    pub file: String,
    pub file_bytes: usize,
    pub ir_version: i64,
    pub producer: String,
    pub opsets: Vec<(String, i64)>,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    pub nodes: usize,
    pub op_counts: BTreeMap<String, usize>,
    pub parameters: u64,
    /// dtype name → (tensors, elements, bytes)
    pub weights_by_dtype: BTreeMap<String, (usize, u64, u64)>,
    pub forms: Vec<String>,
    pub layers: Vec<QLayer>,
    pub unsupported: Vec<Unsupported>,
    pub kiln: KilnPlan,
}

pub struct Io {
    pub name: String,
    pub dtype: String,
    pub dims: Option<Vec<String>>,
}

pub struct QLayer {
    pub node: String,
    pub op: String,
    pub form: String,
    pub activation: String,
    pub weight: String,
    pub weight_shape: Vec<usize>,
    pub granularity: String,
    pub symmetric: Option<bool>,
    pub zero_points: String,
    pub weight_range: Option<(i32, i32)>,
    pub reduced_range: Option<bool>,
    pub avx2: Avx2,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Avx2 {
    /// No adjacent weight pair can saturate VPMADDUBSW with any u8 activation.
    Safe,
    /// `columns` of `of` output columns have a pair that can saturate.
    CouldSaturate {
        columns: usize,
        of: usize,
    },
    NotApplicable(String),
}

pub struct Unsupported {
    pub domain: String,
    pub op: String,
    pub nodes: Vec<String>,
    pub advice: String,
}

pub enum KilnPlan {
    Error(String),
    Compiled(Box<Compiled>),
}

pub struct Compiled {
    pub source_nodes: usize,
    pub compiled_nodes: usize,
    pub fusions: Vec<(String, usize)>,
    pub layers: Vec<KLayer>,
    pub other_ops: BTreeMap<String, usize>,
    pub isa: Isa,
    pub workspace_bytes: usize,
    pub naive_workspace_bytes: usize,
    pub symbolic_buffers: usize,
    /// With symbolic dims: the workspace and the naive sum as formulas of the dims (bytes).
    pub workspace_formula: Option<(String, String)>,
    pub weight_blob_bytes: usize,
}

pub struct KLayer {
    pub node: String,
    pub kind: String,
    pub m: String,
    pub k: usize,
    pub n: usize,
    pub epilogue: String,
    pub avx2_safe: Option<bool>,
    pub kernel: String,
}

// ---- analysis -----------------------------------------------------------------------------

pub fn inspect(mf: &ModelFile, isa: Isa) -> Report {
    let g = mf.graph();
    let idx = GraphIndex::new(g, mf.data_dirs());
    let mut opsets: Vec<(String, i64)> = mf
        .proto
        .opset_import
        .iter()
        .map(|o| {
            let d = o.domain.clone().unwrap_or_default();
            let d = if d.is_empty() { "ai.onnx".into() } else { d };
            (d, o.version.unwrap_or(1))
        })
        .collect();
    opsets.sort();
    let inits: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let io = |vi: &kiln_codegen::onnx::proto::ValueInfoProto| Io {
        name: vi.name.clone().unwrap_or_default(),
        dtype: tensor_type(vi)
            .map(|t| elem_name(t.elem_type.unwrap_or(0)))
            .unwrap_or("non-tensor")
            .to_string(),
        dims: dims_text(vi),
    };
    let inputs = g
        .input
        .iter()
        .filter(|vi| !inits.contains(vi.name.as_deref().unwrap_or("")))
        .map(io)
        .collect();
    let outputs = g.output.iter().map(io).collect();
    let mut op_counts = BTreeMap::new();
    for n in &g.node {
        let key = if domain(n).is_empty() {
            op(n).to_string()
        } else {
            format!("{}:{}", domain(n), op(n))
        };
        *op_counts.entry(key).or_insert(0) += 1;
    }
    let mut parameters = 0u64;
    let mut weights_by_dtype: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    let consts = g.initializer.iter().chain(g.node.iter().filter_map(|n| {
        (op(n) == "Constant")
            .then(|| n.attribute.iter().find_map(|a| a.t.as_ref()))
            .flatten()
    }));
    for t in consts {
        let code = t.data_type.unwrap_or(0);
        let e = numel(t);
        parameters += e;
        let w = weights_by_dtype
            .entry(elem_name(code).to_string())
            .or_default();
        w.0 += 1;
        w.1 += e;
        w.2 += (e * elem_bits(code)).div_ceil(8);
    }

    let mut layers = Vec::new();
    for n in &g.node {
        if let Some(l) = analyse_layer(&idx, n) {
            layers.push(l);
        }
    }
    let mut forms: Vec<String> = Vec::new();
    let mut add_form = |f: &str| {
        if !forms.iter().any(|x| x == f) {
            forms.push(f.to_string());
        }
    };
    for l in &layers {
        add_form(&l.form);
    }
    for n in &g.node {
        match (domain(n), op(n)) {
            ("", "DynamicQuantizeLinear") => add_form("dynamic (DynamicQuantizeLinear)"),
            ("", "QuantizeLinear") => add_form("static QDQ (QuantizeLinear/DequantizeLinear)"),
            ("", "Gather") => {
                if let Some(p) = n.input.first().and_then(|d| idx.producer_of(d))
                    && op(p) == "DequantizeLinear"
                    && p.input.first().is_some_and(|x| idx.is_const(x))
                {
                    add_form("weight-only embedding table (DequantizeLinear → Gather)");
                }
            }
            _ => {}
        }
    }
    if forms.is_empty() {
        forms.push("none (float model)".into());
    }

    let mut unsupported: Vec<Unsupported> = Vec::new();
    for n in &g.node {
        let (d, o) = (domain(n), op(n));
        if kiln_codegen::ops::lookup(d, o).is_some() {
            continue;
        }
        let name = node_name(n);
        let dn = if d.is_empty() { "ai.onnx" } else { d };
        match unsupported.iter_mut().find(|u| u.domain == dn && u.op == o) {
            Some(u) => u.nodes.push(name),
            None => unsupported.push(Unsupported {
                domain: dn.into(),
                op: o.into(),
                nodes: vec![name],
                advice: advice(d, o),
            }),
        }
    }
    unsupported.sort_by(|a, b| (&a.domain, &a.op).cmp(&(&b.domain, &b.op)));

    Report {
        file: mf.path.display().to_string(),
        file_bytes: mf.bytes_len,
        ir_version: mf.proto.ir_version.unwrap_or(0),
        producer: format!(
            "{} {}",
            mf.proto.producer_name.as_deref().unwrap_or(""),
            mf.proto.producer_version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string(),
        opsets,
        inputs,
        outputs,
        nodes: g.node.len(),
        op_counts,
        parameters,
        weights_by_dtype,
        forms,
        layers,
        unsupported,
        kiln: kiln_plan(mf, isa),
    }
}

/// Integer weights of a constant: (shape, values, is_unsigned).
#[cfg(test)]
mod tests {
    use super::*;
    use kiln_runtime::pack::{PackedI8Owned, Weights};

    /// The per-column rule agrees with the packer's per-layer proof.
    #[test]
    fn avx2_rule_matches_the_packer() {
        let mut seed = 0x2545F491u32;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for case in 0..200 {
            let (k, n) = (1 + (rnd() % 9) as usize, 1 + (rnd() % 20) as usize);
            let spread = [40, 64, 65, 127][case % 4];
            let w: Vec<i8> = (0..k * n)
                .map(|_| ((rnd() % (2 * spread + 1)) as i32 - spread as i32) as i8)
                .collect();
            let packed = PackedI8Owned::pack(Weights::I8(&w), k, n, &[0], &[1.0], None);
            let stored: Vec<i32> = w.iter().map(|&v| v as i32).collect();
            assert_eq!(
                packed.avx2_safe,
                avx2_unsafe_columns(&stored, k, n, true) == 0,
                "k={k} n={n} {w:?}"
            );
            // The transposed layout gives the same answer.
            let mut t = vec![0i32; k * n];
            for kk in 0..k {
                for nn in 0..n {
                    t[nn * k + kk] = stored[kk * n + nn];
                }
            }
            assert_eq!(
                avx2_unsafe_columns(&stored, k, n, true),
                avx2_unsafe_columns(&t, k, n, false)
            );
        }
    }
}
