mod m {
    kiln::include_model!("tests/ui/models/qdq_float8.onnx");
}

fn main() {}
