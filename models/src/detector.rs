//! Face detection driven by a `face_detection` manifest: fill the input, run the engine,
//! decode SSD anchors, weighted NMS, and map boxes back to frame coordinates.
#![forbid(unsafe_code)]

use crate::ModelError;
use crate::engine::{Engine, Tensor};
use crate::geometry::{BBox, Detection};
use crate::manifest::{Manifest, SsdDecode, Task};
use crate::package::ModelPackage;
use crate::preprocess::{Region, fill_tensor};
use crate::ssd::{Anchor, decode, generate_anchors, weighted_nms};
use image::RgbImage;

pub struct FaceDetector {
    engine: Box<dyn Engine>,
    manifest: Manifest,
    ssd: SsdDecode,
    anchors: Vec<Anchor>,
    input: Vec<f32>,
    outputs: Vec<Tensor>,
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
            max_faces: 8,
        })
    }

    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Faces in `img`, boxes normalised to the image, best first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>, ModelError> {
        if img.width() == 0 || img.height() == 0 {
            return Ok(Vec::new());
        }
        let fit = fill_tensor(
            img,
            Region::whole(img),
            &self.manifest.input,
            &mut self.input,
        );
        self.engine.run(&self.input, &mut self.outputs)?;
        let get = |i: usize| {
            self.outputs
                .get(i)
                .map(|t| t.data.as_slice())
                .ok_or_else(|| ModelError::Manifest(format!("model has no output {i}")))
        };
        let raw = decode(
            &self.ssd,
            &self.anchors,
            get(self.ssd.boxes_output)?,
            get(self.ssd.scores_output)?,
        )
        .map_err(|e| ModelError::Manifest(e.to_string()))?;
        let dets = weighted_nms(raw, self.ssd.min_suppression_threshold, self.max_faces);
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        Ok(dets
            .into_iter()
            .map(|d| {
                let (x, y) = fit.to_image(d.bbox.x, d.bbox.y);
                let (w, h) = fit.len_to_image(d.bbox.w, d.bbox.h);
                Detection {
                    bbox: BBox {
                        x: x / iw,
                        y: y / ih,
                        w: w / iw,
                        h: h / ih,
                    },
                    score: d.score,
                    keypoints: d
                        .keypoints
                        .iter()
                        .map(|&(u, v)| {
                            let (x, y) = fit.to_image(u, v);
                            (x / iw, y / ih)
                        })
                        .collect(),
                }
            })
            .collect())
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
