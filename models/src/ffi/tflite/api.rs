//! The TFLite C library: loading it (once per process and path), the C API's symbol table,
//! its opaque types and constants, and the interpreter's error reporter.

use libloading::Library;
use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// Names tried, in order, when no library path is configured.
pub const DEFAULT_LIBRARY_NAMES: &[&str] = &["libtensorflowlite_c.so", "libtensorflowlite_c.so.2"];

#[repr(C)]
pub(super) struct TfLiteModel(c_void);
#[repr(C)]
pub(super) struct TfLiteInterpreterOptions(c_void);
#[repr(C)]
pub(super) struct TfLiteInterpreter(c_void);
#[repr(C)]
pub(super) struct TfLiteTensor(c_void);
/// Opaque here: created and destroyed by the delegate's own library.
#[repr(C)]
pub struct TfLiteDelegate(c_void);

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct QuantParams {
    pub(super) scale: f32,
    pub(super) zero_point: i32,
}

/// `va_list` is passed through untouched to `vsnprintf`; on x86_64, aarch64 and armv7 it
/// travels as one pointer-sized value.
pub(super) type ErrorReporter = unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_void);

unsafe extern "C" {
    fn vsnprintf(buf: *mut c_char, size: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
}

// TfLiteType values used here (tensorflow/lite/c/c_api_types.h).
pub(super) const K_FLOAT32: c_int = 1;
pub(super) const K_UINT8: c_int = 3;
pub(super) const K_INT8: c_int = 9;

/// The C API functions, resolved once per library.
pub(super) struct Api {
    pub(super) version: unsafe extern "C" fn() -> *const c_char,
    pub(super) model_create: unsafe extern "C" fn(*const c_void, usize) -> *mut TfLiteModel,
    pub(super) model_delete: unsafe extern "C" fn(*mut TfLiteModel),
    pub(super) options_create: unsafe extern "C" fn() -> *mut TfLiteInterpreterOptions,
    pub(super) options_delete: unsafe extern "C" fn(*mut TfLiteInterpreterOptions),
    pub(super) options_set_threads: unsafe extern "C" fn(*mut TfLiteInterpreterOptions, i32),
    pub(super) options_add_delegate:
        unsafe extern "C" fn(*mut TfLiteInterpreterOptions, *mut TfLiteDelegate),
    pub(super) options_set_error_reporter:
        unsafe extern "C" fn(*mut TfLiteInterpreterOptions, ErrorReporter, *mut c_void),
    pub(super) interpreter_create: unsafe extern "C" fn(
        *const TfLiteModel,
        *const TfLiteInterpreterOptions,
    ) -> *mut TfLiteInterpreter,
    pub(super) interpreter_delete: unsafe extern "C" fn(*mut TfLiteInterpreter),
    pub(super) allocate: unsafe extern "C" fn(*mut TfLiteInterpreter) -> c_int,
    pub(super) invoke: unsafe extern "C" fn(*mut TfLiteInterpreter) -> c_int,
    pub(super) input_count: unsafe extern "C" fn(*const TfLiteInterpreter) -> i32,
    pub(super) input_tensor:
        unsafe extern "C" fn(*const TfLiteInterpreter, i32) -> *mut TfLiteTensor,
    pub(super) output_count: unsafe extern "C" fn(*const TfLiteInterpreter) -> i32,
    pub(super) output_tensor:
        unsafe extern "C" fn(*const TfLiteInterpreter, i32) -> *const TfLiteTensor,
    pub(super) tensor_type: unsafe extern "C" fn(*const TfLiteTensor) -> c_int,
    pub(super) tensor_num_dims: unsafe extern "C" fn(*const TfLiteTensor) -> i32,
    pub(super) tensor_dim: unsafe extern "C" fn(*const TfLiteTensor, i32) -> i32,
    pub(super) tensor_byte_size: unsafe extern "C" fn(*const TfLiteTensor) -> usize,
    pub(super) tensor_data: unsafe extern "C" fn(*const TfLiteTensor) -> *mut c_void,
    pub(super) tensor_quant: unsafe extern "C" fn(*const TfLiteTensor) -> QuantParams,
    pub(super) xnnpack_create: Option<unsafe extern "C" fn(*const c_void) -> *mut TfLiteDelegate>,
    pub(super) xnnpack_delete: Option<unsafe extern "C" fn(*mut TfLiteDelegate)>,
    pub(super) path: String,
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

    pub(super) fn version_string(&self) -> String {
        // SAFETY: TfLiteVersion returns a static NUL-terminated string.
        unsafe { cstr_lossy((self.version)()) }
    }
}

/// # Safety
/// `p` is null or a valid NUL-terminated string.
pub(super) unsafe fn cstr_lossy(p: *const c_char) -> String {
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
pub(super) fn api(path: Option<&Path>) -> Result<Arc<Api>, String> {
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

/// Collects messages from TFLite's error reporters (bounded) so failures carry a reason.
#[derive(Default)]
pub(super) struct Messages(Mutex<Vec<String>>);

impl Messages {
    fn push(&self, m: String) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() >= 16 {
            v.remove(0);
        }
        v.push(m.trim_end().to_string());
    }
    pub(super) fn take(&self) -> String {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let s = v.join("; ");
        v.clear();
        s
    }
}

pub(super) unsafe extern "C" fn report_error(
    user: *mut c_void,
    fmt: *const c_char,
    args: *mut c_void,
) {
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
