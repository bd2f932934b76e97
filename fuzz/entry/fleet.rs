//! Entry point of the `ingest` fuzz target, shared by `#[path]` between
//! fuzz/fuzz_targets/ingest.rs and the replay test fleet-server/tests/fuzz_corpus.rs.

/// One MQTT message as the backend's ingest sees it: the topic, a newline, the payload
/// (under the prefix `emotiond`). Must not panic, whatever the bytes.
pub fn ingest(data: &[u8]) {
    let (topic, payload) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    if let Ok(m) = emotion_fleet_server::ingest::parse("emotiond", topic, payload) {
        let _ = m.device_id();
    }
}
