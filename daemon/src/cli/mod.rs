//! The one-shot subcommands: [`analyze`] (files → one JSON line each), [`bench`] (frames/s
//! and per-stage times), [`check`] (the technician's list). `run`, `demo` and `config` are in
//! `main.rs` and [`crate::app`].

pub mod analyze;
pub mod bench;
pub mod check;
pub mod eval;

use crate::config::Config;
use crate::summary::ModelInfo;
use anyhow::Result;
use std::path::Path;

/// The config file, or the built-in defaults when the default path does not exist.
pub fn load_config(path: &Path, explicit: bool) -> Result<Config> {
    if !explicit && !path.exists() {
        log::info!("{} not found: using built-in defaults", path.display());
        return Ok(Config::parse("", path)?);
    }
    Ok(Config::load(path)?)
}

/// One JSON line through a `serde_json::Value`: keys sorted, `f32` written as `f64`, as
/// these lines were when they were built with `serde_json::json!` (same bytes).
pub fn json_line<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// "tflite+xnnpack", "tract", "onnxruntime+cuda".
pub fn engine_label(m: &ModelInfo) -> String {
    match &m.accelerator {
        Some(a) => format!("{}+{a}", m.engine),
        None => m.engine.clone(),
    }
}
