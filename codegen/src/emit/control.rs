//! The blocks of a run-time `If` (see `ops::control`): at `IfBegin` the condition is read into
//! a local and the following steps go into the then-block, at `Else` into the else-block, and
//! `End` closes both into one `if … { … } else { … }` step of the enclosing block.
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Ctx, carve_regions, value_region};
use crate::error::{Result, bail};
use crate::ir::Node;
use crate::ops::control::{ELSE, END, IF_BEGIN};
use crate::plan::Storage;

struct Frame {
    cond: proc_macro2::Ident,
    then: Option<Vec<TokenStream>>,
    body: Vec<TokenStream>,
}

/// Steps of `run`, nested by the markers.
#[derive(Default)]
pub(super) struct Blocks {
    top: Vec<TokenStream>,
    open: Vec<Frame>,
}

impl Blocks {
    pub fn is_marker(n: &Node) -> bool {
        n.domain == "kiln" && [IF_BEGIN, ELSE, END].contains(&n.op.as_str())
    }

    pub fn push(&mut self, step: TokenStream) {
        match self.open.last_mut() {
            Some(f) => f.body.push(step),
            None => self.top.push(step),
        }
    }

    /// Opens or closes a block at marker `n` (the `ni`-th node).
    pub fn marker(&mut self, c: &Ctx, n: &Node, ni: usize) -> Result<()> {
        match n.op.as_str() {
            IF_BEGIN => {
                let Some(v) = n.input(0) else {
                    bail!("internal: IfBegin without a condition")
                };
                let cond = format_ident!("cond{}", ni);
                let src = c.src(v);
                let r = c.plan.root(v);
                let read = match c.plan.arena.as_ref() {
                    // The condition's region is carved for the read only.
                    Some(a) if matches!(c.plan.storage[r], Some(Storage::Slot(_))) => {
                        let carve = carve_regions(
                            c.rt,
                            vec![value_region(c, a, r, false)],
                            quote!(&mut *arena),
                        );
                        quote!({ #carve (#src)[0] })
                    }
                    _ => quote!((#src)[0]),
                };
                self.push(quote!(let #cond: bool = #read;));
                self.open.push(Frame {
                    cond,
                    then: None,
                    body: Vec::new(),
                });
            }
            ELSE => match self.open.last_mut() {
                Some(f) if f.then.is_none() => f.then = Some(std::mem::take(&mut f.body)),
                _ => bail!("internal: Else without IfBegin"),
            },
            _ => {
                let Some(Frame {
                    cond,
                    then: Some(then),
                    body,
                }) = self.open.pop()
                else {
                    bail!("internal: End without IfBegin and Else")
                };
                self.push(quote!(if #cond { #(#then)* } else { #(#body)* }));
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<Vec<TokenStream>> {
        if !self.open.is_empty() {
            bail!("internal: unclosed If block");
        }
        Ok(self.top)
    }
}
