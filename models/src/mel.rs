//! The log-mel front end of `speech_emotion` packages, as `librosa.feature.melspectrogram`
//! computes it (librosa 0.11 defaults: `center=True`, `pad_mode="constant"`, periodic Hann
//! window of `window` samples centred in `n_fft`, power 2, Slaney mel scale and Slaney
//! area normalisation), then `ln(mel + log_offset)`. Pure: samples in, features out.
//! `models/tools/make_mel_fixture.py` computes the reference values with librosa.
#![forbid(unsafe_code)]

use crate::manifest::FeatureSpec;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use std::sync::Arc;

pub struct LogMel {
    spec: FeatureSpec,
    window: Vec<f32>,
    /// Per band: first FFT bin and its weights.
    filters: Vec<(usize, Vec<f32>)>,
    fft: Arc<dyn realfft::RealToComplex<f32>>,
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    power: Vec<f32>,
    scratch: Vec<Complex<f32>>,
}

/// Hz to mel, Slaney's scale (librosa `hz_to_mel(htk=False)`).
pub fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

pub fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// librosa `filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney")`, dense,
/// `[n_mels][1 + n_fft / 2]`.
pub fn mel_filters(sr: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Vec<Vec<f64>> {
    let bins = 1 + n_fft / 2;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * sr as f64 / n_fft as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let (f0, f1, f2) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
            let enorm = 2.0 / (f2 - f0);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - f0) / (f1 - f0);
                    let upper = (f2 - f) / (f2 - f1);
                    lower.min(upper).max(0.0) * enorm
                })
                .collect()
        })
        .collect()
}

impl LogMel {
    pub fn new(spec: &FeatureSpec) -> LogMel {
        let n_fft = spec.n_fft;
        let win = spec.window.min(n_fft).max(1);
        let mut window = vec![0.0f32; n_fft];
        let off = (n_fft - win) / 2;
        for i in 0..win {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / win as f64).cos();
            window[off + i] = w as f32;
        }
        let fmax = if spec.fmax > 0.0 {
            spec.fmax as f64
        } else {
            spec.sample_rate as f64 / 2.0
        };
        let filters = mel_filters(spec.sample_rate, n_fft, spec.n_mels, spec.fmin as f64, fmax)
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w > 0.0).unwrap_or(0);
                let w: Vec<f32> = if last >= first {
                    row[first..=last].iter().map(|&x| x as f32).collect()
                } else {
                    Vec::new()
                };
                (first, w)
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        LogMel {
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            frame: vec![0.0; n_fft],
            power: vec![0.0; n_fft / 2 + 1],
            window,
            filters,
            fft,
            spec: spec.clone(),
        }
    }

    pub fn n_mels(&self) -> usize {
        self.spec.n_mels
    }

    /// Frames of `n` samples with centre padding: `1 + n / hop`.
    pub fn frames_for(&self, n: usize) -> usize {
        1 + n / self.spec.hop
    }

    /// The value of a frame of silence.
    pub fn silence(&self) -> f32 {
        self.spec.log_offset.ln()
    }

    /// Log-mel features of `x` (16 kHz, −1..1), row-major `[n_mels][frames]`, appended to
    /// `out` (cleared first). Returns the number of frames.
    pub fn compute(&mut self, x: &[f32], out: &mut Vec<f32>) -> usize {
        let n_fft = self.spec.n_fft;
        let hop = self.spec.hop;
        let pad = n_fft / 2;
        let frames = self.frames_for(x.len());
        let n_mels = self.spec.n_mels;
        out.clear();
        out.resize(n_mels * frames, 0.0);
        for t in 0..frames {
            // sample index of frame t's first FFT input, in the unpadded signal
            let start = (t * hop) as isize - pad as isize;
            for (i, f) in self.frame.iter_mut().enumerate() {
                let j = start + i as isize;
                let s = if j >= 0 && (j as usize) < x.len() {
                    x[j as usize]
                } else {
                    0.0
                };
                *f = s * self.window[i];
            }
            if self
                .fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .is_err()
            {
                continue;
            }
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, (first, w)) in self.filters.iter().enumerate() {
                let e: f32 = w
                    .iter()
                    .zip(&self.power[*first..])
                    .map(|(a, b)| a * b)
                    .sum();
                out[m * frames + t] = (e + self.spec.log_offset).ln();
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FeatureLayout;

    fn spec() -> FeatureSpec {
        FeatureSpec {
            sample_rate: 16_000,
            window: 400,
            hop: 160,
            n_fft: 512,
            n_mels: 40,
            fmin: 0.0,
            fmax: 8000.0,
            log_offset: 1e-6,
            layout: FeatureLayout::MelsFrames,
        }
    }

    #[test]
    fn mel_scale_round_trips_and_is_linear_below_1_khz() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-9);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
    }

    #[test]
    fn a_tone_lights_the_band_that_holds_its_frequency() {
        let mut m = LogMel::new(&spec());
        let x: Vec<f32> = (0..8000)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mut out = Vec::new();
        let frames = m.compute(&x, &mut out);
        assert_eq!(frames, 51);
        let t = 25;
        let band = (0..40)
            .max_by(|&a, &b| out[a * frames + t].total_cmp(&out[b * frames + t]))
            .unwrap();
        let f = mel_filters(16_000, 512, 40, 0.0, 8000.0);
        let bin = (1000.0 * 512.0 / 16_000.0) as usize; // 32
        let best = (0..40)
            .max_by(|&a, &b| f[a][bin].total_cmp(&f[b][bin]))
            .unwrap();
        assert_eq!(band, best);
        let mut silent = Vec::new();
        m.compute(&[0.0; 1600], &mut silent);
        assert!(silent.iter().all(|&v| (v - m.silence()).abs() < 1e-6));
    }
}
