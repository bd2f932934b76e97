//! emotiond: camera → faces → expressions → tracked, windowed, privacy-preserving summaries
//! over MQTT. The binary (`main.rs`) wires these modules; the pure logic (tracking, windows,
//! codecs, config validation, queues) is tested here without devices.
#![forbid(unsafe_code)]

pub mod analyzer;
pub mod config;
pub mod demo;
pub mod indicators;
pub mod mqtt;
pub mod outbox;
pub mod pipeline;
pub mod probation;
pub mod queue;
pub mod service;
pub mod summary;
pub mod track;
pub mod updates;
pub mod window;
