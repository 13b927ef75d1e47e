mod m {
    kiln::include_model!("tests/ui/models/symbolic_dim.onnx");
}

fn main() {}
