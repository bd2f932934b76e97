//! `emotiond eval PATH [--expression SPEC]... [--crops] [--report DIR] [--boxes FILE]`:
//! expression models measured on a labelled set, detection measured on hand-drawn face boxes.
//!
//! Each image goes through the daemon's own [`Analyzer`] (detector, `min_face_px`,
//! expression model; one `Analyzer` per expression model, so every model sees the faces the
//! daemon would give it), or, with `--crops`, through the expression model alone with the
//! whole image as the face. Printed (one JSON line each, keys sorted): with `--per-face`,
//! one `"kind": "face"` line per labelled face and model first; then one `"kind": "model"`
//! object per model; one `"kind": "comparison"` per pair of models (McNemar's exact test on
//! the faces both scored); with `--boxes`, one `"kind": "detection"` object.
//!
//! [`metrics`] and [`detection`] are pure; [`dataset`] reads the inputs; [`report`] writes
//! the HTML page and its SVG figures.

pub mod dataset;
pub mod detection;
pub mod metrics;
mod output;
pub mod report;

use crate::analyzer::{Analyzer, build_classifier, load_package};
use crate::config::Config;
use anyhow::{Context, Result, bail};
use dataset::Item;
use detection::Rect;
use emotiond_models::{BBox, EMOTIONS, ExpressionClassifier};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use super::json_line;
pub use output::ModelResult;
use output::{comparison, face_lines, model_result};

/// A CSV box and a detected face are the same face from this IoU on.
pub const MATCH_IOU: f64 = 0.3;
/// Detection evaluation's threshold (PASCAL VOC's).
pub const DETECTION_IOU: f64 = 0.5;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The labelled set (folder of label folders, or CSV); optional with `boxes`.
    pub path: Option<PathBuf>,
    /// Expression model specs; empty: the config's.
    pub expression: Vec<String>,
    pub crops: bool,
    pub report: Option<PathBuf>,
    pub boxes: Option<PathBuf>,
    pub per_face: bool,
}

/// What one model made of one labelled image.
#[derive(Debug, Clone)]
enum Outcome {
    /// No face found (or none on the CSV's box); `faces` found elsewhere.
    Missed { faces: usize },
    Scored {
        predicted: usize,
        /// Faces beyond the labelled one.
        extra: usize,
        rect: Rect,
        probability: f32,
    },
}

/// One expression model, as `eval` runs it.
enum Runner {
    Faces(Box<Analyzer>),
    Crops(ExpressionClassifier, f32),
}

struct Model {
    spec: String,
    id: String,
    engine: String,
    runner: Runner,
    /// Per labelled image; `None` for an unreadable one.
    outcomes: Vec<Option<Outcome>>,
    detect_ms: f64,
    classify_ms: f64,
    classified: u64,
}

fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((EMOTIONS.len() - 1, 0.0))
}

fn px(b: &BBox, img: &image::RgbImage) -> Rect {
    let (w, h) = (img.width() as f64, img.height() as f64);
    [
        b.x as f64 * w,
        b.y as f64 * h,
        b.w as f64 * w,
        b.h as f64 * h,
    ]
}

/// The normalised box whose crop (the manifest's margin around it) is the whole image: the
/// image itself for models that crop as they find it, the centred square of the longer side
/// (padded as the classifier pads) for square crops.
fn whole_image_box(margin: f32) -> BBox {
    let s = 1.0 / (1.0 + 2.0 * margin);
    BBox {
        x: (1.0 - s) / 2.0,
        y: (1.0 - s) / 2.0,
        w: s,
        h: s,
    }
}

/// The labelled face among `faces` (pixel boxes): the one overlapping the CSV's box most (at
/// least [`MATCH_IOU`]), or without a box the largest (the first of equals: the detector's
/// order, most confident first).
fn labelled_face(rects: &[Rect], given: Option<&Rect>) -> Option<usize> {
    match given {
        Some(g) => rects
            .iter()
            .map(|r| detection::iou(r, g))
            .enumerate()
            .filter(|(_, o)| *o >= MATCH_IOU)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i),
        None => rects
            .iter()
            .enumerate()
            .rev()
            .max_by(|a, b| (a.1[2] * a.1[3]).total_cmp(&(b.1[2] * b.1[3])))
            .map(|(i, _)| i),
    }
}

impl Model {
    fn load(cfg: &Config, spec: &str, crops: bool) -> Result<Model> {
        let mut models = cfg.models.clone();
        models.expression = spec.to_string();
        let (id, engine, runner) = if crops {
            let pkg = load_package(spec)?;
            let c = build_classifier(&pkg, &models)
                .with_context(|| format!("loading model {} from {}", pkg.id(), pkg.origin))?;
            let engine = engine_name(c.engine());
            (pkg.id(), engine, Runner::Crops(c, pkg.manifest.crop.margin))
        } else {
            let a = Analyzer::load(&models)?;
            let info = a.expression_info();
            (
                info.id.clone(),
                super::engine_label(&info),
                Runner::Faces(Box::new(a)),
            )
        };
        Ok(Model {
            spec: spec.to_string(),
            id,
            engine,
            runner,
            outcomes: Vec::new(),
            detect_ms: 0.0,
            classify_ms: 0.0,
            classified: 0,
        })
    }

    fn run(&mut self, img: &image::RgbImage, item: &Item) -> Result<Outcome> {
        match &mut self.runner {
            Runner::Crops(c, margin) => {
                let t = Instant::now();
                let p = c.classify(img, &whole_image_box(*margin))?;
                self.classify_ms += t.elapsed().as_secs_f64() * 1e3;
                self.classified += 1;
                let (predicted, probability) = argmax(&p);
                Ok(Outcome::Scored {
                    predicted,
                    extra: 0,
                    rect: [0.0, 0.0, img.width() as f64, img.height() as f64],
                    probability,
                })
            }
            Runner::Faces(a) => {
                let r = a.analyze(img)?;
                self.detect_ms += r.detect_ms as f64;
                self.classify_ms += r.classify_ms as f64;
                self.classified += r.faces.len() as u64;
                let rects: Vec<Rect> = r.faces.iter().map(|f| px(&f.bbox, img)).collect();
                Ok(match labelled_face(&rects, item.rect.as_ref()) {
                    None => Outcome::Missed {
                        faces: r.faces.len(),
                    },
                    Some(i) => {
                        let (predicted, probability) = argmax(&r.faces[i].emotions);
                        Outcome::Scored {
                            predicted,
                            extra: r.faces.len() - 1,
                            rect: rects[i],
                            probability,
                        }
                    }
                })
            }
        }
    }
}

fn engine_name(e: &dyn emotiond_models::Engine) -> String {
    match e.accelerator() {
        Some(a) => format!("{}+{a}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// An image that could not be read or decoded.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub path: String,
    pub error: String,
}

fn read_image(path: &Path) -> Result<image::RgbImage, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    emotiond_hal::decode_image(&bytes)
        .map(|i| i.to_rgb8())
        .map_err(|e| format!("decode: {e}"))
}

fn round(v: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (v * k).round() / k
}

pub fn eval(cfg: &Config, o: &Options) -> Result<ExitCode> {
    if o.path.is_none() && o.boxes.is_none() {
        bail!("eval needs a labelled set (PATH) or --boxes FILE");
    }
    let items = match &o.path {
        Some(p) => dataset::load(p).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let boxes = match &o.boxes {
        Some(b) => Some(dataset::load_boxes(b).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut results = Vec::new();
    let mut comparisons = Vec::new();
    if o.path.is_some() {
        let specs = if o.expression.is_empty() {
            vec![cfg.models.expression.clone()]
        } else {
            o.expression.clone()
        };
        let mut models = specs
            .iter()
            .map(|s| Model::load(cfg, s, o.crops))
            .collect::<Result<Vec<_>>>()?;
        let mut unreadable = Vec::new();
        for item in &items {
            match read_image(&item.path) {
                Ok(img) => {
                    for m in &mut models {
                        let out = m.run(&img, item);
                        let out = out.with_context(|| format!("{}: model {}", item.name, m.id))?;
                        m.outcomes.push(Some(out));
                    }
                }
                Err(error) => {
                    unreadable.push(Unreadable {
                        path: item.name.clone(),
                        error,
                    });
                    for m in &mut models {
                        m.outcomes.push(None);
                    }
                }
            }
        }
        for m in &models {
            if o.per_face {
                for l in face_lines(m, &items) {
                    println!("{l}");
                }
            }
        }
        for m in &models {
            let r = model_result(m, &items, &unreadable, o.crops);
            println!("{}", json_line(&r.json));
            results.push(r);
        }
        for i in 0..models.len() {
            for j in i + 1..models.len() {
                let c = comparison(&models[i], &models[j], &items);
                println!("{}", json_line(&c));
                comparisons.push(c);
            }
        }
    }
    let mut det = None;
    if let (Some(file), Some(boxes)) = (&o.boxes, &boxes) {
        let d = detection_result(cfg, file, boxes)?;
        println!("{}", json_line(&d));
        det = Some(d);
    }
    if let Some(dir) = &o.report {
        report::write(dir, &results, &comparisons, det.as_ref())
            .with_context(|| format!("writing the report to {}", dir.display()))?;
        log::info!("report: {}", dir.join("index.html").display());
    }
    Ok(ExitCode::SUCCESS)
}

fn detection_result(
    cfg: &Config,
    file: &Path,
    boxes: &BTreeMap<String, Vec<Rect>>,
) -> Result<Value> {
    let mut analyzer = Analyzer::load(&cfg.models)?;
    let base = file.parent().unwrap_or(Path::new(""));
    let mut truth = Vec::new();
    let mut names = Vec::new();
    let mut dets = Vec::new();
    let mut unreadable = Vec::new();
    for (name, rects) in boxes {
        let img = match read_image(&base.join(name)) {
            Ok(i) => i,
            Err(error) => {
                unreadable.push(Unreadable {
                    path: name.clone(),
                    error,
                });
                continue;
            }
        };
        let r = analyzer.analyze(&img).with_context(|| name.clone())?;
        for f in &r.faces {
            dets.push(detection::Detection {
                image: truth.len(),
                rect: px(&f.bbox, &img),
                score: f.score as f64,
            });
        }
        truth.push(rects.clone());
        names.push(name.clone());
    }
    let m = detection::evaluate(&truth, &dets, DETECTION_IOU);
    let missed: Vec<Value> = m
        .missed
        .iter()
        .map(|&(i, j)| json!({"image": names[i], "box": truth[i][j]}))
        .collect();
    let mut v = serde_json::to_value(&m)?;
    let o = v.as_object_mut().context("detection metrics")?;
    o.insert("kind".into(), json!("detection"));
    o.insert("detector".into(), json!(analyzer.detector_info().id));
    o.insert("iou_threshold".into(), json!(DETECTION_IOU));
    o.insert("images".into(), json!(names.len()));
    o.insert("missed".into(), json!(missed));
    o.insert("unreadable".into(), json!(unreadable.len()));
    o.insert("unreadable_images".into(), json!(unreadable));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labelled_face_is_the_largest_or_the_one_on_the_given_box() {
        let rects = [
            [0., 0., 10., 10.],
            [50., 50., 30., 30.],
            [100., 0., 30., 30.],
        ];
        assert_eq!(
            labelled_face(&rects, None),
            Some(1),
            "largest, first of equals"
        );
        assert_eq!(labelled_face(&rects, Some(&[102., 0., 30., 30.])), Some(2));
        assert_eq!(labelled_face(&rects, Some(&[300., 300., 10., 10.])), None);
        assert_eq!(labelled_face(&[], None), None);
    }

    #[test]
    fn the_whole_image_box_grows_back_to_the_whole_image() {
        let b = whole_image_box(0.25);
        let crop = emotiond_models::manifest::CropSpec {
            square: true,
            margin: 0.25,
        };
        let r = emotiond_models::classifier::crop_region(&b, &crop, 64, 64);
        assert!(r.x.abs() < 1e-4 && r.y.abs() < 1e-4, "{r:?}");
        assert!(
            (r.w - 64.0).abs() < 1e-3 && (r.h - 64.0).abs() < 1e-3,
            "{r:?}"
        );
    }
}
