//! Parsing and validation of a [`Manifest`]: every rule a manifest must meet, each failure
//! naming its key.

use super::{Color, EMOTIONS, Manifest, Task, canonical_emotion};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("manifest is not valid TOML for a model package: {0}")]
    Parse(String),
    #[error("manifest key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl Manifest {
    /// Parse and validate manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Map each model label onto [`EMOTIONS`]: `map[i]` is the canonical index of label `i`.
    pub fn emotion_map(&self) -> Result<Vec<usize>, ManifestError> {
        self.labels
            .iter()
            .map(|l| {
                canonical_emotion(l).ok_or_else(|| {
                    invalid(
                        "labels",
                        format!("unknown emotion label {l:?} (known: {EMOTIONS:?} and synonyms)"),
                    )
                })
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        if self.version.trim().is_empty() {
            return Err(invalid("version", "must not be empty"));
        }
        if self.file.contains("..") || self.file.starts_with('/') {
            return Err(invalid("file", "must be a path inside the package"));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("sha256", "must be 64 hex digits"));
        }
        for (engine, f) in &self.files {
            match engine.parse::<crate::kind::EngineKind>() {
                Ok(crate::kind::EngineKind::TfLite | crate::kind::EngineKind::OnnxRuntime) => {}
                Ok(crate::kind::EngineKind::Tract) => {
                    return Err(invalid(
                        "files",
                        "tract uses the top-level `file`".to_string(),
                    ));
                }
                Err(e) => return Err(invalid("files", e)),
            }
            if f.file.contains("..") || f.file.starts_with('/') {
                return Err(invalid(
                    "files",
                    format!("files.{engine}.file must be a path inside the package"),
                ));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    "files",
                    format!("files.{engine}.sha256 must be 64 hex digits"),
                ));
            }
        }
        let inp = &self.input;
        if !self.task.is_vision() {
            return self.validate_audio();
        }
        if inp.shape.len() != 4 || inp.shape[0] != 1 || inp.shape.contains(&0) {
            return Err(invalid(
                "input.shape",
                format!(
                    "must be [1, h, w, c] or [1, c, h, w] with no zero, got {:?}",
                    inp.shape
                ),
            ));
        }
        let (_, _, c) = inp.hwc();
        let want_c = if inp.color == Color::Grey { 1 } else { 3 };
        if c != want_c {
            return Err(invalid(
                "input.shape",
                format!(
                    "{:?} input needs {want_c} channel(s), shape has {c}",
                    inp.color
                ),
            ));
        }
        if inp.mean.len() != c {
            return Err(invalid("input.mean", format!("needs {c} value(s)")));
        }
        if inp.std.len() != c || inp.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(invalid("input.std", format!("needs {c} non-zero value(s)")));
        }
        if !(0.0..=1.0).contains(&self.crop.margin) {
            return Err(invalid("crop.margin", "must be within 0..=1"));
        }
        match self.task {
            Task::FaceDetection => {
                let s = self
                    .ssd
                    .as_ref()
                    .ok_or_else(|| invalid("ssd", "a face_detection model needs an [ssd] table"))?;
                if s.strides.len() != s.num_layers || s.num_layers == 0 {
                    return Err(invalid("ssd.strides", "needs one stride per layer"));
                }
                if s.box_coord_offset + 4 > s.num_coords
                    || s.keypoint_coord_offset + s.num_keypoints * s.num_values_per_keypoint
                        > s.num_coords
                {
                    return Err(invalid("ssd.num_coords", "box and keypoints do not fit"));
                }
                if s.num_values_per_keypoint < 2 && s.num_keypoints > 0 {
                    return Err(invalid("ssd.num_values_per_keypoint", "must be >= 2"));
                }
                if !(0.0..=1.0).contains(&s.min_score_thresh) {
                    return Err(invalid("ssd.min_score_thresh", "must be within 0..=1"));
                }
                if !(0.0..=1.0).contains(&s.min_suppression_threshold) {
                    return Err(invalid(
                        "ssd.min_suppression_threshold",
                        "must be within 0..=1",
                    ));
                }
            }
            Task::VoiceActivity | Task::SpeechEmotion => {}
            Task::Expression => {
                if self.classifier.is_none() {
                    return Err(invalid(
                        "classifier",
                        "an expression model needs a [classifier] table",
                    ));
                }
                if self.labels.is_empty() {
                    return Err(invalid("labels", "an expression model needs labels"));
                }
                let map = self.emotion_map()?;
                let mut seen = [false; EMOTIONS.len()];
                for &i in &map {
                    if seen[i] {
                        return Err(invalid("labels", format!("{} appears twice", EMOTIONS[i])));
                    }
                    seen[i] = true;
                }
            }
        }
        self.validate_vectors()
    }

    fn validate_labels(&self) -> Result<(), ManifestError> {
        if self.labels.is_empty() {
            return Err(invalid("labels", "a classifier needs labels"));
        }
        let map = self.emotion_map()?;
        let mut seen = [false; EMOTIONS.len()];
        for &i in &map {
            if seen[i] {
                return Err(invalid("labels", format!("{} appears twice", EMOTIONS[i])));
            }
            seen[i] = true;
        }
        Ok(())
    }

    fn validate_audio(&self) -> Result<(), ManifestError> {
        let shape = &self.input.shape;
        if shape.is_empty() || shape.contains(&0) {
            return Err(invalid(
                "input.shape",
                format!("must have no zero, got {shape:?}"),
            ));
        }
        match self.task {
            Task::VoiceActivity => {
                let v = self
                    .vad
                    .as_ref()
                    .ok_or_else(|| invalid("vad", "a voice_activity model needs a [vad] table"))?;
                if v.sample_rate != 16_000 {
                    return Err(invalid("vad.sample_rate", "only 16000 Hz is supported"));
                }
                if v.chunk == 0 || shape.iter().product::<usize>() != v.chunk + v.context {
                    return Err(invalid(
                        "input.shape",
                        format!(
                            "must hold vad.context + vad.chunk = {} samples",
                            v.chunk + v.context
                        ),
                    ));
                }
                if v.state_shape.is_empty() || v.state_shape.contains(&0) {
                    return Err(invalid("vad.state_shape", "must have no zero"));
                }
                if v.prob_output == v.state_output {
                    return Err(invalid(
                        "vad.state_output",
                        "must differ from vad.prob_output",
                    ));
                }
            }
            Task::SpeechEmotion => {
                let f = self.features.as_ref().ok_or_else(|| {
                    invalid(
                        "features",
                        "a speech_emotion model needs a [features] table",
                    )
                })?;
                if f.sample_rate != 16_000 {
                    return Err(invalid(
                        "features.sample_rate",
                        "only 16000 Hz is supported",
                    ));
                }
                if f.n_fft < 16 || f.n_fft > 8192 || f.window == 0 || f.window > f.n_fft {
                    return Err(invalid(
                        "features.window",
                        "need 0 < window <= n_fft, 16 <= n_fft <= 8192",
                    ));
                }
                if f.hop == 0 || f.n_mels == 0 || f.n_mels > 512 {
                    return Err(invalid(
                        "features.hop",
                        "hop and n_mels must be above 0 (n_mels at most 512)",
                    ));
                }
                let fmax = if f.fmax > 0.0 {
                    f.fmax
                } else {
                    f.sample_rate as f32 / 2.0
                };
                if !(f.fmin >= 0.0 && f.fmin < fmax && fmax <= f.sample_rate as f32 / 2.0) {
                    return Err(invalid(
                        "features.fmax",
                        "need 0 <= fmin < fmax <= sample_rate / 2",
                    ));
                }
                if !(f.log_offset > 0.0 && f.log_offset.is_finite()) {
                    return Err(invalid("features.log_offset", "must be above 0"));
                }
                if f.frames_in(shape).is_none() {
                    return Err(invalid(
                        "input.shape",
                        format!(
                            "{shape:?} does not hold n_mels = {} bands in layout {:?}",
                            f.n_mels, f.layout
                        ),
                    ));
                }
                if self.classifier.is_none() {
                    return Err(invalid(
                        "classifier",
                        "a speech_emotion model needs a [classifier] table",
                    ));
                }
                self.validate_labels()?;
            }
            _ => {}
        }
        self.validate_vectors()
    }

    fn validate_vectors(&self) -> Result<(), ManifestError> {
        for tv in &self.test_vectors {
            if tv.outputs.is_empty() {
                return Err(invalid("test_vector.outputs", "needs at least one file"));
            }
            if !(tv.atol >= 0.0 && tv.atol.is_finite()) {
                return Err(invalid("test_vector.atol", "must be a finite value >= 0"));
            }
        }
        Ok(())
    }
}
