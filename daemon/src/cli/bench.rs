//! `emotiond bench`: frames per second and per-stage times on one input, one JSON line;
//! with `--stages`, one more JSON line per pipeline stage (mean and p95).

use super::engine_label;

/// The one line `emotiond bench` prints (keys written sorted).
#[derive(serde::Serialize)]
struct BenchReport {
    input: String,
    width: u32,
    height: u32,
    frames: usize,
    fps: f64,
    faces_per_frame: f64,
    decode_ms: f64,
    detect_ms: f64,
    classify_ms: f64,
    total_ms: f64,
    total_ms_p95: f64,
    detector: String,
    expression: String,
    detector_engine: String,
    expression_engine: String,
}
use crate::analyzer::{Analyzer, FrameStages};
use crate::config::Config;
use crate::demo;
use anyhow::{Context, Result, bail};
use emotiond_hal::{Camera, CameraError, FileSource, Pacing};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// One line of `--stages`: a stage's time per frame (keys written sorted).
#[derive(serde::Serialize)]
struct StageReport<'a> {
    stage: &'a str,
    what: &'a str,
    /// Measurements: frames, or decoded frames for `decode`.
    n: usize,
    mean_ms: f64,
    p95_ms: f64,
}

/// The stages in pipeline order, with what each covers.
const STAGES: [(&str, &str); 10] = [
    (
        "decode",
        "read + decode the input file to RGB (the JPEG decoder converts YCbCr to RGB itself)",
    ),
    (
        "detect_preprocess",
        "letterbox + bilinear resize + colour + normalise, one pass into the input tensor",
    ),
    (
        "detect_invoke",
        "detector engine run (watchdog hand-off to the inference thread included)",
    ),
    (
        "detect_decode",
        "SSD box decoding: anchors, sigmoid, score threshold",
    ),
    (
        "detect_nms",
        "weighted NMS + boxes mapped back to the frame",
    ),
    (
        "classify_preprocess",
        "per frame, all faces: crop + resize + grey/colour + normalise into the input tensor",
    ),
    (
        "classify_invoke",
        "per frame, all faces: expression engine runs (watchdog hand-off included)",
    ),
    (
        "classify_postprocess",
        "per frame, all faces: softmax + mapping onto the seven emotions",
    ),
    (
        "other",
        "frame minus the stages above (timers, result vectors)",
    ),
    ("frame", "whole frame: detect + classify (decode excluded)"),
];

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Mean and p95 of `v` (sorted in place).
fn mean_p95(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let p95 = v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1];
    (mean, p95)
}

/// The per-stage times of one frame, in [`STAGES`] order from `detect_preprocess` on.
fn stage_times(s: &FrameStages, total_ms: f64) -> [f64; 9] {
    let parts = [
        ms(s.detect.preprocess),
        ms(s.detect.invoke),
        ms(s.detect.decode),
        ms(s.detect.nms),
        ms(s.classify.preprocess),
        ms(s.classify.invoke),
        ms(s.classify.postprocess),
    ];
    let other = (total_ms - parts.iter().sum::<f64>()).max(0.0);
    [
        parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6], other, total_ms,
    ]
}

pub fn bench(
    cfg: &Config,
    input: Option<PathBuf>,
    frames: usize,
    forced: bool,
    stages: bool,
) -> Result<ExitCode> {
    let mut analyzer = Analyzer::load(&cfg.models)?;
    if forced {
        // A benchmark of a fallback would measure the wrong engine.
        for m in [analyzer.detector_info(), analyzer.expression_info()] {
            if let Some(why) = m.fallback {
                bail!("model {} does not run on the requested engine: {why}", m.id);
            }
        }
    }
    let mut src: Box<dyn Camera> = match &input {
        Some(p) => Box::new(
            FileSource::new(std::slice::from_ref(p), Pacing::AsFastAsPossible, true)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => Box::new(FileSource::from_y4m_bytes(
            "builtin:demo.y4m",
            demo::DEMO_CLIP,
            Pacing::AsFastAsPossible,
            true,
        )),
    };
    // Decode up to 64 frames first so decoding is not timed; only distinct ones are kept (a
    // photo comes back as the same frame each time: one copy, not 64, in the measured RSS).
    let mut imgs = Vec::new();
    let mut first_origin = None;
    let mut decode = Vec::new();
    for _ in 0..frames.clamp(1, 64) {
        let t = Instant::now();
        let next = src.next_frame();
        decode.push(t.elapsed().as_secs_f64() * 1e3);
        match next {
            Ok(f) if imgs.is_empty() => {
                first_origin = f.origin;
                imgs.push(f.image);
            }
            Ok(f) if f.origin.is_some() && f.origin == first_origin => {}
            Ok(f) => imgs.push(f.image),
            Err(CameraError::End) => break,
            Err(e) => bail!("bench input: {e}"),
        }
    }
    let first = imgs.first().context("bench input has no frames")?.clone();
    let (mut det, mut cls, mut faces) = (Vec::new(), Vec::new(), 0usize);
    let mut totals = Vec::new();
    let mut per_stage: Vec<Vec<f64>> = vec![Vec::with_capacity(frames); STAGES.len() - 1];
    let t0 = Instant::now();
    for i in 0..frames.max(1) {
        let img = &imgs[i % imgs.len()];
        let t = Instant::now();
        let r = analyzer.analyze(img)?;
        let total = t.elapsed().as_secs_f64() * 1e3;
        totals.push(total);
        if stages {
            for (v, x) in per_stage
                .iter_mut()
                .zip(stage_times(&analyzer.stages(), total))
            {
                v.push(x);
            }
        }
        det.push(r.detect_ms as f64);
        cls.push(r.classify_ms as f64);
        faces += r.faces.len();
    }
    let wall = t0.elapsed().as_secs_f64();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut decode_sorted = decode.clone();
    totals.sort_by(f64::total_cmp);
    let p95 = totals[((totals.len() as f64 * 0.95).ceil() as usize).clamp(1, totals.len()) - 1];
    let (d, x) = (analyzer.detector_info(), analyzer.expression_info());
    let report = BenchReport {
        input: input
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "builtin:demo.y4m".into()),
        width: first.width(),
        height: first.height(),
        frames: totals.len(),
        fps: totals.len() as f64 / wall,
        faces_per_frame: faces as f64 / totals.len() as f64,
        decode_ms: mean(&decode),
        detect_ms: mean(&det),
        classify_ms: mean(&cls),
        total_ms: mean(&totals),
        total_ms_p95: p95,
        detector_engine: engine_label(&d),
        expression_engine: engine_label(&x),
        detector: d.id,
        expression: x.id,
    };
    println!("{}", super::json_line(&report));
    if stages {
        let all = std::iter::once(&mut decode_sorted).chain(per_stage.iter_mut());
        for ((stage, what), v) in STAGES.iter().zip(all) {
            let n = v.len();
            let (mean_ms, p95_ms) = mean_p95(v);
            let line = StageReport {
                stage,
                what,
                n,
                mean_ms,
                p95_ms,
            };
            println!("{}", super::json_line(&line));
        }
    }
    Ok(ExitCode::SUCCESS)
}
