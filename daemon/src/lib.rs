//! emotiond: camera → faces → expressions → tracked, windowed, privacy-preserving summaries
//! over MQTT; microphone → voice activity → voice features → fused with the faces. The binary
//! (`main.rs`) wires these modules; the pure logic (tracking, windows, voice features,
//! probation, config validation, queues) is tested here without devices.
//!
//! Folders: [`pipeline`] (capture → queue → inference → tracking → windows), [`voice`] (the
//! audio path), [`publish`] (summary, outbox, MQTT), [`updates`] (signed model updates);
//! beside them [`config`], [`indicators`] (LED and button), [`service`] (systemd) and
//! [`fsutil`]; what threads share is typed and passed at construction: [`shutdown`] (one stop
//! signal, with the stop-aware sleep), [`health`] (a source's state, whether the broker is
//! up). ARCHITECTURE.md follows a frame and an update through them.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod fsutil;
pub mod health;
pub mod indicators;
pub mod pipeline;
pub mod publish;
pub mod service;
pub mod shutdown;
pub mod statedir;
pub mod updates;
pub mod voice;

// The modules under their paths before the folders (tests, benches and the binary use them).
pub use pipeline::{analyzer, demo, queue, track, window};
pub use publish::{mqtt, outbox, summary};
pub use updates::probation;
pub use voice::{audio, pitch};
