//! Int8 GEMM micro-kernels, one module per ISA family (see `gemm.rs` for dispatch).
