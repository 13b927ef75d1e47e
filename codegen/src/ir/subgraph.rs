//! Subgraph attributes (`If`'s branches, `Loop`'s and `Scan`'s bodies): a graph of its own whose
//! nodes may read values of the enclosing graphs. Decoding turns every such outer read into a
//! *capture*: a placeholder value inside the subgraph, fed by an extra input of the node that
//! owns the subgraph, so that outer passes (DCE, liveness) see the dependency like any other.
use super::{Graph, ValueId};

/// A decoded subgraph: `graph.inputs` are its formal inputs (none for `If`), and `captures`
/// the outer values it reads, nested subgraphs' reads included.
#[derive(Clone, Debug)]
pub struct Subgraph {
    pub graph: Box<Graph>,
    pub captures: Vec<Capture>,
    /// Compiled by the passes (a run-time `If`'s branch, `ops::control`): values inferred,
    /// nodes fused and lowered.
    pub compiled: bool,
    /// A run-time `If`'s branch that is invalid for the shapes the model is compiled for (the
    /// message says why): taking it returns that error at run time, as running it would.
    pub dead: Option<String>,
}

/// One outer value a subgraph reads.
#[derive(Clone, Debug)]
pub struct Capture {
    /// The ONNX name it was read by.
    pub name: String,
    /// Its placeholder value inside the subgraph (no producer; dtype, shape and any known
    /// contents are copied from the outer value before the subgraph is compiled).
    pub inner: ValueId,
    /// The first inner node that reads it (for error messages).
    pub reader: String,
    /// Position of the outer value among the owning node's inputs.
    pub input: usize,
}

/// Subgraphs are compared by identity: two attributes holding graphs are never "the same
/// attribute value" for the passes that compare attributes.
impl PartialEq for Subgraph {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
