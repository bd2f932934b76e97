//! The engines bound to C runtimes loaded at run time: the only code in emotiond where
//! `unsafe` is allowed. Every other module of every crate forbids it.
//!
//! - [`tflite`]: the TFLite C API through `libloading` (interpreter, XNNPACK, external
//!   delegates such as Coral's EdgeTPU);
//! - [`ort`]: ONNX Runtime through the `ort` crate (`load-dynamic`), with a pre-flight check
//!   of the library's version.
#![allow(unsafe_code)]

pub mod ort;
pub mod tflite;
