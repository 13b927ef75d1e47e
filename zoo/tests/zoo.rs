//! The real-model zoo (see zoo/build.rs and docs/zoo.md).
#[cfg(kiln_zoo)]
mod models {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

#[cfg(kiln_zoo)]
#[test]
fn zoo() {
    kiln_zoo::check(models::COMPILED, models::REFUSED);
}

#[cfg(not(kiln_zoo))]
#[test]
fn zoo_not_fetched() {
    eprintln!(
        "skipping the model zoo: run `python3 tools/fetch_zoo.py` to fetch it (CI sets \
         KILN_REQUIRE_ZOO=1, which makes this a build failure)"
    );
}
