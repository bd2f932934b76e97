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
//! The library and its C API are in `api.rs`, hardware delegates in `delegate.rs`, the
//! engine (interpreter, tensors, quantisation) in `engine.rs`.

mod api;
mod delegate;
mod engine;

pub use api::{DEFAULT_LIBRARY_NAMES, TfLiteDelegate, library_info};
pub use delegate::Delegate;
pub use engine::{TfLiteEngine, TfLiteOptions};
