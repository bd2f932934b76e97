//! Model updates on the device: desired state over MQTT → fetch (retained MQTT chunks) →
//! verify (SHA-256, Ed25519 signature with the trusted keys, every file against the index)
//! → test (load on the configured engine chain, run the package's test vectors) → store →
//! switch the pipeline without a restart → probation → keep, or roll back.
//!
//! On disk, under `state_dir/models/`:
//! - `staging/` — packages being written (anything left here after a crash is reported and
//!   removed at the next start);
//! - `store/<sha256>/` — verified packages, complete before they are renamed into place;
//! - `<slot>.json` — which stored package the slot runs (and the previous one), the last
//!   order it followed (`seq`, issue time) and the highest release accepted per model name,
//!   replaced by write + fsync + rename + fsync of the folder, so a start always finds a
//!   complete model;
//! - `keys.json` — signing keys trusted through rotation (endorsed by a trusted key).
//!
//! Every step is reported, retained, on `<prefix>/<device>/models/state`.
//!
//! Files: [`store`] (the store on disk), [`manager`] (the update thread: orders in, states
//! out), [`plan`] (its decisions, pure: which order to follow, chunk assembly, sizes, which
//! refusals are remembered), [`admit`] (anti-rollback and freshness, pure), [`switcher`] (the pipeline's side: swaps between frames,
//! probation), [`probation`] (the verdict, pure).

pub mod admit;
pub mod manager;
pub mod plan;
pub mod probation;
pub mod store;
pub mod switcher;

pub use manager::{Manager, Reject};
pub use store::{SlotFile, Store, StoredRef};
pub use switcher::Switcher;

use emotiond_models::signed::Slot;
use emotiond_models::{ExpressionClassifier, FaceDetector};

/// A model built and tested, on its way into the pipeline: one copy per analysis thread
/// (`pipeline.threads`).
pub enum Model {
    Detector(Vec<FaceDetector>),
    Classifier(Vec<ExpressionClassifier>),
}

/// Manager → pipeline (`M`: the model; another type in the manager's unit tests).
pub struct Swap<M = Model> {
    pub slot: Slot,
    pub model: M,
    pub id: String,
    /// Budget per inference from the manifest, for probation.
    pub budget_ms: Option<f32>,
    /// Watch it for the probation period (false for a rollback).
    pub probation: bool,
}

/// Pipeline → manager.
#[derive(Debug, Clone, PartialEq)]
pub enum SwapEvent {
    Swapped {
        slot: Slot,
        id: String,
    },
    Passed {
        slot: Slot,
        id: String,
    },
    RolledBack {
        slot: Slot,
        id: String,
        reason: String,
    },
}

/// MQTT session → manager.
pub enum Msg {
    Inbound(String, Vec<u8>),
}

/// Manager → MQTT session.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    Subscribe(String),
    Unsubscribe(String),
}
