mod m {
    kiln::include_model!("tests/ui/models/qdq_zero_scale.onnx");
}

fn main() {}
