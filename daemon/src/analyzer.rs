//! Models loaded and ready: one call turns an image into faces with emotion probabilities.

use crate::config::ModelsConfig;
use crate::summary::ModelInfo;
use anyhow::{Context, Result};
use emotiond_models::{
    BBox, Emotions, Engine, ExpressionClassifier, FaceDetector, ModelPackage, builtin, runtime,
};
use image::RgbImage;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
    /// Raw (unsmoothed) probabilities, order of `EMOTIONS`.
    #[serde(serialize_with = "ser_emotions")]
    pub emotions: Emotions,
}

fn ser_emotions<S: serde::Serializer>(e: &Emotions, s: S) -> Result<S::Ok, S::Error> {
    crate::summary::PerEmotion::from_array(*e).serialize(s)
}

#[derive(Debug, Clone, Default)]
pub struct FrameResult {
    pub faces: Vec<Face>,
    pub detect_ms: f32,
    pub classify_ms: f32,
}

pub struct Analyzer {
    detector: FaceDetector,
    classifier: ExpressionClassifier,
    min_face_px: u32,
    detector_id: String,
    expression_id: String,
}

/// Load `builtin:<name>` or a package folder.
pub fn load_package(spec: &str) -> Result<ModelPackage> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        let known: Vec<_> = builtin::names().collect();
        builtin::load(name)
            .with_context(|| format!("no built-in model package {name:?} (built in: {known:?})"))?
            .with_context(|| format!("built-in model package {name}"))
    } else {
        Ok(ModelPackage::load_dir(Path::new(spec))?)
    }
}

impl Analyzer {
    pub fn load(cfg: &ModelsConfig) -> Result<Analyzer> {
        let det = load_package(&cfg.detector)?;
        let exp = load_package(&cfg.expression)?;
        let runtimes = cfg.runtimes();
        let mut engines = Vec::new();
        for (pkg, settings) in [(&det, &cfg.detector_engine), (&exp, &cfg.expression_engine)] {
            let kind = settings.engine.unwrap_or(cfg.engine);
            let e = runtime::supervised(
                pkg,
                kind,
                settings,
                &runtimes,
                cfg.verify_test_vectors,
                cfg.watchdog.clone(),
            )
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("loading model {} from {}", pkg.id(), pkg.origin))?;
            log::info!(
                "model {} runs on {}{}",
                pkg.id(),
                e.kind(),
                e.accelerator().map(|a| format!("+{a}")).unwrap_or_default()
            );
            engines.push(Box::new(e) as Box<dyn Engine>);
        }
        let exp_engine = engines.pop().context("engine")?;
        let det_engine = engines.pop().context("engine")?;
        let mut detector = FaceDetector::new(&det, det_engine)?;
        detector.max_faces = cfg.max_faces;
        let classifier = ExpressionClassifier::new(&exp, exp_engine)?;
        Ok(Analyzer {
            detector,
            classifier,
            min_face_px: cfg.min_face_px,
            detector_id: det.id(),
            expression_id: exp.id(),
        })
    }

    /// The detector's package, engine and watchdog counters now.
    pub fn detector_info(&self) -> ModelInfo {
        ModelInfo::of(self.detector_id.clone(), self.detector.engine())
    }

    pub fn expression_info(&self) -> ModelInfo {
        ModelInfo::of(self.expression_id.clone(), self.classifier.engine())
    }

    pub fn analyze(&mut self, img: &RgbImage) -> Result<FrameResult> {
        let t0 = Instant::now();
        let dets = self.detector.detect(img)?;
        let t1 = Instant::now();
        let mut faces = Vec::with_capacity(dets.len());
        for d in dets {
            let short = (d.bbox.w * img.width() as f32).min(d.bbox.h * img.height() as f32);
            if short < self.min_face_px as f32 {
                continue;
            }
            let emotions = self.classifier.classify(img, &d.bbox)?;
            faces.push(Face {
                bbox: d.bbox,
                score: d.score,
                emotions,
            });
        }
        let t2 = Instant::now();
        Ok(FrameResult {
            faces,
            detect_ms: (t1 - t0).as_secs_f32() * 1e3,
            classify_ms: (t2 - t1).as_secs_f32() * 1e3,
        })
    }
}
