//! MatMul, Gemm and MatMulInteger: shape rules. (Fusion into prepacked GEMMs is in `passes`.)
use super::{Assumed, OpDef, OutInfo, broadcast, op, req};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node};

const MAT_MUL_INTEGER_NOTES: &str = "fused (constant int8/uint8 B, scalar or per-column zero point, K ≤ 33025); standalone: any u8/i8 combination, 2-D B";
const MAT_MUL_NOTES: &str =
    "f32; constant 2-D B becomes a prepacked GEMM; batched, with broadcasting, between activations";
const GEMM_NOTES: &str = "f32; alpha, beta, transA, transB, C broadcast; constant B is prepacked";

/// The matrix products (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "MatMulInteger",
        MAT_MUL_INTEGER_NOTES,
        |cx, n| infer_matmul_integer(cx.g, &mut cx.assumed, n),
        crate::emit::matmul::matmul_integer,
    ),
    op(
        "MatMul",
        MAT_MUL_NOTES,
        |cx, n| infer_matmul(cx.g, &mut cx.assumed, n),
        crate::emit::matmul::matmul,
    ),
    op(
        "Gemm",
        GEMM_NOTES,
        |cx, n| infer_gemm(cx.g, &mut cx.assumed, n),
        crate::emit::matmul::gemm,
    ),
];

/// ONNX/numpy matmul output shape, with 1-D promotion and batch broadcasting.
pub fn matmul_shape(g: &Graph, eq: &mut Assumed, a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>> {
    if a.is_empty() || b.is_empty() {
        bail!(
            "MatMul inputs must have rank >= 1 (got {} and {})",
            g.show_shape(a),
            g.show_shape(b)
        );
    }
    let one = Dim::constant(1);
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![one.clone(), a[0].clone()]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0].clone(), one]
    } else {
        b.to_vec()
    };
    let (m, k) = (&a2[a2.len() - 2], &a2[a2.len() - 1]);
    let (k2, n) = (&b2[b2.len() - 2], &b2[b2.len() - 1]);
    if k != k2 {
        bail!(
            "MatMul inner dimensions differ: {} x {}",
            g.show_shape(a),
            g.show_shape(b)
        );
    }
    let mut out = broadcast(g, eq, &a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(m.clone());
    }
    if b.len() > 1 {
        out.push(n.clone());
    }
    Ok(out)
}

pub fn infer_matmul(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if a.dtype != DType::F32 || b.dtype != DType::F32 {
        unsupported!(
            "MatMul on {:?} x {:?} is not supported (float32 only)",
            a.dtype,
            b.dtype
        );
    }
    Ok(vec![OutInfo::new(
        DType::F32,
        matmul_shape(g, eq, &a.shape, &b.shape)?,
    )])
}

/// Gemm dims `(m, k, n)` after transposition flags.
pub fn gemm_dims(g: &Graph, n: &Node) -> Result<(Dim, Dim, Dim)> {
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if a.shape.len() != 2 || b.shape.len() != 2 {
        bail!(
            "Gemm inputs must be 2-D (got {} and {})",
            g.show_shape(&a.shape),
            g.show_shape(&b.shape)
        );
    }
    let ta = n.attr_i("transA")?.unwrap_or(0) != 0;
    let tb = n.attr_i("transB")?.unwrap_or(0) != 0;
    let (m, k) = if ta {
        (&a.shape[1], &a.shape[0])
    } else {
        (&a.shape[0], &a.shape[1])
    };
    let (k2, nn) = if tb {
        (&b.shape[1], &b.shape[0])
    } else {
        (&b.shape[0], &b.shape[1])
    };
    if k != k2 {
        bail!(
            "Gemm inner dimensions differ: A {} (transA={ta}) x B {} (transB={tb})",
            g.show_shape(&a.shape),
            g.show_shape(&b.shape)
        );
    }
    Ok((m.clone(), k.clone(), nn.clone()))
}

pub fn infer_gemm(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if a.dtype != DType::F32 || b.dtype != DType::F32 {
        unsupported!(
            "Gemm on {:?} x {:?} is not supported (float32 only)",
            a.dtype,
            b.dtype
        );
    }
    let (m, _, nn) = gemm_dims(g, n)?;
    // Validated here: the float fusion reads them leniently.
    n.attr_f("alpha")?;
    n.attr_f("beta")?;
    if let Some(c) = n.input(2) {
        let c = &g.values[c];
        if c.dtype != DType::F32 {
            bail!("Gemm C must be float32 like A and B");
        }
        let bc = broadcast(g, eq, &c.shape, &[m.clone(), nn.clone()])?;
        if bc != [m.clone(), nn.clone()] {
            bail!(
                "Gemm C of shape {} does not broadcast to [{}, {}]",
                g.show_shape(&c.shape),
                g.show(&m),
                g.show(&nn)
            );
        }
    }
    Ok(vec![OutInfo::new(DType::F32, vec![m, nn])])
}

pub fn infer_matmul_integer(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    for (v, which) in [(a, "A"), (b, "B")] {
        if !matches!(v.dtype, DType::U8 | DType::I8) {
            bail!(
                "MatMulInteger {which} must be uint8 or int8, found {:?}",
                v.dtype
            );
        }
    }
    for (i, of) in [(2, a), (3, b)] {
        if let Some(z) = n.input(i) {
            let z = &g.values[z];
            if z.dtype != of.dtype {
                bail!("MatMulInteger zero point #{i} must have the element type of its matrix");
            }
        }
    }
    if let Some(z) = n.input(2)
        && g.values[z].numel() != 1
    {
        unsupported!("MatMulInteger with a per-row A zero point is not supported");
    }
    let out = matmul_shape(g, eq, &a.shape, &b.shape)?;
    if let Some(z) = n.input(3) {
        let zn = g.values[z].numel();
        let one = Dim::constant(1);
        let ncols = b.shape.last().unwrap_or(&one);
        if zn != 1 && (&zn != ncols || b.shape.len() > 2) {
            unsupported!(
                "MatMulInteger B zero point of shape {} is not supported (scalar or per-column)",
                g.show_shape(&g.values[z].shape)
            );
        }
    }
    Ok(vec![OutInfo::new(DType::I32, out)])
}
