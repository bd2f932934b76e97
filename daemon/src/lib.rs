//! emotiond: camera → faces → expressions → tracked, windowed, privacy-preserving summaries
//! over MQTT; microphone → voice activity → voice features → fused with the faces. The binary (`main.rs`) wires these modules; the pure logic (tracking, windows,
//! codecs, config validation, queues) is tested here without devices.
#![forbid(unsafe_code)]

pub mod analyzer;
pub mod audio;
pub mod config;
pub mod demo;
pub mod fsutil;
pub mod indicators;
pub mod mqtt;
pub mod outbox;
pub mod pipeline;
pub mod pitch;
pub mod probation;
pub mod queue;
pub mod service;
pub mod summary;
pub mod track;
pub mod updates;
pub mod voice;
pub mod window;
