//! The summary payload (section Payloads) against `Summary`: every field a summary serialises
//! is documented there, and every field the summary table names exists. A field added to
//! `Summary` without a line in the reference, or a line left behind by a rename, fails here.

use crate::{keys, reference, section};
use std::collections::BTreeSet;

fn payloads() -> String {
    section(&reference(), "Payloads").to_string()
}

/// The backticked names in the first column of the payload table: `a`, `b` → {a, b}.
fn table_fields(section: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in section.lines() {
        let Some(row) = line.strip_prefix("| `") else {
            continue;
        };
        let first = row.split(" |").next().unwrap_or("");
        for name in first.split(',') {
            let name = name.trim().trim_matches('`');
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

fn documented(section: &str, key: &str) -> bool {
    section.contains(&format!("`{key}`"))
}

#[test]
fn every_summary_field_is_in_the_payload_reference_and_back() {
    let section = payloads();
    let v = serde_json::to_value(emotiond_wire::summary::sample()).unwrap();
    let top = keys(&v);
    let undocumented: Vec<_> = top.iter().filter(|k| !documented(&section, k)).collect();
    assert!(
        undocumented.is_empty(),
        "summary fields missing from docs/reference/topics.md: {undocumented:?}"
    );
    let table = table_fields(&section);
    let stale: Vec<_> = table.iter().filter(|k| !top.contains(*k)).collect();
    assert!(
        stale.is_empty(),
        "the payload table names fields a summary does not have: {stale:?}"
    );
    assert!(
        table.len() >= 20,
        "the payload table was not found ({} rows)",
        table.len()
    );
}

#[test]
fn every_voice_and_model_field_is_in_the_payload_reference() {
    let section = payloads();
    let v = serde_json::to_value(emotiond_wire::summary::sample()).unwrap();
    for block in ["voice", "detector", "expression"] {
        let inner = &v[block];
        assert!(inner.is_object(), "the sample summary sets `{block}`");
        let missing: Vec<_> = keys(inner)
            .into_iter()
            .filter(|k| !documented(&section, k))
            .collect();
        assert!(
            missing.is_empty(),
            "`{block}` fields missing from docs/reference/topics.md: {missing:?}"
        );
    }
    for emotion in emotiond_wire::manifest::EMOTIONS {
        assert!(
            section.contains(emotion),
            "emotion {emotion} not named in the reference"
        );
    }
}
