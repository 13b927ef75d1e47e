//! Float and integer ops that generated code calls between fused int8 layers.
