//! Prints the Rust that kiln generates for a model: `cargo run -p kiln-codegen --example kiln_generate -- model.onnx`
//! (a stand-in for the CLI's `kiln generate`).
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: kiln_generate MODEL.onnx");
        std::process::exit(2);
    };
    match kiln_codegen::compile_file(path.as_ref(), &kiln_codegen::Options::default()) {
        Ok(c) => {
            let blob = std::env::temp_dir().join(c.blob_file_name());
            match c.source(&blob) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("{e}");
                    println!("{}", c.tokens(&blob));
                }
            }
            eprintln!(
                "nodes: {}, blob: {} bytes",
                c.graph.nodes.len(),
                c.blob().len()
            );
            eprintln!("{}", c.memory_report());
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
