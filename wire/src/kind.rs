//! Which inference runtime runs a model: named in manifests (`[files.<engine>]`), config,
//! summaries and `emotiond check`. The runtimes themselves live in `emotiond-models`.

use std::fmt;

/// Which runtime an engine is, for summaries, `emotiond check` and config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Pure Rust (`tract-tflite`); runs on every target with no C runtime.
    Tract,
    /// The TFLite C runtime loaded at run time, with an optional hardware delegate.
    #[serde(rename = "tflite")]
    TfLite,
    /// ONNX Runtime loaded at run time, with execution providers.
    #[serde(rename = "onnxruntime")]
    OnnxRuntime,
}

impl EngineKind {
    pub const ALL: [EngineKind; 3] = [
        EngineKind::Tract,
        EngineKind::TfLite,
        EngineKind::OnnxRuntime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Tract => "tract",
            EngineKind::TfLite => "tflite",
            EngineKind::OnnxRuntime => "onnxruntime",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown engine {s:?}; known: tract, tflite, onnxruntime"))
    }
}
