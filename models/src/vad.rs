//! Voice activity: a `voice_activity` package (Silero VAD) run chunk by chunk with its
//! recurrent state carried from one call to the next, or, when no engine runs the model, an
//! energy gate, which says so (`fallback`) wherever the VAD is reported.
#![forbid(unsafe_code)]

use crate::EngineKind;
use crate::ModelError;
use crate::engine::{Engine, Tensor};
use crate::manifest::{Task, VadSpec};
use crate::package::ModelPackage;
use crate::runtime::{EngineSettings, Runtimes, build, chain};

/// The model with its state.
pub struct SileroVad {
    engine: Box<dyn Engine>,
    spec: VadSpec,
    /// The last `context` samples of the previous chunk (zeros at the start).
    context: Vec<f32>,
    state: Vec<f32>,
    input: Vec<f32>,
    outputs: Vec<Tensor>,
}

impl SileroVad {
    pub fn new(pkg: &ModelPackage, engine: Box<dyn Engine>) -> Result<SileroVad, ModelError> {
        let m = &pkg.manifest;
        let spec = match (&m.vad, m.task) {
            (Some(v), Task::VoiceActivity) => v.clone(),
            _ => {
                return Err(ModelError::WrongTask {
                    model: pkg.id(),
                    want: Task::VoiceActivity,
                    got: m.task,
                });
            }
        };
        if engine.input_shape() != m.input.shape.as_slice() {
            return Err(ModelError::Manifest(format!(
                "{}: manifest input shape {:?}, model file has {:?}",
                pkg.id(),
                m.input.shape,
                engine.input_shape()
            )));
        }
        let n_state = spec.state_shape.iter().product();
        Ok(SileroVad {
            engine,
            context: vec![0.0; spec.context],
            state: vec![0.0; n_state],
            input: Vec::with_capacity(spec.context + spec.chunk),
            outputs: Vec::new(),
            spec,
        })
    }

    /// Samples per call (at 16 kHz).
    pub fn chunk_len(&self) -> usize {
        self.spec.chunk
    }

    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Forget the state (a new stream).
    pub fn reset(&mut self) {
        self.context.iter_mut().for_each(|x| *x = 0.0);
        self.state.iter_mut().for_each(|x| *x = 0.0);
    }

    /// Speech probability of the next `chunk_len` samples (float, −1..1).
    pub fn prob(&mut self, chunk: &[f32]) -> Result<f32, ModelError> {
        if chunk.len() != self.spec.chunk {
            return Err(ModelError::Manifest(format!(
                "VAD chunk of {} samples, the model takes {}",
                chunk.len(),
                self.spec.chunk
            )));
        }
        self.input.clear();
        self.input.extend_from_slice(&self.context);
        self.input.extend_from_slice(chunk);
        self.engine
            .run_multi(&[&self.input, &self.state], &mut self.outputs)?;
        let p = self
            .outputs
            .get(self.spec.prob_output)
            .and_then(|t| t.data.first().copied())
            .ok_or_else(|| ModelError::Manifest("VAD model gave no probability".into()))?;
        let st = self
            .outputs
            .get(self.spec.state_output)
            .ok_or_else(|| ModelError::Manifest("VAD model gave no state".into()))?;
        if st.data.len() != self.state.len() {
            return Err(ModelError::Manifest(format!(
                "VAD state output has {} values, vad.state_shape needs {}",
                st.data.len(),
                self.state.len()
            )));
        }
        self.state.copy_from_slice(&st.data);
        let c = self.spec.context;
        if c > 0 {
            self.context.copy_from_slice(&chunk[chunk.len() - c..]);
        }
        Ok(if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        })
    }
}

/// Level in dBFS (RMS relative to full scale; −120 for digital silence).
pub fn dbfs(x: &[f32]) -> f32 {
    if x.is_empty() {
        return -120.0;
    }
    let ms = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
    if ms <= 1e-12 {
        -120.0
    } else {
        (10.0 * ms.log10()) as f32
    }
}

/// The fallback: a chunk is speech when its level is above a threshold. It cannot tell speech
/// from other sound (a fan, music, traffic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyGate {
    pub threshold_dbfs: f32,
}

impl EnergyGate {
    /// A probability-like value: 0.5 at the threshold, a logistic of slope 1/2 dB.
    pub fn prob(&self, chunk: &[f32]) -> f32 {
        let d = dbfs(chunk) - self.threshold_dbfs;
        1.0 / (1.0 + (-d / 2.0).exp())
    }
}

/// What decides speech, as loaded.
pub enum VoiceActivity {
    Model(Box<SileroVad>),
    Energy(EnergyGate),
}

/// For summaries and `emotiond check`.
#[derive(Debug, Clone, PartialEq)]
pub struct VadInfo {
    /// `name@version`, or `energy_gate` for the fallback.
    pub id: String,
    /// `tract`, `onnxruntime`, or `energy`.
    pub engine: String,
    /// Each engine skipped and why; for the energy gate also that the model does not run.
    pub fallback: Option<String>,
}

pub struct Vad {
    pub activity: VoiceActivity,
    pub info: VadInfo,
}

/// Samples per VAD call (the model's chunk; the energy gate uses the same 32 ms).
pub const CHUNK: usize = 512;

impl Vad {
    pub fn energy(threshold_dbfs: f32, why: String) -> Vad {
        log::warn!("voice activity: energy gate at {threshold_dbfs} dBFS ({why})");
        Vad {
            activity: VoiceActivity::Energy(EnergyGate { threshold_dbfs }),
            info: VadInfo {
                id: "energy_gate".into(),
                engine: "energy".into(),
                fallback: Some(format!(
                    "energy gate at {threshold_dbfs} dBFS instead of the VAD model: {why}"
                )),
            },
        }
    }

    /// The package on the engine chain for `kind` (test vectors checked when `verify`), else
    /// the energy gate with the reasons.
    pub fn load(
        pkg: Result<ModelPackage, String>,
        kind: EngineKind,
        settings: &EngineSettings,
        runtimes: &Runtimes,
        verify: bool,
        energy_dbfs: f32,
    ) -> Vad {
        let pkg = match pkg {
            Ok(p) => p,
            Err(e) => return Vad::energy(energy_dbfs, e),
        };
        let attempts = match chain(kind, settings) {
            Ok(a) => a,
            Err(e) => return Vad::energy(energy_dbfs, e.to_string()),
        };
        let built = match build(
            &pkg,
            &attempts,
            0,
            runtimes,
            settings.threads.max(1),
            verify,
        ) {
            Ok(b) => b,
            Err(e) => return Vad::energy(energy_dbfs, e.to_string()),
        };
        let engine = built.engine.kind().to_string();
        match SileroVad::new(&pkg, built.engine) {
            Ok(v) if v.chunk_len() == CHUNK => Vad {
                activity: VoiceActivity::Model(Box::new(v)),
                info: VadInfo {
                    id: pkg.id(),
                    engine,
                    fallback: (!built.skipped.is_empty()).then(|| built.skipped.join("; ")),
                },
            },
            Ok(v) => Vad::energy(
                energy_dbfs,
                format!(
                    "{}: chunks of {} samples, the pipeline feeds {CHUNK}",
                    pkg.id(),
                    v.chunk_len()
                ),
            ),
            Err(e) => Vad::energy(energy_dbfs, e.to_string()),
        }
    }

    /// Speech probability of one [`CHUNK`] of samples. A model error is logged and the
    /// energy gate answers for that chunk.
    pub fn prob(&mut self, chunk: &[f32], energy_dbfs: f32) -> f32 {
        match &mut self.activity {
            VoiceActivity::Model(m) => match m.prob(chunk) {
                Ok(p) => p,
                Err(e) => {
                    log::error!("VAD: {e}");
                    EnergyGate {
                        threshold_dbfs: energy_dbfs,
                    }
                    .prob(chunk)
                }
            },
            VoiceActivity::Energy(g) => g.prob(chunk),
        }
    }

    pub fn reset(&mut self) {
        if let VoiceActivity::Model(m) = &mut self.activity {
            m.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_the_energy_gate() {
        assert_eq!(dbfs(&[0.0; 512]), -120.0);
        let full: Vec<f32> = (0..512)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(dbfs(&full).abs() < 1e-4);
        let g = EnergyGate {
            threshold_dbfs: -40.0,
        };
        let at = |db: f32| vec![10f32.powf(db / 20.0); 512];
        assert!((g.prob(&at(-40.0)) - 0.5).abs() < 1e-3);
        assert!(g.prob(&at(-20.0)) > 0.99);
        assert!(g.prob(&at(-60.0)) < 0.01);
    }

    #[test]
    fn a_package_that_does_not_load_falls_back_to_the_energy_gate_and_says_why() {
        let v = Vad::load(
            Err("no such package".into()),
            EngineKind::Tract,
            &EngineSettings::default(),
            &Runtimes::default(),
            true,
            -40.0,
        );
        assert!(matches!(v.activity, VoiceActivity::Energy(_)));
        assert_eq!(v.info.engine, "energy");
        let why = v.info.fallback.unwrap();
        assert!(
            why.contains("no such package") && why.contains("-40 dBFS"),
            "{why}"
        );
    }
}
