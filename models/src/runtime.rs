//! Choosing an engine for a model, with a fallback chain: the configured engine and
//! accelerator first, then the same runtime on plain CPU, then tract, which runs everywhere.
//! Every step that fails (library missing, delegate refusing the graph, test vectors not
//! matching) is logged once with its reason and kept, so summaries and `emotiond check`
//! show which engine actually runs and why it is not the configured one.
#![forbid(unsafe_code)]

use crate::engine::{Engine, EngineError, EngineKind};
use crate::error::{AttemptError, FailureKind, LoadError, Skipped};
use crate::ffi::tflite::{Delegate, TfLiteEngine, TfLiteOptions};
use crate::package::{CheckVectors, ModelPackage};
use crate::supervise::{Supervised, WatchdogConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// TFLite delegate choice in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DelegateKind {
    None,
    Xnnpack,
    /// The library in `external_delegate`, with `external_options`.
    External,
}

/// How one model should run (`[models.detector_engine]`, `[models.expression_engine]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// `tract`, `tflite` or `onnxruntime`; unset = `models.engine`.
    pub engine: Option<EngineKind>,
    /// TFLite only: `none`, `xnnpack` or `external`.
    pub delegate: DelegateKind,
    /// TFLite only: delegate plugin library (e.g. `libedgetpu.so.1`, `libvx_delegate.so`).
    pub external_delegate: Option<PathBuf>,
    /// TFLite only: options handed to the plugin (e.g. `device = "usb"`).
    pub external_options: BTreeMap<String, String>,
    /// ONNX Runtime only: execution providers in order of preference: `cpu`, `cuda`,
    /// `tensorrt`.
    pub providers: Vec<String>,
    /// CPU threads for the runtime (TFLite, XNNPACK, ONNX Runtime intra-op).
    pub threads: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            engine: None,
            delegate: DelegateKind::Xnnpack,
            external_delegate: None,
            external_options: BTreeMap::new(),
            providers: vec!["cpu".into()],
            threads: 1,
        }
    }
}

/// Where the run-time-loaded libraries are (`None` = the loader's usual search).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtimes {
    pub tflite_library: Option<PathBuf>,
    pub onnxruntime_library: Option<PathBuf>,
}

/// One step of a fallback chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Tract,
    TfLite(Delegate),
    OnnxRuntime(Vec<String>),
}

impl Attempt {
    pub fn label(&self) -> String {
        match self {
            Attempt::Tract => "tract".into(),
            Attempt::TfLite(d) => match d.label() {
                Some(l) => format!("tflite+{l}"),
                None => "tflite".into(),
            },
            Attempt::OnnxRuntime(p) => {
                if p.iter().all(|p| p == "cpu") {
                    "onnxruntime".into()
                } else {
                    format!("onnxruntime+{}", p.join(","))
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("delegate = \"external\" needs external_delegate = \"/path/to/plugin.so\"")]
    NoExternalLibrary,
    #[error("unknown ONNX Runtime execution provider {0:?} (known: cpu, cuda, tensorrt)")]
    Provider(String),
}

/// The chain of attempts for `kind` with these settings, best first, tract last.
pub fn chain(kind: EngineKind, s: &EngineSettings) -> Result<Vec<Attempt>, SettingsError> {
    let mut v = Vec::new();
    match kind {
        EngineKind::Tract => {}
        EngineKind::TfLite => {
            match s.delegate {
                DelegateKind::None => {}
                DelegateKind::Xnnpack => v.push(Attempt::TfLite(Delegate::Xnnpack)),
                DelegateKind::External => {
                    let library = s
                        .external_delegate
                        .clone()
                        .ok_or(SettingsError::NoExternalLibrary)?;
                    v.push(Attempt::TfLite(Delegate::External {
                        library,
                        options: s
                            .external_options
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    }));
                }
            }
            v.push(Attempt::TfLite(Delegate::None));
        }
        EngineKind::OnnxRuntime => {
            for p in &s.providers {
                if !["cpu", "cuda", "tensorrt"].contains(&p.as_str()) {
                    return Err(SettingsError::Provider(p.clone()));
                }
            }
            let providers: Vec<String> = if s.providers.is_empty() {
                vec!["cpu".into()]
            } else {
                s.providers.clone()
            };
            let cpu_only = providers.iter().all(|p| p == "cpu");
            v.push(Attempt::OnnxRuntime(providers));
            if !cpu_only {
                v.push(Attempt::OnnxRuntime(vec!["cpu".into()]));
            }
        }
    }
    v.push(Attempt::Tract);
    Ok(v)
}

/// The engine that loaded, where in the chain it is, and why the ones before it did not.
pub struct Built {
    pub engine: Box<dyn Engine>,
    /// Index into the chain of the attempt that succeeded.
    pub level: usize,
    /// `"tflite+xnnpack: <reason>"` for every attempt that failed before it.
    pub skipped: Vec<String>,
}

/// An engine error without its leading engine name (the attempt's label says it), and
/// what kind of failure it is.
fn why(e: EngineError) -> AttemptError {
    let kind = match &e {
        EngineError::Library { .. } => FailureKind::Library,
        EngineError::InputSize { .. } => FailureKind::Shape,
        _ => FailureKind::Engine,
    };
    let s = e.to_string();
    let reason = match s.split_once(": ") {
        Some((engine, rest)) if EngineKind::ALL.iter().any(|k| k.as_str() == engine) => {
            rest.to_string()
        }
        _ => s,
    };
    AttemptError { kind, reason }
}

fn no_file(reason: &str) -> AttemptError {
    AttemptError {
        kind: FailureKind::Engine,
        reason: reason.to_string(),
    }
}

/// Load one attempt (no verification).
pub fn load_engine(
    pkg: &ModelPackage,
    attempt: &Attempt,
    runtimes: &Runtimes,
    threads: usize,
) -> Result<Box<dyn Engine>, AttemptError> {
    let id = pkg.id();
    match attempt {
        Attempt::Tract => {
            if let Some(op) = quantised_onnx_op(&pkg.model) {
                return Err(no_file(&format!(
                    "tract cannot run int8 models: the .onnx holds {op} (quantised, QDQ); \
                     tract-onnx 0.22.5 computes wrong outputs on such graphs and tract-tflite \
                     0.22.5 cannot read int8 .tflite files; run it on the TFLite runtime or \
                     ONNX Runtime, or use the float package{}",
                    float_name(&pkg.manifest.name)
                        .map(|n| format!(" (builtin:{n})"))
                        .unwrap_or_default()
                )));
            }
            crate::tract_engine::TractEngine::load(&id, &pkg.model)
                .map(|e| Box::new(e) as Box<dyn Engine>)
                .map_err(why)
        }
        Attempt::TfLite(delegate) => {
            let bytes = pkg
                .file_for(EngineKind::TfLite)
                .ok_or_else(|| no_file("the package has no .tflite file for the TFLite runtime"))?;
            TfLiteEngine::load(
                &id,
                bytes.clone(),
                &TfLiteOptions {
                    library: runtimes.tflite_library.clone(),
                    delegate: delegate.clone(),
                    threads,
                },
            )
            .map(|e| Box::new(e) as Box<dyn Engine>)
            .map_err(why)
        }
        Attempt::OnnxRuntime(providers) => {
            let bytes = pkg.file_for(EngineKind::OnnxRuntime).ok_or_else(|| {
                no_file("the package has no .onnx file ([files.onnxruntime] in its manifest)")
            })?;
            crate::ffi::ort::OrtEngine::load(
                &id,
                bytes,
                runtimes.onnxruntime_library.as_deref(),
                providers,
                threads,
            )
            .map(|e| Box::new(e) as Box<dyn Engine>)
            .map_err(why)
        }
    }
}

/// The first quantisation operator (QDQ or integer) of an ONNX model, if it has one. tract-onnx
/// 0.22.5 loads such graphs but computes wrong outputs on the shipped int8 packages (fer's
/// mini-Xception: angry 0.54 where TFLite and ONNX Runtime give happy 0.996), so tract
/// refuses them; a .tflite is left to tract-tflite, which refuses int8 files itself.
pub fn quantised_onnx_op(model: &[u8]) -> Option<String> {
    use tract_onnx::prelude::Framework as _;
    if emotiond_wire::package::is_tflite(model) {
        return None;
    }
    let mut r = model;
    let proto = tract_onnx::onnx().proto_model_for_read(&mut r).ok()?;
    const QUANTISED: [&str; 6] = [
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    ];
    proto
        .graph?
        .node
        .iter()
        .find(|n| QUANTISED.contains(&n.op_type.as_str()))
        .map(|n| n.op_type.clone())
}

/// `fer_mini_xception` for `fer_mini_xception_int8`.
fn float_name(name: &str) -> Option<&str> {
    name.strip_suffix("_int8")
        .filter(|n| crate::builtin::names().any(|b| b == *n))
}

/// Walk `attempts` from `start`, loading each (and running the package's test vectors on it
/// when `verify`), until one works. Failures are logged with their reason.
pub fn build(
    pkg: &ModelPackage,
    attempts: &[Attempt],
    start: usize,
    runtimes: &Runtimes,
    threads: usize,
    verify: bool,
) -> Result<Built, LoadError> {
    let mut skipped: Vec<Skipped> = Vec::new();
    for (level, attempt) in attempts.iter().enumerate().skip(start) {
        let label = attempt.label();
        let result = load_engine(pkg, attempt, runtimes, threads).and_then(|mut e| {
            if verify {
                let worst = pkg.check_vectors(e.as_mut()).map_err(|e| AttemptError {
                    kind: FailureKind::TestVectors,
                    reason: format!("test vectors fail: {e}"),
                })?;
                log::info!(
                    "model {} ({}) passes {} test vector(s) on {label} (max diff {worst:.2e})",
                    pkg.id(),
                    pkg.origin,
                    pkg.vectors.len(),
                );
            }
            Ok(e)
        });
        match result {
            Ok(engine) => {
                let skipped: Vec<String> = skipped.iter().map(ToString::to_string).collect();
                if !skipped.is_empty() {
                    log::warn!(
                        "model {}: running on {label} instead of {} ({})",
                        pkg.id(),
                        attempts[start].label(),
                        skipped.join("; ")
                    );
                }
                return Ok(Built {
                    engine,
                    level,
                    skipped,
                });
            }
            Err(error) => {
                log::warn!("model {}: {label} not used: {error}", pkg.id());
                skipped.push(Skipped {
                    attempt: label,
                    error,
                });
            }
        }
    }
    Err(LoadError::NoEngine {
        model: pkg.id(),
        attempts: skipped,
    })
}

/// The engine a pipeline uses for one model: the chain for `kind`/`settings` under the stall
/// watchdog, which rebuilds a stalled engine and walks down the chain when it keeps
/// stalling.
pub fn supervised(
    pkg: &ModelPackage,
    kind: EngineKind,
    settings: &EngineSettings,
    runtimes: &Runtimes,
    verify: bool,
    watchdog: WatchdogConfig,
) -> Result<Supervised, LoadError> {
    let attempts = chain(kind, settings)?;
    let n = attempts.len();
    let pkg = pkg.clone();
    let runtimes = runtimes.clone();
    let threads = settings.threads.max(1);
    let id = pkg.id();
    Supervised::new(
        &id,
        n,
        watchdog,
        Box::new(move |start| build(&pkg, &attempts, start, &runtimes, threads, verify)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_end_in_tract_and_try_cpu_before_it() {
        let s = EngineSettings::default();
        let labels = |k| {
            chain(k, &s)
                .unwrap()
                .iter()
                .map(Attempt::label)
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(EngineKind::Tract), ["tract"]);
        assert_eq!(
            labels(EngineKind::TfLite),
            ["tflite+xnnpack", "tflite", "tract"]
        );
        assert_eq!(labels(EngineKind::OnnxRuntime), ["onnxruntime", "tract"]);
        let s = EngineSettings {
            delegate: DelegateKind::External,
            external_delegate: Some("/usr/lib/libedgetpu.so.1".into()),
            providers: vec!["tensorrt".into(), "cuda".into()],
            ..Default::default()
        };
        let l: Vec<_> = chain(EngineKind::TfLite, &s)
            .unwrap()
            .iter()
            .map(Attempt::label)
            .collect();
        assert_eq!(l, ["tflite+edgetpu", "tflite", "tract"]);
        let l: Vec<_> = chain(EngineKind::OnnxRuntime, &s)
            .unwrap()
            .iter()
            .map(Attempt::label)
            .collect();
        assert_eq!(l, ["onnxruntime+tensorrt,cuda", "onnxruntime", "tract"]);
    }

    #[test]
    fn bad_settings_are_named() {
        let s = EngineSettings {
            delegate: DelegateKind::External,
            ..Default::default()
        };
        assert!(matches!(
            chain(EngineKind::TfLite, &s),
            Err(SettingsError::NoExternalLibrary)
        ));
        let s = EngineSettings {
            providers: vec!["npu".into()],
            ..Default::default()
        };
        assert!(matches!(
            chain(EngineKind::OnnxRuntime, &s),
            Err(SettingsError::Provider(p)) if p == "npu"
        ));
    }

    #[test]
    fn delegate_labels() {
        let ext = |p: &str| Delegate::External {
            library: p.into(),
            options: vec![],
        };
        assert_eq!(ext("/usr/lib/libedgetpu.so.1").label().unwrap(), "edgetpu");
        assert_eq!(ext("libvx_delegate.so").label().unwrap(), "vx");
        assert_eq!(
            ext("/opt/armnn/libarmnnDelegate.so").label().unwrap(),
            "armnnDelegate"
        );
    }
}
