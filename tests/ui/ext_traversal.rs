mod m {
    kiln::include_model!("tests/ui/models/ext_traversal.onnx");
}

fn main() {}
