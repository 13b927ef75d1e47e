mod m {
    kiln::include_model!("tests/ui/models/shape_mismatch.onnx");
}

fn main() {}
