//! Dead-code elimination: keep only nodes that (transitively) feed a graph output.
use crate::ir::Graph;

pub fn run(g: &mut Graph) {
    let mut live = vec![false; g.values.len()];
    for &o in &g.outputs {
        live[o] = true;
    }
    let mut keep = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate().rev() {
        if n.outputs.iter().any(|&o| live[o]) {
            keep[i] = true;
            for &v in n.inputs.iter().flatten() {
                live[v] = true;
            }
        }
    }
    let mut it = keep.into_iter();
    g.nodes.retain(|_| it.next().unwrap_or(false));
}
