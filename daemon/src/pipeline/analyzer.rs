//! Models loaded and ready: one call turns an image into faces with emotion probabilities.

use crate::config::ModelsConfig;
use crate::summary::ModelInfo;
use anyhow::{Context, Result};
use emotiond_models::{
    BBox, ClassifyStages, DetectStages, Emotions, Engine, ExpressionClassifier, FaceDetector,
    LoadError, ModelError, ModelPackage, builtin, runtime,
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

/// Where the last frame's time went (`emotiond bench --stages`): the detector's stages and
/// the classifier's, summed over the frame's faces.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameStages {
    pub detect: DetectStages,
    pub classify: ClassifyStages,
    pub faces_classified: usize,
}

pub struct Analyzer {
    detector: FaceDetector,
    classifier: ExpressionClassifier,
    min_face_px: u32,
    detector_id: String,
    expression_id: String,
    stages: FrameStages,
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

/// The engine for `pkg` as configured for its slot (fallback chain, watchdog, test vectors).
fn engine_for(
    pkg: &ModelPackage,
    settings: &emotiond_models::EngineSettings,
    cfg: &ModelsConfig,
    verify: bool,
) -> Result<Box<dyn Engine>, LoadError> {
    let kind = settings.engine.unwrap_or(cfg.engine);
    let e = runtime::supervised(
        pkg,
        kind,
        settings,
        &cfg.runtimes(),
        verify,
        cfg.watchdog.clone(),
    )?;
    log::info!(
        "model {} runs on {}{}",
        pkg.id(),
        e.kind(),
        e.accelerator().map(|a| format!("+{a}")).unwrap_or_default()
    );
    Ok(Box::new(e))
}

/// A face detector for `pkg` with the configured engine.
pub fn build_detector(pkg: &ModelPackage, cfg: &ModelsConfig) -> Result<FaceDetector, ModelError> {
    let e = engine_for(pkg, &cfg.detector_engine, cfg, cfg.verify_test_vectors)?;
    let mut d = FaceDetector::new(pkg, e)?;
    d.max_faces = cfg.max_faces;
    Ok(d)
}

/// An expression classifier for `pkg` with the configured engine.
pub fn build_classifier(
    pkg: &ModelPackage,
    cfg: &ModelsConfig,
) -> Result<ExpressionClassifier, ModelError> {
    let e = engine_for(pkg, &cfg.expression_engine, cfg, cfg.verify_test_vectors)?;
    ExpressionClassifier::new(pkg, e)
}

/// Where a model came from, for the error that stops the daemon.
fn loading(pkg: &ModelPackage) -> String {
    format!("loading model {} from {}", pkg.id(), pkg.origin)
}

impl Analyzer {
    pub fn load(cfg: &ModelsConfig) -> Result<Analyzer> {
        let det = load_package(&cfg.detector)?;
        let exp = load_package(&cfg.expression)?;
        let mut detector = build_detector(&det, cfg).with_context(|| loading(&det))?;
        detector.max_faces = cfg.max_faces;
        let classifier = build_classifier(&exp, cfg).with_context(|| loading(&exp))?;
        Ok(Analyzer {
            detector,
            classifier,
            min_face_px: cfg.min_face_px,
            detector_id: det.id(),
            expression_id: exp.id(),
            stages: FrameStages::default(),
        })
    }

    /// `n` analyzers (at least one) on the same models, one per analysis thread: the first
    /// runs the test vectors when configured, the copies load the same files without.
    pub fn load_copies(cfg: &ModelsConfig, n: usize) -> Result<Vec<Analyzer>> {
        let mut out = vec![Analyzer::load(cfg)?];
        let again = ModelsConfig {
            verify_test_vectors: false,
            ..cfg.clone()
        };
        for _ in 1..n {
            out.push(Analyzer::load(&again)?);
        }
        Ok(out)
    }

    /// Put a new detector in place; returns the old one with its id.
    pub fn swap_detector(&mut self, det: FaceDetector, id: String) -> (FaceDetector, String) {
        (
            std::mem::replace(&mut self.detector, det),
            std::mem::replace(&mut self.detector_id, id),
        )
    }

    pub fn swap_classifier(
        &mut self,
        cls: ExpressionClassifier,
        id: String,
    ) -> (ExpressionClassifier, String) {
        (
            std::mem::replace(&mut self.classifier, cls),
            std::mem::replace(&mut self.expression_id, id),
        )
    }

    /// The detector's package, engine and watchdog counters now.
    pub fn detector_info(&self) -> ModelInfo {
        crate::summary::model_info(self.detector_id.clone(), self.detector.engine())
    }

    pub fn expression_info(&self) -> ModelInfo {
        crate::summary::model_info(self.expression_id.clone(), self.classifier.engine())
    }

    /// Where the last [`analyze`](Self::analyze) spent its time.
    pub fn stages(&self) -> FrameStages {
        self.stages
    }

    pub fn analyze(&mut self, img: &RgbImage) -> Result<FrameResult> {
        let t0 = Instant::now();
        self.stages = FrameStages::default();
        // The detector's reused buffers: no allocation for the detections themselves.
        let dets = self.detector.detect_faces(img)?;
        let t1 = Instant::now();
        let mut faces = Vec::with_capacity(dets.len());
        for d in dets {
            let short = (d.bbox.w * img.width() as f32).min(d.bbox.h * img.height() as f32);
            if short < self.min_face_px as f32 {
                continue;
            }
            let emotions = self.classifier.classify(img, &d.bbox)?;
            let c = self.classifier.stages();
            let sum = &mut self.stages.classify;
            sum.preprocess += c.preprocess;
            sum.invoke += c.invoke;
            sum.postprocess += c.postprocess;
            self.stages.faces_classified += 1;
            faces.push(Face {
                bbox: d.bbox,
                score: d.score,
                emotions,
            });
        }
        let t2 = Instant::now();
        self.stages.detect = self.detector.stages();
        Ok(FrameResult {
            faces,
            detect_ms: (t1 - t0).as_secs_f32() * 1e3,
            classify_ms: (t2 - t1).as_secs_f32() * 1e3,
        })
    }
}
