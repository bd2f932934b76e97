//! The one inference interface the pipeline sees. An engine takes a model file's bytes and
//! runs it on plain f32 tensors; which runtime does the work (tract here; the TFLite C
//! runtime with delegates or ONNX Runtime later) is invisible to callers.

use std::fmt;

/// A dense f32 tensor: shape plus row-major data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor { shape, data }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{engine}: cannot load model {model}: {reason}")]
    Load {
        engine: &'static str,
        model: String,
        reason: String,
    },
    #[error("{engine}: input has {got} values, model {model} expects shape {want:?}")]
    InputSize {
        engine: &'static str,
        model: String,
        got: usize,
        want: Vec<usize>,
    },
    #[error("{engine}: inference on model {model} stalled: {reason}")]
    Stalled {
        engine: &'static str,
        model: String,
        reason: String,
    },
    #[error("{engine}: inference failed on model {model}: {reason}")]
    Run {
        engine: &'static str,
        model: String,
        reason: String,
    },
}

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

/// A loaded model, ready to run. One instance is used by one thread at a time.
pub trait Engine: Send {
    fn kind(&self) -> EngineKind;
    /// Hardware delegate or execution provider in use, if any ("xnnpack", "edgetpu"...).
    fn accelerator(&self) -> Option<&str> {
        None
    }
    fn input_shape(&self) -> &[usize];
    /// Why this is not the configured engine (the fallback chain's reasons), if it is not.
    fn fallback(&self) -> Option<&str> {
        None
    }
    /// Stall-watchdog counters, for an engine run under the watchdog.
    fn watchdog(&self) -> Option<crate::supervise::WatchdogCounts> {
        None
    }
    /// Run on one input tensor (row-major, `input_shape` elements). `outputs` is resized to
    /// the model's outputs in model order and its buffers are reused across calls.
    fn run(&mut self, input: &[f32], outputs: &mut Vec<Tensor>) -> Result<(), EngineError>;
    /// Run on several inputs in model order (a recurrent model's state after its data).
    /// Engines that take one input only refuse more.
    fn run_multi(
        &mut self,
        inputs: &[&[f32]],
        outputs: &mut Vec<Tensor>,
    ) -> Result<(), EngineError> {
        match inputs {
            [one] => self.run(one, outputs),
            _ => Err(EngineError::Run {
                engine: self.kind().as_str(),
                model: String::new(),
                reason: format!("{} inputs given, this engine takes one", inputs.len()),
            }),
        }
    }
}
