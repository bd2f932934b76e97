//! The TFLite C runtime, loaded at run time with `libloading`: nothing links TensorFlow Lite
//! at build time, so the binary builds and cross-compiles anywhere and a board without
//! `libtensorflowlite_c.so` simply falls back to another engine.
//!
//! Bound: the interpreter C API (`TfLiteModelCreate`, `TfLiteInterpreterCreate`, options,
//! tensor access), the XNNPACK delegate exported by the same library, and external
//! delegates through the `tflite_plugin_create_delegate` / `tflite_plugin_destroy_delegate`
//! entry points (Coral `libedgetpu.so.1`, NXP `libvx_delegate.so`, ArmNN's delegate).
//! Checked against TensorFlow Lite 2.6 (the library the tests use) and written to the C API
//! that has been stable since 2.3.
//!
//! Length: ~700 lines: the C API's bindings, the delegates and the tensor conversions are
//! one unsafe surface, kept in one file to be reviewed together.

use crate::engine::{Engine, EngineError, EngineKind, Tensor};
use libloading::Library;
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

const NAME: &str = "tflite";

/// Names tried, in order, when no library path is configured.
pub const DEFAULT_LIBRARY_NAMES: &[&str] = &["libtensorflowlite_c.so", "libtensorflowlite_c.so.2"];

#[repr(C)]
struct TfLiteModel(c_void);
#[repr(C)]
struct TfLiteInterpreterOptions(c_void);
#[repr(C)]
struct TfLiteInterpreter(c_void);
#[repr(C)]
struct TfLiteTensor(c_void);
/// Opaque here: created and destroyed by the delegate's own library.
#[repr(C)]
pub struct TfLiteDelegate(c_void);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct QuantParams {
    scale: f32,
    zero_point: i32,
}

/// `va_list` is passed through untouched to `vsnprintf`; on x86_64, aarch64 and armv7 it
/// travels as one pointer-sized value.
type ErrorReporter = unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_void);
type PluginErrorReporter = unsafe extern "C" fn(*const c_char);

unsafe extern "C" {
    fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
}

// TfLiteType values used here (tensorflow/lite/c/c_api_types.h).
const K_FLOAT32: c_int = 1;
const K_UINT8: c_int = 3;
const K_INT8: c_int = 9;

/// The C API functions, resolved once per library.
struct Api {
    version: unsafe extern "C" fn() -> *const c_char,
    model_create: unsafe extern "C" fn(*const c_void, usize) -> *mut TfLiteModel,
    model_delete: unsafe extern "C" fn(*mut TfLiteModel),
    options_create: unsafe extern "C" fn() -> *mut TfLiteInterpreterOptions,
    options_delete: unsafe extern "C" fn(*mut TfLiteInterpreterOptions),
    options_set_threads: unsafe extern "C" fn(*mut TfLiteInterpreterOptions, i32),
    options_add_delegate: unsafe extern "C" fn(*mut TfLiteInterpreterOptions, *mut TfLiteDelegate),
    options_set_error_reporter:
        unsafe extern "C" fn(*mut TfLiteInterpreterOptions, ErrorReporter, *mut c_void),
    interpreter_create: unsafe extern "C" fn(
        *const TfLiteModel,
        *const TfLiteInterpreterOptions,
    ) -> *mut TfLiteInterpreter,
    interpreter_delete: unsafe extern "C" fn(*mut TfLiteInterpreter),
    allocate: unsafe extern "C" fn(*mut TfLiteInterpreter) -> c_int,
    invoke: unsafe extern "C" fn(*mut TfLiteInterpreter) -> c_int,
    input_count: unsafe extern "C" fn(*const TfLiteInterpreter) -> i32,
    input_tensor: unsafe extern "C" fn(*const TfLiteInterpreter, i32) -> *mut TfLiteTensor,
    output_count: unsafe extern "C" fn(*const TfLiteInterpreter) -> i32,
    output_tensor: unsafe extern "C" fn(*const TfLiteInterpreter, i32) -> *const TfLiteTensor,
    tensor_type: unsafe extern "C" fn(*const TfLiteTensor) -> c_int,
    tensor_num_dims: unsafe extern "C" fn(*const TfLiteTensor) -> i32,
    tensor_dim: unsafe extern "C" fn(*const TfLiteTensor, i32) -> i32,
    tensor_byte_size: unsafe extern "C" fn(*const TfLiteTensor) -> usize,
    tensor_data: unsafe extern "C" fn(*const TfLiteTensor) -> *mut c_void,
    tensor_quant: unsafe extern "C" fn(*const TfLiteTensor) -> QuantParams,
    xnnpack_create: Option<unsafe extern "C" fn(*const c_void) -> *mut TfLiteDelegate>,
    xnnpack_delete: Option<unsafe extern "C" fn(*mut TfLiteDelegate)>,
    path: String,
    // Kept last: dropped after the function pointers above stop being used.
    _lib: Library,
}

// SAFETY: the struct holds plain function pointers into a library that stays loaded for as
// long as any `Arc<Api>` exists; the C API functions themselves are thread-safe to call on
// distinct interpreters.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

impl Api {
    fn open(path: &str) -> Result<Api, String> {
        // SAFETY: loading a shared library runs its initialisers; the TFLite C library's are
        // plain static constructors.
        let lib = unsafe { Library::new(path) }.map_err(|e| e.to_string())?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol is looked up by its C API name and cast to the
                // signature in the TFLite C headers.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("{path} lacks {}: {e}", $name))?
            };
        }
        macro_rules! opt_sym {
            ($name:literal) => {
                // SAFETY: as above; absent in builds without XNNPACK.
                unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .ok()
                    .map(|s| *s)
            };
        }
        Ok(Api {
            version: sym!("TfLiteVersion"),
            model_create: sym!("TfLiteModelCreate"),
            model_delete: sym!("TfLiteModelDelete"),
            options_create: sym!("TfLiteInterpreterOptionsCreate"),
            options_delete: sym!("TfLiteInterpreterOptionsDelete"),
            options_set_threads: sym!("TfLiteInterpreterOptionsSetNumThreads"),
            options_add_delegate: sym!("TfLiteInterpreterOptionsAddDelegate"),
            options_set_error_reporter: sym!("TfLiteInterpreterOptionsSetErrorReporter"),
            interpreter_create: sym!("TfLiteInterpreterCreate"),
            interpreter_delete: sym!("TfLiteInterpreterDelete"),
            allocate: sym!("TfLiteInterpreterAllocateTensors"),
            invoke: sym!("TfLiteInterpreterInvoke"),
            input_count: sym!("TfLiteInterpreterGetInputTensorCount"),
            input_tensor: sym!("TfLiteInterpreterGetInputTensor"),
            output_count: sym!("TfLiteInterpreterGetOutputTensorCount"),
            output_tensor: sym!("TfLiteInterpreterGetOutputTensor"),
            tensor_type: sym!("TfLiteTensorType"),
            tensor_num_dims: sym!("TfLiteTensorNumDims"),
            tensor_dim: sym!("TfLiteTensorDim"),
            tensor_byte_size: sym!("TfLiteTensorByteSize"),
            tensor_data: sym!("TfLiteTensorData"),
            tensor_quant: sym!("TfLiteTensorQuantizationParams"),
            xnnpack_create: opt_sym!("TfLiteXNNPackDelegateCreate"),
            xnnpack_delete: opt_sym!("TfLiteXNNPackDelegateDelete"),
            path: path.to_string(),
            _lib: lib,
        })
    }

    fn version_string(&self) -> String {
        // SAFETY: TfLiteVersion returns a static NUL-terminated string.
        unsafe { cstr_lossy((self.version)()) }
    }
}

/// # Safety
/// `p` is null or a valid NUL-terminated string.
unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: per the contract above.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

type ApiCache = Mutex<HashMap<String, Result<Arc<Api>, String>>>;

/// Load (once per process and path) the TFLite C library: `path` if given, else the usual
/// names through the dynamic loader's search path.
fn api(path: Option<&Path>) -> Result<Arc<Api>, String> {
    static CACHE: OnceLock<ApiCache> = OnceLock::new();
    let names: Vec<String> = match path {
        Some(p) => vec![p.display().to_string()],
        None => DEFAULT_LIBRARY_NAMES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let mut reasons = Vec::new();
    for name in &names {
        let entry = cache
            .entry(name.clone())
            .or_insert_with(|| Api::open(name).map(Arc::new));
        match entry {
            Ok(api) => return Ok(api.clone()),
            Err(e) => reasons.push(e.clone()),
        }
    }
    Err(reasons.join("; "))
}

/// Version and path of the TFLite C library that would be used, for `emotiond check`.
pub fn library_info(path: Option<&Path>) -> Result<(String, String), String> {
    let api = api(path)?;
    Ok((api.version_string(), api.path.clone()))
}

/// Which hardware delegate a TFLite engine asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Delegate {
    /// TFLite's own CPU kernels.
    None,
    /// XNNPACK, built into the TFLite C library, with this many threads.
    Xnnpack,
    /// An external delegate library with `tflite_plugin_create_delegate`, and its options.
    External {
        library: PathBuf,
        options: Vec<(String, String)>,
    },
}

impl Delegate {
    /// Short name for summaries and logs: "xnnpack", or the external library's file stem
    /// ("libedgetpu.so.1" → "edgetpu").
    pub fn label(&self) -> Option<String> {
        match self {
            Delegate::None => None,
            Delegate::Xnnpack => Some("xnnpack".into()),
            Delegate::External { library, .. } => {
                let f = library
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let stem = f.split(".so").next().unwrap_or(&f);
                let stem = stem.strip_prefix("lib").unwrap_or(stem);
                let stem = stem.strip_suffix("_delegate").unwrap_or(stem);
                Some(if stem.is_empty() { f } else { stem.to_string() })
            }
        }
    }
}

/// An external delegate library, loaded with its plugin entry points.
struct ExternalDelegate {
    destroy: unsafe extern "C" fn(*mut TfLiteDelegate),
    delegate: *mut TfLiteDelegate,
    _lib: Library,
}

/// Collects messages from TFLite's error reporters (bounded) so failures carry a reason.
#[derive(Default)]
struct Messages(Mutex<Vec<String>>);

impl Messages {
    fn push(&self, m: String) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() >= 16 {
            v.remove(0);
        }
        v.push(m.trim_end().to_string());
    }
    fn take(&self) -> String {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let s = v.join("; ");
        v.clear();
        s
    }
}

unsafe extern "C" fn report_error(user: *mut c_void, fmt: *const c_char, args: *mut c_void) {
    if user.is_null() || fmt.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 512];
    // SAFETY: `fmt` and `args` come from TFLite's reporter, which passes a printf format and
    // its va_list; vsnprintf writes at most buf.len() bytes including the NUL.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, args) };
    let text = if n < 0 {
        // SAFETY: fmt is a NUL-terminated format string.
        unsafe { cstr_lossy(fmt) }
    } else {
        // SAFETY: vsnprintf NUL-terminated the buffer.
        unsafe { cstr_lossy(buf.as_ptr()) }
    };
    // SAFETY: `user` is the `Messages` boxed by the engine under construction, which outlives
    // the interpreter.
    let msgs = unsafe { &*(user as *const Messages) };
    msgs.push(text);
}

thread_local! {
    static PLUGIN_ERRORS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

unsafe extern "C" fn report_plugin_error(msg: *const c_char) {
    // SAFETY: the plugin passes a NUL-terminated message.
    let m = unsafe { cstr_lossy(msg) };
    PLUGIN_ERRORS.with(|e| {
        let mut e = e.borrow_mut();
        if e.len() < 16 {
            e.push(m);
        }
    });
}

impl ExternalDelegate {
    fn create(library: &Path, options: &[(String, String)]) -> Result<ExternalDelegate, String> {
        let lp = library.display();
        // SAFETY: loading the delegate library runs its initialisers.
        let lib = unsafe { Library::new(library) }.map_err(|e| e.to_string())?;
        type Create = unsafe extern "C" fn(
            *const *const c_char,
            *const *const c_char,
            usize,
            Option<PluginErrorReporter>,
        ) -> *mut TfLiteDelegate;
        type Destroy = unsafe extern "C" fn(*mut TfLiteDelegate);
        // SAFETY: the TFLite external-delegate plugin ABI (delegates/external).
        let create: Create = *unsafe { lib.get(b"tflite_plugin_create_delegate\0") }
            .map_err(|e| format!("{lp} is not a TFLite delegate plugin: {e}"))?;
        // SAFETY: as above.
        let destroy: Destroy = *unsafe { lib.get(b"tflite_plugin_destroy_delegate\0") }
            .map_err(|e| format!("{lp} is not a TFLite delegate plugin: {e}"))?;
        let keys = options
            .iter()
            .map(|(k, _)| CString::new(k.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "delegate option keys must not contain NUL".to_string())?;
        let vals = options
            .iter()
            .map(|(_, v)| CString::new(v.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "delegate option values must not contain NUL".to_string())?;
        let kp: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr()).collect();
        let vp: Vec<*const c_char> = vals.iter().map(|v| v.as_ptr()).collect();
        PLUGIN_ERRORS.with(|e| e.borrow_mut().clear());
        // SAFETY: key/value arrays hold `options.len()` valid C strings that live across the
        // call; the reporter is a plain function.
        let delegate = unsafe {
            create(
                kp.as_ptr(),
                vp.as_ptr(),
                options.len(),
                Some(report_plugin_error),
            )
        };
        if delegate.is_null() {
            let why = PLUGIN_ERRORS.with(|e| e.borrow_mut().join("; "));
            return Err(format!(
                "{lp}: tflite_plugin_create_delegate returned no delegate{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                }
            ));
        }
        Ok(ExternalDelegate {
            destroy,
            delegate,
            _lib: lib,
        })
    }
}

impl Drop for ExternalDelegate {
    fn drop(&mut self) {
        // SAFETY: created by this plugin's create function and not yet destroyed; the
        // interpreter using it has been deleted first (see TfLiteEngine's Drop).
        unsafe { (self.destroy)(self.delegate) }
    }
}

enum DelegateHandle {
    None,
    Xnnpack(*mut TfLiteDelegate),
    External(ExternalDelegate),
}

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
    /// The C library; `None` tries [`DEFAULT_LIBRARY_NAMES`].
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
