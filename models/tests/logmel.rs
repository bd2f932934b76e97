//! The log-mel front end of `speech_emotion` packages against librosa 0.11
//! (`models/tools/make_mel_fixture.py` wrote the reference values in
//! `tests/fixtures/logmel/`).

use emotiond_models::manifest::{FeatureLayout, FeatureSpec};
use emotiond_models::mel::LogMel;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logmel")
        .join(name)
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
            assert!(
                ok,
                "{name}: element {i} is {g}, librosa {w} (peak power {peak})"
            );
        }
        eprintln!(
            "{name}: max |diff| of ln power {:.2e} at {}",
            worst.0, worst.1
        );
    }
}

/// The slot, with a MOCK model (a fixed linear map of band means, no emotion in it; see
/// models/tools/make_mock_speech_emotion.py): no registry ships a real one.
#[test]
fn mock_speech_emotion_package_loads_passes_its_vectors_and_is_run_on_a_segment() {
    use emotiond_models::speech::SpeechEmotionClassifier;
    use emotiond_models::{Attempt, CheckVectors, ModelPackage, Runtimes, load_engine};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mock_speech_emotion");
    let p = ModelPackage::load_dir(&dir).unwrap();
    assert_eq!(p.manifest.task, emotiond_models::Task::SpeechEmotion);
    let mut e = load_engine(&p, &Attempt::Tract, &Runtimes::default(), 1).unwrap();
    p.check_vectors(e.as_mut()).unwrap();
    let mut c = SpeechEmotionClassifier::new(&p, e).unwrap();
    let tone = |hz: f32| -> Vec<f32> {
        (0..16_000)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * hz * i as f32 / 16_000.0).sin())
            .collect()
    };
    let top = |p: [f32; 7]| {
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
        emotiond_models::EMOTIONS[(0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()]
    };
    // energy in bands 0-9 -> the first label (neutral); in bands 30-39 -> the fourth (angry)
    assert_eq!(top(c.classify(&tone(200.0)).unwrap()), "neutral");
    assert_eq!(top(c.classify(&tone(6000.0)).unwrap()), "angry");
    // labels the model does not have stay 0
    let p7 = c.classify(&tone(200.0)).unwrap();
    assert_eq!((p7[1], p7[2], p7[5]), (0.0, 0.0, 0.0));
    // a segment shorter or longer than the 50 frames the input holds
    assert_eq!(top(c.classify(&tone(200.0)[..3000]).unwrap()), "neutral");
    let long: Vec<f32> = tone(6000.0).into_iter().cycle().take(48_000).collect();
    assert_eq!(top(c.classify(&long).unwrap()), "angry");
    // a manifest whose [features] do not fit its input is refused with the key named
    let text = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let bad = text.replace("n_mels = 40", "n_mels = 64");
    let e = emotiond_models::Manifest::parse(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input.shape") && e.contains("n_mels = 64"),
        "{e}"
    );
    let bad = text.replace("[features]", "[nofeatures]");
    assert!(emotiond_models::Manifest::parse(&bad).is_err());
}
