fn main() {
    let fds = protox::compile(["onnx.proto"], ["."]).unwrap();
    let out = std::path::Path::new("out");
    std::fs::create_dir_all(out).unwrap();
    prost_build::Config::new().out_dir(out).compile_fds(fds).unwrap();
}
