//! Replays the committed corpus and crash regressions of the `ingest` fuzz target
//! (fuzz/corpus/ingest/, fuzz/regressions/ingest/) through the entry point the target calls
//! (fuzz/entry/fleet.rs), without instrumentation: `cargo test` keeps every crash the fuzzer
//! found in the backend's ingest parse fixed.

#[path = "../../fuzz/entry/fleet.rs"]
mod entry;

use std::path::Path;

#[test]
fn ingest_corpus_replays_without_panics() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut corpus = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz.join(dir).join("ingest")) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| entry::ingest(&bytes));
            assert!(r.is_ok(), "ingest: {} panics", p.display());
            corpus += usize::from(dir == "corpus");
        }
    }
    assert!(
        corpus > 0,
        "no corpus for fuzz target ingest under {}",
        fuzz.display()
    );
}

/// The seeds are real messages: each must be taken (a seed refused after a format change
/// would only fuzz the error path).
#[test]
fn ingest_seeds_are_taken() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ingest");
    for name in [
        "seed-summary-json",
        "seed-summary-postcard",
        "seed-status",
        "seed-health",
        "seed-model-state",
        "seed-feedback",
    ] {
        let b = std::fs::read(dir.join(name)).unwrap();
        let i = b.iter().position(|&c| c == b'\n').unwrap();
        let topic = std::str::from_utf8(&b[..i]).unwrap();
        emotion_fleet_server::ingest::parse("emotiond", topic, &b[i + 1..])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
