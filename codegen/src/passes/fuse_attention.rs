//! Scaled-dot-product attention as exported by PyTorch for BERT-like encoders:
//!
//! ```text
//! q4, k4, v4: [b, s, H, dh]  (Reshape of the Q/K/V projections)
//! Q = Transpose(q4, [0,2,1,3])   Kᵀ = Transpose(k4, [0,2,3,1])   V = Transpose(v4, [0,2,1,3])
//! S = MatMul(Q, Kᵀ) [→ Div|Mul(S, scalar)] [→ Add(·, mask)] → Softmax(last axis)
//! O = MatMul(·, V) → Transpose(O, [0,2,1,3]) = out4: [b, s, H, dh]
//! ```
//!
//! becomes one kiln `Attention` node reading q4/k4/v4 and writing out4 in place of the last
//! Transpose (`kiln_runtime::ops::attention`: the unfused ops' results up to the rounding of the
//! softmax normalisation). Every intermediate must have the next node as its only reader, so
//! nothing else sees the removed values; the rest becomes dead and `dce` drops it. Other layouts (Q pre-scaled before the
//! MatMul, K transposed in two steps, multi-query) stay unfused and still run correctly.
use std::collections::BTreeMap;

use super::Uses;
use crate::ir::{AttnScale, DType, Dim, Graph, KilnOp, Node, TensorData};

pub fn run(g: &mut Graph) {
    let uses = Uses::of(g);
    let mut replace: BTreeMap<usize, Node> = BTreeMap::new();
    for i in 0..g.nodes.len() {
        if g.nodes[i].op == "Softmax"
            && g.nodes[i].kiln.is_none()
            && let Some((at, node)) = matched(g, &uses, i)
        {
            replace.entry(at).or_insert(node);
        }
    }
    for (at, node) in replace {
        g.nodes[at] = node;
    }
}

/// The producer of `v` if it is an unfused `op` node whose output only `v`'s reader reads.
fn sole<'g>(g: &'g Graph, uses: &Uses, v: usize, op: &str) -> Option<&'g Node> {
    let p = &g.nodes[uses.producers[v]?];
    (p.op == op && p.kiln.is_none() && p.domain.is_empty() && uses.sole_consumer(v).is_some())
        .then_some(p)
}

/// `x` if `v = Transpose(x, perm)` (and `v` has one reader).
fn transposed(g: &Graph, uses: &Uses, v: usize, perm: &[usize]) -> Option<usize> {
    let t = sole(g, uses, v, "Transpose")?;
    let x = t.input(0)?;
    let p = crate::ops::transpose_perm(t, g.values[x].shape.len()).ok()?;
    (p == perm).then_some(x)
}

fn scalar(g: &Graph, v: usize) -> Option<f32> {
    match g.values[v].konst.as_ref()? {
        TensorData::F32(d) if d.len() == 1 => Some(d[0]),
        _ => None,
    }
}

fn matched(g: &mut Graph, uses: &Uses, sm: usize) -> Option<(usize, Node)> {
    let smn = &g.nodes[sm];
    let x = smn.input(0)?;
    let p = smn.outputs[0];
    let (_, len, inner) = crate::ops::softmax_dims(g, smn).ok()?;
    if g.values[x].shape.len() != 4 || inner != 1usize || uses.sole_consumer(x).is_none() {
        return None;
    }
    // Backwards from the softmax input: [Add mask] ← [Div|Mul scalar] ← MatMul(Q, Kᵀ).
    let mut cur = x;
    let mut mask = None;
    if let Some(add) = sole(g, uses, cur, "Add") {
        let (a, b) = (add.input(0)?, add.input(1)?);
        let scores = |v: usize| {
            uses.producers[v]
                .is_some_and(|p| matches!(g.nodes[p].op.as_str(), "Div" | "Mul" | "MatMul"))
                && g.values[v].shape == g.values[x].shape
        };
        let (s, m) = if scores(a) { (a, b) } else { (b, a) };
        if !scores(s) || g.values[m].dtype != DType::F32 || g.values[m].shape.len() > 4 {
            return None;
        }
        mask = Some(m);
        cur = s;
    }
    let mut scale = AttnScale::None;
    for op in ["Div", "Mul"] {
        if let Some(n) = sole(g, uses, cur, op) {
            let (a, b) = (n.input(0)?, n.input(1)?);
            let (s, c) = match (scalar(g, a), scalar(g, b)) {
                (_, Some(c)) => (a, c),
                (Some(c), None) if op == "Mul" => (b, c),
                _ => return None,
            };
            scale = if op == "Div" {
                AttnScale::Div(c)
            } else {
                AttnScale::Mul(c)
            };
            cur = s;
            break;
        }
    }
    let mm1 = sole(g, uses, cur, "MatMul")?;
    let q4 = transposed(g, uses, mm1.input(0)?, &[0, 2, 1, 3])?;
    let k4 = transposed(g, uses, mm1.input(1)?, &[0, 2, 3, 1])?;
    // Forwards: Softmax → MatMul(P, V) → Transpose back.
    let mm2i = uses.sole_consumer(p)?;
    let mm2 = &g.nodes[mm2i];
    if mm2.op != "MatMul" || mm2.kiln.is_some() || mm2.input(0)? != p {
        return None;
    }
    let v4 = transposed(g, uses, mm2.input(1)?, &[0, 2, 1, 3])?;
    let o = mm2.outputs[0];
    let ti = uses.sole_consumer(o)?;
    let t = &g.nodes[ti];
    if t.op != "Transpose"
        || t.kiln.is_some()
        || crate::ops::transpose_perm(t, 4).ok()? != [0, 2, 1, 3]
    {
        return None;
    }
    let out4 = t.outputs[0];
    // Shapes: q4 [b, sq, H, dh], k4 = v4 [b, skv, H, dh], H and dh static.
    let (qs, ks, vs) = (
        &g.values[q4].shape,
        &g.values[k4].shape,
        &g.values[v4].shape,
    );
    if qs.len() != 4 || ks != vs || ks.len() != 4 {
        return None;
    }
    let (heads, dh) = (qs[2].as_usize()?, qs[3].as_usize()?);
    if ks[0] != qs[0] || ks[2] != heads || ks[3] != dh || len != ks[1] {
        return None;
    }
    if [q4, k4, v4, out4]
        .iter()
        .any(|&v| g.values[v].dtype != DType::F32)
    {
        return None;
    }
    let (batch, sq, skv) = (qs[0].clone(), qs[1].clone(), ks[1].clone());
    // The mask, right-aligned against [b, H, sq, skv]: each dim 1 (broadcast) or equal.
    let full = [batch.clone(), Dim::from(heads), sq.clone(), skv.clone()];
    if let Some(m) = mask {
        let ms = &g.values[m].shape;
        let off = 4 - ms.len();
        if ms
            .iter()
            .enumerate()
            .any(|(i, d)| *d != 1usize && *d != full[off + i])
        {
            return None;
        }
    }
    // Scratch for the runtime's task slots, an upper bound of `SLOTS · slot_len` written as a
    // polynomial in skv (⌈skv/16⌉·16 ≤ skv + 15).
    use kiln_runtime::ops::attention::{MB, SLOTS};
    let pd = dh.div_ceil(16) * 16;
    let slot = skv
        .add(&Dim::from(15))
        .mul(&Dim::from(dh))
        .add(&skv.mul(&Dim::from(pd + MB)))
        .add(&Dim::from(MB * dh));
    let scratch_len = slot.mul(&Dim::from(SLOTS));
    let name = g.values[out4].name.clone();
    let scratch = g.add_value(format!("{name}:attn"), DType::F32, vec![scratch_len]);
    let t = &g.nodes[ti];
    let node = Node {
        name: t.name.clone(),
        op: "Attention".into(),
        domain: "kiln".into(),
        inputs: [Some(q4), Some(k4), Some(v4), mask]
            .into_iter()
            .filter(Option::is_some)
            .collect(),
        outputs: vec![out4, scratch],
        attrs: Default::default(),
        kiln: Some(KilnOp::Attention {
            batch,
            heads,
            sq,
            skv,
            dh,
            scale,
        }),
    };
    Some((ti, node))
}
