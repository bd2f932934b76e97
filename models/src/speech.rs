//! The speech-emotion slot: a `speech_emotion` package run on one speech segment. The
//! segment's log-mel features ([`crate::mel`], as the manifest's `[features]` say) are cut to
//! the frames the input holds (the middle of a longer segment) or padded with the value of
//! silence, laid out as `[features] layout` says, run, softmaxed unless the model already
//! does, and mapped onto the product's seven emotions by the manifest's labels.
//!
//! No speech-emotion model ships with emotiond (no registry package has one with usable
//! weights); a deployment configures its own package.
#![forbid(unsafe_code)]

use crate::ModelError;
use crate::classifier::{Emotions, emotion_probs};
use crate::engine::{Engine, Tensor};
use crate::manifest::{FeatureLayout, Task};
use crate::mel::LogMel;
use crate::package::ModelPackage;

pub struct SpeechEmotionClassifier {
    engine: Box<dyn Engine>,
    mel: LogMel,
    layout: FeatureLayout,
    frames: usize,
    map: Vec<usize>,
    output: usize,
    softmax_applied: bool,
    feats: Vec<f32>,
    input: Vec<f32>,
    outputs: Vec<Tensor>,
}

/// Fill `input` (`frames` frames of `n_mels` bands, in `layout`) from `feats`
/// (`[n_mels][have]`): the middle `frames` of a longer run, or all of a shorter one followed
/// by `pad`.
pub fn fit_frames(
    feats: &[f32],
    n_mels: usize,
    have: usize,
    frames: usize,
    layout: FeatureLayout,
    pad: f32,
    input: &mut Vec<f32>,
) {
    input.clear();
    input.resize(n_mels * frames, pad);
    let skip = have.saturating_sub(frames) / 2;
    let n = have.min(frames);
    for m in 0..n_mels {
        for t in 0..n {
            let v = feats[m * have + skip + t];
            let i = match layout {
                FeatureLayout::MelsFrames => m * frames + t,
                FeatureLayout::FramesMels => t * n_mels + m,
            };
            input[i] = v;
        }
    }
}

impl SpeechEmotionClassifier {
    pub fn new(
        pkg: &ModelPackage,
        engine: Box<dyn Engine>,
    ) -> Result<SpeechEmotionClassifier, ModelError> {
        let m = &pkg.manifest;
        let wrong = || ModelError::WrongTask {
            model: pkg.id(),
            want: Task::SpeechEmotion,
            got: m.task,
        };
        if m.task != Task::SpeechEmotion {
            return Err(wrong());
        }
        let (Some(f), Some(c)) = (&m.features, &m.classifier) else {
            return Err(wrong());
        };
        if engine.input_shape() != m.input.shape.as_slice() {
            return Err(ModelError::Manifest(format!(
                "{}: manifest input shape {:?}, model file has {:?}",
                pkg.id(),
                m.input.shape,
                engine.input_shape()
            )));
        }
        let frames = f.frames_in(&m.input.shape).ok_or_else(|| {
            ModelError::Manifest(format!("{}: input does not hold n_mels", pkg.id()))
        })?;
        let map = m
            .emotion_map()
            .map_err(|e| ModelError::Manifest(e.to_string()))?;
        Ok(SpeechEmotionClassifier {
            engine,
            mel: LogMel::new(f),
            layout: f.layout,
            frames,
            map,
            output: c.output,
            softmax_applied: c.softmax_applied,
            feats: Vec::new(),
            input: Vec::new(),
            outputs: Vec::new(),
        })
    }

    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Emotion probabilities (order of [`EMOTIONS`]) of one speech segment (16 kHz, −1..1).
    pub fn classify(&mut self, segment: &[f32]) -> Result<Emotions, ModelError> {
        let have = self.mel.compute(segment, &mut self.feats);
        fit_frames(
            &self.feats,
            self.mel.n_mels(),
            have,
            self.frames,
            self.layout,
            self.mel.silence(),
            &mut self.input,
        );
        self.engine.run(&self.input, &mut self.outputs)?;
        emotion_probs(
            &mut self.outputs,
            self.output,
            &self.map,
            self.softmax_applied,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_segments_keep_their_middle_and_short_ones_are_padded_with_silence() {
        // 2 bands, 6 frames: band m frame t = 10 m + t
        let feats: Vec<f32> = (0..2)
            .flat_map(|m| (0..6).map(move |t| (10 * m + t) as f32))
            .collect();
        let mut v = Vec::new();
        fit_frames(&feats, 2, 6, 2, FeatureLayout::MelsFrames, -1.0, &mut v);
        assert_eq!(v, [2.0, 3.0, 12.0, 13.0]);
        fit_frames(&feats, 2, 6, 2, FeatureLayout::FramesMels, -1.0, &mut v);
        assert_eq!(v, [2.0, 12.0, 3.0, 13.0]);
        fit_frames(&feats[..], 2, 6, 8, FeatureLayout::MelsFrames, -1.0, &mut v);
        assert_eq!(&v[..8], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -1.0]);
        assert_eq!(&v[8..], &[10.0, 11.0, 12.0, 13.0, 14.0, 15.0, -1.0, -1.0]);
    }
}
