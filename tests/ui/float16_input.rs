mod m {
    kiln::include_model!("tests/ui/models/float16_input.onnx");
}

fn main() {}
