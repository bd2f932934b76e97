//! The camera trait and its frames.

use image::RgbImage;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// Monotonic capture time (for latency and pacing).
    pub captured: Instant,
    /// Wall-clock capture time.
    pub wall: SystemTime,
    /// Frame number from this source, from 0.
    pub seq: u64,
    /// For file sources: the file the frame came from, and its index inside it (Y4M).
    pub origin: Option<(Arc<str>, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// One input could not be read or decoded; the source goes on with the next.
    #[error("skipped {item}: {reason}")]
    Skipped { item: String, reason: String },
    /// The device is absent or went away; the source reopens it after `retry_in`.
    #[error("camera {device} unavailable: {reason} (retrying in {retry_in:?})")]
    Unavailable {
        device: String,
        reason: String,
        retry_in: Duration,
    },
    /// A file source has no more frames.
    #[error("end of input")]
    End,
    /// A setting the source cannot honour at all (bad path list, unsupported format).
    #[error("camera configuration: {0}")]
    Config(String),
}

/// Anything that yields frames. `next_frame` may block until a frame is due; it never
/// sleeps through a back-off (it returns [`CameraError::Unavailable`] instead, so the caller
/// can wait and still notice shutdown).
pub trait Camera: Send {
    /// What the source is and what it negotiated, for logs and `emotiond check`.
    fn describe(&self) -> String;
    fn next_frame(&mut self) -> Result<Frame, CameraError>;
}
