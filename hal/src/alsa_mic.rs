//! ALSA capture (the `alsa` crate over libasound). Asks the device for mono 16 kHz S16 and
//! takes what it grants (a `hw:` device often offers only 44.1/48 kHz or stereo), converting
//! to the internal format with [`Converter`]. An overrun (xrun, `EPIPE`) is recovered with
//! `snd_pcm_recover`, and the audio it lost is replaced by as many zero samples (computed
//! from the time the stream has run, [`lost_frames`]), so the timeline has no gap. A device
//! that is missing or goes away (`ENODEV`, `EIO`, `EBADFD`) is closed and reopened with
//! back-off.

use crate::audio::{AudioChunk, Chunker, Converter, MicError, Microphone, lost_frames};
use crate::backoff::Backoff;
use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, PartialEq)]
pub struct AlsaConfig {
    /// ALSA device name: `default`, `hw:1,0`, `plughw:CARD=Device,DEV=0`, ...
    pub device: String,
    /// Period asked of the device, in ms.
    pub period_ms: u32,
}

/// What the device granted.
#[derive(Debug, Clone, PartialEq)]
pub struct Granted {
    pub rate: u32,
    pub channels: u16,
    pub period_frames: usize,
}

struct Open {
    pcm: PCM,
    granted: Granted,
    conv: Converter,
    started: Instant,
    /// Frames at the device rate delivered or filled in since `started`.
    frames: u64,
    buf: Vec<i16>,
}

pub struct AlsaMic {
    cfg: AlsaConfig,
    open: Option<Open>,
    backoff: Backoff,
    chunker: Chunker,
    /// Timeline origin (first open), kept across reopens.
    origin: Option<(Instant, SystemTime)>,
    xruns: u64,
    last_granted: Option<Granted>,
}

/// At most this much silence is filled in for one overrun.
const MAX_FILL_S: u64 = 10;

fn open(cfg: &AlsaConfig) -> Result<Open, String> {
    let pcm = PCM::new(&cfg.device, Direction::Capture, false).map_err(|e| e.to_string())?;
    let granted = {
        let hwp = HwParams::any(&pcm).map_err(|e| format!("hw params: {e}"))?;
        hwp.set_access(Access::RWInterleaved)
            .map_err(|e| format!("interleaved access: {e}"))?;
        hwp.set_format(Format::s16())
            .map_err(|e| format!("S16 format: {e}"))?;
        if hwp.set_channels(1).is_err() {
            let min = hwp
                .get_channels_min()
                .map_err(|e| format!("channels: {e}"))?;
            hwp.set_channels(min)
                .map_err(|e| format!("{min} channels: {e}"))?;
        }
        let rate = hwp
            .set_rate_near(crate::audio::SAMPLE_RATE, ValueOr::Nearest)
            .map_err(|e| format!("rate: {e}"))?;
        let period = (rate as u64 * cfg.period_ms.max(1) as u64 / 1000).max(64);
        hwp.set_period_size_near(period as alsa::pcm::Frames, ValueOr::Nearest)
            .map_err(|e| format!("period: {e}"))?;
        hwp.set_buffer_size_near((period * 8) as alsa::pcm::Frames)
            .map_err(|e| format!("buffer: {e}"))?;
        pcm.hw_params(&hwp).map_err(|e| format!("hw params: {e}"))?;
        let channels = hwp.get_channels().map_err(|e| e.to_string())? as u16;
        let period_frames = hwp.get_period_size().map_err(|e| e.to_string())? as usize;
        Granted {
            rate,
            channels,
            period_frames,
        }
    };
    pcm.start().map_err(|e| format!("start: {e}"))?;
    let conv = Converter::new(granted.rate, granted.channels)?;
    let buf = vec![0i16; granted.period_frames.max(64) * granted.channels as usize];
    Ok(Open {
        pcm,
        granted,
        conv,
        started: Instant::now(),
        frames: 0,
        buf,
    })
}

/// Errors after which the device is closed and reopened (it went away or broke), as opposed
/// to an overrun, which is recovered in place.
pub fn is_gone(errno: i32) -> bool {
    const ENODEV: i32 = 19;
    const EIO: i32 = 5;
    const EBADFD: i32 = 77;
    const ENOENT: i32 = 2;
    const ESHUTDOWN: i32 = 108;
    [ENODEV, EIO, EBADFD, ENOENT, ESHUTDOWN].contains(&errno.abs())
}

impl AlsaMic {
    /// Does not touch the device: it is opened on the first `read`, so a missing microphone
    /// at start-up is retried like one that vanishes later.
    pub fn new(cfg: AlsaConfig) -> AlsaMic {
        AlsaMic {
            cfg,
            open: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            chunker: Chunker::new(crate::wav::CHUNK),
            origin: None,
            xruns: 0,
            last_granted: None,
        }
    }

    pub fn granted(&self) -> Option<&Granted> {
        self.last_granted.as_ref()
    }

    fn unavailable(&mut self, reason: String) -> MicError {
        self.open = None;
        MicError::Unavailable {
            device: self.cfg.device.clone(),
            reason,
            retry_in: self.backoff.fail(),
        }
    }

    fn stamp(&mut self, start: u64, samples: Vec<i16>, lost: u32) -> AudioChunk {
        let (t0, w0) = *self
            .origin
            .get_or_insert((Instant::now(), SystemTime::now()));
        let off = Duration::from_secs_f64(start as f64 / crate::audio::SAMPLE_RATE as f64);
        AudioChunk {
            samples,
            start,
            captured: t0 + off,
            wall: w0 + off,
            lost,
        }
    }
}

impl Microphone for AlsaMic {
    fn describe(&self) -> String {
        match &self.last_granted {
            Some(g) => format!(
                "alsa {} {} Hz {} ch S16 (period {} frames) -> 16 kHz mono",
                self.cfg.device, g.rate, g.channels, g.period_frames
            ),
            None => format!("alsa {} (not open yet)", self.cfg.device),
        }
    }

    fn xruns(&self) -> u64 {
        self.xruns
    }

    fn read(&mut self) -> Result<AudioChunk, MicError> {
        loop {
            if let Some((start, s, lost)) = self.chunker.next(false) {
                return Ok(self.stamp(start, s, lost));
            }
            if self.open.is_none() {
                match open(&self.cfg) {
                    Ok(o) => {
                        log::info!("microphone {}: {}", self.cfg.device, {
                            self.last_granted = Some(o.granted.clone());
                            self.describe()
                        });
                        // A reopen starts a new stream: the time it was away is not filled.
                        self.origin
                            .get_or_insert((Instant::now(), SystemTime::now()));
                        self.open = Some(o);
                    }
                    Err(e) => return Err(self.unavailable(format!("cannot open: {e}"))),
                }
            }
            let Some(o) = self.open.as_mut() else {
                return Err(self.unavailable("not open".into()));
            };
            let r = o.pcm.io_i16().and_then(|io| io.readi(&mut o.buf));
            match r {
                Ok(frames) => {
                    let n = frames * o.granted.channels as usize;
                    o.conv.push_i16(&o.buf[..n]);
                    o.frames += frames as u64;
                    let mut out = Vec::new();
                    o.conv.take(&mut out);
                    self.chunker.push(&out, 0);
                    self.backoff.reset();
                }
                Err(e) if !is_gone(e.errno()) => {
                    // EPIPE (overrun) or ESTRPIPE (suspend): recover and fill the gap.
                    let rate = o.granted.rate;
                    if let Err(e2) = o.pcm.try_recover(e, true) {
                        return Err(self.unavailable(format!("cannot recover from {e}: {e2}")));
                    }
                    self.xruns += 1;
                    let Some(o) = self.open.as_mut() else {
                        continue;
                    };
                    let lost = lost_frames(
                        o.started.elapsed(),
                        rate,
                        o.frames,
                        rate as u64 * MAX_FILL_S,
                    );
                    log::warn!(
                        "microphone {}: overrun ({e}), {lost} frames lost, filled with silence",
                        self.cfg.device
                    );
                    o.conv.push_silence(lost as usize);
                    o.frames += lost;
                    let mut out = Vec::new();
                    o.conv.take(&mut out);
                    let lost16 = lost * crate::audio::SAMPLE_RATE as u64 / rate.max(1) as u64;
                    self.chunker.push(&out, lost16);
                    if let Some(o) = self.open.as_mut() {
                        let _ = o.pcm.start();
                    }
                }
                Err(e) => return Err(self.unavailable(format!("capture failed: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_unavailable_with_growing_backoff() {
        let mut mic = AlsaMic::new(AlsaConfig {
            device: "hw:CARD=NoSuchCard,DEV=0".into(),
            period_ms: 32,
        });
        let mut waits = Vec::new();
        for _ in 0..3 {
            match mic.read() {
                Err(MicError::Unavailable {
                    retry_in,
                    reason,
                    device,
                }) => {
                    assert!(reason.contains("cannot open"), "{reason}");
                    assert_eq!(device, "hw:CARD=NoSuchCard,DEV=0");
                    waits.push(retry_in);
                }
                other => panic!("expected unavailable, got {other:?}"),
            }
        }
        assert!(waits[0] < waits[1] && waits[1] < waits[2], "{waits:?}");
        assert!(mic.describe().contains("not open"), "{}", mic.describe());
    }

    /// Only the classification of errno values: whether recovery and reopening really
    /// happen needs a device (tests/vm/vivid.sh, snd-aloop).
    #[test]
    fn errno_values_are_classified_as_overrun_or_unplug() {
        assert!(!is_gone(32), "EPIPE is an overrun: recover in place");
        assert!(!is_gone(86), "ESTRPIPE is a suspend: recover in place");
        assert!(is_gone(19) && is_gone(-19) && is_gone(5) && is_gone(77));
    }
}
