mod m {
    kiln::include_model!("tests/ui/models/qdq_scale_shape.onnx");
}

fn main() {}
