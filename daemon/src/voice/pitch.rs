//! Fundamental frequency (F0) with YIN (de Cheveigné & Kawahara, "YIN, a fundamental
//! frequency estimator for speech and music", JASA 111(4), 2002): difference function,
//! cumulative mean normalised difference, absolute threshold, parabolic interpolation.
//! Pure; the caller hands in a frame of samples.

/// YIN settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YinConfig {
    pub sample_rate: f32,
    /// F0 search range in Hz.
    pub fmin: f32,
    pub fmax: f32,
    /// Absolute threshold on the normalised difference (the paper uses 0.1 for clean
    /// signals; 0.25 keeps more of the voiced frames of real, breathy or reverberant speech).
    pub threshold: f32,
}

impl Default for YinConfig {
    fn default() -> Self {
        YinConfig {
            sample_rate: 16_000.0,
            fmin: 60.0,
            fmax: 500.0,
            threshold: 0.25,
        }
    }
}

/// Reusable buffers for [`Yin::estimate`].
#[derive(Debug, Clone)]
pub struct Yin {
    cfg: YinConfig,
    d: Vec<f32>,
}

/// A pitch estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pitch {
    pub hz: f32,
    /// The normalised difference at the chosen lag (0: perfectly periodic).
    pub aperiodicity: f32,
}

impl Yin {
    pub fn new(cfg: YinConfig) -> Yin {
        Yin { cfg, d: Vec::new() }
    }

    /// Samples a frame must hold: two periods of `fmin` plus a margin.
    pub fn frame_len(&self) -> usize {
        let tau_max = (self.cfg.sample_rate / self.cfg.fmin).ceil() as usize;
        (tau_max * 2 + 2).next_power_of_two()
    }

    /// F0 of `x` (a frame of at least [`Yin::frame_len`] samples is best), or `None` when
    /// no lag in the range is periodic enough (unvoiced, noise, silence).
    pub fn estimate(&mut self, x: &[f32]) -> Option<Pitch> {
        let sr = self.cfg.sample_rate;
        let tau_min = ((sr / self.cfg.fmax).floor() as usize).max(2);
        let tau_max = (sr / self.cfg.fmin).ceil() as usize;
        if x.len() < tau_max + 16 {
            return None;
        }
        let w = x.len() - tau_max - 1;
        // 1. difference function d(tau), tau = 0..=tau_max+1
        self.d.clear();
        self.d.resize(tau_max + 2, 0.0);
        for tau in 1..=tau_max + 1 {
            self.d[tau] = diff(&x[..w], &x[tau..tau + w]);
        }
        // 2. cumulative mean normalised difference, in place
        let mut running = 0.0f32;
        self.d[0] = 1.0;
        for tau in 1..=tau_max + 1 {
            running += self.d[tau];
            self.d[tau] = if running > 0.0 {
                self.d[tau] * tau as f32 / running
            } else {
                1.0
            };
        }
        // 3. the first lag under the threshold, then down to its local minimum
        let mut tau = tau_min;
        let found = loop {
            if tau > tau_max {
                break None;
            }
            if self.d[tau] < self.cfg.threshold {
                while tau < tau_max && self.d[tau + 1] < self.d[tau] {
                    tau += 1;
                }
                break Some(tau);
            }
            tau += 1;
        }?;
        // 4. parabolic interpolation around the minimum
        let (a, b, c) = (self.d[found - 1], self.d[found], self.d[found + 1]);
        let den = a - 2.0 * b + c;
        let shift = if den.abs() > 1e-12 {
            (0.5 * (a - c) / den).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let period = found as f32 + shift;
        let hz = sr / period;
        (hz >= self.cfg.fmin * 0.95 && hz <= self.cfg.fmax * 1.05).then_some(Pitch {
            hz,
            aperiodicity: b,
        })
    }
}

/// Σ (a_i − b_i)², with eight partial sums so the compiler vectorises it.
fn diff(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = x[k] - y[k];
            acc[k] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

/// Semitones of `hz` above 100 Hz.
pub fn semitones(hz: f32) -> f32 {
    12.0 * (hz / 100.0).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, n: usize, harmonics: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                (1..=harmonics)
                    .map(|k| (2.0 * std::f32::consts::PI * hz * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
                    * 0.3
            })
            .collect()
    }

    #[test]
    fn sine_and_harmonic_tones_come_out_at_their_frequency() {
        let mut y = Yin::new(YinConfig::default());
        let n = y.frame_len();
        assert!(n >= 2 * 267, "{n}");
        for hz in [65.0f32, 100.0, 123.4, 220.0, 330.0, 480.0] {
            for harmonics in [1, 8] {
                let p = y.estimate(&tone(hz, n, harmonics)).expect("voiced");
                assert!(
                    (p.hz - hz).abs() < hz * 0.005,
                    "{hz} Hz ({harmonics} harmonics) estimated {}",
                    p.hz
                );
                assert!(p.aperiodicity < 0.05, "{p:?}");
            }
        }
    }

    #[test]
    fn a_missing_fundamental_is_still_found() {
        // harmonics 2..6 of 150 Hz, no energy at 150 Hz itself
        let n = 1024;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                (2..=6)
                    .map(|k| (2.0 * std::f32::consts::PI * 150.0 * k as f32 * t).sin())
                    .sum::<f32>()
                    * 0.1
            })
            .collect();
        let p = Yin::new(YinConfig::default()).estimate(&x).unwrap();
        assert!((p.hz - 150.0).abs() < 1.5, "{p:?}");
    }

    #[test]
    fn silence_and_white_noise_are_unvoiced() {
        let mut y = Yin::new(YinConfig::default());
        assert_eq!(y.estimate(&[0.0; 1024]), None);
        let mut r = 12345u32;
        let noise: Vec<f32> = (0..1024)
            .map(|_| {
                r ^= r << 13;
                r ^= r >> 17;
                r ^= r << 5;
                (r as f32 / u32::MAX as f32) - 0.5
            })
            .collect();
        assert_eq!(y.estimate(&noise), None);
        assert_eq!(y.estimate(&[0.1; 100]), None, "too short");
    }

    #[test]
    fn semitones_are_relative_to_100_hz() {
        assert_eq!(semitones(100.0), 0.0);
        assert!((semitones(200.0) - 12.0).abs() < 1e-5);
    }
}
