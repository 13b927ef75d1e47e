mod m {
    kiln::include_model!("tests/ui/models/does_not_exist.onnx");
}

fn main() {}
