//! Replays the fuzz corpora on stable, so CI guards what the fuzzers found.
//!
//! Every file under `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/`
//! (crashes kept as regression cases) goes through the very function the
//! nightly libFuzzer target calls (`fuzz/harness.rs`). A missing or empty
//! corpus fails the test rather than passing on zero inputs.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Feed every corpus and artifact file of `name` to its target; returns how
/// many inputs ran and which panicked.
fn replay(name: &str) -> (usize, Vec<String>) {
    let (_, target) = harness::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let corpus = files_in(&fuzz_dir().join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name}/ is missing or empty: the replay would pass on nothing"
    );
    let artifacts = files_in(&fuzz_dir().join("artifacts").join(name));
    let mut panicked = Vec::new();
    let all: Vec<PathBuf> = corpus.into_iter().chain(artifacts).collect();
    for file in &all {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            panicked.push(file.display().to_string());
        }
    }
    (all.len(), panicked)
}

fn check(name: &str) {
    let (ran, panicked) = replay(name);
    assert!(ran > 0);
    assert!(
        panicked.is_empty(),
        "{} of {ran} {name} inputs panicked: {panicked:#?}",
        panicked.len()
    );
}

#[test]
fn path_corpus() {
    check("path");
}

#[test]
fn bearer_jwt_corpus() {
    check("bearer_jwt");
}

#[test]
fn token_request_corpus() {
    check("token_request");
}

#[test]
fn config_corpus() {
    check("config");
}

/// Every corpus directory belongs to a target, and every target has a
/// test above: a new target's corpus cannot go unreplayed.
#[test]
fn every_corpus_is_a_target() {
    let dirs = std::fs::read_dir(fuzz_dir().join("corpus"))
        .unwrap_or_else(|e| panic!("fuzz/corpus/: {e}"))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let mut dirs: Vec<String> = dirs.collect();
    dirs.sort();
    let mut targets: Vec<String> = harness::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    targets.sort();
    assert_eq!(dirs, targets);
}
