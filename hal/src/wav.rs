//! WAV files as a microphone (tests, research, batch use), and a synthetic source (tones,
//! noise, silence) for tests and benchmarks. Any PCM rate and channel count `hound` reads
//! (8/16/24/32-bit integer, 32-bit float) is converted to mono 16 kHz S16.
//!
//! A file that cannot be opened, is not a WAV, uses an encoding hound does not decode
//! (A-law, µ-law, ADPCM...) or ends before its header says it should is reported as
//! [`MicError::Skipped`] (or, from [`read_wav`], a [`WavError`]) naming the file and what is
//! wrong; a source goes on with the next file.
//!
//! Length: ~400 lines of code and ~130 of tests: the header parser, the sample formats and
//! the resampling to 16 kHz mono, with the error that names each unsupported encoding.

use crate::audio::{AudioChunk, Chunker, Converter, MicError, Microphone, SAMPLE_RATE, to_i16};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Samples per chunk a file source delivers (32 ms at 16 kHz).
pub const CHUNK: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a WAV file hound can read: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: truncated after {seconds:.2} s of audio: {reason}")]
    Truncated {
        path: PathBuf,
        seconds: f64,
        reason: String,
    },
}

/// What a WAV header declared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavInfo {
    pub rate: u32,
    pub channels: u16,
    pub bits: u16,
    pub float: bool,
    /// Duration the header declares, in seconds.
    pub seconds: f64,
}

type FileReader = BufReader<std::fs::File>;

struct OpenWav<R: Read = FileReader> {
    path: PathBuf,
    reader: hound::WavReader<R>,
    info: WavInfo,
    conv: Converter,
    frames_read: u64,
}

fn format_error(path: &Path, e: hound::Error) -> WavError {
    match e {
        hound::Error::IoError(source) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            WavError::Open {
                path: path.to_path_buf(),
                source,
            }
        }
        other => WavError::Format {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

fn open_wav(path: &Path) -> Result<OpenWav, WavError> {
    let reader = hound::WavReader::open(path).map_err(|e| format_error(path, e))?;
    open_reader(path, reader)
}

/// The header checks and the converter of an opened reader; `path` names it in errors.
fn open_reader<R: Read>(path: &Path, reader: hound::WavReader<R>) -> Result<OpenWav<R>, WavError> {
    let spec = reader.spec();
    let float = spec.sample_format == hound::SampleFormat::Float;
    if float && spec.bits_per_sample != 32 {
        return Err(WavError::Format {
            path: path.to_path_buf(),
            reason: format!("{}-bit float samples (32-bit only)", spec.bits_per_sample),
        });
    }
    let info = WavInfo {
        rate: spec.sample_rate,
        channels: spec.channels,
        bits: spec.bits_per_sample,
        float,
        seconds: reader.duration() as f64 / spec.sample_rate.max(1) as f64,
    };
    let conv =
        Converter::new(spec.sample_rate, spec.channels).map_err(|reason| WavError::Format {
            path: path.to_path_buf(),
            reason,
        })?;
    Ok(OpenWav {
        path: path.to_path_buf(),
        reader,
        info,
        conv,
        frames_read: 0,
    })
}

impl<R: Read> OpenWav<R> {
    /// Read up to `frames` frames into the converter. Ok(false) at the end of the data.
    fn pump(&mut self, frames: usize) -> Result<bool, WavError> {
        let n = frames * self.info.channels as usize;
        let mut failed = None;
        let got = if self.info.float {
            let mut buf = Vec::with_capacity(n);
            for s in self.reader.samples::<f32>().take(n) {
                match s {
                    Ok(x) => buf.push(x),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let ch = self.info.channels.max(1) as usize;
            buf.truncate(buf.len() / ch * ch);
            self.conv.push_f32(&buf);
            buf.len()
        } else {
            let shift = self.info.bits.saturating_sub(16) as u32;
            let up = 16u16.saturating_sub(self.info.bits) as u32;
            let mut buf = Vec::with_capacity(n);
            for s in self.reader.samples::<i32>().take(n) {
                match s {
                    Ok(x) => {
                        let v = if shift > 0 { x >> shift } else { x << up };
                        buf.push(v.clamp(-32768, 32767) as i16);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let ch = self.info.channels.max(1) as usize;
            buf.truncate(buf.len() / ch * ch);
            self.conv.push_i16(&buf);
            buf.len()
        };
        self.frames_read += (got / self.info.channels.max(1) as usize) as u64;
        if let Some(e) = failed {
            self.conv.flush();
            return Err(WavError::Truncated {
                path: self.path.clone(),
                seconds: self.frames_read as f64 / self.info.rate.max(1) as f64,
                reason: e.to_string(),
            });
        }
        if got < n {
            self.conv.flush();
            return Ok(false);
        }
        Ok(true)
    }
}

/// Read a whole WAV file as mono 16 kHz S16 (batch analysis).
pub fn read_wav(path: &Path) -> Result<(WavInfo, Vec<i16>), WavError> {
    read_all(open_wav(path)?)
}

/// [`read_wav`] of a WAV file held in memory; `name` stands for its path in errors (the
/// `wav` fuzz target and its replay test feed the header parser and converter this way).
pub fn read_wav_bytes(name: &str, bytes: &[u8]) -> Result<(WavInfo, Vec<i16>), WavError> {
    let path = Path::new(name);
    let reader =
        hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|e| format_error(path, e))?;
    read_all(open_reader(path, reader)?)
}

fn read_all<R: Read>(mut w: OpenWav<R>) -> Result<(WavInfo, Vec<i16>), WavError> {
    let mut out = Vec::new();
    while w.pump(4096)? {
        w.conv.take(&mut out);
    }
    w.conv.take(&mut out);
    Ok((w.info, out))
}

/// WAV files in turn as one microphone, paced in real time or as fast as possible.
pub struct WavSource {
    paths: Vec<PathBuf>,
    next_path: usize,
    current: Option<OpenWav>,
    realtime: bool,
    looping: bool,
    chunker: Chunker,
    started: Option<(Instant, SystemTime)>,
    described: String,
}

impl WavSource {
    /// `paths`: WAV files, or folders (their `.wav` files in name order).
    pub fn new(paths: &[PathBuf], realtime: bool, looping: bool) -> Result<WavSource, MicError> {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let rd = std::fs::read_dir(p)
                    .map_err(|e| MicError::Config(format!("cannot list {}: {e}", p.display())))?;
                let mut v: Vec<PathBuf> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
                    })
                    .collect();
                v.sort();
                files.extend(v);
            } else {
                files.push(p.clone());
            }
        }
        if files.is_empty() {
            return Err(MicError::Config("no WAV files given".into()));
        }
        Ok(WavSource {
            paths: files,
            next_path: 0,
            current: None,
            realtime,
            looping,
            chunker: Chunker::new(CHUNK),
            started: None,
            described: "wav (not started)".into(),
        })
    }

    fn chunk(&mut self, allow_partial: bool) -> Option<AudioChunk> {
        let (start, samples, lost) = self.chunker.next(allow_partial)?;
        let (t0, w0) = *self
            .started
            .get_or_insert((Instant::now(), SystemTime::now()));
        let offset = Duration::from_secs_f64(start as f64 / SAMPLE_RATE as f64);
        let captured = t0 + offset;
        if self.realtime {
            // a chunk is delivered when its last sample is due
            let due = captured + Duration::from_secs_f64(samples.len() as f64 / SAMPLE_RATE as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        Some(AudioChunk {
            samples,
            start,
            captured,
            wall: w0 + offset,
            lost,
        })
    }
}

impl Microphone for WavSource {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn read(&mut self) -> Result<AudioChunk, MicError> {
        loop {
            if let Some(c) = self.chunk(false) {
                return Ok(c);
            }
            if self.current.is_none() {
                if self.next_path >= self.paths.len() {
                    if self.looping && !self.paths.is_empty() {
                        self.next_path = 0;
                    } else {
                        return self.chunk(true).ok_or(MicError::End);
                    }
                }
                let p = self.paths[self.next_path].clone();
                self.next_path += 1;
                match open_wav(&p) {
                    Ok(w) => {
                        self.described = format!(
                            "wav {} ({} Hz, {} ch, {}-bit{} -> 16 kHz mono)",
                            p.display(),
                            w.info.rate,
                            w.info.channels,
                            w.info.bits,
                            if w.info.float { " float" } else { "" }
                        );
                        self.current = Some(w);
                    }
                    Err(e) => {
                        return Err(MicError::Skipped {
                            item: p.display().to_string(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            let Some(w) = self.current.as_mut() else {
                continue;
            };
            let more = w.pump(CHUNK * 3);
            let mut out = Vec::new();
            w.conv.take(&mut out);
            self.chunker.push(&out, 0);
            match more {
                Ok(true) => {}
                Ok(false) => self.current = None,
                Err(e) => {
                    self.current = None;
                    return Err(MicError::Skipped {
                        item: self.paths[self.next_path - 1].display().to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

/// A piece of a synthetic signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Synth {
    Silence {
        secs: f32,
    },
    /// A sine at `hz`, `dbfs` RMS.
    Tone {
        hz: f32,
        dbfs: f32,
        secs: f32,
    },
    /// White noise (xorshift), `dbfs` RMS.
    Noise {
        dbfs: f32,
        secs: f32,
    },
}

/// Render synthetic pieces at 16 kHz.
pub fn synthesize(pieces: &[Synth]) -> Vec<i16> {
    let mut out = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let rate = SAMPLE_RATE as f32;
    for p in pieces {
        match *p {
            Synth::Silence { secs } => out.extend(std::iter::repeat_n(0, (secs * rate) as usize)),
            Synth::Tone { hz, dbfs, secs } => {
                let a = 10f32.powf(dbfs / 20.0) * std::f32::consts::SQRT_2;
                for i in 0..(secs * rate) as usize {
                    let t = i as f32 / rate;
                    out.push(to_i16(a * (2.0 * std::f32::consts::PI * hz * t).sin()));
                }
            }
            Synth::Noise { dbfs, secs } => {
                // uniform in [-1, 1] has RMS 1/sqrt(3)
                let a = 10f32.powf(dbfs / 20.0) * 3f32.sqrt();
                for _ in 0..(secs * rate) as usize {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let u = (rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                    out.push(to_i16(a * u));
                }
            }
        }
    }
    out
}

/// Samples in memory as a microphone (tests, benchmarks), as fast as possible.
pub struct MemorySource {
    name: String,
    samples: Vec<i16>,
    pos: usize,
    t0: Instant,
    w0: SystemTime,
}

impl MemorySource {
    pub fn new(name: &str, samples: Vec<i16>) -> MemorySource {
        MemorySource {
            name: name.to_string(),
            samples,
            pos: 0,
            t0: Instant::now(),
            w0: SystemTime::now(),
        }
    }
}

impl Microphone for MemorySource {
    fn describe(&self) -> String {
        format!(
            "memory {} ({} samples at 16 kHz)",
            self.name,
            self.samples.len()
        )
    }
    fn read(&mut self) -> Result<AudioChunk, MicError> {
        if self.pos >= self.samples.len() {
            return Err(MicError::End);
        }
        let end = (self.pos + CHUNK).min(self.samples.len());
        let off = Duration::from_secs_f64(self.pos as f64 / SAMPLE_RATE as f64);
        let c = AudioChunk {
            samples: self.samples[self.pos..end].to_vec(),
            start: self.pos as u64,
            captured: self.t0 + off,
            wall: self.w0 + off,
            lost: 0,
        };
        self.pos = end;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn a_48k_stereo_wav_becomes_16k_mono_chunks_on_a_continuous_timeline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.wav");
        let n = 48_000 / 2;
        let mut v = Vec::new();
        for i in 0..n {
            let s = to_i16(0.3 * (2.0 * std::f32::consts::PI * 200.0 * i as f32 / 48_000.0).sin());
            v.push(s);
            v.push(s);
        }
        write_wav(&p, 48_000, 2, &v);
        let mut src = WavSource::new(std::slice::from_ref(&p), false, false).unwrap();
        let mut total = 0u64;
        let mut next_start = 0;
        loop {
            match src.read() {
                Ok(c) => {
                    assert_eq!(c.start, next_start, "no gap on the timeline");
                    next_start += c.samples.len() as u64;
                    total += c.samples.len() as u64;
                }
                Err(MicError::End) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(total, 8_000);
        assert!(
            src.describe().contains("48000 Hz, 2 ch"),
            "{}",
            src.describe()
        );
        let (info, all) = read_wav(&p).unwrap();
        assert_eq!((info.rate, info.channels, all.len()), (48_000, 2, 8_000));
    }

    #[test]
    fn truncated_wrong_format_and_non_audio_files_are_clear_errors_and_the_source_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good.wav");
        write_wav(
            &good,
            16_000,
            1,
            &synthesize(&[Synth::Tone {
                hz: 300.0,
                dbfs: -20.0,
                secs: 0.5,
            }]),
        );
        let bytes = std::fs::read(&good).unwrap();
        let truncated = d.path().join("truncated.wav");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let text = d.path().join("notes.wav");
        std::fs::write(&text, b"this is not audio at all, just some text\n").unwrap();
        // a WAV header declaring A-law (format tag 6), which hound does not decode
        let mut alaw = bytes.clone();
        alaw[20] = 6;
        alaw[34] = 8;
        let alaw_p = d.path().join("alaw.wav");
        std::fs::write(&alaw_p, &alaw).unwrap();
        let missing = d.path().join("missing.wav");

        let e = read_wav(&truncated).unwrap_err();
        assert!(matches!(e, WavError::Truncated { .. }), "{e}");
        assert!(e.to_string().contains("truncated after 0.2"), "{e}");
        let e = read_wav(&text).unwrap_err();
        assert!(matches!(e, WavError::Format { .. }), "{e}");
        assert!(e.to_string().contains("notes.wav"), "{e}");
        let e = read_wav(&alaw_p).unwrap_err();
        assert!(matches!(e, WavError::Format { .. }), "{e}");
        let e = read_wav(&missing).unwrap_err();
        assert!(matches!(e, WavError::Open { .. }), "{e}");

        let mut src =
            WavSource::new(&[truncated, text, alaw_p, missing, good], false, false).unwrap();
        let (mut skipped, mut samples) = (Vec::new(), 0);
        loop {
            match src.read() {
                Ok(c) => samples += c.samples.len(),
                Err(MicError::Skipped { item, reason }) => skipped.push((item, reason)),
                Err(MicError::End) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(skipped.len(), 4, "{skipped:?}");
        // the good file and what was read of the truncated one (its first ~0.25 s)
        assert!(samples >= 8_000 + 3_000, "{samples}");
    }

    #[test]
    fn synthetic_levels_are_what_was_asked() {
        let x = synthesize(&[Synth::Tone {
            hz: 1000.0,
            dbfs: -20.0,
            secs: 1.0,
        }]);
        let rms =
            (x.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        assert!((20.0 * rms.log10() + 20.0).abs() < 0.1, "{rms}");
        let x = synthesize(&[Synth::Noise {
            dbfs: -30.0,
            secs: 1.0,
        }]);
        let rms =
            (x.iter().map(|&s| (s as f64 / 32768.0).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        assert!((20.0 * rms.log10() + 30.0).abs() < 0.3, "{rms}");
        let mut m = MemorySource::new("t", x);
        assert_eq!(m.read().unwrap().samples.len(), CHUNK);
    }

    /// Found by fuzzing (issue 13 item 4; the input is fuzz/regressions/wav/): a 32-bit
    /// float WAV whose samples reach 7.5e31 made the resampler's FFT panic (rubato unwraps
    /// realfft's "imaginary part of first value was non-zero"). Samples beyond full scale are
    /// clipped and NaN is silence before resampling.
    #[test]
    fn float_samples_far_beyond_full_scale_or_nan_are_clipped_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("wild.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        let wild = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            7.5e31,
            -3.9e31,
            12884.5,
        ];
        for i in 0..4410 {
            w.write_sample(wild[i % wild.len()]).unwrap();
            w.write_sample(0.25f32).unwrap();
        }
        w.finalize().unwrap();
        let (info, out) = read_wav(&p).unwrap();
        assert!(info.float);
        assert_eq!(out.len(), 1600, "0.1 s at 16 kHz");
        let fuzzed = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/wav/f32-nan-resampler-fft-panic"
        ))
        .unwrap();
        // it reads, or is refused with a reason (its data chunk is cut short)
        match read_wav_bytes("fuzzed.wav", &fuzzed) {
            Ok((info, _)) => assert!(info.float),
            Err(e) => assert!(e.to_string().starts_with("fuzzed.wav: "), "{e}"),
        }
    }
}
