//! ONNX Runtime through the `ort` crate with `load-dynamic`: `libonnxruntime.so` is opened
//! at run time (the configured path, else the loader's search path), so nothing links it at
//! build time. Execution providers come from config: CPU everywhere, CUDA / TensorRT with
//! NVIDIA's build of the library on Jetson.
//!
//! `ort` panics when the library is missing or too old; a pre-flight check here opens the
//! library first, reads its version and asks for the C API version `ort` needs, so such a
//! board gets an error (and the next engine in the chain) instead of a crash.

use crate::engine::{Engine, EngineError, EngineKind, Tensor};
use ort::execution_providers::{
    CPUExecutionProvider, CUDAExecutionProvider, ExecutionProviderDispatch,
    TensorRTExecutionProvider,
};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use std::ffi::{CStr, c_char};
use std::path::Path;
use std::sync::{Arc, OnceLock};

const NAME: &str = "onnxruntime";
/// The C API version `ort` 2.0.0-rc.10 asks for: ONNX Runtime 1.22 or newer.
const API_VERSION: u32 = 22;
const MIN_MINOR: u32 = 22;

#[repr(C)]
struct OrtApiBase {
    get_api: unsafe extern "C" fn(u32) -> *const std::ffi::c_void,
    get_version_string: unsafe extern "C" fn() -> *const c_char,
}

/// (library path, version), or why the library cannot be used. Decided once per process:
/// `ort` keeps one global library.
static RUNTIME: OnceLock<Result<(String, String), String>> = OnceLock::new();

fn preflight(path: &str) -> Result<String, String> {
    // SAFETY: opening the library runs its static initialisers; the handle is kept open for
    // the process (ort opens it again and keeps it too).
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    // SAFETY: OrtGetApiBase has this signature in every ONNX Runtime release.
    let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const OrtApiBase> =
        unsafe { lib.get(b"OrtGetApiBase\0") }
            .map_err(|e| format!("{path} is not ONNX Runtime: {e}"))?;
    // SAFETY: returns a pointer to a static struct of two function pointers.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(format!("{path}: OrtGetApiBase returned null"));
    }
    // SAFETY: as above; the version string is static and NUL-terminated.
    let version = unsafe {
        let v = ((*base).get_version_string)();
        if v.is_null() {
            String::new()
        } else {
            CStr::from_ptr(v).to_string_lossy().into_owned()
        }
    };
    let minor: u32 = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    // SAFETY: GetApi returns null for an unsupported version.
    let api = unsafe { ((*base).get_api)(API_VERSION) };
    if minor < MIN_MINOR || api.is_null() {
        return Err(format!(
            "{path} is ONNX Runtime {version}; this build needs 1.{MIN_MINOR} or newer"
        ));
    }
    std::mem::forget(lib);
    Ok(version)
}

/// Open ONNX Runtime (once per process; the first path asked for wins).
pub fn runtime(path: Option<&Path>) -> Result<(String, String), String> {
    RUNTIME
        .get_or_init(|| {
            let p = path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "libonnxruntime.so".to_string());
            let version = preflight(&p)?;
            ort::init_from(p.clone())
                .with_name("emotiond")
                .commit()
                .map_err(|e| format!("{p}: {e}"))?;
            Ok((p, version))
        })
        .clone()
}

pub struct OrtEngine {
    model_name: String,
    session: Session,
    input_shapes: Vec<Vec<usize>>,
    input_names: Vec<String>,
    providers: String,
    _bytes: Arc<[u8]>,
}

fn provider(name: &str) -> Result<ExecutionProviderDispatch, String> {
    Ok(match name {
        "cpu" => CPUExecutionProvider::default().build(),
        "cuda" => CUDAExecutionProvider::default().build().error_on_failure(),
        "tensorrt" => TensorRTExecutionProvider::default()
            .build()
            .error_on_failure(),
        other => return Err(format!("unknown execution provider {other:?}")),
    })
}

impl OrtEngine {
    pub fn load(
        model_name: &str,
        bytes: &Arc<[u8]>,
        library: Option<&Path>,
        providers: &[String],
        threads: usize,
    ) -> Result<OrtEngine, EngineError> {
        let err = |reason: String| EngineError::Load {
            engine: NAME,
            model: model_name.to_string(),
            reason,
        };
        let lib_err = |reason: String| EngineError::Library {
            engine: NAME,
            model: model_name.to_string(),
            reason,
        };
        let (path, _) = runtime(library).map_err(lib_err)?;
        if let Some(want) = library {
            let want = want.display().to_string();
            if want != path {
                return Err(lib_err(format!(
                    "ONNX Runtime is already loaded from {path}; one library per process"
                )));
            }
        }
        let eps = providers
            .iter()
            .map(|p| provider(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let session = Session::builder()
            .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3))
            .and_then(|b| b.with_intra_threads(threads.max(1)))
            .and_then(|b| b.with_inter_threads(1))
            .and_then(|b| b.with_execution_providers(eps))
            .and_then(|b| b.commit_from_memory(bytes))
            .map_err(|e| err(e.to_string()))?;
        if session.inputs.is_empty() {
            return Err(err("the model has no input".into()));
        }
        let mut input_shapes = Vec::new();
        for i in &session.inputs {
            let shape = i
                .input_type
                .tensor_shape()
                .ok_or_else(|| err(format!("input {} is not a tensor", i.name)))?;
            if shape.iter().any(|&d| d < 1) {
                return Err(err(format!(
                    "input {} shape {:?} is not fixed",
                    i.name,
                    shape.iter().collect::<Vec<_>>()
                )));
            }
            if i.input_type.tensor_type() != Some(ort::tensor::TensorElementType::Float32) {
                return Err(err(format!("input {} is not float32", i.name)));
            }
            input_shapes.push(shape.iter().map(|&d| d as usize).collect());
        }
        let input_names = session.inputs.iter().map(|i| i.name.clone()).collect();
        for o in &session.outputs {
            if o.output_type.tensor_type() != Some(ort::tensor::TensorElementType::Float32) {
                return Err(err(format!("output {} is not float32", o.name)));
            }
        }
        Ok(OrtEngine {
            model_name: model_name.to_string(),
            session,
            input_shapes,
            input_names,
            providers: providers.join(","),
            _bytes: bytes.clone(),
        })
    }
}

impl Engine for OrtEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::OnnxRuntime
    }

    fn accelerator(&self) -> Option<&str> {
        (self.providers != "cpu").then_some(self.providers.as_str())
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shapes[0]
    }

    fn run(&mut self, input: &[f32], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        self.run_multi(&[input], outputs)
    }

    fn run_multi(
        &mut self,
        inputs: &[&[f32]],
        outputs: &mut Vec<Tensor>,
    ) -> Result<(), EngineError> {
        let run_err = |reason: String| EngineError::Run {
            engine: NAME,
            model: self.model_name.clone(),
            reason,
        };
        if inputs.len() != self.input_shapes.len() {
            return Err(run_err(format!(
                "{} inputs given, the model has {}",
                inputs.len(),
                self.input_shapes.len()
            )));
        }
        let mut values: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
        for ((input, shape), name) in inputs.iter().zip(&self.input_shapes).zip(&self.input_names) {
            let want: usize = shape.iter().product();
            if input.len() != want {
                return Err(EngineError::InputSize {
                    engine: NAME,
                    model: self.model_name.clone(),
                    got: input.len(),
                    want: shape.clone(),
                });
            }
            let t = TensorRef::from_array_view((shape.as_slice(), *input))
                .map_err(|e| run_err(e.to_string()))?;
            values.push((name.clone(), t.into()));
        }
        let result = self
            .session
            .run(values)
            .map_err(|e| run_err(e.to_string()))?;
        outputs.resize_with(result.len(), Tensor::default);
        for (out, (_, value)) in outputs.iter_mut().zip(result.iter()) {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| run_err(e.to_string()))?;
            out.shape.clear();
            out.shape.extend(shape.iter().map(|&d| d.max(0) as usize));
            out.data.clear();
            out.data.extend_from_slice(data);
        }
        Ok(())
    }
}
