//! Conv, ConvInteger and BatchNormalization: attribute validation and shape rules. Fusion
//! (BatchNorm folding, int8 convolution, float convolution with a fused activation) is in
//! `passes::fuse_conv`; the kernels are in `kiln_runtime::ops::conv`.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, op, req};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node};

const CONV_INTEGER_NOTES: &str = "fused with DynamicQuantizeLinear, scales, bias, BatchNorm and Relu/Clip into one int8 convolution (per-tensor or per-channel weights, u8/i8); standalone: direct loops, any u8/i8 mix";
const CONV_NOTES: &str = "f32, 1-D and 2-D: pads, strides, dilations, every `auto_pad`, groups incl. depthwise; constant weights: im2col + GEMM or a depthwise kernel, chosen per layer; run-time weights: direct loops";
const CONV_TRANSPOSE_NOTES: &str = "f32, 1-D and 2-D: pads, strides, dilations, groups, `output_padding`, `output_shape`, `auto_pad`; GEMM + col2im";
const BATCH_NORMALIZATION_NOTES: &str = "inference form; folded into a preceding Conv (or the int8 conv's epilogue), else a per-channel affine pass";

/// The convolutions and BatchNormalization (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "ConvInteger",
        CONV_INTEGER_NOTES,
        |cx, n| infer_conv_integer(cx.g, n),
        crate::emit::nodes::lowered,
    ),
    op(
        "Conv",
        CONV_NOTES,
        |cx, n| infer_conv(cx.g, n),
        crate::emit::nodes::lowered,
    ),
    op(
        "ConvTranspose",
        CONV_TRANSPOSE_NOTES,
        |cx, n| infer_conv_transpose(cx.g, n),
        crate::emit::nodes::lowered,
    ),
    op(
        "BatchNormalization",
        BATCH_NORMALIZATION_NOTES,
        |cx, n| infer_batch_norm(cx.g, n),
        crate::emit::norm::batch_norm,
    ),
];

/// Padding before the first element of one spatial axis.
#[derive(Clone, Debug, PartialEq)]
pub enum PadBegin {
    Fixed(usize),
    /// `auto_pad = SAME_UPPER / SAME_LOWER`: total padding `max(0, (out−1)·s + ek − in)`, half
    /// of it (rounded down for UPPER, up for LOWER) before; computed at run time when `in` is
    /// symbolic.
    Same {
        upper: bool,
    },
}

/// Everything a convolution's code needs, 1-D convs as 2-D with a unit height.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    pub batch: Dim,
    pub c_in: usize,
    pub c_out: usize,
    pub h: Dim,
    pub w: Dim,
    pub oh: Dim,
    pub ow: Dim,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub pads: [PadBegin; 2],
    pub groups: usize,
    /// 1 or 2 spatial dims in the ONNX tensors.
    pub spatial: usize,
}

impl ConvSpec {
    pub fn cg(&self) -> usize {
        self.c_in / self.groups
    }
    pub fn og(&self) -> usize {
        self.c_out / self.groups
    }
    pub fn k(&self) -> usize {
        self.cg() * self.kernel[0] * self.kernel[1]
    }
    pub fn pixels(&self) -> Dim {
        self.oh.mul(&self.ow)
    }
    /// One input channel per group: the depthwise kernel applies.
    pub fn depthwise(&self) -> bool {
        self.cg() == 1 && self.groups > 1
    }
    /// The output shape in ONNX layout.
    pub fn out_shape(&self) -> Vec<Dim> {
        let mut s = vec![self.batch.clone(), Dim::from(self.c_out)];
        if self.spatial == 2 {
            s.push(self.oh.clone());
        }
        s.push(self.ow.clone());
        s
    }

    /// `kiln_runtime::ops::conv::ConvGeom` expression; `dim` renders a `Dim` as usize tokens.
    pub fn geom_tokens(&self, rt: &TokenStream, dim: &dyn Fn(&Dim) -> TokenStream) -> TokenStream {
        let lit = |v: usize| proc_macro2::Literal::usize_unsuffixed(v);
        let (n, h, w, oh, ow) = (
            dim(&self.batch),
            dim(&self.h),
            dim(&self.w),
            dim(&self.oh),
            dim(&self.ow),
        );
        let (ci, co, g) = (lit(self.c_in), lit(self.c_out), lit(self.groups));
        let (kh, kw) = (lit(self.kernel[0]), lit(self.kernel[1]));
        let (sh, sw) = (lit(self.strides[0]), lit(self.strides[1]));
        let (dh, dw) = (lit(self.dilations[0]), lit(self.dilations[1]));
        let pad = |i: usize, input: &TokenStream, out: &TokenStream| match &self.pads[i] {
            PadBegin::Fixed(p) => {
                let p = lit(*p);
                quote!(#p)
            }
            PadBegin::Same { upper } => {
                let ek = lit((self.kernel[i] - 1) * self.dilations[i] + 1);
                let s = lit(self.strides[i]);
                let half = if *upper {
                    quote!(t / 2)
                } else {
                    quote!(t - t / 2)
                };
                quote!({ let t: usize = ((#out).max(1) - 1) * #s + #ek; let t = t.saturating_sub(#input); #half })
            }
        };
        let ph = pad(0, &h, &oh);
        let pw = pad(1, &w, &ow);
        quote! {
            #rt::ops::conv::ConvGeom {
                batch: #n, c_in: #ci, h: #h, w: #w, c_out: #co, oh: #oh, ow: #ow,
                kh: #kh, kw: #kw, sh: #sh, sw: #sw, dh: #dh, dw: #dw, ph: #ph, pw: #pw,
                groups: #g,
            }
        }
    }
}

fn ints(n: &Node, name: &str, len: usize, default: usize) -> Result<[usize; 2]> {
    match n.attr_ints(name)? {
        None => Ok([default; 2]),
        Some(v) if v.len() == len => {
            let mut r = [default; 2];
            for (i, &x) in v.iter().enumerate() {
                if x < 1 {
                    bail!("attribute `{name}` must be positive, got {v:?}");
                }
                r[2 - len + i] = x as usize;
            }
            Ok(r)
        }
        Some(v) => bail!(
            "attribute `{name}` has {} values for {len} spatial dims",
            v.len()
        ),
    }
}

/// Parses a Conv/ConvInteger node (inputs X, W) into a [`ConvSpec`], creating derived dims
/// for symbolic spatial sizes.
pub fn conv_spec(g: &mut Graph, n: &Node) -> Result<ConvSpec> {
    let (x, w) = (req(n, 0)?, req(n, 1)?);
    let xs = g.values[x].shape.clone();
    let ws = g.values[w].shape.clone();
    if xs.len() != ws.len() || !(3..=4).contains(&xs.len()) {
        unsupported!(
            "{} with input {} and weights {}: kiln supports 1-D and 2-D convolutions \
             (rank-3 or rank-4 tensors)",
            n.op,
            g.show_shape(&xs),
            g.show_shape(&ws)
        );
    }
    let sp = xs.len() - 2;
    let c_in = match xs[1].as_usize() {
        Some(c) => c,
        None => unsupported!(
            "{} input channels must be static, found {}",
            n.op,
            g.show(&xs[1])
        ),
    };
    let wdims: Vec<usize> = match crate::ir::static_shape(&ws) {
        Some(d) => d,
        None => unsupported!("{} weights need a static shape", n.op),
    };
    let groups = n.attr_i("group")?.unwrap_or(1);
    if groups < 1 {
        bail!("group must be positive, got {groups}");
    }
    let groups = groups as usize;
    let c_out = wdims[0];
    if !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) || wdims[1] * groups != c_in {
        bail!(
            "channels do not match groups: input has {c_in} channels, weights {:?}, group {groups}",
            wdims
        );
    }
    let mut kernel = [1usize; 2];
    for i in 0..sp {
        kernel[2 - sp + i] = wdims[2 + i];
    }
    if let Some(ks) = n.attr_ints("kernel_shape")? {
        let ks: Vec<usize> = ks.iter().map(|&v| v.max(0) as usize).collect();
        if ks != wdims[2..] {
            bail!(
                "kernel_shape {ks:?} differs from the weights' spatial dims {:?}",
                &wdims[2..]
            );
        }
    }
    let strides = ints(n, "strides", sp, 1)?;
    let dilations = ints(n, "dilations", sp, 1)?;
    let auto_pad = match n.attrs.get("auto_pad") {
        Some(crate::ir::Attr::String(s)) => s.clone(),
        _ => "NOTSET".to_string(),
    };
    let explicit = match n.attr_ints("pads")? {
        None => vec![0i64; 2 * sp],
        Some(p) if p.len() == 2 * sp => p,
        Some(p) => bail!("pads has {} values for {sp} spatial dims", p.len()),
    };
    if explicit.iter().any(|&p| p < 0) {
        unsupported!("negative pads {explicit:?} are not supported");
    }
    let one = Dim::constant(1);
    let (mut ins, mut outs) = (
        vec![one.clone(), one.clone()],
        vec![one.clone(), one.clone()],
    );
    let mut pads = [PadBegin::Fixed(0), PadBegin::Fixed(0)];
    for i in 0..sp {
        let a = 2 - sp + i;
        let input = xs[2 + i].clone();
        let ek = ((kernel[a] - 1) * dilations[a] + 1) as i64;
        let s = strides[a] as i64;
        let out = match auto_pad.as_str() {
            "NOTSET" | "VALID" => {
                let (pb, pe) = if auto_pad == "VALID" {
                    (0, 0)
                } else {
                    (explicit[i], explicit[sp + i])
                };
                pads[a] = PadBegin::Fixed(pb as usize);
                let num = input.add(&Dim::constant(pb + pe - ek));
                g.floor_div(&num, s, &n.name)?.add(&one)
            }
            "SAME_UPPER" | "SAME_LOWER" => {
                pads[a] = PadBegin::Same {
                    upper: auto_pad == "SAME_UPPER",
                };
                g.ceil_div(&input, s, &n.name)?
            }
            other => {
                bail!("auto_pad `{other}` is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
            }
        };
        ins[a] = input;
        outs[a] = out;
    }
    let [h, w] = [ins[0].clone(), ins[1].clone()];
    let [oh, ow] = [outs[0].clone(), outs[1].clone()];
    Ok(ConvSpec {
        batch: xs[0].clone(),
        c_in,
        c_out,
        h,
        w,
        oh,
        ow,
        kernel,
        strides,
        dilations,
        pads,
        groups,
        spatial: sp,
    })
}

/// Parses a ConvTranspose node into a [`ConvSpec`] read the other way round (`h, w` inputs,
/// `oh, ow` outputs, `pads` the begin padding cropped from the full output; see
/// `kiln_runtime::ops::conv::conv_transpose_f32`).
pub fn conv_transpose_spec(g: &mut Graph, n: &Node) -> Result<ConvSpec> {
    let (x, w) = (req(n, 0)?, req(n, 1)?);
    let xs = g.values[x].shape.clone();
    let ws = g.values[w].shape.clone();
    if xs.len() != ws.len() || !(3..=4).contains(&xs.len()) {
        unsupported!(
            "ConvTranspose with input {} and weights {}: kiln supports 1-D and 2-D",
            g.show_shape(&xs),
            g.show_shape(&ws)
        );
    }
    let sp = xs.len() - 2;
    let Some(c_in) = xs[1].as_usize() else {
        unsupported!("ConvTranspose input channels must be static");
    };
    let Some(wdims) = crate::ir::static_shape(&ws) else {
        unsupported!("ConvTranspose weights need a static shape");
    };
    let groups = n.attr_i("group")?.unwrap_or(1);
    if groups < 1 || wdims[0] != c_in || !c_in.is_multiple_of(groups as usize) {
        bail!("ConvTranspose: input has {c_in} channels, weights {wdims:?}, group {groups}");
    }
    let groups = groups as usize;
    let c_out = wdims[1] * groups;
    let mut kernel = [1usize; 2];
    for i in 0..sp {
        kernel[2 - sp + i] = wdims[2 + i];
    }
    let strides = ints(n, "strides", sp, 1)?;
    let dilations = ints(n, "dilations", sp, 1)?;
    let opad = match n.attr_ints("output_padding")? {
        None => vec![0i64; sp],
        Some(v) if v.len() == sp && v.iter().all(|&p| p >= 0) => v,
        Some(v) => bail!("output_padding {v:?} is invalid for {sp} spatial dims"),
    };
    let auto_pad = match n.attrs.get("auto_pad") {
        Some(crate::ir::Attr::String(s)) => s.clone(),
        _ => "NOTSET".to_string(),
    };
    let explicit = match n.attr_ints("pads")? {
        None => vec![0i64; 2 * sp],
        Some(p) if p.len() == 2 * sp && p.iter().all(|&v| v >= 0) => p,
        Some(p) => bail!("pads {p:?} are invalid for {sp} spatial dims"),
    };
    let out_shape = n.attr_ints("output_shape")?;
    let one = Dim::constant(1);
    let (mut ins, mut outs) = (
        vec![one.clone(), one.clone()],
        vec![one.clone(), one.clone()],
    );
    let mut pads = [PadBegin::Fixed(0), PadBegin::Fixed(0)];
    for i in 0..sp {
        let a = 2 - sp + i;
        let input = xs[2 + i].clone();
        let ek = ((kernel[a] - 1) * dilations[a] + 1) as i64;
        let s = strides[a] as i64;
        // The full (uncropped) output: s·(in − 1) + output_padding + ek.
        let full = input.scale(s).add(&Dim::constant(opad[i] + ek - s));
        let target = match (&out_shape, auto_pad.as_str()) {
            (Some(os), _) => {
                let os = &os[os.len().saturating_sub(sp)..];
                Some(Dim::constant(os[i]))
            }
            (None, "SAME_UPPER" | "SAME_LOWER") => Some(input.scale(s)),
            _ => None,
        };
        let (begin, out) = match target {
            Some(out) => {
                let Some(total) = full.sub(&out).as_const() else {
                    unsupported!(
                        "ConvTranspose with output_shape on a symbolic input size {}",
                        g.show(&input)
                    );
                };
                // As the ONNX reference computes it (floor division; a negative total
                // extends the output at the end): SAME_UPPER crops the smaller half first,
                // otherwise the larger half.
                let half = total.div_euclid(2);
                let begin = if auto_pad == "SAME_UPPER" {
                    half
                } else {
                    total - half
                };
                if begin < 0 {
                    unsupported!(
                        "ConvTranspose output_shape {} is more than one element larger than the \
                         full output {}",
                        g.show(&out),
                        g.show(&full)
                    );
                }
                (begin, out)
            }
            None => {
                let (pb, pe) = if auto_pad == "VALID" {
                    (0, 0)
                } else {
                    (explicit[i], explicit[sp + i])
                };
                (pb, full.sub(&Dim::constant(pb + pe)))
            }
        };
        pads[a] = PadBegin::Fixed(begin as usize);
        ins[a] = input;
        outs[a] = out;
    }
    Ok(ConvSpec {
        batch: xs[0].clone(),
        c_in,
        c_out,
        h: ins[0].clone(),
        w: ins[1].clone(),
        oh: outs[0].clone(),
        ow: outs[1].clone(),
        kernel,
        strides,
        dilations,
        pads,
        groups,
        spatial: sp,
    })
}

pub fn infer_conv_transpose(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (x, w) = (req(n, 0)?, req(n, 1)?);
    let (xt, wt) = (g.values[x].dtype, g.values[w].dtype);
    if xt != DType::F32 || wt != DType::F32 {
        unsupported!("ConvTranspose on {xt:?} x {wt:?} is not supported (float32 only)");
    }
    let spec = conv_transpose_spec(g, n)?;
    Ok(vec![OutInfo::new(DType::F32, spec.out_shape())])
}

pub fn infer_conv(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (x, w) = (req(n, 0)?, req(n, 1)?);
    let (xt, wt) = (g.values[x].dtype, g.values[w].dtype);
    if xt != DType::F32 || wt != DType::F32 {
        unsupported!("Conv on {xt:?} x {wt:?} is not supported (float32 only)");
    }
    let spec = conv_spec(g, n)?;
    if let Some(b) = n.input(2)
        && g.values[b].shape != [spec.c_out]
    {
        bail!(
            "Conv bias has shape {}, expected [{}]",
            g.show_shape(&g.values[b].shape),
            spec.c_out
        );
    }
    Ok(vec![OutInfo::new(DType::F32, spec.out_shape())])
}

pub fn infer_conv_integer(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (x, w) = (req(n, 0)?, req(n, 1)?);
    for v in [x, w] {
        if !matches!(g.values[v].dtype, DType::U8 | DType::I8) {
            bail!(
                "ConvInteger takes int8/uint8 tensors, got {:?}",
                g.values[v].dtype
            );
        }
    }
    let spec = conv_spec(g, n)?;
    if let Some(z) = n.input(2)
        && g.values[z].numel() != 1
    {
        unsupported!("ConvInteger with a per-channel input zero point is not supported");
    }
    if let Some(z) = n.input(3) {
        let c = g.values[z].numel();
        if c != 1 && c != spec.c_out {
            bail!(
                "ConvInteger weight zero point has {} values for {} output channels",
                g.show(&c),
                spec.c_out
            );
        }
    }
    Ok(vec![OutInfo::new(DType::I32, spec.out_shape())])
}

/// BatchNormalization (inference form): y = (x − mean)/√(var + ε)·scale + B per channel (axis 1).
pub fn infer_batch_norm(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = req(n, 0)?;
    let xv = &g.values[x];
    if xv.dtype != DType::F32 {
        unsupported!("BatchNormalization on {:?} (float32 only)", xv.dtype);
    }
    if n.attr_i("training_mode")?.unwrap_or(0) != 0 || n.outputs.len() > 1 {
        unsupported!("BatchNormalization in training mode (running mean/var outputs)");
    }
    if xv.shape.len() < 2 {
        bail!("BatchNormalization input must have rank >= 2");
    }
    let c = xv.shape[1].clone();
    for i in 1..5 {
        let v = req(n, i)?;
        if g.values[v].konst.is_none() {
            unsupported!("BatchNormalization with scale/B/mean/var computed at run time");
        }
        if g.values[v].shape != [c.clone()] {
            bail!("BatchNormalization parameter #{i} must have shape [C]");
        }
    }
    Ok(vec![OutInfo::new(DType::F32, xv.shape.clone())])
}

/// Per-channel `(scale, shift)` of an inference BatchNormalization with constant parameters:
/// `y = x·scale + shift`, `scale = γ/√(var+ε)`, `shift = β − mean·scale` (computed in f64).
pub fn batch_norm_affine(g: &Graph, n: &Node) -> Result<(Vec<f32>, Vec<f32>)> {
    let eps = n.attr_f("epsilon")?.unwrap_or(1e-5) as f64;
    let p: Vec<Vec<f32>> = (1..5)
        .map(|i| Ok(g.values[req(n, i)?].konst.as_ref().unwrap().as_f32()))
        .collect::<Result<_>>()?;
    let (gamma, beta, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
    let mut scale = Vec::with_capacity(gamma.len());
    let mut shift = Vec::with_capacity(gamma.len());
    for c in 0..gamma.len() {
        let s = gamma[c] as f64 / (var[c] as f64 + eps).sqrt();
        scale.push(s as f32);
        shift.push((beta[c] as f64 - mean[c] as f64 * s) as f32);
    }
    Ok((scale, shift))
}
