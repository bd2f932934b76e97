//! Hardware edges of emotiond behind small traits: cameras (V4L2 and file sources) and the
//! frames they yield; microphones (ALSA, WAV files, memory) and their 16 kHz mono chunks;
//! the status LED and the feedback button. Knows nothing of models or MQTT.
#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod alsa_mic;
pub mod audio;
pub mod backoff;
pub mod camera;
pub mod decode;
pub mod file;
pub mod indicator;
pub mod pixel;
#[cfg(target_os = "linux")]
pub mod v4l2;
pub mod wav;

pub use audio::{AudioChunk, MicError, Microphone, SAMPLE_RATE};
pub use backoff::Backoff;
pub use camera::{Camera, CameraError, Frame};
pub use decode::decode_image;
pub use file::{FileSource, Pacing};
pub use wav::{MemorySource, Synth, WavSource, read_wav, synthesize};
