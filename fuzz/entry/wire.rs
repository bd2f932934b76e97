//! Entry points of the fuzz targets on `emotiond-wire`, one per target. Shared, by
//! `#[path]`, between fuzz/fuzz_targets/*.rs and the replay test wire/tests/fuzz_corpus.rs,
//! so the corpus and every crash regression run through exactly what was fuzzed. Each
//! function must not panic, whatever the bytes.

use emotiond_wire::signed::{self, SigningKey, VerifyingKey};
use emotiond_wire::summary::Feedback;
use emotiond_wire::{Encoding, Health, Manifest, ModelState, SourceState, Summary, order};

/// The key the `order` target trusts (the seeds' signed orders are signed with it).
pub fn order_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn trusted() -> [VerifyingKey; 1] {
    [order_key().verifying_key()]
}

/// A desired-state message (`models/set`): parse and check it, and check its signature.
pub fn order(data: &[u8]) {
    let _ = order::parse_order(data);
    let _ = order::verify_order(data, &trusted());
}

/// A model manifest (`manifest.toml`): parse, validate, map its labels.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::parse(text) {
        let _ = m.emotion_map();
        let _ = m.input.len();
        // (h, w, c) is defined for vision inputs only, as its callers use it.
        if m.task.is_vision() {
            let _ = m.input.hwc();
        }
    }
}

/// A package archive as downloaded: open the tar and its index, then build the package from
/// its files (manifest, model, test vectors), all in memory.
pub fn package(data: &[u8]) {
    if let Ok((_, files)) = signed::open(data) {
        let _ = signed::package_from_files("fuzz", &files);
    }
}

/// A summary as the backend receives it: the first byte picks the encoding (odd: postcard,
/// even: JSON), the rest is the payload. What decodes must encode again.
pub fn summary(data: &[u8]) {
    let Some((first, payload)) = data.split_first() else {
        return;
    };
    let enc = if first & 1 == 1 {
        Encoding::Postcard
    } else {
        Encoding::Json
    };
    if let Ok(s) = Summary::decode(payload, enc) {
        let _ = s.encode(enc);
    }
}

/// The other JSON a device publishes: the first byte picks health (0), model state (1),
/// feedback (2) or a source state word (3), modulo 4; the rest is the payload.
pub fn state(data: &[u8]) {
    let Some((first, payload)) = data.split_first() else {
        return;
    };
    match first % 4 {
        0 => {
            if let Ok(h) = serde_json::from_slice::<Health>(payload) {
                let _ = h.to_json();
            }
        }
        1 => {
            if let Ok(s) = serde_json::from_slice::<ModelState>(payload) {
                let _ = s.to_json();
            }
        }
        2 => {
            if let Ok(f) = serde_json::from_slice::<Feedback>(payload) {
                let _ = f.to_json();
            }
        }
        _ => {
            if let Ok(t) = std::str::from_utf8(payload) {
                let _ = t.parse::<SourceState>();
            }
        }
    }
}
