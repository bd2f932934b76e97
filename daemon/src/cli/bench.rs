//! `emotiond bench`: frames per second and per-stage times on one input, one JSON line.

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
use crate::analyzer::Analyzer;
use crate::config::Config;
use crate::demo;
use anyhow::{Context, Result, bail};
use emotiond_hal::{Camera, CameraError, FileSource, Pacing};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

pub fn bench(
    cfg: &Config,
    input: Option<PathBuf>,
    frames: usize,
    forced: bool,
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
    // Decode up to 64 distinct frames first so decoding is not timed.
    let mut imgs = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..frames.clamp(1, 64) {
        let t = Instant::now();
        let next = src.next_frame();
        decode.push(t.elapsed().as_secs_f64() * 1e3);
        match next {
            Ok(f) => imgs.push(f.image),
            Err(CameraError::End) => break,
            Err(e) => bail!("bench input: {e}"),
        }
    }
    let first = imgs.first().context("bench input has no frames")?.clone();
    let (mut det, mut cls, mut faces) = (Vec::new(), Vec::new(), 0usize);
    let mut totals = Vec::new();
    let t0 = Instant::now();
    for i in 0..frames.max(1) {
        let img = &imgs[i % imgs.len()];
        let t = Instant::now();
        let r = analyzer.analyze(img)?;
        totals.push(t.elapsed().as_secs_f64() * 1e3);
        det.push(r.detect_ms as f64);
        cls.push(r.classify_ms as f64);
        faces += r.faces.len();
    }
    let wall = t0.elapsed().as_secs_f64();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
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
    Ok(ExitCode::SUCCESS)
}
