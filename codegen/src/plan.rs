//! Storage plan: where each value lives at run time.
//!
//! Graph inputs are read in place from the caller's slices; constants live in the weight blob;
//! Reshape/Flatten/Identity outputs alias their input; everything else gets a typed buffer
//! ("slot") in the `Model`, reused by liveness: a slot is free again after the last read of
//! every value stored in it, and a node never writes into a slot one of its inputs occupies.
use std::collections::HashMap;

use crate::ir::{DType, Dim, Graph, NodeId, ValueId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Input(usize),
    /// Index into `Plan::consts`.
    Const(usize),
    Slot(usize),
    /// Same bytes as another value (a view with a different shape).
    Alias(ValueId),
    /// Integer contents known as symbolic dims: materialised inline where read.
    Sym,
}

#[derive(Clone, Debug)]
pub struct Slot {
    pub dtype: DType,
    /// Element counts of the values stored in it over the run (distinct expressions); the slot
    /// holds their maximum, computed at compile time when all are constant.
    pub sizes: Vec<Dim>,
}

impl Slot {
    /// Capacity in elements when every size is static.
    pub fn static_capacity(&self) -> Option<usize> {
        self.sizes
            .iter()
            .map(Dim::as_usize)
            .try_fold(0usize, |m, s| s.map(|s| m.max(s)))
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub storage: Vec<Option<Storage>>,
    pub slots: Vec<Slot>,
    /// Constant values read by run-time nodes, in blob order.
    pub consts: Vec<ValueId>,
    /// Bytes a naive plan (one buffer per intermediate) would use, for reports.
    pub naive_bytes: usize,
}

impl Plan {
    /// Follows aliases to the value that owns the storage.
    pub fn root(&self, mut v: ValueId) -> ValueId {
        while let Some(Storage::Alias(r)) = self.storage[v] {
            v = r;
        }
        v
    }
    /// Workspace bytes, if every slot has a static size.
    pub fn planned_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.static_capacity().unwrap_or(0) * s.dtype.size())
            .sum()
    }
}

/// Ops whose output is a pure view of their first input.
pub fn is_view(op: &str) -> bool {
    matches!(
        op,
        "Reshape" | "Flatten" | "Identity" | "Squeeze" | "Unsqueeze"
    )
}

pub fn plan(g: &Graph) -> Plan {
    let mut p = Plan {
        storage: vec![None; g.values.len()],
        ..Default::default()
    };
    for (i, &v) in g.inputs.iter().enumerate() {
        p.storage[v] = Some(Storage::Input(i));
    }
    let outputs: Vec<ValueId> = g.outputs.clone();
    let mut const_index: HashMap<ValueId, usize> = HashMap::new();
    for n in &g.nodes {
        for &v in n.inputs.iter().flatten() {
            if g.values[v].konst.is_none() && g.values[v].sym.is_some() && p.storage[v].is_none() {
                p.storage[v] = Some(Storage::Sym);
            }
            if g.values[v].konst.is_some() && p.storage[v].is_none() {
                const_index.insert(v, p.consts.len());
                p.storage[v] = Some(Storage::Const(p.consts.len()));
                p.consts.push(v);
            }
        }
    }
    // Graph outputs that are constants are copied out of the blob by the emitter.
    for &o in &outputs {
        if g.values[o].konst.is_none() && g.values[o].sym.is_some() && p.storage[o].is_none() {
            p.storage[o] = Some(Storage::Sym);
        }
        if g.values[o].konst.is_some() && p.storage[o].is_none() {
            p.storage[o] = Some(Storage::Const(p.consts.len()));
            p.consts.push(o);
        }
    }

    // Views (not for graph outputs: those get their own slot so that output buffers are never
    // graph inputs).
    for n in &g.nodes {
        if n.kiln.is_none()
            && is_view(&n.op)
            && !outputs.contains(&n.outputs[0])
            && let Some(src) = n.input(0)
        {
            p.storage[n.outputs[0]] = Some(Storage::Alias(src));
        }
    }

    // Last use of every storage root (usize::MAX = lives to the end: graph outputs).
    let mut last_use: HashMap<ValueId, NodeId> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in n.inputs.iter().flatten() {
            let r = p.root(v);
            let e = last_use.entry(r).or_insert(i);
            *e = (*e).max(i);
        }
    }
    for &o in &outputs {
        last_use.insert(p.root(o), usize::MAX);
    }

    let mut free: Vec<usize> = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            if p.storage[o].is_some() {
                continue;
            }
            let dtype = g.values[o].dtype;
            let len = g.values[o].numel();
            p.naive_bytes += len.as_usize().unwrap_or(0) * dtype.size();
            // Best fit among free slots of the same type: one that already held this very size
            // expression, else the smallest static one that holds `len`, else the largest (it
            // grows), else any.
            let score = |s: &Slot| -> (u8, i64) {
                if s.sizes.contains(&len) {
                    return (0, 0);
                }
                match (s.static_capacity(), len.as_usize()) {
                    (Some(c), Some(l)) if c >= l => (1, (c - l) as i64),
                    (Some(c), Some(_)) => (2, -(c as i64)),
                    _ => (3, 0),
                }
            };
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, s)| p.slots[**s].dtype == dtype)
                .min_by_key(|(_, s)| score(&p.slots[**s]))
                .map(|(fi, _)| fi);
            let slot = match best {
                Some(fi) => free.swap_remove(fi),
                None => {
                    p.slots.push(Slot {
                        dtype,
                        sizes: Vec::new(),
                    });
                    p.slots.len() - 1
                }
            };
            if !p.slots[slot].sizes.contains(&len) {
                p.slots[slot].sizes.push(len);
                // Keep only the largest of the static sizes.
                let sizes = std::mem::take(&mut p.slots[slot].sizes);
                let max_static = sizes.iter().filter_map(Dim::as_usize).max();
                p.slots[slot].sizes = sizes.into_iter().filter(|d| !d.is_const()).collect();
                if let Some(m) = max_static {
                    p.slots[slot].sizes.push(Dim::from(m));
                }
            }
            p.storage[o] = Some(Storage::Slot(slot));
            // An output nobody reads is free right after this node.
            last_use.entry(o).or_insert(i);
        }
        // Release slots whose values are dead after this node.
        for v in n.inputs.iter().flatten().chain(&n.outputs) {
            let r = p.root(*v);
            if let (Some(Storage::Slot(s)), Some(&lu)) = (p.storage[r], last_use.get(&r))
                && lu == i
                && !free.contains(&s)
            {
                free.push(s);
            }
        }
    }
    p
}
