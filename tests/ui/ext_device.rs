// Even with the user's opt-in for /dev, a device is not a data file (it would never end).
mod m {
    kiln::include_model!("tests/ui/models/ext_device.onnx", allow_data_dir = "/dev");
}

fn main() {}
