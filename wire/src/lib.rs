//! What emotiond devices and the fleet both speak, with no inference engine, camera or
//! network client behind it:
//!
//! - [`manifest`] and [`package`]: a model package's manifest (parsed and validated) and its
//!   files, hash-checked, with their test vectors loaded (running them needs an engine: that
//!   is `emotiond-models`);
//! - [`signed`]: the package archive (tar with an index), its Ed25519 signature, and the
//!   desired-state message that orders a device to install or roll back a model;
//! - [`topics`]: the MQTT topic layout;
//! - [`summary`], [`health`], [`state`]: the payloads a device publishes (summary and
//!   feedback, health, model-update states) with their JSON and postcard codecs.
//!
//! `emotion-fleet` depends on this crate only, so signing a package never compiles tract,
//! the TFLite binding or ONNX Runtime. Everything here is pure or plain `std::fs`.
#![forbid(unsafe_code)]

pub mod health;
pub mod kind;
pub mod manifest;
pub mod order;
pub mod package;
pub mod signed;
pub mod state;
pub mod summary;
pub mod topics;

pub use health::{CameraHealth, Health, MicHealth, OutboxState, SourceState};
pub use kind::EngineKind;
pub use manifest::{EMOTIONS, Manifest, Task};
pub use package::{ModelPackage, PackageError};
pub use state::{ModelState, RejectCode, UpdateState};
pub use summary::{Encoding, Summary};
pub use topics::Topics;

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256, as manifests, indexes, orders and store folders spell hashes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Encode `v` as JSON through a `serde_json::Value`: object keys come out sorted and `f32`
/// fields as `f64`, which is how the health, state and feedback payloads have always been
/// written (they were built with `serde_json::json!`). Kept so their bytes do not change.
pub(crate) fn json_via_value<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_value(v)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_default()
}
