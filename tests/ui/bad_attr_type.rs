mod m {
    kiln::include_model!("tests/ui/models/bad_attr_type.onnx");
}

fn main() {}
