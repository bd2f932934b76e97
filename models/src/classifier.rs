//! Expression classification driven by an `expression` manifest: crop the face (square,
//! margin), fill the input, run the engine, softmax if needed, and map the model's labels
//! onto the product's seven emotions.
#![forbid(unsafe_code)]

use crate::ModelError;
use crate::engine::{Engine, Tensor};
use crate::geometry::BBox;
use crate::manifest::{CropSpec, EMOTIONS, InputSpec, Task};
use crate::package::ModelPackage;
use crate::preprocess::{Region, fill_tensor};
use image::RgbImage;
use std::time::{Duration, Instant};

/// Where the last [`ExpressionClassifier::classify`] spent its time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClassifyStages {
    /// Crop (square, margin) + resize + colour/grey + normalise, one pass into the tensor.
    pub preprocess: Duration,
    /// The engine's run (for a supervised engine: the hand-off to its thread included).
    pub invoke: Duration,
    /// Softmax and the mapping onto the seven emotions.
    pub postprocess: Duration,
}

/// Probabilities in the order of [`EMOTIONS`].
pub type Emotions = [f32; EMOTIONS.len()];

pub struct ExpressionClassifier {
    engine: Box<dyn Engine>,
    input_spec: InputSpec,
    crop: CropSpec,
    map: Vec<usize>,
    output: usize,
    softmax_applied: bool,
    input: Vec<f32>,
    outputs: Vec<Tensor>,
    /// Boxed (once, at construction) to keep the classifier small: callers hold it inline in
    /// enums next to much smaller variants.
    stages: Box<ClassifyStages>,
}

/// The pixel region a classifier sees for a face box (normalised) in a `w`×`h` image.
pub fn crop_region(face: &BBox, crop: &CropSpec, w: u32, h: u32) -> Region {
    let (bw, bh) = (face.w * w as f32, face.h * h as f32);
    let (cx, cy) = (face.x * w as f32 + bw / 2.0, face.y * h as f32 + bh / 2.0);
    let (mut rw, mut rh) = if crop.square {
        let s = bw.max(bh);
        (s, s)
    } else {
        (bw, bh)
    };
    rw *= 1.0 + 2.0 * crop.margin;
    rh *= 1.0 + 2.0 * crop.margin;
    Region {
        x: cx - rw / 2.0,
        y: cy - rh / 2.0,
        w: rw,
        h: rh,
    }
}

/// The emotion probabilities of a classifier's output `output` (label `j` of the model is
/// emotion `map[j]`), softmaxed unless the model did; non-finite values count as 0.
pub(crate) fn emotion_probs(
    outputs: &mut [Tensor],
    output: usize,
    map: &[usize],
    softmax_applied: bool,
) -> Result<Emotions, ModelError> {
    let out = outputs
        .get_mut(output)
        .ok_or_else(|| ModelError::Manifest(format!("model has no output {output}")))?;
    if out.data.len() != map.len() {
        return Err(ModelError::Manifest(format!(
            "output has {} values for {} labels",
            out.data.len(),
            map.len()
        )));
    }
    if !softmax_applied {
        softmax(&mut out.data);
    }
    let mut probs = [0.0; EMOTIONS.len()];
    for (p, &i) in out.data.iter().zip(map) {
        probs[i] = if p.is_finite() { *p } else { 0.0 };
    }
    Ok(probs)
}

pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        for x in v.iter_mut() {
            *x /= sum;
        }
    }
}

impl ExpressionClassifier {
    pub fn new(
        pkg: &ModelPackage,
        engine: Box<dyn Engine>,
    ) -> Result<ExpressionClassifier, ModelError> {
        let m = &pkg.manifest;
        let wrong = || ModelError::WrongTask {
            model: pkg.id(),
            want: Task::Expression,
            got: m.task,
        };
        if m.task != Task::Expression {
            return Err(wrong());
        }
        crate::detector::check_shape(pkg, engine.as_ref())?;
        let c = m.classifier.as_ref().ok_or_else(wrong)?;
        let map = m
            .emotion_map()
            .map_err(|e| ModelError::Manifest(e.to_string()))?;
        Ok(ExpressionClassifier {
            engine,
            input_spec: m.input.clone(),
            crop: m.crop.clone(),
            map,
            output: c.output,
            softmax_applied: c.softmax_applied,
            input: Vec::new(),
            outputs: Vec::new(),
            stages: Box::default(),
        })
    }

    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Where the last classification spent its time.
    pub fn stages(&self) -> ClassifyStages {
        *self.stages
    }

    /// Emotion probabilities for the face at `face` (normalised box) in `img`. Allocates
    /// nothing in pre- and post-processing once its buffers have the model's sizes.
    pub fn classify(&mut self, img: &RgbImage, face: &BBox) -> Result<Emotions, ModelError> {
        let t0 = Instant::now();
        let region = crop_region(face, &self.crop, img.width(), img.height());
        fill_tensor(img, region, &self.input_spec, &mut self.input);
        let t1 = Instant::now();
        self.engine.run(&self.input, &mut self.outputs)?;
        let t2 = Instant::now();
        let probs = emotion_probs(
            &mut self.outputs,
            self.output,
            &self.map,
            self.softmax_applied,
        );
        *self.stages = ClassifyStages {
            preprocess: t1 - t0,
            invoke: t2 - t1,
            postprocess: t2.elapsed(),
        };
        probs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_is_square_with_margin_around_the_centre() {
        let face = BBox {
            x: 0.25,
            y: 0.25,
            w: 0.25,
            h: 0.5,
        };
        let r = crop_region(
            &face,
            &CropSpec {
                square: true,
                margin: 0.1,
            },
            400,
            200,
        );
        // box is 100x100 px at (100,50); square side 100, +10% each side -> 120
        assert!((r.w - 120.0).abs() < 1e-3 && (r.h - 120.0).abs() < 1e-3);
        assert!((r.x - 90.0).abs() < 1e-3 && (r.y - 40.0).abs() < 1e-3);
        let r = crop_region(
            &face,
            &CropSpec {
                square: true,
                margin: 0.0,
            },
            400,
            400,
        );
        assert!((r.w - 200.0).abs() < 1e-3 && (r.x - 50.0).abs() < 1e-3);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut v = [1.0, 2.0, 3.0, 9.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[3] > 0.99 && v[0] < v[1] && v[1] < v[2]);
    }
}
