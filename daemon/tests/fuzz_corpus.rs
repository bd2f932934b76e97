//! Replays the committed corpus and crash regressions of the fuzz targets on the daemon
//! crate (fuzz/corpus/<target>/, fuzz/regressions/<target>/ for `config` and `outbox`)
//! through the entry points the targets call (fuzz/entry/daemon.rs: `Config::parse` and the
//! outbox folder opened and delivered), without instrumentation. `write_seeds` (ignored)
//! regenerates the seeds: the default configuration file, a device's and a TLS one; outbox
//! folders written by `Outbox` itself with real summaries.

#[path = "../../fuzz/entry/daemon.rs"]
mod entry;

use emotiond::config::{Config, DEFAULT_FILE};
use emotiond::outbox::{Outbox, entry_name};
use emotiond_wire::{Encoding, Summary};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Feed every corpus and regression file of `target` to `f`; none may panic, and the corpus
/// must not be empty.
fn replay(target: &str, f: fn(&[u8])) {
    let mut corpus = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| f(&bytes));
            assert!(r.is_ok(), "{target}: {} panics", p.display());
            corpus += usize::from(dir == "corpus");
        }
    }
    assert!(
        corpus > 0,
        "no corpus for fuzz target {target} under {}",
        fuzz_dir().display()
    );
}

#[test]
fn config_corpus_replays_without_panics() {
    replay("config", entry::config);
}

#[test]
fn outbox_corpus_replays_without_panics() {
    replay("outbox", entry::outbox);
}

const CONFIG_SEEDS: [&str; 3] = [
    "seed-default.toml",
    "seed-files-kiosk.toml",
    "seed-tls-api.toml",
];

/// The configuration seeds are valid: each parses and validates.
#[test]
fn config_seeds_are_valid() {
    for name in CONFIG_SEEDS {
        let text = std::fs::read_to_string(fuzz_dir().join("corpus/config").join(name)).unwrap();
        Config::parse(&text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The outbox seeds hold real summaries: every `.sum` file decodes.
#[test]
fn outbox_seeds_hold_summaries() {
    for name in ["seed-json-3.bin", "seed-postcard-2-and-leftovers.bin"] {
        let b = std::fs::read(fuzz_dir().join("corpus/outbox").join(name)).unwrap();
        let mut sums = 0;
        for (n, payload) in entry::outbox_files(&b[1..]) {
            if n.ends_with(".sum") {
                let enc = if payload.starts_with(b"{") {
                    Encoding::Json
                } else {
                    Encoding::Postcard
                };
                Summary::decode(&payload, enc).unwrap_or_else(|e| panic!("{name}: {n}: {e}"));
                sums += 1;
            }
        }
        assert!(sums >= 2, "{name}: {sums} summaries");
    }
}

/// `cargo test -p emotiond --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    let dir = fuzz_dir().join("corpus/config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(CONFIG_SEEDS[0]), DEFAULT_FILE).unwrap();
    // deploy/container/test.sh's device
    std::fs::write(
        dir.join(CONFIG_SEEDS[1]),
        "device_id = \"ct-kiosk\"\nstate_dir = \"/tmp/state\"\n[camera]\nsource = \"files\"\n\
         paths = [\"tests/data/astronaut_640x480.jpg\", \"tests/data/faces\"]\npace = \"realtime\"\n\
         stills_fps = 2.0\n[pipeline]\nwindow_s = 1.0\n[mqtt]\nhost = \"127.0.0.1\"\nport = 18830\n\
         [updates]\nenabled = false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(CONFIG_SEEDS[2]),
        "[mqtt]\nhost = \"broker.example\"\nport = 8883\ntls = true\nencoding = \"postcard\"\n\
         [api]\nenabled = true\nlisten = \"127.0.0.1:8081\"\n[audio]\nenabled = true\nsource = \"wav\"\n\
         paths = [\"a.wav\"]\n",
    )
    .unwrap();

    let dir = fuzz_dir().join("corpus/outbox");
    std::fs::create_dir_all(&dir).unwrap();
    let sample = std::fs::read(fuzz_dir().join("corpus/summary/seed-sample.json")).unwrap();
    // its first byte picks the encoding for the summary target
    let sample = Summary::decode(&sample[1..], Encoding::Json).unwrap();
    for (name, encoding, n, leftovers) in [
        ("seed-json-3.bin", Encoding::Json, 3, false),
        (
            "seed-postcard-2-and-leftovers.bin",
            Encoding::Postcard,
            2,
            true,
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(tmp.path(), 1000).unwrap();
        for seq in 0..n {
            let mut s = sample.clone();
            s.seq = seq;
            s.window_end_ms += seq * 10_000;
            ob.push(
                entry_name(s.window_end_ms, s.boot_id, s.seq),
                s.encode(encoding).unwrap(),
            );
        }
        drop(ob);
        if leftovers {
            // an interrupted write's temporary file and something that is not a summary
            std::fs::write(
                tmp.path()
                    .join(".0000000000001-00000000-0000000009.sum.tmp"),
                b"{",
            )
            .unwrap();
            std::fs::write(tmp.path().join("notes.txt"), b"not a summary").unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut out = vec![15u8]; // max 16
        for n in names {
            let contents = std::fs::read(tmp.path().join(&n)).unwrap();
            out.push(u8::try_from(n.len()).unwrap());
            out.extend_from_slice(n.as_bytes());
            out.extend(u16::try_from(contents.len()).unwrap().to_le_bytes());
            out.extend(contents);
        }
        std::fs::write(dir.join(name), out).unwrap();
    }
}
