mod m {
    kiln::include_model!("tests/ui/models/ext_absolute.onnx");
}

fn main() {}
