//! `emotiond analyze PATH...`: one JSON line per image, Y4M frame or WAV file; exit code 1
//! when any input failed.

use crate::analyzer::Analyzer;
use crate::audio;
use crate::config::Config;
use anyhow::{Result, bail};
use emotiond_hal::{Camera, CameraError, FileSource, Pacing};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

use super::json_line;

/// One image or video frame (keys in the order they are written: sorted).
#[derive(Serialize)]
struct FrameLine<'a> {
    path: &'a str,
    frame: u64,
    width: u32,
    height: u32,
    faces: Vec<FaceLine>,
    detect_ms: f32,
    classify_ms: f32,
}

/// One face: its box normalised to the image, the detector's score, the expression model's
/// probabilities and the most probable emotion.
#[derive(Serialize)]
struct FaceLine {
    #[serde(rename = "box")]
    bbox: emotiond_models::BBox,
    score: f32,
    emotions: crate::summary::PerEmotion<f32>,
    dominant: &'static str,
}

impl FaceLine {
    fn of(face: &crate::analyzer::Face) -> FaceLine {
        let dominant = face
            .emotions
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| emotiond_models::EMOTIONS[i])
            .unwrap_or("neutral");
        FaceLine {
            bbox: face.bbox,
            score: face.score,
            emotions: crate::summary::PerEmotion::from_array(face.emotions),
            dominant,
        }
    }
}

/// An input that could not be read or analysed (`frame` when it is a frame of a file).
#[derive(Serialize)]
struct ErrorLine<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    frame: Option<u64>,
    error: String,
}

/// One image through the models: its JSON line, or the error's JSON line (`emotiond
/// analyze` and the API's `POST /v1/analyze` write the same).
pub fn analyze_image(
    analyzer: &mut Analyzer,
    path: &str,
    frame: u64,
    image: &image::RgbImage,
) -> Result<String, String> {
    match analyzer.analyze(image) {
        Ok(r) => Ok(json_line(&FrameLine {
            path,
            frame,
            width: image.width(),
            height: image.height(),
            faces: r.faces.iter().map(FaceLine::of).collect(),
            detect_ms: r.detect_ms,
            classify_ms: r.classify_ms,
        })),
        Err(e) => Err(json_line(&ErrorLine {
            path,
            frame: Some(frame),
            error: format!("{e:#}"),
        })),
    }
}

pub fn analyze(cfg: &Config, paths: &[PathBuf]) -> Result<ExitCode> {
    let is_wav = |p: &PathBuf| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
    };
    let (wavs, paths): (Vec<PathBuf>, Vec<PathBuf>) = paths.iter().cloned().partition(is_wav);
    let mut failed = 0;
    if !wavs.is_empty() {
        let mut voice = audio::load_voice(&cfg.audio, &cfg.models)?;
        for w in &wavs {
            let line = audio::analyze_wav(&mut voice, w);
            if line.get("error").is_some() {
                failed += 1;
            }
            println!("{line}");
        }
    }
    if paths.is_empty() {
        return Ok(if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let mut analyzer = Analyzer::load(&cfg.models)?;
    let mut src = FileSource::new(&paths, Pacing::AsFastAsPossible, false)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    loop {
        match src.next_frame() {
            Ok(f) => {
                let (path, index) = f.origin.clone().unwrap_or_else(|| ("".into(), 0));
                let line = analyze_image(&mut analyzer, &path, index, &f.image);
                if line.is_err() {
                    failed += 1;
                }
                let line = line.unwrap_or_else(|e| e);
                println!("{line}");
            }
            Err(CameraError::Skipped { item, reason }) => {
                failed += 1;
                println!(
                    "{}",
                    json_line(&ErrorLine {
                        path: &item,
                        frame: None,
                        error: reason,
                    })
                );
            }
            Err(CameraError::End) => break,
            Err(e) => bail!("{e}"),
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
