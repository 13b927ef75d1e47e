//! Symbolic dimensions: integer polynomials over the model's named dims (`batch_size`,
//! `sequence_length`…), with a canonical form so that equal expressions compare equal.
//!
//! Shapes are `Vec<Dim>`; a static dim is a constant polynomial. Shape subgraphs
//! (Shape → Gather → Unsqueeze → Concat → Reshape) are evaluated on `Dim`s at compile time, so
//! the generated code only contains the final integer arithmetic (`batch_size * 12`), never a
//! tensor interpreter.
use std::collections::BTreeMap;
use std::fmt;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// Index into `Graph::syms`.
pub type SymId = u32;

/// A product of symbols with powers, sorted by symbol (empty = the constant monomial 1).
type Mono = Vec<(SymId, u32)>;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Dim {
    /// monomial → non-zero coefficient.
    terms: BTreeMap<Mono, i64>,
}

impl Dim {
    pub fn constant(c: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if c != 0 {
            terms.insert(Vec::new(), c);
        }
        Dim { terms }
    }
    pub fn sym(s: SymId) -> Dim {
        Dim {
            terms: BTreeMap::from([(vec![(s, 1)], 1)]),
        }
    }
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }
    /// The value as a static size, if constant and non-negative.
    pub fn as_usize(&self) -> Option<usize> {
        self.as_const().and_then(|c| usize::try_from(c).ok())
    }
    pub fn is_const(&self) -> bool {
        self.as_const().is_some()
    }
    /// Provably ≥ 0 for every non-negative assignment of the symbols.
    pub fn nonneg(&self) -> bool {
        self.terms.values().all(|&c| c > 0)
    }
    pub fn syms(&self) -> impl Iterator<Item = SymId> + '_ {
        self.terms.keys().flat_map(|m| m.iter().map(|&(s, _)| s))
    }

    fn add_term(&mut self, m: Mono, c: i64) {
        let e = self.terms.entry(m).or_insert(0);
        *e = e.wrapping_add(c);
        if *e == 0 {
            self.terms.retain(|_, v| *v != 0);
        }
    }
    pub fn add(&self, o: &Dim) -> Dim {
        let mut r = self.clone();
        for (m, &c) in &o.terms {
            r.add_term(m.clone(), c);
        }
        r
    }
    pub fn sub(&self, o: &Dim) -> Dim {
        self.add(&o.scale(-1))
    }
    pub fn scale(&self, k: i64) -> Dim {
        let mut r = Dim::default();
        for (m, &c) in &self.terms {
            r.add_term(m.clone(), c.wrapping_mul(k));
        }
        r
    }
    pub fn mul(&self, o: &Dim) -> Dim {
        let mut r = Dim::default();
        for (ma, &ca) in &self.terms {
            for (mb, &cb) in &o.terms {
                r.add_term(mono_mul(ma, mb), ca.wrapping_mul(cb));
            }
        }
        r
    }
    /// `self / o` when the division is exact as polynomials (e.g. `12·b·s / (b·s)` = 12).
    pub fn div_exact(&self, o: &Dim) -> Option<Dim> {
        if o.terms.is_empty() {
            return None;
        }
        if self.terms.is_empty() {
            return Some(Dim::default());
        }
        // Divide by the leading term repeatedly (polynomial long division in lex order).
        let (lm, &lc) = o.terms.iter().next_back()?;
        let mut rem = self.clone();
        let mut q = Dim::default();
        let mut guard = 0;
        while let Some((m, &c)) = rem.terms.iter().next_back() {
            guard += 1;
            // checked: i64::MIN / -1 overflows (coefficients wrap, so it can occur).
            if guard > 64 || c.checked_rem(lc)? != 0 {
                return None;
            }
            let qm = mono_div(m, lm)?;
            let t = Dim {
                terms: BTreeMap::from([(qm, c.checked_div(lc)?)]),
            };
            rem = rem.sub(&t.mul(o));
            q = q.add(&t);
        }
        Some(q)
    }
    /// Floor division by a positive constant, when exact per term.
    pub fn div_const(&self, k: i64) -> Option<Dim> {
        if k == 0 {
            return None;
        }
        self.div_exact(&Dim::constant(k))
    }

    /// Rust expression of type usize (`names[s]` are the local variables holding the symbols).
    pub fn to_tokens(&self, names: &[String]) -> TokenStream {
        if let Some(c) = self.as_const() {
            let c = proc_macro2::Literal::usize_unsuffixed(c.max(0) as usize);
            return quote!(#c);
        }
        if self.nonneg() {
            let terms: Vec<TokenStream> = self
                .terms
                .iter()
                .map(|(m, &c)| {
                    let mut f: Vec<TokenStream> = Vec::new();
                    if c != 1 || m.is_empty() {
                        let c = proc_macro2::Literal::usize_unsuffixed(c as usize);
                        f.push(quote!(#c));
                    }
                    for &(s, p) in m {
                        let id = format_ident!("{}", names[s as usize]);
                        for _ in 0..p {
                            f.push(quote!(#id));
                        }
                    }
                    product(&f)
                })
                .collect();
            return quote!((#(#terms)+*));
        }
        let e = self.to_i64_tokens(names);
        quote!(((#e) as usize))
    }
    /// Rust expression of type i64.
    pub fn to_i64_tokens(&self, names: &[String]) -> TokenStream {
        if self.terms.is_empty() {
            return quote!(0i64);
        }
        let terms = self.terms.iter().map(|(m, &c)| {
            let mut f = vec![quote!(#c)];
            for &(s, p) in m {
                let id = format_ident!("{}", names[s as usize]);
                for _ in 0..p {
                    f.push(quote!((#id as i64)));
                }
            }
            product(&f)
        });
        quote!((#(#terms)+*))
    }
    /// Rust expression of type f64: an estimate that cannot overflow (work sizes, see
    /// `emit::work`).
    pub fn to_f64_tokens(&self, names: &[String]) -> TokenStream {
        if self.terms.is_empty() {
            return quote!(0f64);
        }
        let terms = self.terms.iter().map(|(m, &c)| {
            let c = c as f64;
            let mut f = vec![quote!(#c)];
            for &(s, p) in m {
                let id = format_ident!("{}", names[s as usize]);
                for _ in 0..p {
                    f.push(quote!((#id as f64)));
                }
            }
            product(&f)
        });
        quote!((#(#terms)+*))
    }
    /// Evaluates with concrete symbol values.
    pub fn eval(&self, vals: &[i64]) -> i64 {
        self.terms
            .iter()
            .map(|(m, &c)| {
                m.iter().fold(c, |acc, &(s, p)| {
                    acc.wrapping_mul(vals[s as usize].wrapping_pow(p))
                })
            })
            .fold(0i64, i64::wrapping_add)
    }
    pub fn display<'a>(&'a self, names: &'a [String]) -> impl fmt::Display + 'a {
        DimDisplay(self, names)
    }
}

fn mono_mul(a: &Mono, b: &Mono) -> Mono {
    let mut m: BTreeMap<SymId, u32> = a.iter().copied().collect();
    for &(s, p) in b {
        *m.entry(s).or_insert(0) += p;
    }
    m.into_iter().collect()
}

fn mono_div(a: &Mono, b: &Mono) -> Option<Mono> {
    let mut m: BTreeMap<SymId, u32> = a.iter().copied().collect();
    for &(s, p) in b {
        let e = m.get_mut(&s)?;
        if *e < p {
            return None;
        }
        *e -= p;
    }
    Some(m.into_iter().filter(|&(_, p)| p > 0).collect())
}

impl From<usize> for Dim {
    fn from(v: usize) -> Dim {
        Dim::constant(v as i64)
    }
}

impl PartialEq<usize> for Dim {
    fn eq(&self, o: &usize) -> bool {
        self.as_const() == Some(*o as i64)
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = self.as_const() {
            return write!(f, "{c}");
        }
        let names: Vec<String> = (0..64).map(|i| format!("s{i}")).collect();
        write!(f, "{}", self.display(&names))
    }
}

struct DimDisplay<'a>(&'a Dim, &'a [String]);

impl fmt::Display for DimDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.terms.is_empty() {
            return f.write_str("0");
        }
        for (i, (m, &c)) in d.terms.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(if c < 0 { " - " } else { " + " })?;
            } else if c < 0 {
                f.write_str("-")?;
            }
            let a = c.unsigned_abs();
            let mut first = true;
            if a != 1 || m.is_empty() {
                write!(f, "{a}")?;
                first = false;
            }
            for &(s, p) in m {
                if !first {
                    f.write_str("·")?;
                }
                first = false;
                let n = self.1.get(s as usize).map(String::as_str).unwrap_or("?");
                f.write_str(n)?;
                if p > 1 {
                    write!(f, "^{p}")?;
                }
            }
        }
        Ok(())
    }
}

/// Product of a shape.
pub fn numel(shape: &[Dim]) -> Dim {
    shape.iter().fold(Dim::constant(1), |a, d| a.mul(d))
}

/// Static shape, if every dim is constant.
pub fn static_shape(shape: &[Dim]) -> Option<Vec<usize>> {
    shape.iter().map(Dim::as_usize).collect()
}

pub fn from_static(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::from(d)).collect()
}

/// `(f0 * f1 * …)`.
fn product(f: &[TokenStream]) -> TokenStream {
    let mut t = TokenStream::new();
    for (i, x) in f.iter().enumerate() {
        if i > 0 {
            t.extend(quote!(*));
        }
        t.extend(x.clone());
    }
    quote!((#t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_arithmetic() {
        let (b, s) = (Dim::sym(0), Dim::sym(1));
        let bs = b.mul(&s);
        assert_eq!(bs, s.mul(&b));
        let t = bs.scale(12).mul(&Dim::constant(32));
        assert_eq!(t.div_exact(&bs.scale(12)), Some(Dim::constant(32)));
        assert_eq!(t.div_exact(&Dim::constant(384)), Some(bs.clone()));
        assert_eq!(bs.div_exact(&Dim::constant(5)), None);
        assert_eq!(b.add(&s).sub(&s), b);
        assert_eq!(b.sub(&b), Dim::constant(0));
        let poly = b.add(&Dim::constant(1)).mul(&s); // (b+1)·s
        assert_eq!(poly.div_exact(&s), Some(b.add(&Dim::constant(1))));
        assert_eq!(poly.eval(&[3, 5]), 20);
        assert!(poly.nonneg());
        assert!(!b.sub(&Dim::constant(1)).nonneg());
    }

    #[test]
    fn display() {
        let names = vec!["batch".to_string(), "seq".to_string()];
        let d = Dim::sym(0).mul(&Dim::sym(1)).scale(12);
        assert_eq!(d.display(&names).to_string(), "12·batch·seq");
    }
}
