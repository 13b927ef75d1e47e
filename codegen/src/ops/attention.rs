//! The attention family of opset 23+: `Attention` (kernel `kiln_runtime::ops::sdpa`, lowered
//! by [`lower_all`] to get its scratch) and `RotaryEmbedding` (`kiln_runtime::ops::rotary`).
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, op, req};
use crate::emit::nodes::{f32_lit, inp};
use crate::emit::{Ctx, lit};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node, ValueId};

const ATTENTION: &str = "f32; 3-D and 4-D Q/K/V, grouped-query heads, different value head size, float and bool masks (any broadcast, shorter than the keys), `is_causal`, sliding windows, `nonpad_kv_seqlen`, past/present key-value cache, `scale`, `softcap`, every `qk_matmul_output_mode`";
const ROTARY: &str = "f32; 3-D and 4-D input, `interleaved`, partial `rotary_embedding_dim`, with or without `position_ids`";

/// Attention and RotaryEmbedding (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "Attention",
        ATTENTION,
        |cx, n| infer_attention(cx.g, n),
        emit_attention,
    ),
    op(
        "RotaryEmbedding",
        ROTARY,
        |cx, n| infer_rotary(cx.g, n),
        emit_rotary,
    ),
];

/// An Attention node's geometry and options, decoded once for inference, lowering and
/// emission.
pub(crate) struct Attn {
    rank3: bool,
    batch: Dim,
    heads: usize,
    kv_heads: usize,
    sq: Dim,
    /// Keys of this call (K's sequence length), and with the past.
    skv: Dim,
    past: Dim,
    total: Dim,
    dk: usize,
    dv: usize,
    /// The mask, whether it is bool, its last dim (its key columns).
    mask: Option<(ValueId, bool, Dim)>,
    scale: f32,
    softcap: f32,
    causal: bool,
    left: i64,
    right: i64,
    /// 0/1 (scores), 2 (biased), 3 (probabilities).
    mode: i64,
}

fn static_dim(g: &Graph, d: &Dim, what: &str) -> Result<usize> {
    match d.as_usize() {
        Some(v) => Ok(v),
        None => unsupported!(
            "Attention's {what} must be known at compile time, found `{}`",
            g.show(d)
        ),
    }
}

fn decode(g: &Graph, n: &Node) -> Result<Attn> {
    let (q, k, v) = (
        &g.values[req(n, 0)?],
        &g.values[req(n, 1)?],
        &g.values[req(n, 2)?],
    );
    for (t, name) in [(q, "Q"), (k, "K"), (v, "V")] {
        if t.dtype != DType::F32 {
            unsupported!(
                "Attention on {:?} {name} is not supported (float32 only)",
                t.dtype
            );
        }
    }
    let rank = q.shape.len();
    if !(rank == 3 || rank == 4) || k.shape.len() != rank || v.shape.len() != rank {
        bail!(
            "Q, K and V must all be 3-D or all 4-D, found {}, {} and {}",
            g.show_shape(&q.shape),
            g.show_shape(&k.shape),
            g.show_shape(&v.shape)
        );
    }
    let rank3 = rank == 3;
    let attr_heads = |name: &str| -> Result<Option<usize>> {
        match n.attr_i(name)? {
            Some(h) if h > 0 => Ok(Some(h as usize)),
            Some(h) => bail!("attribute `{name}` must be positive, found {h}"),
            None => Ok(None),
        }
    };
    let (batch, sq, skv, heads, kv_heads, dk, dv);
    if rank3 {
        let (Some(hq), Some(hk)) = (attr_heads("q_num_heads")?, attr_heads("kv_num_heads")?) else {
            bail!("3-D Attention needs the attributes `q_num_heads` and `kv_num_heads`");
        };
        let split = |t: &crate::ir::Value, h: usize, what: &str| -> Result<usize> {
            let hid = static_dim(g, &t.shape[2], what)?;
            if !hid.is_multiple_of(h) {
                bail!("{what}'s hidden size {hid} is not a multiple of its {h} heads");
            }
            Ok(hid / h)
        };
        (heads, kv_heads) = (hq, hk);
        (dk, dv) = (split(q, hq, "Q")?, split(v, hk, "V")?);
        if split(k, hk, "K")? != dk {
            bail!("K's head size differs from Q's ({dk})");
        }
        (batch, sq, skv) = (q.shape[0].clone(), q.shape[1].clone(), k.shape[1].clone());
    } else {
        heads = static_dim(g, &q.shape[1], "query head count")?;
        kv_heads = static_dim(g, &k.shape[1], "key head count")?;
        dk = static_dim(g, &q.shape[3], "head size")?;
        dv = static_dim(g, &v.shape[3], "value head size")?;
        if static_dim(g, &k.shape[3], "key head size")? != dk
            || static_dim(g, &v.shape[1], "value head count")? != kv_heads
        {
            bail!(
                "K {} and V {} do not match Q {}",
                g.show_shape(&k.shape),
                g.show_shape(&v.shape),
                g.show_shape(&q.shape)
            );
        }
        (batch, sq, skv) = (q.shape[0].clone(), q.shape[2].clone(), k.shape[2].clone());
    }
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        bail!("the {kv_heads} key/value heads do not divide the {heads} query heads");
    }
    let past = match (n.input(4), n.input(5)) {
        (None, None) => Dim::constant(0),
        (Some(pk), Some(pv)) => {
            let (pk, pv) = (&g.values[pk], &g.values[pv]);
            let want = |d: usize| {
                [
                    batch.clone(),
                    Dim::from(kv_heads),
                    pk.shape.get(2).cloned().unwrap_or(Dim::constant(0)),
                    Dim::from(d),
                ]
            };
            if pk.dtype != DType::F32
                || pv.dtype != DType::F32
                || pk.shape.len() != 4
                || pk.shape[..] != want(dk)
                || pv.shape[..] != want(dv)
            {
                bail!(
                    "past_key {} and past_value {} must be float32 [batch, kv_heads, past, head size]",
                    g.show_shape(&pk.shape),
                    g.show_shape(&pv.shape)
                );
            }
            pk.shape[2].clone()
        }
        _ => bail!("past_key and past_value must be given together"),
    };
    let total = past.add(&skv);
    let mask = match n.input(3) {
        None => None,
        Some(m) => {
            let mv = &g.values[m];
            let is_bool = match mv.dtype {
                DType::Bool => true,
                DType::F32 => false,
                t => unsupported!(
                    "Attention's attn_mask of type {t:?} is not supported (float32 or bool)"
                ),
            };
            let ms = &mv.shape;
            if ms.is_empty() || ms.len() > 4 {
                bail!(
                    "attn_mask must have rank 1 to 4, found {}",
                    g.show_shape(ms)
                );
            }
            let cols = ms[ms.len() - 1].clone();
            let full = [batch.clone(), Dim::from(heads), sq.clone(), cols.clone()];
            let off = 4 - ms.len();
            if ms
                .iter()
                .enumerate()
                .any(|(i, d)| *d != 1usize && *d != full[off + i])
            {
                unsupported!(
                    "attn_mask {} does not broadcast to [batch, heads, q_seq, keys] = {}",
                    g.show_shape(ms),
                    g.show_shape(&full)
                );
            }
            Some((m, is_bool, cols))
        }
    };
    if let Some(np) = n.input(6) {
        let t = &g.values[np];
        if t.dtype != DType::I64 || t.shape.len() != 1 || t.shape[0] != batch {
            bail!(
                "nonpad_kv_seqlen must be int64 [batch], found {:?} {}",
                t.dtype,
                g.show_shape(&t.shape)
            );
        }
        if n.input(4).is_some() {
            bail!("nonpad_kv_seqlen cannot be combined with past_key/past_value");
        }
    }
    let mode = n.attr_i("qk_matmul_output_mode")?.unwrap_or(0);
    if !(0..=3).contains(&mode) {
        bail!("qk_matmul_output_mode must be 0 to 3, found {mode}");
    }
    let window = |name: &str| -> Result<i64> {
        match n.attr_i(name)?.unwrap_or(-1) {
            v if v >= -1 => Ok(v),
            v => bail!("attribute `{name}` must be -1 or non-negative, found {v}"),
        }
    };
    Ok(Attn {
        rank3,
        batch,
        heads,
        kv_heads,
        sq,
        skv,
        past,
        total,
        dk,
        dv,
        mask,
        scale: n.attr_f("scale")?.unwrap_or(1.0 / (dk as f32).sqrt()),
        softcap: n.attr_f("softcap")?.unwrap_or(0.0),
        causal: n.attr_i("is_causal")?.unwrap_or(0) != 0,
        left: window("left_window_size")?,
        right: window("right_window_size")?,
        mode,
    })
}

fn infer_attention(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let a = decode(g, n)?;
    let y = if a.rank3 {
        vec![a.batch.clone(), a.sq.clone(), Dim::from(a.heads * a.dv)]
    } else {
        vec![
            a.batch.clone(),
            Dim::from(a.heads),
            a.sq.clone(),
            Dim::from(a.dv),
        ]
    };
    let present = |d: usize| {
        vec![
            a.batch.clone(),
            Dim::from(a.kv_heads),
            a.total.clone(),
            Dim::from(d),
        ]
    };
    let qk = vec![
        a.batch.clone(),
        Dim::from(a.heads),
        a.sq.clone(),
        a.total.clone(),
    ];
    let mut outs = vec![
        OutInfo::new(DType::F32, y),
        OutInfo::new(DType::F32, present(a.dk)),
        OutInfo::new(DType::F32, present(a.dv)),
        OutInfo::new(DType::F32, qk),
    ];
    outs.truncate(n.outputs.len().max(1));
    Ok(outs)
}

/// Gives every Attention node its four ONNX outputs (an output nobody reads becomes an empty
/// value, so that it takes no memory, except the present key/value with a past, which hold
/// the keys the kernel reads) and a scratch output for the kernel's task slots.
pub(crate) fn lower_all(g: &mut Graph) -> Result<()> {
    let mut read = vec![false; g.values.len()];
    for n in &g.nodes {
        for &v in n.inputs.iter().flatten() {
            read[v] = true;
        }
    }
    for &o in &g.outputs {
        read[o] = true;
    }
    for ni in 0..g.nodes.len() {
        let n = &g.nodes[ni];
        if n.kiln.is_some() || !n.domain.is_empty() || n.op != "Attention" {
            continue;
        }
        let a = decode(g, n).map_err(|e| n.err(e))?;
        let has_past = n.input(4).is_some();
        let name = n.name.clone();
        let mut outputs = n.outputs.clone();
        for i in 1..4 {
            let existing = outputs.get(i).copied();
            let keep = (has_past && i < 3) || existing.is_some_and(|o| read[o]);
            if keep && existing.is_some() {
                continue;
            }
            let shape = match i {
                _ if !keep => vec![Dim::constant(0)],
                1 | 2 => {
                    let d = if i == 1 { a.dk } else { a.dv };
                    vec![
                        a.batch.clone(),
                        Dim::from(a.kv_heads),
                        a.total.clone(),
                        Dim::from(d),
                    ]
                }
                _ => unreachable!("qk_matmul_output is kept only when it exists"),
            };
            let v = g.add_value(format!("{name}:out{i}"), DType::F32, shape);
            if i < outputs.len() {
                outputs[i] = v;
            } else {
                outputs.push(v);
            }
        }
        // ⌈total/16⌉·16 ≤ total + 15 (see SdpaDims::slot_len).
        use kiln_runtime::ops::attention::{MB, SLOTS};
        let pd = a.dv.div_ceil(16) * 16;
        let slot = a
            .total
            .add(&Dim::from(15))
            .mul(&Dim::from(a.dk))
            .add(&a.total.mul(&Dim::from(pd + MB)))
            .add(&Dim::from(MB * a.dv));
        let scratch = g.add_value(
            format!("{name}:scratch"),
            DType::F32,
            vec![slot.mul(&Dim::from(SLOTS))],
        );
        outputs.push(scratch);
        g.nodes[ni].outputs = outputs;
    }
    Ok(())
}

/// `Strides` tokens of a `[batch, seq, heads, d]` (3-D) or `[batch, heads, seq, d]` tensor.
fn strides(c: &Ctx, bshd: bool, seq: &Dim, heads: usize, d: usize) -> TokenStream {
    let rt = c.rt;
    let (s, h, d) = (c.dim(seq), lit(heads), lit(d));
    if bshd {
        quote!(#rt::ops::sdpa::Strides::bshd(#s, #h, #d))
    } else {
        quote!(#rt::ops::sdpa::Strides::bhsd(#h, #s, #d))
    }
}

fn emit_attention(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let a = decode(g, n)?;
    if n.outputs.len() != 5 {
        bail!("Attention was not lowered (internal error)");
    }
    let m = quote!(#rt::ops::sdpa);
    let (q, k, v) = (c.src(inp(n, 0)?), c.src(inp(n, 1)?), c.src(inp(n, 2)?));
    let (b, h, hk, sq, skv, total, past) = (
        c.dim(&a.batch),
        lit(a.heads),
        lit(a.kv_heads),
        c.dim(&a.sq),
        c.dim(&a.skv),
        c.dim(&a.total),
        c.dim(&a.past),
    );
    let (dk, dv) = (lit(a.dk), lit(a.dv));
    let y = c.dst(n.outputs[0]);
    let (pk, pv, qk, scratch) = (
        c.dst(n.outputs[1]),
        c.dst(n.outputs[2]),
        c.dst(n.outputs[3]),
        c.dst(n.outputs[4]),
    );
    let cur_k = strides(c, a.rank3, &a.skv, a.kv_heads, a.dk);
    let cur_v = strides(c, a.rank3, &a.skv, a.kv_heads, a.dv);
    let has = |v: ValueId| g.values[v].numel() != 0usize;
    let has_past = n.input(4).is_some();
    // The present key/value, written when wanted (always with a past: the kernel reads them).
    let mut pre = TokenStream::new();
    for (i, (out, cur, cs, d)) in [(&pk, &k, &cur_k, &dk), (&pv, &v, &cur_v, &dv)]
        .into_iter()
        .enumerate()
    {
        if !has(n.outputs[1 + i]) {
            continue;
        }
        let past_src = match n.input(4 + i) {
            Some(p) => {
                let p = c.src(p);
                quote!(Some(#p))
            }
            None => quote!(None),
        };
        let id = if i == 0 {
            quote!(present_k)
        } else {
            quote!(present_v)
        };
        pre.extend(quote! {
            let #id: &mut [f32] = #out;
            #m::kv_cache(#past_src, #cur, #cs, #b, #hk, #past, #skv, #d, #id);
        });
    }
    let (kk, vv, ks, vs) = if has_past {
        let (sk, sv) = (
            strides(c, false, &a.total, a.kv_heads, a.dk),
            strides(c, false, &a.total, a.kv_heads, a.dv),
        );
        (quote!(&*present_k), quote!(&*present_v), sk, sv)
    } else {
        (k.clone(), v.clone(), cur_k.clone(), cur_v.clone())
    };
    let mask = match &a.mask {
        None => quote!(None),
        Some((mv, is_bool, cols)) => {
            let ms = &g.values[*mv].shape;
            let off = 4 - ms.len();
            let mut st = vec![quote!(0usize); 4];
            let mut run = Dim::from(1);
            for (i, d) in ms.iter().enumerate().rev() {
                if *d != 1usize {
                    st[off + i] = c.dim(&run);
                }
                run = run.mul(d);
            }
            let x = c.src(*mv);
            let data = if *is_bool {
                quote!(#m::MaskData::Bool(#x))
            } else {
                quote!(#m::MaskData::F32(#x))
            };
            let cols = c.dim(cols);
            quote!(Some(#m::SdpaMask { data: #data, strides: [#(#st),*], cols: #cols }))
        }
    };
    let nonpad = match n.input(6) {
        Some(np) => {
            let x = c.src(np);
            quote!(Some(#x))
        }
        None => quote!(None),
    };
    let qk_arg = if has(n.outputs[3]) {
        let mode = match a.mode {
            2 => quote!(#m::QkMode::Biased),
            3 => quote!(#m::QkMode::Probs),
            _ => quote!(#m::QkMode::Scores),
        };
        quote!(Some((#mode, #qk)))
    } else {
        quote!(None)
    };
    let qs = strides(c, a.rank3, &a.sq, a.heads, a.dk);
    let os = strides(c, a.rank3, &a.sq, a.heads, a.dv);
    let (scale, softcap) = (f32_lit(a.scale), f32_lit(a.softcap));
    let (causal, left, right) = (a.causal, a.left, a.right);
    Ok(quote! {{
        #pre
        let d = #m::SdpaDims { batch: #b, heads: #h, kv_heads: #hk, sq: #sq, skv: #total, dk: #dk, dv: #dv };
        let l = #m::SdpaLayout { q: #qs, k: #ks, v: #vs, out: #os };
        let o = #m::SdpaOpts {
            scale: #scale, softcap: #softcap, mask: #mask, causal: #causal,
            left: #left, right: #right, past: #past, nonpad: #nonpad,
        };
        #m::sdpa(isa, d, l, #q, #kk, #vv, o, #y, #qk_arg, #scratch);
    }})
}

/// RotaryEmbedding's geometry: (input is 3-D, batch, seq, heads, head size, rotated dims).
fn rotary_dims(g: &Graph, n: &Node) -> Result<(bool, Dim, Dim, usize, usize, usize)> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        unsupported!(
            "RotaryEmbedding on {:?} is not supported (float32 only)",
            x.dtype
        );
    }
    let s = &x.shape;
    let (rank3, batch, seq, heads, head) = match s.len() {
        4 => (
            false,
            s[0].clone(),
            s[2].clone(),
            static_dim(g, &s[1], "head count")?,
            static_dim(g, &s[3], "head size")?,
        ),
        3 => {
            let Some(h) = n.attr_i("num_heads")?.filter(|&h| h > 0) else {
                bail!("a 3-D RotaryEmbedding input needs the attribute `num_heads`");
            };
            let hid = static_dim(g, &s[2], "hidden size")?;
            if hid % h as usize != 0 {
                bail!("hidden size {hid} is not a multiple of num_heads {h}");
            }
            (
                true,
                s[0].clone(),
                s[1].clone(),
                h as usize,
                hid / h as usize,
            )
        }
        _ => bail!(
            "RotaryEmbedding's input must be 3-D or 4-D, found {}",
            g.show_shape(s)
        ),
    };
    let rot = match n.attr_i("rotary_embedding_dim")?.unwrap_or(0) {
        0 => head,
        r if r > 0 && r as usize <= head && r % 2 == 0 => r as usize,
        r => bail!("rotary_embedding_dim {r} must be even and at most the head size {head}"),
    };
    Ok((rank3, batch, seq, heads, head, rot))
}

fn infer_rotary(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (_, batch, seq, _, _, rot) = rotary_dims(g, n)?;
    let (cos, sin) = (&g.values[req(n, 1)?], &g.values[req(n, 2)?]);
    let half = Dim::from(rot / 2);
    let ok = |t: &crate::ir::Value| {
        t.dtype == DType::F32
            && t.shape.last() == Some(&half)
            && match n.input(3) {
                Some(_) => t.shape.len() == 2,
                None => t.shape[..] == [batch.clone(), seq.clone(), half.clone()],
            }
    };
    if !ok(cos) || !ok(sin) || cos.shape != sin.shape {
        bail!(
            "cos_cache {} and sin_cache {} must be float32 [max_position, {}] (with position_ids) or [batch, seq, {}]",
            g.show_shape(&cos.shape),
            g.show_shape(&sin.shape),
            rot / 2,
            rot / 2
        );
    }
    if let Some(p) = n.input(3) {
        let p = &g.values[p];
        if p.dtype != DType::I64 || p.shape[..] != [batch.clone(), seq.clone()] {
            bail!(
                "position_ids must be int64 [batch, seq], found {:?} {}",
                p.dtype,
                g.show_shape(&p.shape)
            );
        }
    }
    let x = &g.values[req(n, 0)?];
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
}

fn emit_rotary(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (rank3, batch, seq, heads, head, rot) = rotary_dims(c.g, n)?;
    let interleaved = n.attr_i("interleaved")?.unwrap_or(0) != 0;
    let (x, cos, sin, y) = (
        c.src(inp(n, 0)?),
        c.src(inp(n, 1)?),
        c.src(inp(n, 2)?),
        c.dst(n.outputs[0]),
    );
    let m = quote!(#rt::ops::rotary);
    let layout = if rank3 {
        quote!(#m::RopeLayout::Bshd)
    } else {
        quote!(#m::RopeLayout::Bhsd)
    };
    let (pos, name) = match n.input(3) {
        Some(p) => {
            let s = c.src(p);
            (
                quote!(#m::Positions::Ids(#s)),
                crate::emit::nodes::root_name(c, p),
            )
        }
        None => (quote!(#m::Positions::PerToken), String::new()),
    };
    let (b, s, h, hd, r) = (c.dim(&batch), c.dim(&seq), lit(heads), lit(head), lit(rot));
    let node = &n.name;
    Ok(quote! {
        #m::rotary(
            #m::RopeSpec { batch: #b, seq: #s, heads: #h, head: #hd, rot: #r, interleaved: #interleaved, layout: #layout },
            #x, #cos, #sin, #pos, #y,
        ).map_err(|e| e.at(#name, #node))?;
    })
}
