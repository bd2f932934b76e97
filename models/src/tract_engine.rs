//! The pure-Rust engine: `tract-tflite` on `.tflite` files (fp32 rewrites; see
//! `models/tools/rewrite_for_tract.py` for why) and `tract-onnx` on `.onnx` files (the
//! Silero VAD, speech-emotion packages). Which parser is used follows from the file itself
//! (a TFLite flatbuffer carries `TFL3` at byte 4). ONNX models may have several f32 inputs
//! with fixed shapes.
#![forbid(unsafe_code)]

use crate::engine::{Engine, EngineError, EngineKind, Tensor};
use tract_tflite::prelude::*;

const NAME: &str = "tract";

pub struct TractEngine {
    model: String,
    plan: TypedRunnableModel<TypedModel>,
    input_shapes: Vec<Vec<usize>>,
    /// One tensor per input, refilled in place on each run: tract takes its inputs as
    /// shared tensors, and once a run is over (and the session's reference is dropped) we
    /// hold the only reference again, so no input tensor is allocated per run.
    inputs: Vec<Arc<tract_tflite::prelude::Tensor>>,
}

use emotiond_wire::package::is_tflite;

impl TractEngine {
    pub fn load(model_name: &str, bytes: &[u8]) -> Result<TractEngine, EngineError> {
        let load_err = |e: TractError| EngineError::Load {
            engine: NAME,
            model: model_name.to_string(),
            reason: format!("{e:#}"),
        };
        let mut reader = bytes;
        let model: TypedModel = if is_tflite(bytes) {
            tract_tflite::tflite()
                .model_for_read(&mut reader)
                .map_err(load_err)?
        } else {
            use tract_onnx::prelude::Framework as _;
            use tract_onnx::prelude::InferenceModelExt as _;
            let mut m = tract_onnx::onnx()
                .model_for_read(&mut reader)
                .map_err(load_err)?;
            // Exporters may repeat node names (Silero VAD's 16 kHz file names 15 nodes
            // "F0::anon"); tract refuses duplicates when it compacts the graph.
            let mut seen = std::collections::HashSet::new();
            for (id, node) in m.nodes.iter_mut().enumerate() {
                if !seen.insert(node.name.clone()) {
                    node.name = format!("{}#{id}", node.name);
                }
            }
            m.into_typed().map_err(load_err)?
        };
        let inputs = model.input_outlets().map_err(load_err)?.to_vec();
        if inputs.is_empty() {
            return Err(EngineError::Load {
                engine: NAME,
                model: model_name.to_string(),
                reason: "the model has no input".into(),
            });
        }
        let mut input_shapes = Vec::new();
        for i in inputs {
            let fact = model.outlet_fact(i).map_err(load_err)?;
            if fact.datum_type != f32::datum_type() {
                return Err(EngineError::Load {
                    engine: NAME,
                    model: model_name.to_string(),
                    reason: format!(
                        "input {} is {:?}, only f32 inputs are supported",
                        input_shapes.len(),
                        fact.datum_type
                    ),
                });
            }
            input_shapes.push(
                fact.shape
                    .as_concrete()
                    .ok_or_else(|| EngineError::Load {
                        engine: NAME,
                        model: model_name.to_string(),
                        reason: format!("input shape {:?} is not fixed", fact.shape),
                    })?
                    .to_vec(),
            );
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(load_err)?;
        let inputs = input_shapes
            .iter()
            .map(|s| {
                tract_tflite::prelude::Tensor::zero::<f32>(s)
                    .map(Arc::new)
                    .map_err(load_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TractEngine {
            model: model_name.to_string(),
            plan,
            input_shapes,
            inputs,
        })
    }
}

impl Engine for TractEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shapes[0]
    }

    fn run(&mut self, input: &[f32], outputs: &mut Vec<Tensor>) -> Result<(), EngineError> {
        self.run_multi(&[input], outputs)
    }

    fn run_multi(
        &mut self,
        inputs: &[&[f32]],
        outputs: &mut Vec<Tensor>,
    ) -> Result<(), EngineError> {
        if inputs.len() != self.input_shapes.len() {
            return Err(EngineError::Run {
                engine: NAME,
                model: self.model.clone(),
                reason: format!(
                    "{} inputs given, the model has {}",
                    inputs.len(),
                    self.input_shapes.len()
                ),
            });
        }
        let run_err = |e: TractError| EngineError::Run {
            engine: NAME,
            model: self.model.clone(),
            reason: format!("{e:#}"),
        };
        let mut values = TVec::new();
        for ((input, shape), slot) in inputs.iter().zip(&self.input_shapes).zip(&mut self.inputs) {
            let want: usize = shape.iter().product();
            if input.len() != want {
                return Err(EngineError::InputSize {
                    engine: NAME,
                    model: self.model.clone(),
                    got: input.len(),
                    want: shape.clone(),
                });
            }
            match Arc::get_mut(slot) {
                Some(t) => t
                    .as_slice_mut::<f32>()
                    .map_err(run_err)?
                    .copy_from_slice(input),
                // Still shared (a run that failed half-way may keep a reference): a new one.
                None => {
                    *slot = Arc::new(
                        tract_tflite::prelude::Tensor::from_shape(shape, input).map_err(run_err)?,
                    )
                }
            }
            values.push(TValue::Const(Arc::clone(slot)));
        }
        let result = self.plan.run(values).map_err(run_err)?;
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
