//! The MQTT reference (`docs/reference/topics.md`) against the code, so that it cannot drift
//! (issue 20):
//!
//! - [`topics`]: the topic table (section Topics) names exactly the topics
//!   `emotiond_wire::topics` builds, spelled with placeholders (`<prefix>`, `<device_id>`,
//!   `<group>`, `<sha256>`, `<i>`): none missing, none that the module does not build;
//! - [`payloads`]: the rows of `health`, `models/state`, `feedback` and `status` name in
//!   backticks every key their wire type serialises (a sample with every `Option` set) and
//!   every value the wire enums publish there (`online`/`offline`, the update and source
//!   states...), and backtick nothing else, so a renamed or removed key left in the row fails
//!   too;
//! - [`summary`]: the summary payload (section Payloads) field by field, and back.
//!
//! The checkers return their problems as text; unit tests beside each one feed it the
//! reference with one thing changed (a key dropped, a stale one added, a topic renamed) and
//! expect that problem, so every check is seen failing.

mod payloads;
mod summary;
mod topics;

use std::collections::BTreeSet;

/// The whole reference.
fn reference() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference/topics.md");
    std::fs::read_to_string(path).expect("docs/reference/topics.md")
}

/// `## heading` of the reference, up to the next `## ` heading.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("docs/reference/topics.md has no '## {heading}' section"));
    let rest = &text[start + 1..];
    match rest[3..].find("\n## ") {
        Some(end) => &rest[..end + 3],
        None => rest,
    }
}

/// The words between backticks: "`a` and `b`" → [a, b].
fn backticked(s: &str) -> impl Iterator<Item = &str> {
    s.split('`').skip(1).step_by(2)
}

/// The JSON keys of an object value.
fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .cloned()
        .collect()
}

#[test]
fn sections_end_at_the_next_heading() {
    let text = "# T\n\n## A\n| a |\n\n## B\nb\n";
    assert_eq!(section(text, "A"), "## A\n| a |\n");
    assert_eq!(section(text, "B"), "## B\nb\n");
    assert_eq!(
        backticked("`x` {`y`: `z`} w").collect::<Vec<_>>(),
        ["x", "y", "z"]
    );
}
