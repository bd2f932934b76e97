//! The MQTT topic layout (docs/reference/topics.md), built in one place for the device and the fleet.
//!
//! ```text
//! <prefix>/<device>/summary | status | health | feedback | models/set | models/state
//! <prefix>/groups/<group>/models/set
//! <prefix>/packages/<sha256>/<i>          chunk i of a package archive
//! ```

/// The retained `status` payload: published on every connection.
pub const STATUS_ONLINE: &str = "online";
/// The retained `status` payload on a clean stop, and the Last Will (the daemon died or lost
/// the network).
pub const STATUS_OFFLINE: &str = "offline";

/// A device's topics.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    pub summary: String,
    pub status: String,
    pub health: String,
    pub feedback: String,
    /// Desired state for this device (the fleet publishes, retained).
    pub models_set: String,
    /// Update states (the device publishes, retained).
    pub models_state: String,
}

impl Topics {
    pub fn new(prefix: &str, device_id: &str) -> Topics {
        let base = format!("{prefix}/{device_id}");
        Topics {
            summary: format!("{base}/summary"),
            status: format!("{base}/status"),
            health: format!("{base}/health"),
            feedback: format!("{base}/feedback"),
            models_set: format!("{base}/models/set"),
            models_state: format!("{base}/models/state"),
        }
    }
}

/// Desired state for every device of `group`.
pub fn group_models_set(prefix: &str, group: &str) -> String {
    format!("{prefix}/groups/{group}/models/set")
}

/// Where the chunks of the archive with this SHA-256 are published.
pub fn package_chunks(prefix: &str, sha256: &str) -> String {
    format!("{prefix}/packages/{sha256}")
}

/// Chunk `i` under a chunk topic (`chunks.topic` of a desired-state message).
pub fn chunk(chunks_topic: &str, i: usize) -> String {
    format!("{chunks_topic}/{i}")
}

/// The subscription that receives every chunk under a chunk topic.
pub fn chunk_filter(chunks_topic: &str) -> String {
    format!("{chunks_topic}/+")
}

/// The index of a chunk from its topic, when it is one of `chunks_topic`'s.
pub fn chunk_index(chunks_topic: &str, topic: &str) -> Option<usize> {
    topic
        .strip_prefix(chunks_topic)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|i| i.parse::<usize>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_documented_layout() {
        let t = Topics::new("emotiond", "kiosk-1");
        assert_eq!(t.summary, "emotiond/kiosk-1/summary");
        assert_eq!(t.status, "emotiond/kiosk-1/status");
        assert_eq!(t.health, "emotiond/kiosk-1/health");
        assert_eq!(t.feedback, "emotiond/kiosk-1/feedback");
        assert_eq!(t.models_set, "emotiond/kiosk-1/models/set");
        assert_eq!(t.models_state, "emotiond/kiosk-1/models/state");
        assert_eq!(
            group_models_set("emotiond", "lobby"),
            "emotiond/groups/lobby/models/set"
        );
        let c = package_chunks("emotiond", "ab12");
        assert_eq!(c, "emotiond/packages/ab12");
        assert_eq!(chunk(&c, 3), "emotiond/packages/ab12/3");
        assert_eq!(chunk_filter(&c), "emotiond/packages/ab12/+");
        assert_eq!(chunk_index(&c, "emotiond/packages/ab12/3"), Some(3));
        assert_eq!(chunk_index(&c, "emotiond/packages/ab123/3"), None);
        assert_eq!(chunk_index(&c, "emotiond/packages/ab12/x"), None);
    }
}
