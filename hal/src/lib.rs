//! Hardware edges of emotiond behind small traits: cameras (V4L2 and file sources) and the
//! frames they yield, the status LED and the feedback button. Knows nothing of models or MQTT.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod camera;
pub mod file;
pub mod indicator;
pub mod pixel;
#[cfg(target_os = "linux")]
pub mod v4l2;

pub use backoff::Backoff;
pub use camera::{Camera, CameraError, Frame};
pub use file::{FileSource, Pacing};
