//! The real-model zoo (see zoo/build.rs and docs/zoo.md).
#[cfg(kiln_zoo)]
mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

#[cfg(kiln_zoo)]
#[test]
fn zoo() {
    // Unoptimised, the `run` of a 6000-node model (g2p_id_tiny) has a stack frame of many
    // megabytes: more than the test thread's default 2 MiB.
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(|| kiln_zoo::check(models::COMPILED, models::REFUSED))
        .expect("spawn the zoo thread")
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

#[cfg(not(kiln_zoo))]
#[test]
fn zoo_not_fetched() {
    eprintln!(
        "skipping the model zoo: run `python3 tools/fetch_zoo.py` to fetch it (CI sets \
         KILN_REQUIRE_ZOO=1, which makes this a build failure)"
    );
}
