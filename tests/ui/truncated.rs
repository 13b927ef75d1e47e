mod m {
    kiln::include_model!("tests/ui/models/truncated.onnx");
}

fn main() {}
