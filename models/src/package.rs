//! Running a package's test vectors on an engine. The package itself (manifest, files,
//! hashes, vectors loaded) is [`emotiond_wire::package`], re-exported here.
#![forbid(unsafe_code)]

use crate::engine::{Engine, EngineError, Tensor};
pub use emotiond_wire::package::*;

/// Why a package's test vectors fail on an engine.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("model {model}: test vector {vector} ({note}) output {output}: {problem}")]
    Mismatch {
        model: String,
        vector: usize,
        note: String,
        output: usize,
        problem: String,
    },
}

/// Test vectors on an engine: every engine must reproduce them before a model is used.
pub trait CheckVectors {
    /// Run every test vector on `engine`; the first disagreement beyond the tolerance is
    /// an error naming the vector, output and element. Returns the largest difference seen.
    fn check_vectors(&self, engine: &mut dyn Engine) -> Result<f32, VectorError>;
}

impl CheckVectors for ModelPackage {
    fn check_vectors(&self, engine: &mut dyn Engine) -> Result<f32, VectorError> {
        let mut outs: Vec<Tensor> = Vec::new();
        let mut worst = 0.0f32;
        for (vi, v) in self.vectors.iter().enumerate() {
            if v.extra_inputs.is_empty() {
                engine.run(&v.input, &mut outs)?;
            } else {
                let mut all: Vec<&[f32]> = vec![&v.input];
                all.extend(v.extra_inputs.iter().map(Vec::as_slice));
                engine.run_multi(&all, &mut outs)?;
            }
            let mismatch = |output: usize, problem: String| VectorError::Mismatch {
                model: self.id(),
                vector: vi,
                note: v.note.clone(),
                output,
                problem,
            };
            if outs.len() != v.outputs.len() {
                return Err(mismatch(
                    0,
                    format!(
                        "engine gave {} outputs, vector has {}",
                        outs.len(),
                        v.outputs.len()
                    ),
                ));
            }
            for (oi, (got, want)) in outs.iter().zip(&v.outputs).enumerate() {
                if got.data.len() != want.len() {
                    return Err(mismatch(
                        oi,
                        format!("{} values, expected {}", got.data.len(), want.len()),
                    ));
                }
                for (i, (g, w)) in got.data.iter().zip(want).enumerate() {
                    let d = (g - w).abs();
                    if d.is_nan() || d > v.atol {
                        return Err(mismatch(
                            oi,
                            format!("element {i} is {g}, expected {w} (tolerance {})", v.atol),
                        ));
                    }
                    worst = worst.max(d);
                }
            }
        }
        Ok(worst)
    }
}
