//! Model packages and inference for emotiond: manifests, engines, and the model-driven
//! pre- and post-processing that turns images into faces and emotion probabilities.
#![forbid(unsafe_code)]

pub mod builtin;
pub mod classifier;
pub mod detector;
pub mod engine;
pub mod geometry;
pub mod manifest;
pub mod package;
pub mod preprocess;
pub mod ssd;
mod tract_engine;

pub use classifier::{Emotions, ExpressionClassifier};
pub use detector::FaceDetector;
pub use engine::{Engine, EngineError, EngineKind, Tensor, load_engine};
pub use geometry::{BBox, Detection};
pub use manifest::{EMOTIONS, Manifest, Task};
pub use package::{ModelPackage, PackageError};

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
