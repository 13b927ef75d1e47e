//! Loader + compiler on arbitrary bytes: decoding, passes, planning and emission must return an
//! `Error` for any input, never panic, hang or exhaust memory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // External data paths resolve against "." (reads are bounded by the tensor's declared size,
    // which is checked against the file's length first).
    let Ok(graph) = kiln_codegen::onnx::decode_model(data, &kiln_codegen::onnx::DataDirs::new(".")) else {
        return;
    };
    let Ok(compiled) = kiln_codegen::compile_graph(graph, &Default::default()) else {
        return;
    };
    let _ = compiled.source(Path::new("/nonexistent.bin"));
});
