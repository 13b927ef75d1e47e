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
    /// Bytes a naive plan (one buffer per intermediate) would use, for reports (static-size
    /// intermediates only; `naive_dim` counts all).
    pub naive_bytes: usize,
    /// Bytes of a naive plan as a polynomial of the symbolic dims.
    pub naive_dim: Dim,
    /// Byte layout of all slot values in one arena, when every size is static.
    pub arena: Option<ArenaPlan>,
}

/// Where each arena-resident value lives in the single byte arena of `run_in`.
///
/// Every value stored in a slot gets a region at a constant offset. Two values share bytes only
/// if their lifetimes (producing node to last reader) do not overlap, so the regions a node
/// reads and writes are always disjoint, whatever their dtypes. Graph outputs live to the end.
#[derive(Clone, Debug, Default)]
pub struct ArenaPlan {
    /// Byte offset of each value with `Storage::Slot`.
    pub offset: HashMap<ValueId, usize>,
    /// Graph outputs that are graph inputs (copied out): output index → byte offset.
    pub output_copies: Vec<(usize, usize)>,
    /// Arena length in bytes (`ARENA_BYTES`).
    pub bytes: usize,
    /// Largest element alignment in it (`ARENA_ALIGN`).
    pub align: usize,
    /// Which layout was smaller: `"by lifetime"` (greedy by size over value lifetimes, across
    /// dtypes) or `"by slot"` (the typed slots of the `Vec` plan placed side by side).
    pub method: &'static str,
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

/// The bytes of the reused buffers as a function of the symbolic dims: `fixed` (a polynomial:
/// every slot whose capacity is one expression, or one that provably dominates the others)
/// plus, for each remaining slot, the maximum of its candidate byte counts.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    pub fixed: Dim,
    pub maxima: Vec<Vec<Dim>>,
}

impl Workspace {
    /// The formula with the model's dim names, e.g. `96*batch*seq + 4096 + max(…)`.
    pub fn show(&self, g: &Graph) -> String {
        let mut parts = Vec::new();
        if !self.fixed.is_const() || self.fixed.as_const() != Some(0) || self.maxima.is_empty() {
            parts.push(g.show(&self.fixed));
        }
        for m in &self.maxima {
            let each: Vec<String> = m.iter().map(|d| g.show(d)).collect();
            parts.push(format!("max({})", each.join(", ")));
        }
        parts.join(" + ")
    }
}

impl Plan {
    /// The workspace as a formula of the dims (see [`Workspace`]).
    pub fn workspace(&self) -> Workspace {
        let mut w = Workspace::default();
        for s in &self.slots {
            let size = s.dtype.size() as i64;
            // Drop every candidate that another one provably dominates (their difference has
            // only positive coefficients, so it is ≥ 0 for all dims ≥ 0).
            let mut cands: Vec<&Dim> = Vec::new();
            for d in &s.sizes {
                if cands.iter().any(|c| *c == d || c.sub(d).nonneg()) {
                    continue;
                }
                cands.retain(|c| !d.sub(c).nonneg());
                cands.push(d);
            }
            match cands.as_slice() {
                [] => {}
                [one] => w.fixed = w.fixed.add(&one.scale(size)),
                many => w.maxima.push(many.iter().map(|d| d.scale(size)).collect()),
            }
        }
        w
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
    let mut first_def: HashMap<ValueId, NodeId> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            if p.storage[o].is_some() {
                continue;
            }
            let dtype = g.values[o].dtype;
            let len = g.values[o].numel();
            p.naive_bytes += len.as_usize().unwrap_or(0) * dtype.size();
            p.naive_dim = p.naive_dim.add(&len.scale(dtype.size() as i64));
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
            first_def.insert(o, i);
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
    if p.slots.iter().all(|s| s.static_capacity().is_some()) {
        p.arena = Some(arena_layout(g, &p, &first_def, &last_use));
    }
    p
}

/// One region to place: (value or output copy, bytes, alignment, first node, last node).
struct Item {
    key: Key,
    bytes: usize,
    align: usize,
    first: usize,
    last: usize,
}

#[derive(Clone, Copy)]
enum Key {
    Value(ValueId),
    OutputCopy(usize),
}

fn arena_layout(
    g: &Graph,
    p: &Plan,
    first_def: &HashMap<ValueId, NodeId>,
    last_use: &HashMap<ValueId, NodeId>,
) -> ArenaPlan {
    let end = g.nodes.len();
    let mut items = Vec::new();
    for (&v, &first) in first_def {
        let dtype = g.values[v].dtype;
        let last = match last_use.get(&v) {
            Some(&usize::MAX) => end,
            Some(&l) => l,
            None => first,
        };
        items.push(Item {
            key: Key::Value(v),
            bytes: g.values[v].numel().as_usize().unwrap_or(0) * dtype.size(),
            align: dtype.size(),
            first,
            last,
        });
    }
    for (oi, &o) in g.outputs.iter().enumerate() {
        if let Some(Storage::Input(_)) = p.storage[p.root(o)] {
            let dtype = g.values[o].dtype;
            items.push(Item {
                key: Key::OutputCopy(oi),
                bytes: g.values[o].numel().as_usize().unwrap_or(0) * dtype.size(),
                align: dtype.size(),
                first: end,
                last: end,
            });
        }
    }
    let align = items.iter().map(|it| it.align).max().unwrap_or(1);

    // Layout 1: greedy by size. Largest first, each into the tightest gap between the regions
    // already placed whose lifetimes overlap its own (or after the last of them).
    // (Ties broken by value id / output index: the layout, hence the code, is deterministic.)
    items.sort_by_key(|it| {
        let tie = match it.key {
            Key::Value(v) => (0, v),
            Key::OutputCopy(o) => (1, o),
        };
        (std::cmp::Reverse(it.bytes), it.first, it.last, tie)
    });
    let mut greedy: Vec<usize> = Vec::with_capacity(items.len());
    let mut greedy_bytes = 0usize;
    for (i, it) in items.iter().enumerate() {
        if it.bytes == 0 {
            greedy.push(0);
            continue;
        }
        let mut busy: Vec<(usize, usize)> = items[..i]
            .iter()
            .zip(&greedy)
            .filter(|(o, _)| o.bytes > 0 && o.first <= it.last && it.first <= o.last)
            .map(|(o, &off)| (off, off + o.bytes))
            .collect();
        busy.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut prev_end = 0usize;
        for &(start, stop) in &busy {
            let off = prev_end.next_multiple_of(it.align);
            if off + it.bytes <= start {
                let gap = start - off;
                if best.is_none_or(|(b, _)| gap < b) {
                    best = Some((gap, off));
                }
            }
            prev_end = prev_end.max(stop);
        }
        let off = match best {
            Some((_, off)) => off,
            None => prev_end.next_multiple_of(it.align),
        };
        greedy.push(off);
        greedy_bytes = greedy_bytes.max(off + it.bytes);
    }

    // Layout 2: the typed slots side by side (what the `Vec` plan owns), output copies after.
    let mut slot_off = Vec::with_capacity(p.slots.len());
    let mut slot_bytes = 0usize;
    for s in &p.slots {
        let off = slot_bytes.next_multiple_of(s.dtype.size());
        slot_off.push(off);
        slot_bytes = off + s.static_capacity().unwrap_or(0) * s.dtype.size();
    }
    let by_slot: Vec<usize> = items
        .iter()
        .map(|it| match it.key {
            Key::Value(v) => match p.storage[v] {
                Some(Storage::Slot(s)) if it.bytes > 0 => slot_off[s],
                _ => 0,
            },
            Key::OutputCopy(_) => {
                let off = slot_bytes.next_multiple_of(it.align);
                slot_bytes = off + it.bytes;
                off
            }
        })
        .collect();

    let (offsets, bytes, method) = if greedy_bytes <= slot_bytes {
        (greedy, greedy_bytes, "by lifetime")
    } else {
        (by_slot, slot_bytes, "by slot")
    };
    let mut a = ArenaPlan {
        bytes,
        align,
        method,
        ..Default::default()
    };
    for (it, off) in items.iter().zip(offsets) {
        match it.key {
            Key::Value(v) => {
                a.offset.insert(v, off);
            }
            Key::OutputCopy(oi) => a.output_copies.push((oi, off)),
        }
    }
    a.output_copies.sort_unstable();
    a
}
