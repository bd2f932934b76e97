//! The audio path on real recordings: Debian's `alsa-utils` ships spoken clips
//! (`/usr/share/sounds/alsa/Front_Center.wav` ...: a voice saying "front center", 48 kHz
//! mono) and `Noise.wav`. Without the package these tests say so and pass, unless
//! `EMOTIOND_REQUIRE_RUNTIMES=1` (as in CI, which installs it), where they fail.
//! Also `emotiond analyze` on WAV files that are broken in different ways.

use emotiond::config::{AudioConfig, ModelsConfig};
use emotiond::voice::{SegmentFeatures, VoiceAnalyzer, VoiceWindow};
use emotiond_models::vad::{CHUNK, Vad};
use std::path::{Path, PathBuf};
use std::process::Command;

const SPOKEN: [&str; 8] = [
    "Front_Center.wav",
    "Front_Left.wav",
    "Front_Right.wav",
    "Rear_Center.wav",
    "Rear_Left.wav",
    "Rear_Right.wav",
    "Side_Left.wav",
    "Side_Right.wav",
];

fn alsa_sound(name: &str) -> Option<PathBuf> {
    let p = Path::new("/usr/share/sounds/alsa").join(name);
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} not found: install Debian's alsa-utils (apt-get install alsa-utils)",
        p.display()
    );
    if std::env::var("EMOTIOND_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

fn silero() -> Vad {
    let v = emotiond::audio::load_voice(&AudioConfig::default(), &ModelsConfig::default())
        .expect("voice path loads");
    assert_eq!(
        v.analyzer.vad.info.engine, "tract",
        "{:?}",
        v.analyzer.vad.info
    );
    assert_eq!(v.analyzer.vad.info.fallback, None);
    v.analyzer.vad
}

/// Fraction of 32 ms chunks with speech probability >= 0.5.
fn speech_fraction(vad: &mut Vad, samples: &[i16]) -> f32 {
    vad.reset();
    let x: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
    let chunks: Vec<&[f32]> = x.chunks_exact(CHUNK).collect();
    let speech = chunks.iter().filter(|c| vad.prob(c, -40.0) >= 0.5).count();
    speech as f32 / chunks.len() as f32
}

#[test]
fn silero_vad_on_tract_hears_the_spoken_alsa_clips_and_not_noise_or_silence() {
    let Some(noise) = alsa_sound("Noise.wav") else {
        return;
    };
    let mut vad = silero();
    for name in SPOKEN {
        let Some(p) = alsa_sound(name) else { return };
        let (info, x) = emotiond_hal::read_wav(&p).unwrap();
        assert_eq!(
            info.rate, 48_000,
            "the clips are 48 kHz: resampled to 16 kHz"
        );
        let f = speech_fraction(&mut vad, &x);
        eprintln!("{name}: speech in {:.0} % of chunks", f * 100.0);
        assert!(f >= 0.5, "{name} is mostly speech, VAD says {f}");
    }
    let (_, x) = emotiond_hal::read_wav(&noise).unwrap();
    let f = speech_fraction(&mut vad, &x);
    eprintln!("Noise.wav: speech in {:.0} % of chunks", f * 100.0);
    assert!(f < 0.1, "Noise.wav is not speech, VAD says {f}");
    assert_eq!(speech_fraction(&mut vad, &vec![0i16; 32_000]), 0.0);
    // The energy gate (the fallback) cannot tell: the noise is as loud as speech.
    let mut gate = Vad::energy(-40.0, "test".into());
    assert!(
        speech_fraction(&mut gate, &x) > 0.9,
        "noise passes an energy gate"
    );
}

fn analyze(samples: &[i16]) -> (Vec<SegmentFeatures>, emotiond::summary::VoiceSummary) {
    let mut a = VoiceAnalyzer::new(silero(), None, AudioConfig::default().voice());
    let mut w = VoiceWindow::default();
    let mut segs = Vec::new();
    a.push(samples, 0, &mut w, Some(&mut segs));
    a.finish(&mut w, Some(&mut segs));
    (segs, w.finish().0)
}

#[test]
fn spoken_clips_give_speech_segments_with_a_human_pitch_and_noise_gives_none() {
    let Some(noise) = alsa_sound("Noise.wav") else {
        return;
    };
    // Median F0 of librosa 0.11's pYIN on each whole clip (16 kHz, fmin 60, fmax 500,
    // frame 1024, hop 512): an independent estimator on the same recordings.
    for (name, pyin) in [
        ("Front_Center.wav", 204.2),
        ("Rear_Left.wav", 200.1),
        ("Side_Right.wav", 174.7),
    ] {
        let Some(p) = alsa_sound(name) else { return };
        let (_, x) = emotiond_hal::read_wav(&p).unwrap();
        let (segs, v) = analyze(&x);
        eprintln!("{name}: {v:?}");
        assert!(!segs.is_empty(), "{name}: no segment");
        assert!(v.speech_ratio > 0.4, "{name}: {v:?}");
        let f0 = v.pitch_hz_median.expect("voiced speech has a pitch");
        assert!((75.0..=300.0).contains(&f0), "{name}: median F0 {f0} Hz");
        assert!(
            (f0 - pyin).abs() < 0.1 * pyin,
            "{name}: YIN {f0} Hz, pYIN {pyin} Hz"
        );
        assert!(v.voiced_ratio.unwrap() > 0.3, "{name}: {v:?}");
        let range = v.pitch_range_st.unwrap();
        assert!(range > 0.5 && range < 24.0, "{name}: F0 range {range} st");
        let a = v.arousal.unwrap();
        assert!((0.0..=1.0).contains(&a), "{a}");
        let l = v.loudness_dbfs.unwrap();
        assert!((-40.0..-5.0).contains(&l), "{name}: {l} dBFS");
    }
    let (_, x) = emotiond_hal::read_wav(&noise).unwrap();
    let (segs, v) = analyze(&x);
    assert!(segs.is_empty(), "{segs:?}");
    assert_eq!(v.speech_s, 0.0);
}

fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
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
fn analyze_reports_broken_wavs_clearly_and_goes_on_with_the_batch() {
    let d = tempfile::tempdir().unwrap();
    let tone = emotiond_hal::synthesize(&[
        emotiond_hal::Synth::Silence { secs: 0.5 },
        emotiond_hal::Synth::Tone {
            hz: 150.0,
            dbfs: -20.0,
            secs: 1.0,
        },
    ]);
    let good = d.path().join("good.wav");
    write_wav(&good, 16_000, &tone);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = d.path().join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let not_audio = d.path().join("not_audio.wav");
    std::fs::write(&not_audio, b"{\"this\": \"is json\"}\n").unwrap();
    let mut alaw = bytes.clone();
    alaw[20] = 6; // WAVE_FORMAT_ALAW
    alaw[34] = 8;
    let wrong = d.path().join("alaw.wav");
    std::fs::write(&wrong, &alaw).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_emotiond"))
        .arg("--config")
        .arg(d.path().join("none.toml"))
        .args(["analyze"])
        .args([&truncated, &not_audio, &wrong, &good])
        .output()
        .unwrap();
    // an explicit --config that does not exist is an error: use the defaults instead
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(d.path().join("none.toml"), "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_emotiond"))
        .arg("--config")
        .arg(d.path().join("none.toml"))
        .args(["analyze"])
        .args([&truncated, &not_audio, &wrong, &good])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(out.status.code(), Some(1), "some inputs failed");
    let err = |i: usize| lines[i]["error"].as_str().unwrap_or("").to_string();
    assert!(
        err(0).contains("truncated.wav") && err(0).contains("truncated after"),
        "{}",
        err(0)
    );
    assert!(
        err(1).contains("not_audio.wav") && err(1).contains("not a WAV"),
        "{}",
        err(1)
    );
    assert!(
        err(2).contains("alaw.wav") && err(2).contains("not a WAV"),
        "{}",
        err(2)
    );
    let g = &lines[3];
    assert!(g.get("error").is_none(), "{g}");
    let v = &g["voice"];
    assert_eq!(v["vad_engine"], "tract");
    assert!(
        (g["duration_s"].as_f64().unwrap() - 1.5).abs() < 0.01,
        "{g}"
    );
    assert!(
        v["speech_s"].is_number() && v["audio_s"].as_f64().unwrap() > 1.4,
        "{g}"
    );
}
