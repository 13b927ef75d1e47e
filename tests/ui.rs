//! Compile-error tests for `include_model!`: every broken model must fail the build with one
//! error at the path literal that names the file (and, where it applies, the node, op type and
//! domain) and says what to do. The models come from `tools/gen_bad_models.py`.
//!
//! Regenerate the expected output after an intended message change with
//! `TRYBUILD=overwrite cargo test --test ui`, then review the diff of `tests/ui/*.stderr`.
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
