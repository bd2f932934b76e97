//! Hardware delegates: which one an engine asks for ([`Delegate`]), and external delegate
//! libraries loaded through the TFLite plugin entry points.

use super::api::{TfLiteDelegate, cstr_lossy};
use libloading::Library;
use std::ffi::{CString, c_char};
use std::path::{Path, PathBuf};

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
pub(super) struct ExternalDelegate {
    destroy: unsafe extern "C" fn(*mut TfLiteDelegate),
    pub(super) delegate: *mut TfLiteDelegate,
    _lib: Library,
}

type PluginErrorReporter = unsafe extern "C" fn(*const c_char);

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
    pub(super) fn create(
        library: &Path,
        options: &[(String, String)],
    ) -> Result<ExternalDelegate, String> {
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

pub(super) enum DelegateHandle {
    None,
    Xnnpack(*mut TfLiteDelegate),
    External(ExternalDelegate),
}
