// The proc macro writes weight blobs into this crate's OUT_DIR (baked in with env!), the one
// directory a proc macro can rely on owning.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
