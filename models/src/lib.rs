//! Model packages and inference for emotiond: manifests, engines, and the model-driven
//! pre- and post-processing that turns images into faces and emotion probabilities, and audio
//! into voice activity (Silero VAD), log-mel features and speech-emotion probabilities.
// Unsafe code is allowed only where the C runtimes are bound (`tflite_engine`).
#![deny(unsafe_code)]

pub mod builtin;
pub mod classifier;
pub mod detector;
pub mod engine;
pub mod geometry;
pub mod manifest;
pub mod mel;
mod ort_engine;
pub mod package;
pub mod preprocess;
pub mod runtime;
pub mod signed;
pub mod speech;
pub mod ssd;
pub mod supervise;
pub mod tflite_engine;
mod tract_engine;
pub mod vad;

pub use classifier::{Emotions, ExpressionClassifier};
pub use detector::FaceDetector;
pub use engine::{Engine, EngineError, EngineKind, Tensor};
pub use geometry::{BBox, Detection};
pub use manifest::{EMOTIONS, Manifest, Task};
pub use ort_engine::runtime as onnxruntime_info;
pub use package::{ModelPackage, PackageError};
pub use runtime::{Attempt, Built, EngineSettings, Runtimes, load_engine};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("model {model} is a {got:?} model, a {want:?} model is needed here")]
    WrongTask {
        model: String,
        want: Task,
        got: Task,
    },
    #[error("model does not match its manifest: {0}")]
    Manifest(String),
}
