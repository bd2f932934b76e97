//! The pure-Rust engine: `tract-tflite` on `.tflite` files (fp32 rewrites; see
//! `models/tools/rewrite_for_tract.py` for why).

use crate::engine::{Engine, EngineError, EngineKind, Tensor};
use tract_tflite::prelude::*;

const NAME: &str = "tract";

pub struct TractEngine {
    model: String,
    plan: TypedRunnableModel<TypedModel>,
    input_shape: Vec<usize>,
}

impl TractEngine {
    pub fn load(model_name: &str, bytes: &[u8]) -> Result<TractEngine, EngineError> {
        let load_err = |e: TractError| EngineError::Load {
            engine: NAME,
            model: model_name.to_string(),
            reason: format!("{e:#}"),
        };
        let mut reader = bytes;
        let model = tract_tflite::tflite()
            .model_for_read(&mut reader)
            .map_err(load_err)?;
        let inputs = model.input_outlets().map_err(load_err)?;
        if inputs.len() != 1 {
            return Err(EngineError::Load {
                engine: NAME,
                model: model_name.to_string(),
                reason: format!("expected one input, the model has {}", inputs.len()),
            });
        }
        let fact = model.outlet_fact(inputs[0]).map_err(load_err)?;
        let input_shape = fact
            .shape
            .as_concrete()
            .ok_or_else(|| EngineError::Load {
                engine: NAME,
                model: model_name.to_string(),
                reason: format!("input shape {:?} is not fixed", fact.shape),
            })?
            .to_vec();
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(load_err)?;
        Ok(TractEngine {
            model: model_name.to_string(),
            plan,
            input_shape,
        })
    }
}

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn run(&mut self, input: &[f32], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        let want: usize = self.input_shape.iter().product();
        if input.len() != want {
            return Err(EngineError::InputSize {
                engine: NAME,
                model: self.model.clone(),
                got: input.len(),
                want: self.input_shape.clone(),
            });
        }
        let run_err = |e: TractError| EngineError::Run {
            engine: NAME,
            model: self.model.clone(),
            reason: format!("{e:#}"),
        };
        let t =
            tract_tflite::prelude::Tensor::from_shape(&self.input_shape, input).map_err(run_err)?;
        let result = self.plan.run(tvec!(t.into_tvalue())).map_err(run_err)?;
        outputs.resize_with(result.len(), Tensor::default);
        for (out, value) in outputs.iter_mut().zip(result.iter()) {
            let view = value.to_array_view::<f32>().map_err(run_err)?;
            out.shape.clear();
            out.shape.extend_from_slice(view.shape());
            out.data.clear();
            out.data.extend(view.iter().copied());
        }
        Ok(())
    }
}
