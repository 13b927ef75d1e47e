mod m {
    kiln::include_model!("tests/ui/models/not_onnx.onnx");
}

fn main() {}
