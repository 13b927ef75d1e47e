mod m {
    kiln::include_model!("tests/ui/models/ext_symlink.onnx");
}

fn main() {}
