//! Summaries: the payload types and codecs are [`emotiond_wire::summary`] (shared with the
//! fleet), re-exported here; this module adds what needs the daemon's models: the model
//! block of a running engine, and the circumplex that turns emotion probabilities into
//! valence and arousal.

use emotiond_models::EMOTIONS;
pub use emotiond_wire::summary::*;

/// The summary's block for a model: its id and what runs it, with the watchdog's counters.
pub fn model_info(id: String, e: &dyn emotiond_models::Engine) -> ModelInfo {
    let w = e.watchdog().unwrap_or_default();
    ModelInfo {
        id,
        engine: e.kind().to_string(),
        accelerator: e.accelerator().map(str::to_string),
        fallback: e.fallback().map(str::to_string),
        slow: w.slow,
        stalls: w.stalls,
        rebuilds: w.rebuilds,
    }
}

/// Valence and arousal (Russell & Mehrabian 1977 pleasure/arousal ratings of the basic
/// emotions; neutral at the origin), in the order of [`EMOTIONS`].
pub const CIRCUMPLEX: [(f32, f32); 7] = [
    (-0.51, 0.59),  // angry
    (-0.60, 0.35),  // disgust
    (-0.64, 0.60),  // fear
    (0.81, 0.51),   // happy
    (-0.63, -0.27), // sad
    (0.40, 0.67),   // surprise
    (0.0, 0.0),     // neutral
];

/// Probability-weighted mean of the circumplex points; probabilities are renormalised.
pub fn valence_arousal(p: &[f32; 7]) -> Option<(f32, f32)> {
    let total: f32 = p.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    let (mut v, mut a) = (0.0, 0.0);
    for (pi, (vi, ai)) in p.iter().zip(CIRCUMPLEX) {
        v += pi * vi;
        a += pi * ai;
    }
    Some((v / total, a / total))
}

const _: () = assert!(EMOTIONS.len() == 7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valence_arousal_follow_the_circumplex() {
        let happy = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(valence_arousal(&happy), Some((0.81, 0.51)));
        let (v, a) = valence_arousal(&[0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0]).unwrap();
        assert!((v - 0.09).abs() < 1e-6 && (a - 0.12).abs() < 1e-6);
        let (v, a) = valence_arousal(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]).unwrap();
        assert_eq!((v, a), (0.0, 0.0));
        assert_eq!(valence_arousal(&[0.0; 7]), None);
    }
}
