mod m {
    kiln::include_model!("tests/ui/models/qlinear_contrib.onnx");
}

fn main() {}
