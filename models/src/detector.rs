//! Face detection driven by a `face_detection` manifest: fill the input, run the engine,
//! decode SSD anchors, weighted NMS, and map boxes back to frame coordinates.
#![forbid(unsafe_code)]

use crate::ModelError;
use crate::engine::{Engine, Tensor};
use crate::geometry::{BBox, Detection};
use crate::manifest::{Manifest, SsdDecode, Task};
use crate::package::ModelPackage;
use crate::preprocess::{Region, fill_tensor};
use crate::ssd::{Anchor, Detections, decode_into, generate_anchors, weighted_nms_into};
use image::RgbImage;
use std::time::{Duration, Instant};

/// Where the last [`FaceDetector::detect_faces`] spent its time (`emotiond bench --stages`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DetectStages {
    /// Letterbox + resize (bilinear) + colour + normalise, in one pass into the input tensor.
    pub preprocess: Duration,
    /// The engine's run (for a supervised engine: the hand-off to its thread included).
    pub invoke: Duration,
    /// SSD box decoding (anchors, sigmoid, score threshold).
    pub decode: Duration,
    /// Weighted NMS and the mapping of boxes back to the frame.
    pub nms: Duration,
}

pub struct FaceDetector {
    engine: Box<dyn Engine>,
    manifest: Manifest,
    ssd: SsdDecode,
    anchors: Vec<Anchor>,
    input: Vec<f32>,
    outputs: Vec<Tensor>,
    /// Reused per frame: decoded candidates, NMS order, the faces of the last frame.
    candidates: Detections,
    order: Vec<u32>,
    faces: Detections,
    stages: DetectStages,
    /// At most this many faces per frame, best first.
    pub max_faces: usize,
}

impl FaceDetector {
    pub fn new(pkg: &ModelPackage, engine: Box<dyn Engine>) -> Result<FaceDetector, ModelError> {
        let m = &pkg.manifest;
        if m.task != Task::FaceDetection {
            return Err(ModelError::WrongTask {
                model: pkg.id(),
                want: Task::FaceDetection,
                got: m.task,
            });
        }
        check_shape(pkg, engine.as_ref())?;
        let ssd = m.ssd.clone().ok_or_else(|| ModelError::WrongTask {
            model: pkg.id(),
            want: Task::FaceDetection,
            got: m.task,
        })?;
        let (h, w, _) = m.input.hwc();
        let anchors = generate_anchors(&ssd, w, h);
        if anchors.len() != ssd.num_boxes {
            return Err(ModelError::Manifest(format!(
                "{}: anchors give {} boxes, manifest num_boxes is {}",
                pkg.id(),
                anchors.len(),
                ssd.num_boxes
            )));
        }
        Ok(FaceDetector {
            engine,
            manifest: m.clone(),
            ssd,
            anchors,
            input: Vec::new(),
            outputs: Vec::new(),
            candidates: Detections::default(),
            order: Vec::new(),
            faces: Detections::default(),
            stages: DetectStages::default(),
            max_faces: 8,
        })
    }

    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Where the last detection spent its time.
    pub fn stages(&self) -> DetectStages {
        self.stages
    }

    /// Faces in `img`, boxes normalised to the image, best first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>, ModelError> {
        Ok(self.detect_faces(img)?.to_vec())
    }

    /// [`detect`](Self::detect) into the detector's own reused buffers: the per-frame path.
    /// Pre-processing, decoding and NMS allocate nothing once the buffers have grown to a
    /// frame's size (`models/tests/alloc.rs` checks it); the slice lives until the next call.
    pub fn detect_faces(&mut self, img: &RgbImage) -> Result<&[Detection], ModelError> {
        self.faces.clear();
        if img.width() == 0 || img.height() == 0 {
            return Ok(self.faces.as_slice());
        }
        let t0 = Instant::now();
        let fit = fill_tensor(
            img,
            Region::whole(img),
            &self.manifest.input,
            &mut self.input,
        );
        let t1 = Instant::now();
        self.engine.run(&self.input, &mut self.outputs)?;
        let t2 = Instant::now();
        let get = |i: usize| {
            self.outputs
                .get(i)
                .map(|t| t.data.as_slice())
                .ok_or_else(|| ModelError::Manifest(format!("model has no output {i}")))
        };
        decode_into(
            &self.ssd,
            &self.anchors,
            get(self.ssd.boxes_output)?,
            get(self.ssd.scores_output)?,
            &mut self.candidates,
        )
        .map_err(|e| ModelError::Manifest(e.to_string()))?;
        let t3 = Instant::now();
        weighted_nms_into(
            self.candidates.as_slice(),
            self.ssd.min_suppression_threshold,
            self.max_faces,
            &mut self.order,
            &mut self.faces,
        );
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        for d in self.faces.as_mut_slice() {
            let (x, y) = fit.to_image(d.bbox.x, d.bbox.y);
            let (w, h) = fit.len_to_image(d.bbox.w, d.bbox.h);
            d.bbox = BBox {
                x: x / iw,
                y: y / ih,
                w: w / iw,
                h: h / ih,
            };
            for k in d.keypoints.iter_mut() {
                let (x, y) = fit.to_image(k.0, k.1);
                *k = (x / iw, y / ih);
            }
        }
        self.stages = DetectStages {
            preprocess: t1 - t0,
            invoke: t2 - t1,
            decode: t3 - t2,
            nms: t3.elapsed(),
        };
        Ok(self.faces.as_slice())
    }
}

pub(crate) fn check_shape(pkg: &ModelPackage, engine: &dyn Engine) -> Result<(), ModelError> {
    if engine.input_shape() != pkg.manifest.input.shape.as_slice() {
        return Err(ModelError::Shape {
            model: pkg.id(),
            manifest: pkg.manifest.input.shape.clone(),
            engine: engine.input_shape().to_vec(),
        });
    }
    Ok(())
}
