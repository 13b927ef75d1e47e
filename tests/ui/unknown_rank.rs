mod m {
    kiln::include_model!("tests/ui/models/unknown_rank.onnx");
}

fn main() {}
