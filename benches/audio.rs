//! Criterion benches of the audio path, on one core: 10 s of 48 kHz mono speech and silence
//! (Debian's alsa-utils spoken clips when installed, else synthetic tone bursts) through the
//! whole path as the daemon runs it (48 → 16 kHz with rubato, Silero VAD with its state,
//! segmenting, loudness, YIN pitch, features), and its parts. Real-time factor = time / 10 s.
//! Run: `taskset -c 0 cargo bench -p emotiond --bench audio`.

use criterion::{Criterion, criterion_group, criterion_main};
use emotiond::config::{AudioConfig, ModelsConfig};
use emotiond::pitch::{Yin, YinConfig};
use emotiond::voice::{VoiceAnalyzer, VoiceWindow};
use emotiond_hal::audio::Converter;
use emotiond_models::manifest::{FeatureLayout, FeatureSpec};
use emotiond_models::mel::LogMel;
use std::hint::black_box;
use std::path::Path;

/// 10 s at 48 kHz: the spoken clips with a second of silence after each, repeated.
fn speech_48k() -> Vec<i16> {
    let dir = Path::new("/usr/share/sounds/alsa");
    let mut clip = Vec::new();
    for name in ["Front_Center.wav", "Rear_Left.wav", "Side_Right.wav"] {
        match hound::WavReader::open(dir.join(name)) {
            Ok(mut r) => clip.extend(r.samples::<i16>().map_while(Result::ok)),
            Err(_) => {
                eprintln!("{name} not found (apt-get install alsa-utils): synthetic tone bursts");
                clip = (0..48_000 * 2)
                    .map(|i| {
                        let t = i as f32 / 48_000.0;
                        let on = (t % 2.0) < 1.2;
                        if on {
                            (6000.0 * (2.0 * std::f32::consts::PI * 160.0 * t).sin()) as i16
                        } else {
                            0
                        }
                    })
                    .collect();
                break;
            }
        }
        clip.extend(std::iter::repeat_n(0, 48_000));
    }
    clip.iter().copied().cycle().take(48_000 * 10).collect()
}

fn voice() -> VoiceAnalyzer {
    emotiond::audio::load_voice(&AudioConfig::default(), &ModelsConfig::default())
        .expect("voice path")
        .analyzer
}

fn benches(c: &mut Criterion) {
    let x48 = speech_48k();
    let mut g = c.benchmark_group("audio");
    g.sample_size(20);
    g.bench_function("audio_path_10s_48k_to_features", |b| {
        let mut a = voice();
        b.iter(|| {
            a.reset();
            let mut conv = Converter::new(48_000, 1).unwrap();
            let mut w = VoiceWindow::default();
            let mut out = Vec::new();
            // as a device delivers it: 32 ms periods
            for period in x48.chunks(1536) {
                conv.push_i16(period);
                out.clear();
                conv.take(&mut out);
                a.push(&out, 0, &mut w, None);
            }
            a.finish(&mut w, None);
            black_box(w.finish())
        })
    });
    g.bench_function("resample_10s_48k_to_16k", |b| {
        b.iter(|| {
            let mut conv = Converter::new(48_000, 1).unwrap();
            let mut out = Vec::new();
            for period in x48.chunks(1536) {
                conv.push_i16(period);
                conv.take(&mut out);
            }
            black_box(out.len())
        })
    });
    let mut conv = Converter::new(48_000, 1).unwrap();
    conv.push_i16(&x48);
    conv.flush();
    let mut x16 = Vec::new();
    conv.take(&mut x16);
    let xf: Vec<f32> = x16.iter().map(|&s| s as f32 / 32768.0).collect();
    g.bench_function("silero_vad_chunk_32ms_tract", |b| {
        let mut a = voice();
        let mut i = 0;
        b.iter(|| {
            let c = &xf[(i % 300) * 512..(i % 300 + 1) * 512];
            i += 1;
            black_box(a.vad.prob(c, -40.0))
        })
    });
    g.bench_function("yin_frame_1024", |b| {
        let mut y = Yin::new(YinConfig::default());
        let frame = &xf[16_000..16_000 + 1024];
        b.iter(|| black_box(y.estimate(frame)))
    });
    g.bench_function("logmel_1s_64_bands", |b| {
        let mut m = LogMel::new(&FeatureSpec {
            sample_rate: 16_000,
            window: 400,
            hop: 160,
            n_fft: 512,
            n_mels: 64,
            fmin: 0.0,
            fmax: 8000.0,
            log_offset: 1e-6,
            layout: FeatureLayout::MelsFrames,
        });
        let mut out = Vec::new();
        b.iter(|| black_box(m.compute(&xf[..16_000], &mut out)))
    });
    g.finish();
}

criterion_group!(audio, benches);
criterion_main!(audio);
