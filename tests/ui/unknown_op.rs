mod m {
    kiln::include_model!("tests/ui/models/unknown_op.onnx");
}

fn main() {}
