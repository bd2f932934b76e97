//! Model package manifests (`manifest.toml`): parsing and validation. No I/O here beyond
//! what the caller hands in as text; [`crate::package`] reads the files.
//!
//! A manifest says everything the pipeline needs to run a model of a known task without
//! code: the input tensor and how to fill it from an image, the labels, how to decode the
//! outputs, and test vectors (input tensor -> expected outputs, with a tolerance) that any
//! engine must reproduce before the model is used.
//!
//! This file holds every manifest key with its doc; parsing and validation
//! ([`Manifest::parse`], [`Manifest::validate`], [`ManifestError`]) are in `validate.rs`.

use serde::{Deserialize, Serialize};

mod validate;

pub use validate::ManifestError;

/// What a model does; decides which decoder interprets its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Face boxes from SSD-style anchors (MediaPipe BlazeFace and relatives).
    FaceDetection,
    /// Per-face expression probabilities over `labels`.
    Expression,
    /// Speech probability per audio chunk, with a recurrent state (Silero VAD); `[vad]`.
    VoiceActivity,
    /// Emotion probabilities over `labels` for one speech segment, from log-mel features
    /// (`[features]`).
    SpeechEmotion,
}

impl Task {
    /// Image tasks fill `[input]` from pixels (layout, colour, resize, mean/std apply).
    pub fn is_vision(self) -> bool {
        matches!(self, Task::FaceDetection | Task::Expression)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nhwc,
    Nchw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    #[default]
    F32,
}

/// Colour of the input tensor's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    #[default]
    Rgb,
    Bgr,
    /// One channel, ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), as OpenCV's BGR2GRAY.
    Grey,
}

/// How an image region is fitted to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Stretch to the input size (aspect ratio not kept).
    #[default]
    Stretch,
    /// Keep the aspect ratio and pad with zeros (after normalisation: the value of `pad`).
    Letterbox,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Tensor shape, e.g. `[1, 128, 128, 3]` (images), `[1, 576]` (VAD audio chunk),
    /// `[1, 1, 64, 100]` (log-mel features).
    pub shape: Vec<usize>,
    /// The keys below apply to image tasks only (and are required there).
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub dtype: DType,
    #[serde(default)]
    pub color: Color,
    #[serde(default)]
    pub resize: Resize,
    /// value = (pixel - mean[c]) / std[c], pixel in 0..=255; one entry per channel.
    #[serde(default)]
    pub mean: Vec<f32>,
    #[serde(default)]
    pub std: Vec<f32>,
}

impl InputSpec {
    /// (height, width, channels), whatever the layout.
    pub fn hwc(&self) -> (usize, usize, usize) {
        match self.layout {
            Layout::Nhwc => (self.shape[1], self.shape[2], self.shape[3]),
            Layout::Nchw => (self.shape[2], self.shape[3], self.shape[1]),
        }
    }
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// SSD anchor generation and box decoding, with the parameter names of MediaPipe's
/// `SsdAnchorsCalculator` and `TensorsToDetectionsCalculator`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsdDecode {
    pub num_layers: usize,
    pub min_scale: f32,
    pub max_scale: f32,
    pub strides: Vec<usize>,
    pub anchor_offset_x: f32,
    pub anchor_offset_y: f32,
    #[serde(default = "one_vec")]
    pub aspect_ratios: Vec<f32>,
    #[serde(default = "yes")]
    pub fixed_anchor_size: bool,
    #[serde(default = "one")]
    pub interpolated_scale_aspect_ratio: f32,
    #[serde(default)]
    pub reduce_boxes_in_lowest_layer: bool,
    pub num_boxes: usize,
    pub num_coords: usize,
    pub box_coord_offset: usize,
    pub keypoint_coord_offset: usize,
    pub num_keypoints: usize,
    pub num_values_per_keypoint: usize,
    /// Raw box values are x, y, w, h (true) or y, x, h, w (false).
    pub reverse_output_order: bool,
    pub x_scale: f32,
    pub y_scale: f32,
    pub w_scale: f32,
    pub h_scale: f32,
    pub sigmoid_score: bool,
    pub score_clipping_thresh: f32,
    pub min_score_thresh: f32,
    /// Weighted non-maximum suppression: IoU above which boxes are merged.
    pub min_suppression_threshold: f32,
    /// Index of the output holding box regressors `[1, num_boxes, num_coords]`.
    pub boxes_output: usize,
    /// Index of the output holding score logits `[1, num_boxes, 1]`.
    pub scores_output: usize,
}

/// How to cut a face out of the frame for a classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropSpec {
    /// Make the face box square (the longer side) before the margin.
    #[serde(default = "yes")]
    pub square: bool,
    /// Extra border on each side, as a fraction of the (square) box side.
    #[serde(default)]
    pub margin: f32,
}

impl Default for CropSpec {
    fn default() -> Self {
        CropSpec {
            square: true,
            margin: 0.0,
        }
    }
}

/// How the outputs of an expression model map to probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierDecode {
    /// Index of the output holding the class scores.
    #[serde(default)]
    pub output: usize,
    /// True when the model already ends in a softmax; otherwise softmax is applied.
    pub softmax_applied: bool,
}

/// A voice-activity model with a recurrent state (`[vad]`): each call takes `context`
/// samples of the previous chunk followed by `chunk` new ones (input shape
/// `[1, context + chunk]`) and the state, and returns the speech probability and the new
/// state, which is handed to the next call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VadSpec {
    pub sample_rate: u32,
    pub chunk: usize,
    #[serde(default)]
    pub context: usize,
    /// Shape of the state input (the model's second input) and output.
    pub state_shape: Vec<usize>,
    /// Output index of the speech probability `[1, 1]`.
    #[serde(default)]
    pub prob_output: usize,
    /// Output index of the new state.
    #[serde(default = "one_usize")]
    pub state_output: usize,
}

/// Log-mel features (`[features]`), computed as `librosa.feature.melspectrogram` with
/// `center=True, pad_mode="constant", window="hann", power=2.0, htk=False, norm="slaney"`,
/// then `ln(mel + log_offset)`. The input tensor holds `frames` frames of `n_mels` bands,
/// `frames` being the input shape's other non-unit dimension; a segment is cut to it (its
/// middle) or padded with the value of silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub sample_rate: u32,
    /// Window length in samples (`win_length`), at most `n_fft`.
    pub window: usize,
    pub hop: usize,
    pub n_fft: usize,
    pub n_mels: usize,
    #[serde(default)]
    pub fmin: f32,
    /// Upper band edge in Hz; 0: sample_rate / 2.
    #[serde(default)]
    pub fmax: f32,
    pub log_offset: f32,
    /// `mels_frames` (input `[.., n_mels, frames]`) or `frames_mels` (`[.., frames, n_mels]`).
    #[serde(default)]
    pub layout: FeatureLayout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureLayout {
    #[default]
    MelsFrames,
    FramesMels,
}

impl FeatureSpec {
    /// Frames the input tensor `shape` holds, if it fits `n_mels` in this layout.
    pub fn frames_in(&self, shape: &[usize]) -> Option<usize> {
        let dims: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
        let (m, f) = match (self.layout, dims.as_slice()) {
            (FeatureLayout::MelsFrames, [m, f]) => (*m, *f),
            (FeatureLayout::FramesMels, [f, m]) => (*m, *f),
            _ => return None,
        };
        (m == self.n_mels).then_some(f)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestVector {
    /// Raw little-endian f32 input tensor, relative to the package folder.
    pub input: String,
    /// Further inputs in model order after the first (e.g. a VAD's state), same format.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Raw little-endian f32 expected outputs, one file per model output, in output order.
    pub outputs: Vec<String>,
    /// Largest allowed absolute difference per element.
    pub atol: f32,
    /// What the vector is (e.g. "astronaut.png, letterboxed"), for messages.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// Release number of this model name: an integer that grows with every published
    /// package of `name` (anti-rollback). A device refuses a package whose release is below
    /// the highest it has accepted for the name (reason `downgrade`) unless the order is an
    /// operator-signed downgrade. Absent (packages made before release numbers): release 0,
    /// so such a package is refused once any numbered release of the name was accepted.
    #[serde(default)]
    pub release: Option<u64>,
    pub task: Task,
    /// The model file (`.tflite`), relative to the package folder.
    pub file: String,
    /// Hex SHA-256 of `file`; checked when the package is loaded.
    pub sha256: String,
    pub license: String,
    #[serde(default)]
    pub description: String,
    pub input: InputSpec,
    /// Class labels in output order (expression models). Canonical names: angry, disgust,
    /// fear, happy, sad, surprise, neutral.
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub ssd: Option<SsdDecode>,
    #[serde(default)]
    pub classifier: Option<ClassifierDecode>,
    #[serde(default)]
    pub vad: Option<VadSpec>,
    #[serde(default)]
    pub features: Option<FeatureSpec>,
    #[serde(default)]
    pub crop: CropSpec,
    /// Per-inference time budget in ms on the slowest supported board (for health checks).
    #[serde(default)]
    pub budget_ms: Option<f32>,
    #[serde(default, rename = "test_vector")]
    pub test_vectors: Vec<TestVector>,
    /// Per-engine model files (`[files.tflite]`, `[files.onnxruntime]`): the original
    /// `.tflite` for the TFLite runtime, an `.onnx` conversion for ONNX Runtime. `file`
    /// above serves tract, and the TFLite runtime when it has no entry here.
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, EngineFile>,
}

/// A model file for one engine, with its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineFile {
    pub file: String,
    pub sha256: String,
}

/// The emotions the product reports, in the order of every summary.
pub const EMOTIONS: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
];

/// Canonical index in [`EMOTIONS`] of a label, accepting the usual synonyms of data sets
/// (FER2013 "disgust", face-api "disgusted", "fearful", "surprised", "happiness"...).
pub fn canonical_emotion(label: &str) -> Option<usize> {
    let l = label.trim().to_ascii_lowercase();
    let canon = match l.as_str() {
        "angry" | "anger" => "angry",
        "disgust" | "disgusted" => "disgust",
        "fear" | "fearful" | "afraid" => "fear",
        "happy" | "happiness" | "joy" => "happy",
        "sad" | "sadness" => "sad",
        "surprise" | "surprised" => "surprise",
        "neutral" | "calm" => "neutral",
        _ => return None,
    };
    EMOTIONS.iter().position(|e| *e == canon)
}

fn yes() -> bool {
    true
}
fn one() -> f32 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn one_vec() -> Vec<f32> {
    vec![1.0]
}
