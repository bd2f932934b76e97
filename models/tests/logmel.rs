//! The log-mel front end of `speech_emotion` packages against librosa 0.11
//! (`models/tools/make_mel_fixture.py` wrote the reference values in
//! `tests/fixtures/logmel/`).

use emotiond_models::manifest::{FeatureLayout, FeatureSpec};
use emotiond_models::mel::LogMel;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logmel").join(name)
}

fn f32s(name: &str) -> Vec<f32> {
    std::fs::read(fixture(name))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn log_mel_matches_librosa_on_every_fixture_spec() {
    let specs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("specs.json")).unwrap()).unwrap();
    let x = f32s("input.f32");
    assert_eq!(x.len(), 16_000);
    let list = specs["specs"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    for s in list {
        let spec = FeatureSpec {
            sample_rate: s["sample_rate"].as_u64().unwrap() as u32,
            window: s["window"].as_u64().unwrap() as usize,
            hop: s["hop"].as_u64().unwrap() as usize,
            n_fft: s["n_fft"].as_u64().unwrap() as usize,
            n_mels: s["n_mels"].as_u64().unwrap() as usize,
            fmin: s["fmin"].as_f64().unwrap() as f32,
            fmax: s["fmax"].as_f64().unwrap() as f32,
            log_offset: s["log_offset"].as_f64().unwrap() as f32,
            layout: FeatureLayout::MelsFrames,
        };
        let name = s["name"].as_str().unwrap();
        let want = f32s(&format!("{name}.f32"));
        let mut m = LogMel::new(&spec);
        let mut got = Vec::new();
        let frames = m.compute(&x, &mut got);
        assert_eq!(frames as u64, s["frames"].as_u64().unwrap(), "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        // In the ln domain where the band holds more than 1e-7 of the peak power; below that
        // float32 FFT rounding (about 1e-7 of the peak) dominates, so there the linear powers
        // must agree to 1e-6 of the peak.
        let peak = want.iter().map(|w| w.exp()).fold(0.0f32, f32::max);
        let mut worst = (0.0f32, 0);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let ok = if w.exp() > 1e-7 * peak {
                let d = (g - w).abs();
                if d > worst.0 {
                    worst = (d, i);
                }
                d < 2e-3
            } else {
                (g.exp() - w.exp()).abs() < 1e-6 * peak
            };
            assert!(ok, "{name}: element {i} is {g}, librosa {w} (peak power {peak})");
        }
        eprintln!("{name}: max |diff| of ln power {:.2e} at {}", worst.0, worst.1);
    }
}
