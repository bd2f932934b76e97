//! The microphone trait, its chunks, and the pure conversions every source shares: any
//! device or file format is turned into the one internal format, mono 16 kHz signed 16-bit
//! ([`SAMPLE_RATE`]), by averaging channels and resampling with `rubato`; and the xrun
//! arithmetic that keeps the timeline without gaps (lost samples are replaced by as many
//! zero samples, counted in [`AudioChunk::lost`]).

use std::time::{Duration, Instant, SystemTime};

/// The internal sample rate (Hz): what every source delivers.
pub const SAMPLE_RATE: u32 = 16_000;

/// One run of mono 16 kHz samples.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioChunk {
    pub samples: Vec<i16>,
    /// Index of the first sample on this source's timeline (16 kHz samples since the source
    /// started, lost samples included, so `start / 16000` is seconds of timeline).
    pub start: u64,
    /// Monotonic time of the first sample.
    pub captured: Instant,
    /// Wall-clock time of the first sample.
    pub wall: SystemTime,
    /// Samples of this chunk that are zeros standing in for audio lost to an overrun.
    pub lost: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum MicError {
    /// One input (a WAV file) could not be read; a file source goes on with the next.
    #[error("skipped {item}: {reason}")]
    Skipped { item: String, reason: String },
    /// The device is absent or went away; the source reopens it after `retry_in`.
    #[error("microphone {device} unavailable: {reason} (retrying in {retry_in:?})")]
    Unavailable {
        device: String,
        reason: String,
        retry_in: Duration,
    },
    /// A file source has no more audio.
    #[error("end of audio input")]
    End,
    /// A setting the source cannot honour at all.
    #[error("microphone configuration: {0}")]
    Config(String),
}

/// Anything that yields audio. `read` blocks until a chunk is there (a device) or due (a
/// paced file); it never sleeps through a back-off (it returns [`MicError::Unavailable`]).
pub trait Microphone: Send {
    /// What the source is and what it negotiated, for logs, health and `emotiond check`.
    fn describe(&self) -> String;
    fn read(&mut self) -> Result<AudioChunk, MicError>;
    /// Overruns recovered from since the source was made.
    fn xruns(&self) -> u64 {
        0
    }
}

/// Float sample (−1..1) to S16, rounded and clamped.
pub fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// S16 to float in −1..1.
pub fn to_f32(x: i16) -> f32 {
    x as f32 / 32768.0
}

/// Turns interleaved input at any rate and channel count into mono 16 kHz S16: channels are
/// averaged, then rubato's FFT resampler converts the rate (none when it is already 16 kHz).
pub struct Converter {
    in_rate: u32,
    channels: usize,
    resampler: Option<rubato::FftFixedIn<f32>>,
    /// Mono input waiting for a full resampler chunk.
    pending: Vec<f32>,
    /// Output produced, waiting to be taken.
    out: Vec<i16>,
    /// Mono input frames pushed / output frames produced, for the flush arithmetic.
    frames_in: u64,
    frames_out: u64,
    /// Output frames the resampler's delay still owes at the start.
    skip: usize,
}

/// Resampler input chunk (frames at the input rate).
const RESAMPLE_CHUNK: usize = 1024;

impl Converter {
    pub fn new(in_rate: u32, channels: u16) -> Result<Converter, String> {
        if channels == 0 {
            return Err("0 channels".into());
        }
        if !(4_000..=384_000).contains(&in_rate) {
            return Err(format!("sample rate {in_rate} Hz is not supported"));
        }
        let (resampler, skip) = if in_rate == SAMPLE_RATE {
            (None, 0)
        } else {
            use rubato::Resampler;
            let r = rubato::FftFixedIn::<f32>::new(
                in_rate as usize,
                SAMPLE_RATE as usize,
                RESAMPLE_CHUNK,
                2,
                1,
            )
            .map_err(|e| format!("resampler {in_rate} -> {SAMPLE_RATE} Hz: {e}"))?;
            let d = r.output_delay();
            (Some(r), d)
        };
        Ok(Converter {
            in_rate,
            channels: channels as usize,
            resampler,
            pending: Vec::new(),
            out: Vec::new(),
            frames_in: 0,
            frames_out: 0,
            skip,
        })
    }

    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Push interleaved float samples (full scale is ±1.0); a trailing partial frame is
    /// ignored. A sample beyond full scale is clipped and a NaN is silence: the resampler's
    /// FFT panicked on samples far beyond it (up to 7.5e31 in a 32-bit float WAV; found by
    /// fuzzing, issue 13 item 4), and the output is clipped to S16 anyway.
    pub fn push_f32(&mut self, interleaved: &[f32]) {
        let c = self.channels;
        let clip = |s: f32| if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
        for frame in interleaved.chunks_exact(c) {
            let m = frame.iter().map(|&s| clip(s)).sum::<f32>() / c as f32;
            self.pending.push(m);
        }
        self.frames_in += (interleaved.len() / c) as u64;
        self.run(false);
    }

    /// Push interleaved S16 samples.
    pub fn push_i16(&mut self, interleaved: &[i16]) {
        let c = self.channels;
        for frame in interleaved.chunks_exact(c) {
            let m = frame.iter().map(|&s| s as i32).sum::<i32>() as f32 / c as f32;
            self.pending.push(m / 32768.0);
        }
        self.frames_in += (interleaved.len() / c) as u64;
        self.run(false);
    }

    /// Push `frames` frames of silence (audio lost to an overrun).
    pub fn push_silence(&mut self, frames: usize) {
        self.pending.extend(std::iter::repeat_n(0.0, frames));
        self.frames_in += frames as u64;
        self.run(false);
    }

    /// End of input: the resampler's remainder is flushed, and the output is made exactly as
    /// long as the input's duration at 16 kHz.
    pub fn flush(&mut self) {
        self.run(true);
    }

    /// Take the 16 kHz output produced so far.
    pub fn take(&mut self, into: &mut Vec<i16>) {
        into.append(&mut self.out);
    }

    /// Output samples waiting.
    pub fn available(&self) -> usize {
        self.out.len()
    }

    fn expected_out(&self) -> u64 {
        self.frames_in * SAMPLE_RATE as u64 / self.in_rate as u64
    }

    fn emit(&mut self, wave: &[f32], limit: Option<u64>) {
        for &x in wave {
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            if limit.is_some_and(|l| self.frames_out >= l) {
                return;
            }
            self.out.push(to_i16(x));
            self.frames_out += 1;
        }
    }

    fn run(&mut self, flush: bool) {
        use rubato::Resampler;
        let Some(r) = self.resampler.as_mut() else {
            let p = std::mem::take(&mut self.pending);
            self.emit(&p, None);
            return;
        };
        let mut done = 0;
        let mut produced: Vec<f32> = Vec::new();
        while self.pending.len() - done >= r.input_frames_next() {
            let n = r.input_frames_next();
            match r.process(&[&self.pending[done..done + n]], None) {
                Ok(w) => produced.extend_from_slice(&w[0]),
                Err(e) => log::error!("resampler: {e}"),
            }
            done += n;
        }
        self.pending.drain(..done);
        let limit = self.expected_out();
        self.emit(&produced, None);
        if flush {
            // Zero-pad until the output covers the input's duration (the resampler's delay).
            let mut guard = 0;
            while self.frames_out < limit && guard < 64 {
                let Some(r) = self.resampler.as_mut() else {
                    return;
                };
                let n = r.input_frames_next();
                let mut chunk = std::mem::take(&mut self.pending);
                chunk.resize(n, 0.0);
                let w = match r.process(&[&chunk[..]], None) {
                    Ok(w) => w,
                    Err(e) => {
                        log::error!("resampler: {e}");
                        return;
                    }
                };
                self.emit(&w[0], Some(limit));
                guard += 1;
            }
        }
    }
}

/// After an overrun: how many frames (at `rate`) were lost, from the time the stream has run
/// (`elapsed`) and the frames it delivered. Zero when the device is not behind; at most
/// `max` (a clock jump must not produce hours of silence).
pub fn lost_frames(elapsed: Duration, rate: u32, delivered: u64, max: u64) -> u64 {
    let due = (elapsed.as_secs_f64() * rate as f64) as u64;
    due.saturating_sub(delivered).min(max)
}

/// Chunks of exactly `len` samples cut from a growing buffer, stamped on the timeline.
#[derive(Debug)]
pub struct Chunker {
    len: usize,
    buf: Vec<i16>,
    lost_in_buf: u64,
    next_start: u64,
}

impl Chunker {
    pub fn new(len: usize) -> Chunker {
        Chunker {
            len: len.max(1),
            buf: Vec::new(),
            lost_in_buf: 0,
            next_start: 0,
        }
    }
    pub fn push(&mut self, s: &[i16], lost: u64) {
        self.buf.extend_from_slice(s);
        self.lost_in_buf += lost;
    }
    /// The next full chunk: (start on the timeline, samples, lost samples in it).
    pub fn next(&mut self, allow_partial: bool) -> Option<(u64, Vec<i16>, u32)> {
        let partial_ok = allow_partial && !self.buf.is_empty();
        if self.buf.len() < self.len && !partial_ok {
            return None;
        }
        let n = self.len.min(self.buf.len());
        let rest = self.buf.split_off(n);
        let samples = std::mem::replace(&mut self.buf, rest);
        let lost = self.lost_in_buf.min(n as u64);
        self.lost_in_buf -= lost;
        let start = self.next_start;
        self.next_start += n as u64;
        Some((start, samples, lost as u32))
    }
    pub fn position(&self) -> u64 {
        self.next_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frequency of a mono signal from its zero crossings (rising), in Hz.
    pub(crate) fn zero_crossing_hz(x: &[i16], rate: f32) -> f32 {
        let ups: Vec<usize> = (1..x.len())
            .filter(|&i| x[i - 1] < 0 && x[i] >= 0)
            .collect();
        let (first, last) = (ups[0], ups[ups.len() - 1]);
        (ups.len() - 1) as f32 * rate / (last - first) as f32
    }

    fn tone(rate: u32, hz: f32, secs: f32, channels: usize) -> Vec<i16> {
        let n = (rate as f32 * secs) as usize;
        let mut v = Vec::with_capacity(n * channels);
        for i in 0..n {
            let s = to_i16(0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin());
            for _ in 0..channels {
                v.push(s);
            }
        }
        v
    }

    #[test]
    fn resampling_48k_to_16k_keeps_a_tones_frequency_and_duration() {
        for hz in [440.0f32, 1000.0, 3000.0] {
            let mut c = Converter::new(48_000, 1).unwrap();
            let input = tone(48_000, hz, 1.0, 1);
            // in odd-sized pieces, as a device delivers periods
            for piece in input.chunks(777) {
                c.push_i16(piece);
            }
            c.flush();
            let mut out = Vec::new();
            c.take(&mut out);
            assert_eq!(
                out.len(),
                16_000,
                "1 s at 48 kHz is 16000 samples at 16 kHz"
            );
            let f = zero_crossing_hz(&out[800..15_200], 16_000.0);
            assert!((f - hz).abs() < hz * 0.002, "{hz} Hz came out as {f} Hz");
            // amplitude is kept (no attenuation or clipping in the passband)
            let peak = out[800..15_200]
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap();
            assert!((15_500..=17_000).contains(&peak), "peak {peak}");
        }
    }

    #[test]
    fn stereo_44k1_is_averaged_to_mono_and_resampled() {
        let mut c = Converter::new(44_100, 2).unwrap();
        // left: tone, right: silence -> mono at half amplitude
        let n = 44_100;
        let mut v = Vec::with_capacity(2 * n);
        for i in 0..n {
            let s = to_i16(0.5 * (2.0 * std::f32::consts::PI * 500.0 * i as f32 / 44_100.0).sin());
            v.push(s);
            v.push(0);
        }
        c.push_i16(&v);
        c.flush();
        let mut out = Vec::new();
        c.take(&mut out);
        assert_eq!(out.len(), 16_000);
        let f = zero_crossing_hz(&out[1000..15_000], 16_000.0);
        assert!((f - 500.0).abs() < 1.0, "{f}");
        let peak = out[1000..15_000]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((7_700..=8_700).contains(&peak), "peak {peak}");
    }

    #[test]
    fn sixteen_khz_mono_passes_through_unchanged() {
        let mut c = Converter::new(16_000, 1).unwrap();
        let t = tone(16_000, 300.0, 0.1, 1);
        c.push_i16(&t);
        c.flush();
        let mut out = Vec::new();
        c.take(&mut out);
        assert_eq!(out, t);
        assert!(Converter::new(16_000, 0).is_err());
        assert!(Converter::new(1_000, 1).is_err());
    }

    #[test]
    fn silence_for_lost_frames_keeps_the_timeline_length() {
        let mut c = Converter::new(48_000, 1).unwrap();
        c.push_i16(&tone(48_000, 440.0, 0.5, 1));
        c.push_silence(24_000);
        c.flush();
        let mut out = Vec::new();
        c.take(&mut out);
        assert_eq!(out.len(), 16_000);
        assert!(out[8_500..].iter().all(|s| s.unsigned_abs() < 50));
    }

    #[test]
    fn lost_frames_after_an_overrun() {
        // 2 s of stream at 48 kHz, 90 000 frames delivered: 6 000 lost
        assert_eq!(
            lost_frames(Duration::from_secs(2), 48_000, 90_000, 1 << 30),
            6_000
        );
        // device ahead of the clock (buffered data): nothing lost
        assert_eq!(
            lost_frames(Duration::from_secs(1), 48_000, 50_000, 1 << 30),
            0
        );
        // bounded
        assert_eq!(
            lost_frames(Duration::from_secs(3600), 48_000, 0, 480_000),
            480_000
        );
    }

    #[test]
    fn chunker_stamps_consecutive_starts_and_carries_lost_counts() {
        let mut c = Chunker::new(4);
        c.push(&[1, 2, 3], 0);
        assert!(c.next(false).is_none());
        c.push(&[0, 0, 0, 0, 9], 3);
        assert_eq!(c.next(false), Some((0, vec![1, 2, 3, 0], 3)));
        assert_eq!(c.next(false), Some((4, vec![0, 0, 0, 9], 0)));
        assert!(c.next(false).is_none());
        c.push(&[5], 0);
        assert_eq!(c.next(true), Some((8, vec![5], 0)));
        assert_eq!(c.position(), 9);
    }
}
