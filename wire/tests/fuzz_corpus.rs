//! Replays the committed fuzz corpora and crash regressions of the `emotiond-wire` targets
//! (fuzz/corpus/<target>/, fuzz/regressions/<target>/) through the very entry points the
//! fuzz targets call (fuzz/entry/wire.rs), without instrumentation: `cargo test` keeps every
//! crash the fuzzer found fixed. `write_seeds` (ignored) regenerates the seed files.

#[path = "../../fuzz/entry/wire.rs"]
mod entry;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of the target's corpus and regressions; the corpus must not be empty.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(dir).join(target);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    assert!(
        out.iter()
            .any(|(p, _)| p.components().any(|c| c.as_os_str() == "corpus")),
        "no corpus for fuzz target {target} under {}",
        fuzz_dir().display()
    );
    out
}

fn replay(target: &str, f: fn(&[u8])) {
    for (path, bytes) in inputs(target) {
        let r = std::panic::catch_unwind(|| f(&bytes));
        assert!(r.is_ok(), "{target}: {} panics", path.display());
    }
}

#[test]
fn order_corpus_replays_without_panics() {
    replay("order", entry::order);
}

#[test]
fn manifest_corpus_replays_without_panics() {
    replay("manifest", entry::manifest);
}

#[test]
fn package_corpus_replays_without_panics() {
    replay("package", entry::package);
}

#[test]
fn summary_corpus_replays_without_panics() {
    replay("summary", entry::summary);
}

#[test]
fn state_corpus_replays_without_panics() {
    replay("state", entry::state);
}

/// The seeds are real messages: the good ones must parse (a seed that no longer parses
/// after a format change would only fuzz the error path).
#[test]
fn good_seeds_still_parse() {
    use emotiond_wire::{Manifest, order, signed};
    let corpus = fuzz_dir().join("corpus");
    let read = |t: &str, n: &str| std::fs::read(corpus.join(t).join(n)).unwrap();
    order::parse_order(&read("order", "seed-install-url.json")).unwrap();
    let signed_order = read("order", "seed-install-signed.json");
    assert!(matches!(
        order::verify_order(&signed_order, &[entry::order_key().verifying_key()]),
        Ok(order::OrderAuth::Signed { .. })
    ));
    Manifest::parse(&String::from_utf8(read("manifest", "seed-mock_speech_emotion.toml")).unwrap())
        .unwrap();
    let (_, files) = signed::open(&read("package", "seed-mock-with-vectors.tar")).unwrap();
    signed::package_from_files("seed", &files).unwrap();
}

/// Regenerate the seed corpora from the repository's real examples:
/// `cargo test -p emotiond-wire --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    use emotiond_wire::order::{Action, Chunks, SetMessage, Slot, signed_order};
    use emotiond_wire::summary::{Feedback, sample};
    use emotiond_wire::{Encoding, ModelState, UpdateState, signed};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };

    // Desired-state messages: install by URL, by chunks, signed, rollback.
    let mut m = SetMessage::new(Slot::Expression, Action::Install);
    m.name = Some("fer".into());
    m.version = Some("2".into());
    m.sha256 = Some("ab".repeat(32));
    m.size = Some(10);
    m.url = Some("https://h/p.tar".into());
    m.key_id = Some("0011223344556677".into());
    m.signature = Some("00".repeat(64));
    put(
        "order",
        "seed-install-url.json",
        &serde_json::to_vec(&m).unwrap(),
    );
    let signed = signed_order(&m, &entry::order_key(), std::time::UNIX_EPOCH);
    put("order", "seed-install-signed.json", &signed);
    m.url = None;
    m.chunks = Some(Chunks {
        topic: "emotiond/kiosk-7/models/chunks/fer".into(),
        count: 3,
    });
    put(
        "order",
        "seed-install-chunks.json",
        &serde_json::to_vec(&m).unwrap(),
    );
    let rb = SetMessage::new(Slot::Detector, Action::Rollback);
    put(
        "order",
        "seed-rollback.json",
        &serde_json::to_vec(&rb).unwrap(),
    );

    // Manifests: every shipped package and the mock fixture.
    let mut manifests = vec![(
        "mock_speech_emotion".to_string(),
        root.join("models/tests/fixtures/mock_speech_emotion"),
    )];
    for e in std::fs::read_dir(root.join("models/packages")).unwrap() {
        let p = e.unwrap().path();
        manifests.push((p.file_name().unwrap().to_string_lossy().into(), p));
    }
    for (name, dir) in &manifests {
        let text = std::fs::read(dir.join("manifest.toml")).unwrap();
        put("manifest", &format!("seed-{name}.toml"), &text);
    }

    // Package archives: the mock fixture packed, with its test vectors and without.
    let tmp = std::env::temp_dir().join(format!("fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mock = root.join("models/tests/fixtures/mock_speech_emotion");
    copy_dir(&mock, &tmp.join("with"));
    let (archive, _) = signed::pack(&tmp.join("with")).unwrap();
    put("package", "seed-mock-with-vectors.tar", &archive);
    std::fs::create_dir_all(tmp.join("without")).unwrap();
    let manifest = std::fs::read_to_string(mock.join("manifest.toml")).unwrap();
    let head = manifest.split("[[test_vector]]").next().unwrap();
    std::fs::write(tmp.join("without/manifest.toml"), head).unwrap();
    std::fs::copy(
        mock.join("mock_speech_emotion.onnx"),
        tmp.join("without/mock_speech_emotion.onnx"),
    )
    .unwrap();
    let (archive, _) = signed::pack(&tmp.join("without")).unwrap();
    put("package", "seed-mock-no-vectors.tar", &archive);
    std::fs::remove_dir_all(&tmp).unwrap();

    // Summaries: the first byte picks the encoding (0 JSON, 1 postcard).
    let s = sample();
    let mut json = vec![0];
    json.extend(s.encode(Encoding::Json).unwrap());
    put("summary", "seed-sample.json", &json);
    let mut pc = vec![1];
    pc.extend(s.encode(Encoding::Postcard).unwrap());
    put("summary", "seed-sample.postcard", &pc);

    // Health (0), model state (1), feedback (2), source state word (3).
    let health = br#"{"camera":{"state":"ok","source":"/dev/video0","error":null,"reconnects":0},"microphone":{"state":"unavailable","source":"default","error":"no device","reconnects":2,"xruns":0},"summaries_sent":3,"outbox":1,"outbox_dropped":0,"outbox_on_disk":true,"version":"0.1.0"}"#;
    let state = ModelState::step(
        Slot::Expression,
        UpdateState::Active,
        "fer@2",
        &"ab".repeat(32),
    )
    .at(1_700_000_000_000)
    .to_json();
    let feedback = Feedback::button(1_700_000_005_000, sample()).to_json();
    for (i, name, payload) in [
        (0u8, "health", &health[..]),
        (1, "model-state", &state),
        (2, "feedback", &feedback),
        (3, "source-state", b"unavailable"),
    ] {
        let mut b = vec![i];
        b.extend_from_slice(payload);
        put("state", &format!("seed-{name}"), &b);
    }

    // The backend's ingest: topic, newline, payload.
    let topic = |kind: &str, payload: &[u8]| {
        let mut b = format!("emotiond/kiosk-7/{kind}\n").into_bytes();
        b.extend_from_slice(payload);
        b
    };
    put("ingest", "seed-summary-json", &topic("summary", &json[1..]));
    put(
        "ingest",
        "seed-summary-postcard",
        &topic("summary", &pc[1..]),
    );
    put("ingest", "seed-status", &topic("status", b"online"));
    put("ingest", "seed-health", &topic("health", health));
    put("ingest", "seed-model-state", &topic("models/state", &state));
    put("ingest", "seed-feedback", &topic("feedback", &feedback));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
