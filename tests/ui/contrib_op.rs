mod m {
    kiln::include_model!("tests/ui/models/contrib_op.onnx");
}

fn main() {}
