//! Convolutions: every `Conv`/`ConvInteger` becomes a kiln op with its algorithm chosen here,
//! at compile time, from the layer's geometry (docs/design.md, decision 13).
//!
//! 1. BatchNormalization after a float Conv with constant weights is folded into them
//!    (`W' = W·γ/√(var+ε)` per output channel, `B' = (B − mean)·γ/√(var+ε) + β`, in f64).
//! 2. onnxruntime's dynamic quantization of Conv,
//!    `DynamicQuantizeLinear → ConvInteger → Cast → Mul(x_s·W_s) [→ Add bias] [→ BN] [→ Relu|Clip]`,
//!    becomes one `QConv`: quantize (to NHWC for the GEMM, NCHW for depthwise), im2col, int8
//!    GEMM with the weights prepacked per group with scale, bias and activation in the
//!    epilogue, NHWC → NCHW; or the exact depthwise kernel for one channel per group.
//! 3. Float Conv with constant weights → `Conv` with algorithm `Gemm` (W·im2col, NCHW out) or
//!    `Depthwise`, a following Relu/Clip folded in. Weights only known at run time use the
//!    direct reference loops (`Reference`), as does an unfused `ConvInteger`.
use super::Uses;
use crate::error::Result;
use crate::ir::{ConvAlgo, DType, Dim, Graph, KilnOp, Node, QConvKind, TensorData};
use crate::ops::conv::{ConvSpec, PadBegin, batch_norm_affine, conv_spec, conv_transpose_spec};
use kiln_runtime::gemm::Activation;
use kiln_runtime::pack::{PackedI8Owned, Weights, padded_k};

pub fn run(g: &mut Graph) -> Result<()> {
    fold_batch_norm(g)?;
    super::dce::run(g);
    fuse_conv_integer(g)?;
    super::dce::run(g);
    lower_rest(g)
}

fn new_const(g: &mut Graph, name: String, shape: Vec<usize>, data: Vec<f32>) -> usize {
    let v = g.add_value(name, DType::F32, crate::ir::from_static(&shape));
    g.values[v].konst = Some(TensorData::F32(data));
    v
}

fn fold_batch_norm(g: &mut Graph) -> Result<()> {
    let uses = Uses::of(g);
    let mut edits = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.op != "BatchNormalization" || n.kiln.is_some() || !n.domain.is_empty() {
            continue;
        }
        let Some(x) = n.input(0) else { continue };
        let Some(ci) = uses.producers[x] else {
            continue;
        };
        let c = &g.nodes[ci];
        if c.op != "Conv" || c.kiln.is_some() || uses.sole_consumer(x) != Some(i) {
            continue;
        }
        let Some(TensorData::F32(w)) = c.input(1).and_then(|w| g.values[w].konst.as_ref()) else {
            continue;
        };
        let bias = match c.input(2) {
            None => None,
            Some(b) => match g.values[b].konst.as_ref() {
                Some(TensorData::F32(b)) => Some(b.clone()),
                _ => continue,
            },
        };
        let (scale, shift) = batch_norm_affine(g, n).map_err(|e| n.err(e))?;
        let m = scale.len();
        if m == 0 || w.len() % m != 0 {
            continue;
        }
        let per = w.len() / m;
        let w2: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(j, &v)| (v as f64 * scale[j / per] as f64) as f32)
            .collect();
        let b2: Vec<f32> = (0..m)
            .map(|o| {
                let b = bias.as_ref().map_or(0.0, |b| b[o] as f64);
                (b * scale[o] as f64 + shift[o] as f64) as f32
            })
            .collect();
        let wshape = g.values[c.input(1).unwrap()].static_shape().unwrap();
        edits.push((ci, i, w2, wshape, b2));
    }
    for (ci, bi, w2, wshape, b2) in edits {
        let base = g.nodes[ci].name.clone();
        let m = b2.len();
        let wv = new_const(g, format!("{base}:W_bn"), wshape, w2);
        let bv = new_const(g, format!("{base}:B_bn"), vec![m], b2);
        let out = g.nodes[bi].outputs[0];
        let c = &mut g.nodes[ci];
        c.inputs.truncate(1);
        c.inputs.push(Some(wv));
        c.inputs.push(Some(bv));
        c.outputs = vec![out];
        // The BatchNormalization node now has no live output; dce removes it.
        g.nodes[bi].outputs = vec![g.values.len()];
        g.values.push(crate::ir::Value {
            name: format!("{base}:bn_dead"),
            dtype: DType::F32,
            shape: vec![],
            konst: None,
            sym: None,
            int4: false,
            dq: None,
        });
    }
    Ok(())
}

/// A constant that broadcasts along axis 1 (channels) only of a rank-`rank` result: a scalar,
/// or `[M, 1, …]` right-aligned (`[M,1,1]`, `[1,M,1,1]`); expanded to `m` values.
fn channel_vector(g: &Graph, v: usize, m: usize, rank: usize) -> Option<Vec<f32>> {
    let val = &g.values[v];
    let TensorData::F32(d) = val.konst.as_ref()? else {
        return None;
    };
    if d.len() == 1 {
        return Some(vec![d[0]; m]);
    }
    let s = val.static_shape()?;
    if d.len() != m || s.len() + 1 < rank {
        return None;
    }
    // Position of axis 1 of the result within the constant's (right-aligned) shape.
    let ax = s.len() + 1 - rank;
    let ok = s
        .iter()
        .enumerate()
        .all(|(i, &e)| if i == ax { e == m } else { e == 1 });
    ok.then(|| d.clone())
}

fn sole_activation(g: &Graph, uses: &Uses, v: usize) -> Option<(usize, Activation)> {
    let r = uses.sole_consumer(v)?;
    let n = &g.nodes[r];
    if n.kiln.is_some() || !n.domain.is_empty() {
        return None;
    }
    let act = match n.op.as_str() {
        "Relu" => Activation::Relu,
        "Clip" => {
            let (lo, hi) = crate::ops::clip_bounds(g, n).ok()?;
            Activation::Clip { min: lo, max: hi }
        }
        _ => return None,
    };
    Some((r, act))
}

struct QMatch {
    conv: usize,
    spec: ConvSpec,
    absorbed: Vec<usize>,
    out: usize,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    act: Activation,
    x: usize,
}

fn match_conv_integer(g: &mut Graph, uses: &Uses, ci: usize) -> Option<QMatch> {
    let n = g.nodes[ci].clone();
    let (a, w) = (n.input(0)?, n.input(1)?);
    let dql = uses.producers[a]?;
    let dq = &g.nodes[dql];
    if dq.op != "DynamicQuantizeLinear" || dq.outputs[0] != a || dq.kiln.is_some() {
        return None;
    }
    if n.input(2).is_none() || n.input(2) != dq.outputs.get(2).copied() {
        return None;
    }
    let x = dq.input(0)?;
    let x_scale = *dq.outputs.get(1)?;
    match g.values[w].konst.as_ref()? {
        TensorData::I8(_) | TensorData::U8(_) => {}
        _ => return None,
    }
    if let Some(z) = n.input(3) {
        g.values[z].konst.as_ref()?;
    }
    let spec = conv_spec(g, &n).ok()?;
    let (m, rank) = (spec.c_out, spec.spatial + 2);
    // Exactness of the i32 accumulation (the same bound as the int8 GEMM).
    if spec.k() == 0 || spec.k() > super::fuse_quant::MAX_K {
        return None;
    }
    let cast = uses.sole_consumer(n.outputs[0])?;
    let cn = &g.nodes[cast];
    if cn.op != "Cast" || cn.attr_i("to").ok()?? != 1 {
        return None;
    }
    let mul = uses.sole_consumer(cn.outputs[0])?;
    let mn = &g.nodes[mul];
    if mn.op != "Mul" {
        return None;
    }
    let other = if mn.input(0)? == cn.outputs[0] {
        mn.input(1)?
    } else {
        mn.input(0)?
    };
    // The scale product x_s·W_s (either order), or x_s alone.
    let scales = super::fuse_quant::scale_product_with(g, uses, other, x_scale, m, |c| {
        channel_vector(g, c, m, rank)
    })?;
    let mut out = mn.outputs[0];
    if g.values[out].shape != g.values[n.outputs[0]].shape {
        return None;
    }
    let mut absorbed = vec![cast, mul];
    let mut bias = None;
    if let Some(add) = uses.sole_consumer(out) {
        let an = &g.nodes[add];
        if an.op == "Add" && an.kiln.is_none() {
            let o = if an.input(0)? == out {
                an.input(1)?
            } else {
                an.input(0)?
            };
            if let Some(b) = channel_vector(g, o, m, rank)
                && g.values[an.outputs[0]].shape == g.values[out].shape
            {
                bias = Some(b);
                absorbed.push(add);
                out = an.outputs[0];
            }
        }
    }
    let mut scales = scales;
    if let Some(bn) = uses.sole_consumer(out) {
        let bnn = &g.nodes[bn];
        if bnn.op == "BatchNormalization"
            && bnn.kiln.is_none()
            && bnn.outputs.len() == 1
            && let Ok((s, t)) = batch_norm_affine(g, bnn)
            && s.len() == m
        {
            // (v·σ + b)·s + t = v·(σ·s) + (b·s + t): one rounding order away from running the
            // BatchNormalization separately.
            scales = scales.iter().zip(&s).map(|(a, b)| a * b).collect();
            let b = bias.unwrap_or_else(|| vec![0.0; m]);
            bias = Some((0..m).map(|c| b[c] * s[c] + t[c]).collect());
            absorbed.push(bn);
            out = bnn.outputs[0];
        }
    }
    let mut act = Activation::None;
    if let Some((r, a)) = sole_activation(g, uses, out) {
        act = a;
        absorbed.push(r);
        out = g.nodes[r].outputs[0];
    }
    Some(QMatch {
        conv: ci,
        spec,
        absorbed,
        out,
        scales,
        bias,
        act,
        x,
    })
}

fn fuse_conv_integer(g: &mut Graph) -> Result<()> {
    let uses = Uses::of(g);
    let mut matches = Vec::new();
    for i in 0..g.nodes.len() {
        if g.nodes[i].op == "ConvInteger"
            && g.nodes[i].kiln.is_none()
            && let Some(m) = match_conv_integer(g, &uses, i)
        {
            matches.push(m);
        }
    }
    let mut replace = std::collections::HashMap::new();
    let mut remove = std::collections::HashSet::new();
    for m in matches {
        let n = g.nodes[m.conv].clone();
        let w = n.input(1).unwrap();
        let wdata = g.values[w].konst.clone().unwrap();
        let zps: Vec<i32> = match n.input(3) {
            Some(z) => g.values[z]
                .konst
                .as_ref()
                .unwrap()
                .as_i64()?
                .iter()
                .map(|&v| v as i32)
                .collect(),
            None => vec![0],
        };
        let s = &m.spec;
        let (cg, k) = (s.cg(), s.k());
        let (kh, kw) = (s.kernel[0], s.kernel[1]);
        let zp_of = |co: usize| zps[if zps.len() == 1 { 0 } else { co }];
        let wval = |co: usize, c: usize, ky: usize, kx: usize| -> i32 {
            let idx = ((co * cg + c) * kh + ky) * kw + kx;
            match &wdata {
                TensorData::I8(d) => d[idx] as i32,
                TensorData::U8(d) => d[idx] as i32,
                _ => unreachable!("checked by the match"),
            }
        };
        let base = g.values[m.out].name.clone();
        let x = m.x;
        let xshape_len = g.values[x].numel();
        let (kind, scratch) = if s.depthwise() {
            let mut wc = Vec::with_capacity(s.c_out * kh * kw);
            for co in 0..s.c_out {
                for ky in 0..kh {
                    for kx in 0..kw {
                        wc.push((wval(co, 0, ky, kx) - zp_of(co)) as f32);
                    }
                }
            }
            let q = g.add_value(format!("{base}:q"), DType::U8, vec![xshape_len]);
            // Sized by passes::layout when the NHWC kernel needs it.
            let ynhwc = g.add_value(format!("{base}:ynhwc"), DType::F32, vec![Dim::constant(0)]);
            (
                QConvKind::Depthwise {
                    w: wc,
                    scale: m.scales.clone(),
                    bias: m.bias.clone(),
                },
                vec![q, ynhwc],
            )
        } else {
            let packed = pack_groups(s, &wdata, &zps, &m.scales, m.bias.as_deref());
            let direct = direct_a(s);
            let rows = s.batch.mul(&s.pixels());
            let q = g.add_value(format!("{base}:q"), DType::U8, vec![xshape_len]);
            let a_len = if direct {
                Dim::constant(0)
            } else {
                rows.mul(&Dim::from(padded_k(k)))
            };
            let a = g.add_value(format!("{base}:a"), DType::U8, vec![a_len]);
            let rt = g.add_value(format!("{base}:rowterm"), DType::I32, vec![rows.clone()]);
            let nhwc = g.add_value(
                format!("{base}:nhwc"),
                DType::F32,
                vec![rows.mul(&Dim::from(s.c_out))],
            );
            (
                QConvKind::Gemm {
                    groups: packed,
                    direct,
                },
                vec![q, a, rt, nhwc],
            )
        };
        let last = *m.absorbed.last().unwrap();
        let mut outputs = vec![m.out];
        outputs.extend(scratch);
        replace.insert(
            last,
            Node {
                name: n.name.clone(),
                op: "QConv".into(),
                domain: "kiln".into(),
                inputs: vec![Some(x)],
                outputs,
                attrs: Default::default(),
                kiln: Some(KilnOp::QConv {
                    spec: m.spec.clone(),
                    act: m.act,
                    kind,
                    layout: Default::default(),
                }),
            },
        );
        remove.insert(m.conv);
        remove.extend(&m.absorbed[..m.absorbed.len() - 1]);
    }
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(r) = replace.remove(&i) {
            g.nodes.push(r);
        } else if !remove.contains(&i) {
            g.nodes.push(n);
        }
    }
    Ok(())
}

/// Packs constant conv weights `[C_out][C/g][kh][kw]` (I8 or U8 data) per group for the int8
/// GEMM, with K ordered (ky, kx, c); `zps` has 1 or `c_out` entries, `scales` `c_out`.
pub(crate) fn pack_groups(
    s: &ConvSpec,
    wdata: &TensorData,
    zps: &[i32],
    scales: &[f32],
    bias: Option<&[f32]>,
) -> Vec<PackedI8Owned> {
    let (cg, og, k) = (s.cg(), s.og(), s.k());
    let (kh, kw) = (s.kernel[0], s.kernel[1]);
    let wval = |co: usize, c: usize, ky: usize, kx: usize| -> i32 {
        let idx = ((co * cg + c) * kh + ky) * kw + kx;
        match wdata {
            TensorData::I8(d) => d[idx] as i32,
            TensorData::U8(d) => d[idx] as i32,
            _ => unreachable!("callers check the weight type"),
        }
    };
    let mut packed = Vec::with_capacity(s.groups);
    for grp in 0..s.groups {
        let mut b = vec![0i32; k * og];
        for o in 0..og {
            let co = grp * og + o;
            for c in 0..cg {
                for ky in 0..kh {
                    for kx in 0..kw {
                        b[((ky * kw + kx) * cg + c) * og + o] = wval(co, c, ky, kx);
                    }
                }
            }
        }
        let gz: Vec<i32> = if zps.len() == 1 {
            zps.to_vec()
        } else {
            zps[grp * og..(grp + 1) * og].to_vec()
        };
        let gs = &scales[grp * og..(grp + 1) * og];
        let gb = bias.map(|b| &b[grp * og..(grp + 1) * og]);
        let p = match wdata {
            TensorData::I8(_) => {
                let b: Vec<i8> = b.iter().map(|&v| v as i8).collect();
                PackedI8Owned::pack(Weights::I8(&b), k, og, &gz, gs, gb)
            }
            _ => {
                let b: Vec<u8> = b.iter().map(|&v| v as u8).collect();
                PackedI8Owned::pack(Weights::U8(&b), k, og, &gz, gs, gb)
            }
        };
        packed.push(p);
    }
    packed
}

/// A 1×1, stride-1, unpadded, single-group convolution whose channel count is a whole number
/// of K groups: the NHWC quantized input already is the GEMM's A matrix.
pub(crate) fn direct_a(s: &ConvSpec) -> bool {
    s.kernel == [1, 1]
        && s.strides == [1, 1]
        && s.groups == 1
        && s.pads
            .iter()
            .all(|p| matches!(p, PadBegin::Fixed(0) | PadBegin::Same { .. }))
        && padded_k(s.c_in) == s.c_in
}

/// Remaining Conv / ConvInteger nodes: pick the algorithm, fold a following Relu/Clip into
/// float convolutions with constant weights.
fn lower_rest(g: &mut Graph) -> Result<()> {
    let uses = Uses::of(g);
    let mut remove = std::collections::HashSet::new();
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        if n.kiln.is_some() || !n.domain.is_empty() {
            continue;
        }
        match n.op.as_str() {
            "Conv" => {
                let spec = conv_spec(g, &n).map_err(|e| n.err(e))?;
                let w = n.input(1).unwrap();
                // Dense weights: constants, or a weight-only layer's run-time DequantizeLinear of
                // constant integers (`fuse_qdq`): the fast algorithms take either.
                let dequantized = uses.producers[w].is_some_and(|p| {
                    let pn = &g.nodes[p];
                    pn.op == "DequantizeLinear"
                        && pn.kiln.is_none()
                        && pn.input(0).is_some_and(|q| g.values[q].konst.is_some())
                });
                let const_w = (g.values[w].konst.is_some() || dequantized)
                    && n.input(2).is_none_or(|b| g.values[b].konst.is_some());
                let algo = if !const_w {
                    ConvAlgo::Reference
                } else if spec.depthwise() {
                    ConvAlgo::Depthwise
                } else {
                    ConvAlgo::Gemm
                };
                let mut act = Activation::None;
                let mut out = n.outputs[0];
                if algo != ConvAlgo::Reference
                    && let Some((r, a)) = sole_activation(g, &uses, out)
                {
                    act = a;
                    out = g.nodes[r].outputs[0];
                    remove.insert(r);
                }
                let mut outputs = vec![out];
                if algo == ConvAlgo::Gemm {
                    // im2col panels of one image and group: ⌈P/16⌉·16·K ≤ (P + 15)·K floats.
                    let len = spec
                        .pixels()
                        .add(&Dim::constant(15))
                        .mul(&Dim::from(spec.k()));
                    let name = format!("{}:col", g.values[out].name);
                    outputs.push(g.add_value(name, DType::F32, vec![len]));
                }
                let node = &mut g.nodes[i];
                node.outputs = outputs;
                node.kiln = Some(KilnOp::Conv { spec, act, algo });
            }
            "ConvInteger" => {
                let spec = conv_spec(g, &n).map_err(|e| n.err(e))?;
                g.nodes[i].kiln = Some(KilnOp::ConvInteger { spec });
            }
            "ConvTranspose" => {
                let spec = conv_transpose_spec(g, &n).map_err(|e| n.err(e))?;
                let w = n.input(1).unwrap();
                let Some(TensorData::F32(wd)) = g.values[w].konst.clone() else {
                    return Err(n.err(
                        crate::error::Error::unsupported(
                            "ConvTranspose with weights computed at run time",
                        )
                        .with_hint("kiln needs ConvTranspose weights as initializers"),
                    ));
                };
                if let Some(b) = n.input(2)
                    && g.values[b].konst.is_none()
                {
                    return Err(n.err(crate::error::Error::unsupported(
                        "ConvTranspose with a bias computed at run time",
                    )));
                }
                // [c_in][og][kh][kw] → per group [og·kh·kw][cg].
                let (cg, og) = (spec.cg(), spec.og());
                let rows = og * spec.kernel[0] * spec.kernel[1];
                let mut wt = vec![0f32; spec.groups * rows * cg];
                for grp in 0..spec.groups {
                    for c in 0..cg {
                        for r in 0..rows {
                            wt[(grp * rows + r) * cg + c] = wd[(grp * cg + c) * rows + r];
                        }
                    }
                }
                let base = g.values[n.outputs[0]].name.clone();
                let wv = new_const(g, format!("{base}:wt"), vec![wt.len()], wt);
                let hw = spec.h.mul(&spec.w);
                let xp = g.add_value(
                    format!("{base}:xp"),
                    DType::F32,
                    vec![hw.add(&Dim::constant(15)).mul(&Dim::from(cg))],
                );
                let col = g.add_value(
                    format!("{base}:col"),
                    DType::F32,
                    vec![hw.mul(&Dim::from(rows))],
                );
                let node = &mut g.nodes[i];
                node.inputs[1] = Some(wv);
                node.outputs.push(xp);
                node.outputs.push(col);
                node.kiln = Some(KilnOp::ConvTranspose { spec });
            }
            _ => {}
        }
    }
    if !remove.is_empty() {
        let old = std::mem::take(&mut g.nodes);
        for (i, n) in old.into_iter().enumerate() {
            if !remove.contains(&i) {
                g.nodes.push(n);
            }
        }
    }
    Ok(())
}
