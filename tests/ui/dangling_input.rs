mod m {
    kiln::include_model!("tests/ui/models/dangling_input.onnx");
}

fn main() {}
