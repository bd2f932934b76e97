//! Model-update states, retained on `<prefix>/<device>/models/state`: where an update is
//! (`downloading` … `active`), and when it was refused or undone, a reason code that
//! operators and scripts match on. The codes are part of the wire format: never rename one.

use serde::{Deserialize, Serialize};

/// Where an update of a slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Downloading,
    Verifying,
    Testing,
    Active,
    Rejected,
    RolledBack,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Downloading => "downloading",
            UpdateState::Verifying => "verifying",
            UpdateState::Testing => "testing",
            UpdateState::Active => "active",
            UpdateState::Rejected => "rejected",
            UpdateState::RolledBack => "rolled_back",
        }
    }

    /// The update has ended (its marker in staging can go).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            UpdateState::Active | UpdateState::Rejected | UpdateState::RolledBack
        )
    }
}

impl std::fmt::Display for UpdateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an update was refused (`rejected`) or undone (`rolled_back`): the `reason` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The desired-state message does not parse or misses a field.
    Malformed,
    /// The download failed (HTTP error, connection cut, MQTT chunks not all in time).
    Download,
    /// Fewer bytes arrived than announced.
    Truncated,
    /// The archive's SHA-256 (or its size, beyond the announced one) does not match.
    HashMismatch,
    Unsigned,
    UntrustedKey,
    BadSignature,
    /// The archive does not open, or a file does not match the index.
    CorruptArchive,
    /// The package's task does not fit the slot.
    WrongTask,
    /// The manifest does not parse, or names another model than the order.
    Manifest,
    /// The model file's input shape is not the manifest's.
    WrongShape,
    /// The test vectors fail on the configured engine chain.
    TestVectors,
    /// No engine of the chain runs the model.
    Engine,
    /// Disk, or the pipeline stopped.
    Io,
    /// An update was cut short by a stop or a crash (reported at the next start).
    Interrupted,
    /// The stored model did not load at start; the previous one runs (`rolled_back`).
    CorruptStore,
    /// A rollback was ordered with no previous model to go back to.
    NoPrevious,
    /// The new model failed its probation (`rolled_back`).
    Probation,
    /// An operator ordered the rollback (`rolled_back`).
    Operator,
    /// The package's release number is below the highest this device accepted for the
    /// model name, and the order is not an operator-signed downgrade.
    Downgrade,
    /// The desired-state message is not signed by a trusted key (or not signed at all while
    /// `updates.require_signed_orders` is on), or its signature does not verify.
    BadOrderSignature,
    /// The desired-state message expired (`expires_at_ms` passed).
    Expired,
    /// The desired-state message is older (`seq`) than one this device already followed for
    /// the slot: a replayed order.
    Replayed,
}

impl RejectCode {
    pub const ALL: [RejectCode; 23] = [
        RejectCode::Malformed,
        RejectCode::Download,
        RejectCode::Truncated,
        RejectCode::HashMismatch,
        RejectCode::Unsigned,
        RejectCode::UntrustedKey,
        RejectCode::BadSignature,
        RejectCode::CorruptArchive,
        RejectCode::WrongTask,
        RejectCode::Manifest,
        RejectCode::WrongShape,
        RejectCode::TestVectors,
        RejectCode::Engine,
        RejectCode::Io,
        RejectCode::Interrupted,
        RejectCode::CorruptStore,
        RejectCode::NoPrevious,
        RejectCode::Probation,
        RejectCode::Operator,
        RejectCode::Downgrade,
        RejectCode::BadOrderSignature,
        RejectCode::Expired,
        RejectCode::Replayed,
    ];

    /// The code on the wire (`reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Malformed => "malformed",
            RejectCode::Download => "download",
            RejectCode::Truncated => "truncated",
            RejectCode::HashMismatch => "hash_mismatch",
            RejectCode::Unsigned => "unsigned",
            RejectCode::UntrustedKey => "untrusted_key",
            RejectCode::BadSignature => "bad_signature",
            RejectCode::CorruptArchive => "corrupt_archive",
            RejectCode::WrongTask => "wrong_task",
            RejectCode::Manifest => "manifest",
            RejectCode::WrongShape => "wrong_shape",
            RejectCode::TestVectors => "test_vectors",
            RejectCode::Engine => "engine",
            RejectCode::Io => "io",
            RejectCode::Interrupted => "interrupted",
            RejectCode::CorruptStore => "corrupt_store",
            RejectCode::NoPrevious => "no_previous",
            RejectCode::Probation => "probation",
            RejectCode::Operator => "operator",
            RejectCode::Downgrade => "downgrade",
            RejectCode::BadOrderSignature => "bad_order_signature",
            RejectCode::Expired => "expired",
            RejectCode::Replayed => "replayed",
        }
    }

    /// A download that failed or came out wrong may come out right when the retained order
    /// is delivered again; everything else about a signed archive is deterministic, so a
    /// package refused for it is not tried again (publish a new version).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            RejectCode::HashMismatch
                | RejectCode::Truncated
                | RejectCode::Download
                | RejectCode::Io
        )
    }
}

impl std::fmt::Display for RejectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message on `models/state` (JSON, retained). A slot's step carries `slot`, `model`
/// and `sha256`; a refusal that concerns no slot (a malformed order, what a start found)
/// carries only what it knows, and a malformed order the `topic` it came on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<crate::signed::Slot>,
    pub state: UpdateState,
    /// `name@version`, or empty when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub at_ms: u64,
}

impl ModelState {
    /// A step of `slot`'s update.
    pub fn step(slot: crate::signed::Slot, state: UpdateState, model: &str, sha256: &str) -> Self {
        ModelState {
            slot: Some(slot),
            state,
            model: Some(model.to_string()),
            sha256: Some(sha256.to_string()),
            reason: None,
            detail: None,
            topic: None,
            at_ms: 0,
        }
    }

    /// A refusal that concerns no single slot.
    pub fn unattached(reason: RejectCode, detail: &str) -> Self {
        ModelState {
            slot: None,
            state: UpdateState::Rejected,
            model: None,
            sha256: None,
            reason: Some(reason),
            detail: Some(detail.to_string()),
            topic: None,
            at_ms: 0,
        }
    }

    pub fn with_reason(mut self, reason: RejectCode, detail: &str) -> Self {
        self.reason = Some(reason);
        self.detail = Some(detail.to_string());
        self
    }

    pub fn at(mut self, at_ms: u64) -> Self {
        self.at_ms = at_ms;
        self
    }

    /// JSON with sorted keys, as it has always been published.
    pub fn to_json(&self) -> Vec<u8> {
        crate::json_via_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_keep_their_wire_names() {
        // Operators match on these (docs/models.md, Model updates): they must never change.
        let names: Vec<&str> = RejectCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "malformed",
                "download",
                "truncated",
                "hash_mismatch",
                "unsigned",
                "untrusted_key",
                "bad_signature",
                "corrupt_archive",
                "wrong_task",
                "manifest",
                "wrong_shape",
                "test_vectors",
                "engine",
                "io",
                "interrupted",
                "corrupt_store",
                "no_previous",
                "probation",
                "operator",
                "downgrade",
                "bad_order_signature",
                "expired",
                "replayed",
            ]
        );
        for c in RejectCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(c.to_string(), c.as_str());
            let back: RejectCode = serde_json::from_value(c.as_str().into()).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn only_download_problems_are_retried() {
        let retried: Vec<&str> = RejectCode::ALL
            .iter()
            .filter(|c| c.retryable())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(retried, ["download", "truncated", "hash_mismatch", "io"]);
    }

    #[test]
    fn update_states_keep_their_wire_names() {
        use UpdateState::*;
        for (s, name) in [
            (Downloading, "downloading"),
            (Verifying, "verifying"),
            (Testing, "testing"),
            (Active, "active"),
            (Rejected, "rejected"),
            (RolledBack, "rolled_back"),
        ] {
            assert_eq!(s.as_str(), name);
            assert_eq!(serde_json::to_value(s).unwrap(), name);
        }
    }

    #[test]
    fn state_messages_are_the_documented_json() {
        let m = ModelState::step(
            crate::signed::Slot::Expression,
            UpdateState::Rejected,
            "fer@2",
            "ab",
        )
        .with_reason(RejectCode::TestVectors, "vector 0")
        .at(5);
        assert_eq!(
            String::from_utf8(m.to_json()).unwrap(),
            r#"{"at_ms":5,"detail":"vector 0","model":"fer@2","reason":"test_vectors","sha256":"ab","slot":"expression","state":"rejected"}"#
        );
        let mut m = ModelState::unattached(RejectCode::Malformed, "not json").at(6);
        m.topic = Some("emotiond/k/models/set".into());
        assert_eq!(
            String::from_utf8(m.to_json()).unwrap(),
            r#"{"at_ms":6,"detail":"not json","reason":"malformed","state":"rejected","topic":"emotiond/k/models/set"}"#
        );
    }
}
