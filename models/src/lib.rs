//! Inference for emotiond: the [`Engine`] trait and its three runtimes (tract in pure Rust;
//! the TFLite C runtime and ONNX Runtime loaded at run time, in [`ffi`]), the fallback chain
//! and stall watchdog that choose and guard them ([`runtime`], [`supervise`]), and the
//! model-driven pre- and post-processing that turns images into faces and emotion
//! probabilities ([`detector`], [`classifier`]) and audio into voice activity ([`vad`]),
//! log-mel features ([`mel`]) and speech-emotion probabilities ([`speech`]).
//!
//! What needs no engine (manifests, package files and their hashes, signed archives, the
//! desired-state message) is in `emotiond-wire` and re-exported here under its old paths
//! ([`manifest`], [`signed`], [`package`]).
//!
//! `unsafe` is allowed in [`ffi`] only; every other module starts with
//! `#![forbid(unsafe_code)]`.
#![deny(unsafe_code)]

pub mod builtin;
pub mod classifier;
pub mod detector;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod geometry;
pub mod mel;
pub mod package;
pub mod preprocess;
pub mod runtime;
pub mod speech;
pub mod ssd;
pub mod supervise;
mod tract_engine;
pub mod vad;

pub use emotiond_wire::{manifest, signed};
/// The TFLite engine under its old path.
pub use ffi::tflite as tflite_engine;

pub use classifier::{ClassifyStages, Emotions, ExpressionClassifier};
pub use detector::{DetectStages, FaceDetector};
pub use emotiond_wire::{RejectCode, sha256_hex};
pub use engine::{Engine, EngineError, EngineKind, Tensor};
pub use error::{AttemptError, FailureKind, LoadError, ModelError, Skipped};
pub use ffi::ort::runtime as onnxruntime_info;
pub use geometry::{BBox, Detection};
pub use manifest::{EMOTIONS, Manifest, Task};
pub use package::{CheckVectors, ModelPackage, PackageError, VectorError};
pub use runtime::{Attempt, Built, EngineSettings, Runtimes, load_engine};
