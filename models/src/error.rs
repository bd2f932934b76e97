//! The errors of this crate that callers act on. A model that does not load says, for each
//! engine of its fallback chain, what kind of failure stopped it there ([`FailureKind`]),
//! so the daemon's update manager can report a reason code ([`RejectCode`]) without reading
//! messages: messages are for people and may be reworded, codes are for operators and may not.
#![forbid(unsafe_code)]

use crate::engine::EngineError;
use crate::manifest::Task;
pub use emotiond_wire::RejectCode;
use std::fmt;

/// What stopped one engine of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The runtime library or delegate plugin is missing, too old or refuses.
    Library,
    /// The engine runs the model but not to its test vectors.
    TestVectors,
    /// The model's input shape is not the one expected.
    Shape,
    /// The engine cannot run the model (no file for it, a graph it does not take...).
    Engine,
}

/// One engine that did not take the model, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptError {
    pub kind: FailureKind,
    /// For people: the engine's or the vectors' message, without the engine's name.
    pub reason: String,
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for AttemptError {}

/// A step of the chain that was skipped: its label (`tflite+xnnpack`) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub attempt: String,
    pub error: AttemptError,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.attempt, self.error)
    }
}

fn join(s: &[Skipped]) -> String {
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A model that cannot be put to work.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("model {model} runs on no engine: {}", join(.attempts))]
    NoEngine {
        model: String,
        attempts: Vec<Skipped>,
    },
    #[error(transparent)]
    Settings(#[from] crate::runtime::SettingsError),
    #[error("{model} on {engine} has input shape {got:?}, expected {want:?}")]
    ShapeChanged {
        model: String,
        engine: crate::engine::EngineKind,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("cannot start an inference thread: {0}")]
    Thread(String),
}

impl LoadError {
    /// The update reason: test vectors that fail on any engine of the chain say more than
    /// engines that do not load, and a shape that does not fit more than a generic failure.
    pub fn reject_code(&self) -> RejectCode {
        match self {
            LoadError::NoEngine { attempts, .. } => {
                let any = |k| attempts.iter().any(|a| a.error.kind == k);
                if any(FailureKind::TestVectors) {
                    RejectCode::TestVectors
                } else if any(FailureKind::Shape) {
                    RejectCode::WrongShape
                } else {
                    RejectCode::Engine
                }
            }
            LoadError::ShapeChanged { .. } => RejectCode::WrongShape,
            LoadError::Settings(_) | LoadError::Thread(_) => RejectCode::Engine,
        }
    }
}

/// A model that loaded but does not fit its role, or an inference that failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("model {model} is a {got:?} model, a {want:?} model is needed here")]
    WrongTask {
        model: String,
        want: Task,
        got: Task,
    },
    #[error(
        "model does not match its manifest: {model}: manifest input shape {manifest:?}, model file has {engine:?}"
    )]
    Shape {
        model: String,
        manifest: Vec<usize>,
        engine: Vec<usize>,
    },
    #[error("model does not match its manifest: {0}")]
    Manifest(String),
}

impl ModelError {
    /// The update reason for a model that could not be built into a detector or classifier.
    pub fn reject_code(&self) -> RejectCode {
        match self {
            ModelError::Load(e) => e.reject_code(),
            ModelError::Shape { .. } => RejectCode::WrongShape,
            ModelError::WrongTask { .. } => RejectCode::WrongTask,
            ModelError::Engine(_) | ModelError::Manifest(_) => RejectCode::Engine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_engine(kinds: &[FailureKind]) -> LoadError {
        LoadError::NoEngine {
            model: "m@1".into(),
            attempts: kinds
                .iter()
                .enumerate()
                .map(|(i, k)| Skipped {
                    attempt: format!("e{i}"),
                    error: AttemptError {
                        kind: *k,
                        reason: format!("why {i}"),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn load_errors_list_each_attempt_and_map_to_a_reason() {
        use FailureKind::*;
        let e = no_engine(&[Library, TestVectors]);
        assert_eq!(
            e.to_string(),
            "model m@1 runs on no engine: e0: why 0; e1: why 1"
        );
        assert_eq!(e.reject_code(), RejectCode::TestVectors);
        assert_eq!(
            no_engine(&[Shape, Engine]).reject_code(),
            RejectCode::WrongShape
        );
        assert_eq!(
            no_engine(&[Library, Engine]).reject_code(),
            RejectCode::Engine
        );
        assert_eq!(no_engine(&[]).reject_code(), RejectCode::Engine);
        let shape = ModelError::Shape {
            model: "m@1".into(),
            manifest: vec![1, 48, 48, 1],
            engine: vec![1, 64, 64, 1],
        };
        assert_eq!(shape.reject_code(), RejectCode::WrongShape);
        assert_eq!(
            shape.to_string(),
            "model does not match its manifest: m@1: manifest input shape [1, 48, 48, 1], model file has [1, 64, 64, 1]"
        );
        assert_eq!(
            ModelError::Load(no_engine(&[TestVectors])).reject_code(),
            RejectCode::TestVectors
        );
    }
}
