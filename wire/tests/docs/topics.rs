//! The topic table (section Topics) against `emotiond_wire::topics`: every topic the module
//! builds, with placeholders for its arguments, is in the table's first column, and every
//! topic there is one the module builds.

use crate::{backticked, reference, section};
use emotiond_wire::topics::{self, Topics};
use std::collections::BTreeSet;

/// The placeholders the reference writes for the arguments of the topic functions.
pub const PREFIX: &str = "<prefix>";
pub const DEVICE: &str = "<device_id>";

/// A device's topics, with placeholders.
pub fn device() -> Topics {
    Topics::new(PREFIX, DEVICE)
}

/// Every topic `emotiond_wire::topics` builds, spelled with the reference's placeholders.
pub fn built() -> BTreeSet<String> {
    // Destructured without `..`: a topic added to `Topics` fails to compile here until it is
    // listed (and so checked against the table).
    let Topics {
        summary,
        status,
        health,
        feedback,
        models_set,
        models_state,
    } = device();
    // `chunk` takes a number: chunk 7, then spelled `<i>`.
    let chunks = topics::package_chunks(PREFIX, "<sha256>");
    let seventh = topics::chunk(&chunks, 7);
    assert_eq!(topics::chunk_index(&chunks, &seventh), Some(7));
    let chunk = format!(
        "{}/<i>",
        seventh.strip_suffix("/7").expect("chunk 7 ends in /7")
    );
    [
        summary,
        status,
        health,
        feedback,
        models_set,
        models_state,
        topics::group_models_set(PREFIX, "<group>"),
        chunk,
    ]
    .into_iter()
    .collect()
}

/// One row of the topic table.
pub struct Row {
    /// The backticked topics of its first column.
    pub topics: Vec<String>,
    /// Its last column, what the payload is.
    pub payload: String,
}

/// The rows of the topic table: `| topics | QoS | retained | payload |`.
pub fn rows(text: &str) -> Vec<Row> {
    let mut out = Vec::new();
    for line in section(text, "Topics").lines() {
        let Some(cells) = line.strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = cells.split('|').collect();
        let topics: Vec<String> = backticked(cells[0]).map(String::from).collect();
        if topics.is_empty() {
            continue; // the header and the separator
        }
        let payload = cells
            .get(3)
            .unwrap_or_else(|| panic!("a topic row without its payload column: {line}"));
        out.push(Row {
            topics,
            payload: payload.trim().to_string(),
        });
    }
    out
}

/// The payload column of `topic`'s row.
pub fn payload_of(text: &str, topic: &str) -> String {
    rows(text)
        .into_iter()
        .find(|r| r.topics.iter().any(|t| t == topic))
        .unwrap_or_else(|| panic!("no row for {topic} in the topic table"))
        .payload
}

/// What is wrong with the topic table: topics built but not listed, listed but not built.
pub fn check(text: &str) -> Vec<String> {
    let listed: BTreeSet<String> = rows(text).into_iter().flat_map(|r| r.topics).collect();
    if listed.is_empty() {
        return vec!["no topic table in section Topics".into()];
    }
    let built = built();
    let missing = built
        .difference(&listed)
        .map(|t| format!("{t} is built by emotiond_wire::topics but not in the topic table"));
    let stale = listed
        .difference(&built)
        .map(|t| format!("{t} is in the topic table but emotiond_wire::topics does not build it"));
    missing.chain(stale).collect()
}

#[test]
fn the_topic_table_lists_every_topic_built_and_no_other() {
    let problems = check(&reference());
    assert!(
        problems.is_empty(),
        "docs/reference/topics.md:\n{}",
        problems.join("\n")
    );
    assert_eq!(built().len(), 8);
}

/// `text` with `from` replaced once; panics when `from` is not there (the test would prove
/// nothing).
pub fn edited(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the text to edit");
    text.replacen(from, to, 1)
}

#[test]
fn the_topic_check_fails_on_a_renamed_missing_or_extra_topic() {
    let text = reference();
    let renamed = edited(
        &text,
        "`<prefix>/<device_id>/health`",
        "`<prefix>/<device_id>/healthz`",
    );
    assert_eq!(
        check(&renamed),
        [
            "<prefix>/<device_id>/health is built by emotiond_wire::topics but not in the topic table",
            "<prefix>/<device_id>/healthz is in the topic table but emotiond_wire::topics does not build it",
        ]
    );
    let second = edited(&text, ", `<prefix>/groups/<group>/models/set`", "");
    assert_eq!(
        check(&second),
        [
            "<prefix>/groups/<group>/models/set is built by emotiond_wire::topics but not in the topic table"
        ]
    );
    let extra = edited(
        &text,
        "\n\nDelivery is",
        "\n| `<prefix>/<device_id>/stats` | 0 | no | x |\n\nDelivery is",
    );
    assert_eq!(
        check(&extra),
        [
            "<prefix>/<device_id>/stats is in the topic table but emotiond_wire::topics does not build it"
        ]
    );
    let no_table = text.replace("| `<prefix>", "`<prefix>");
    assert_eq!(check(&no_table), ["no topic table in section Topics"]);
}
