// Compiles the model into $OUT_DIR/mlp.rs (plus its weight blob) and tells cargo to rebuild
// when the model changes.
fn main() {
    if let Err(e) = kiln_codegen::Builder::new("../../tests/models/mlp_a_q_u8_pc/model.onnx")
        .module("mlp")
        .compile()
    {
        // Same message the macro would give, as a build-script failure.
        eprintln!("{e}");
        std::process::exit(1);
    }
}
