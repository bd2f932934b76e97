//! The TFLite engine: the interpreter built on a loaded library, its input and output
//! tensors, and the (de)quantisation between them and `f32`.

use super::api::{
    Api, K_FLOAT32, K_INT8, K_UINT8, Messages, QuantParams, TfLiteInterpreter, TfLiteModel,
    TfLiteTensor, api, report_error,
};
use super::delegate::{Delegate, DelegateHandle, ExternalDelegate};
use crate::engine::{Engine, EngineError, EngineKind, Tensor};
use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::Arc;

const NAME: &str = "tflite";

struct IoTensor {
    ptr: *const TfLiteTensor,
    dtype: c_int,
    shape: Vec<usize>,
    len: usize,
    quant: QuantParams,
}

/// A model on the TFLite C runtime.
pub struct TfLiteEngine {
    api: Arc<Api>,
    model_name: String,
    interpreter: *mut TfLiteInterpreter,
    model: *mut TfLiteModel,
    delegate: DelegateHandle,
    delegate_label: Option<String>,
    input: IoTensor,
    outputs: Vec<IoTensor>,
    messages: Box<Messages>,
    /// The model bytes: TfLiteModelCreate does not copy them.
    _bytes: Arc<[u8]>,
}

// SAFETY: the interpreter, model and delegate are owned exclusively by this engine and used
// by one thread at a time (`Engine` is used through `&mut`); TFLite interpreters may move
// between threads.
unsafe impl Send for TfLiteEngine {}

/// Options for building a [`TfLiteEngine`].
#[derive(Debug, Clone)]
pub struct TfLiteOptions {
    /// The C library; `None` tries [`DEFAULT_LIBRARY_NAMES`](super::DEFAULT_LIBRARY_NAMES).
    pub library: Option<PathBuf>,
    pub delegate: Delegate,
    /// CPU threads for TFLite's kernels and XNNPACK (at least 1).
    pub threads: usize,
}

impl TfLiteEngine {
    pub fn load(
        model_name: &str,
        bytes: Arc<[u8]>,
        opts: &TfLiteOptions,
    ) -> Result<TfLiteEngine, EngineError> {
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
        let api = api(opts.library.as_deref()).map_err(lib_err)?;
        let messages = Box::new(Messages::default());
        let threads = i32::try_from(opts.threads.max(1)).unwrap_or(1);
        let delegate = match &opts.delegate {
            Delegate::None => DelegateHandle::None,
            Delegate::Xnnpack => {
                let (Some(create), Some(_)) = (api.xnnpack_create, api.xnnpack_delete) else {
                    return Err(lib_err(format!("{} has no XNNPACK delegate", api.path)));
                };
                // TfLiteXNNPackDelegateOptions grew over releases ({num_threads} in 2.6;
                // flags, weights cache, ... later). It is read through a pointer, so a zeroed
                // block longer than any version, with num_threads first and flags second,
                // is valid for all of them. Flags: QS8 | QU8 (quantised operators).
                let mut block = [0u64; 32];
                block[0] = (threads as u32 as u64) | (0x3u64 << 32);
                // SAFETY: the pointer is valid for 256 bytes during the call; the delegate
                // copies the options.
                let d = unsafe { create(block.as_ptr() as *const c_void) };
                if d.is_null() {
                    return Err(err(
                        "TfLiteXNNPackDelegateCreate returned no delegate".into()
                    ));
                }
                DelegateHandle::Xnnpack(d)
            }
            Delegate::External { library, options } => DelegateHandle::External(
                ExternalDelegate::create(library, options).map_err(lib_err)?,
            ),
        };
        let mut engine = TfLiteEngine {
            api: api.clone(),
            model_name: model_name.to_string(),
            interpreter: std::ptr::null_mut(),
            model: std::ptr::null_mut(),
            delegate,
            delegate_label: opts.delegate.label(),
            input: IoTensor {
                ptr: std::ptr::null(),
                dtype: 0,
                shape: Vec::new(),
                len: 0,
                quant: QuantParams {
                    scale: 0.0,
                    zero_point: 0,
                },
            },
            outputs: Vec::new(),
            messages,
            _bytes: bytes,
        };
        // From here on, `engine`'s Drop releases whatever was created.
        // SAFETY: the bytes live in `engine._bytes` for the model's life.
        engine.model = unsafe {
            (api.model_create)(engine._bytes.as_ptr() as *const c_void, engine._bytes.len())
        };
        if engine.model.is_null() {
            return Err(err(format!(
                "not a TFLite model this runtime ({}) can read",
                api.version_string()
            )));
        }
        // SAFETY: plain C API calls on objects created above; `messages` outlives the
        // interpreter (dropped after it in Drop).
        unsafe {
            let options = (api.options_create)();
            if options.is_null() {
                return Err(err("TfLiteInterpreterOptionsCreate failed".into()));
            }
            (api.options_set_threads)(options, threads);
            (api.options_set_error_reporter)(
                options,
                report_error,
                &*engine.messages as *const Messages as *mut c_void,
            );
            match &engine.delegate {
                DelegateHandle::None => {}
                DelegateHandle::Xnnpack(d) => (api.options_add_delegate)(options, *d),
                DelegateHandle::External(x) => (api.options_add_delegate)(options, x.delegate),
            }
            engine.interpreter = (api.interpreter_create)(engine.model, options);
            (api.options_delete)(options);
        }
        if engine.interpreter.is_null() {
            let why = engine.messages.take();
            return Err(err(match &engine.delegate_label {
                Some(d) => format!("interpreter not created with the {d} delegate: {why}"),
                None => format!("interpreter not created: {why}"),
            }));
        }
        // SAFETY: the interpreter is valid.
        if unsafe { (api.allocate)(engine.interpreter) } != 0 {
            return Err(err(format!(
                "allocating tensors failed: {}",
                engine.messages.take()
            )));
        }
        // SAFETY: the interpreter is valid; tensor pointers stay valid until it is deleted or
        // tensors are reallocated (we never resize).
        let (n_in, n_out) = unsafe {
            (
                (api.input_count)(engine.interpreter),
                (api.output_count)(engine.interpreter),
            )
        };
        if n_in != 1 {
            return Err(err(format!("expected one input, the model has {n_in}")));
        }
        let describe = |t: *const TfLiteTensor, what: &str| -> Result<IoTensor, EngineError> {
            if t.is_null() {
                return Err(err(format!("{what} tensor missing")));
            }
            // SAFETY: t is a tensor of the live interpreter.
            unsafe {
                let dtype = (api.tensor_type)(t);
                let dims = (api.tensor_num_dims)(t);
                let shape: Vec<usize> = (0..dims)
                    .map(|i| (api.tensor_dim)(t, i).max(0) as usize)
                    .collect();
                let len: usize = shape.iter().product();
                let elem = match dtype {
                    K_FLOAT32 => 4,
                    K_UINT8 | K_INT8 => 1,
                    other => {
                        return Err(err(format!(
                            "{what} tensor type {other} is not supported (float32, uint8, int8)"
                        )));
                    }
                };
                if (api.tensor_byte_size)(t) != len * elem {
                    return Err(err(format!("{what} tensor size does not match its shape")));
                }
                Ok(IoTensor {
                    ptr: t,
                    dtype,
                    shape,
                    len,
                    quant: (api.tensor_quant)(t),
                })
            }
        };
        // SAFETY: index 0 exists (n_in == 1).
        engine.input = describe(
            unsafe { (api.input_tensor)(engine.interpreter, 0) },
            "input",
        )?;
        for i in 0..n_out {
            // SAFETY: 0 <= i < output count.
            let t = unsafe { (api.output_tensor)(engine.interpreter, i) };
            let d = describe(t, "output")?;
            engine.outputs.push(d);
        }
        Ok(engine)
    }

    /// The library this engine runs on, and its version.
    pub fn library(&self) -> (String, String) {
        (self.api.path.clone(), self.api.version_string())
    }
}

fn quantize(v: f32, q: QuantParams, lo: f32, hi: f32) -> f32 {
    let s = if q.scale > 0.0 { q.scale } else { 1.0 };
    (v / s + q.zero_point as f32).round().clamp(lo, hi)
}

impl Engine for TfLiteEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::TfLite
    }

    fn accelerator(&self) -> Option<&str> {
        self.delegate_label.as_deref()
    }

    fn input_shape(&self) -> &[usize] {
        &self.input.shape
    }

    fn run(&mut self, input: &[f32], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        if input.len() != self.input.len {
            return Err(EngineError::InputSize {
                engine: NAME,
                model: self.model_name.clone(),
                got: input.len(),
                want: self.input.shape.clone(),
            });
        }
        let api = &self.api;
        let inp = &self.input;
        // SAFETY: the input tensor's buffer holds `inp.len` elements of `inp.dtype` (checked
        // at load) and nothing else accesses it during this call.
        unsafe {
            let data = (api.tensor_data)(inp.ptr);
            if data.is_null() {
                return Err(self.run_err("input tensor has no buffer".into()));
            }
            match inp.dtype {
                K_FLOAT32 => {
                    std::ptr::copy_nonoverlapping(input.as_ptr(), data as *mut f32, inp.len)
                }
                K_UINT8 => {
                    let d = std::slice::from_raw_parts_mut(data as *mut u8, inp.len);
                    for (o, &v) in d.iter_mut().zip(input) {
                        *o = quantize(v, inp.quant, 0.0, 255.0) as u8;
                    }
                }
                _ => {
                    let d = std::slice::from_raw_parts_mut(data as *mut i8, inp.len);
                    for (o, &v) in d.iter_mut().zip(input) {
                        *o = quantize(v, inp.quant, -128.0, 127.0) as i8;
                    }
                }
            }
        }
        // SAFETY: the interpreter is valid and used by this thread only.
        if unsafe { (api.invoke)(self.interpreter) } != 0 {
            let why = self.messages.take();
            return Err(self.run_err(format!("TfLiteInterpreterInvoke failed: {why}")));
        }
        outputs.resize_with(self.outputs.len(), Tensor::default);
        for (out, t) in outputs.iter_mut().zip(&self.outputs) {
            out.shape.clear();
            out.shape.extend_from_slice(&t.shape);
            out.data.clear();
            // SAFETY: as for the input; output buffers hold `t.len` elements after Invoke.
            unsafe {
                let data = (api.tensor_data)(t.ptr) as *const c_void;
                if data.is_null() {
                    return Err(self.run_err("output tensor has no buffer".into()));
                }
                let scale = t.quant.scale;
                let zp = t.quant.zero_point as f32;
                match t.dtype {
                    K_FLOAT32 => out
                        .data
                        .extend_from_slice(std::slice::from_raw_parts(data as *const f32, t.len)),
                    K_UINT8 => out.data.extend(
                        std::slice::from_raw_parts(data as *const u8, t.len)
                            .iter()
                            .map(|&q| (q as f32 - zp) * scale),
                    ),
                    _ => out.data.extend(
                        std::slice::from_raw_parts(data as *const i8, t.len)
                            .iter()
                            .map(|&q| (q as f32 - zp) * scale),
                    ),
                }
            }
        }
        Ok(())
    }
}

impl TfLiteEngine {
    fn run_err(&self, reason: String) -> EngineError {
        EngineError::Run {
            engine: NAME,
            model: self.model_name.clone(),
            reason,
        }
    }
}

impl Drop for TfLiteEngine {
    fn drop(&mut self) {
        // SAFETY: each object is deleted once, interpreter before the delegate it uses and
        // before the model; the external delegate is destroyed by its own Drop afterwards
        // (fields drop after this body runs).
        unsafe {
            if !self.interpreter.is_null() {
                (self.api.interpreter_delete)(self.interpreter);
            }
            if !self.model.is_null() {
                (self.api.model_delete)(self.model);
            }
            if let DelegateHandle::Xnnpack(d) = self.delegate {
                if let Some(del) = self.api.xnnpack_delete {
                    del(d);
                }
            }
        }
        self.delegate = DelegateHandle::None;
    }
}
