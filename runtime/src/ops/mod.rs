//! Float and integer ops that generated code calls between fused int8 layers.
//!
//! Float results agree across ISA paths within float rounding (SIMD paths may sum in a
//! different order than the scalar reference); each path is tested against an `f64` reference.

pub mod activation;
pub mod attention;
pub mod bias_act;
pub mod cast;
pub mod concat;
pub mod conv;
pub mod conv_nhwc;
pub mod einsum;
pub mod elementwise;
pub mod fma;
pub mod gather;
pub mod gelu;
pub mod gemm;
pub mod layernorm;
pub mod loss;
pub mod lpnorm;
pub mod math;
pub mod matmul;
pub mod modulo;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod recurrent;
pub mod reduce;
pub mod reduction;
pub mod resize;
pub mod rotary;
pub mod sample;
pub mod scatter;
pub mod sdpa;
pub mod select;
pub mod shape;
pub mod softmax;
pub mod tensor;
pub mod transpose;
pub mod trig;
