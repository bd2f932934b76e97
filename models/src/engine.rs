//! The one inference interface the pipeline sees. An engine takes a model file's bytes and
//! runs it on plain f32 tensors; which runtime does the work is invisible to callers. Three
//! implement it: tract (`tract_engine`, pure Rust, the default and the last step of every
//! fallback chain), the TFLite C runtime (`ffi::tflite`, loaded at run time, with XNNPACK or
//! an external delegate) and ONNX Runtime (`ffi::ort`, loaded at run time); `supervise`
//! wraps any of them in the stall watchdog, itself an `Engine`. `runtime` picks the chain.
#![forbid(unsafe_code)]

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
    /// The runtime library or the delegate plugin is missing, too old or refuses.
    #[error("{engine}: cannot load model {model}: {reason}")]
    Library {
        engine: &'static str,
        model: String,
        reason: String,
    },
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

pub use emotiond_wire::EngineKind;

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
