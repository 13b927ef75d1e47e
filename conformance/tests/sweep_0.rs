//! Shard 0 of the ONNX node-test sweep (see conformance/build.rs and docs/testing.md).
#[cfg(kiln_node_tests)]
mod index {
    include!(concat!(env!("OUT_DIR"), "/index.rs"));
}
#[cfg(kiln_node_tests)]
mod shard {
    include!(concat!(env!("OUT_DIR"), "/shard_0.rs"));
}

#[cfg(kiln_node_tests)]
#[test]
fn node_tests() {
    kiln_conformance::sweep(
        shard::CASES,
        &kiln_conformance::Index {
            shard: 0,
            shards: index::SHARDS,
            accepted: index::ACCEPTED,
            refused: index::REFUSED,
        },
    );
}

#[cfg(not(kiln_node_tests))]
#[test]
fn node_tests_not_dumped() {
    eprintln!(
        "skipping the ONNX node-test sweep: run `python3 tools/dump_node_tests.py` to dump the \
         node tests (CI sets KILN_REQUIRE_NODE_TESTS=1, which makes this a build failure)"
    );
}
