//! Replays the committed corpus and crash regressions of the fuzz targets on hal
//! (fuzz/corpus/<target>/, fuzz/regressions/<target>/) through the entry points the targets
//! call (fuzz/entry/image.rs: `emotiond_hal::decode_image`; fuzz/entry/wav.rs:
//! `wav::read_wav_bytes`; fuzz/entry/y4m.rs: `FileSource::from_y4m_vec`), without
//! instrumentation. `write_seeds` (ignored) regenerates the seeds from tests/data and
//! synthesized sound.

#[path = "../../fuzz/entry/image.rs"]
mod entry;
#[path = "../../fuzz/entry/wav.rs"]
mod wav_entry;
#[path = "../../fuzz/entry/y4m.rs"]
mod y4m_entry;

use emotiond_hal::{Camera, FileSource, Pacing};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Feed every corpus and regression file of `target` to `f`; none may panic, and the corpus
/// must not be empty.
fn replay(target: &str, f: fn(&[u8])) {
    let mut corpus = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| f(&bytes));
            assert!(r.is_ok(), "{target}: {} panics", p.display());
            corpus += usize::from(dir == "corpus");
        }
    }
    assert!(
        corpus > 0,
        "no corpus for fuzz target {target} under {}",
        fuzz_dir().display()
    );
}

#[test]
fn image_corpus_replays_without_panics() {
    replay("image", entry::image);
}

#[test]
fn wav_corpus_replays_without_panics() {
    replay("wav", wav_entry::wav);
}

#[test]
fn y4m_corpus_replays_without_panics() {
    replay("y4m", y4m_entry::y4m);
}

const WAV_SEEDS: [(&str, u32, u16, u16, bool); 5] = [
    ("seed-16k-mono-s16.wav", 16_000, 1, 16, false),
    ("seed-48k-stereo-s16.wav", 48_000, 2, 16, false),
    ("seed-8k-mono-u8.wav", 8_000, 1, 8, false),
    ("seed-44k1-mono-s24.wav", 44_100, 1, 24, false),
    ("seed-22k05-stereo-f32.wav", 22_050, 2, 32, true),
];

/// The seeds are real WAV files: each reads, with the format its name says.
#[test]
fn wav_seeds_read() {
    for (name, rate, channels, bits, float) in WAV_SEEDS {
        let b = std::fs::read(fuzz_dir().join("corpus/wav").join(name)).unwrap();
        let (info, samples) =
            emotiond_hal::wav::read_wav_bytes(name, &b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (info.rate, info.channels, info.bits, info.float),
            (rate, channels, bits, float),
            "{name}"
        );
        assert!(!samples.is_empty(), "{name}");
    }
}

const Y4M_SEEDS: [(&str, u32, u32); 2] = [
    ("seed-astronaut-16x12-420jpeg-full.y4m", 16, 12),
    ("seed-astronaut-7x5-420mpeg2.y4m", 7, 5),
];

/// The seeds are real clips: every frame decodes at its size.
#[test]
fn y4m_seeds_decode() {
    for (name, w, h) in Y4M_SEEDS {
        let b = std::fs::read(fuzz_dir().join("corpus/y4m").join(name)).unwrap();
        let mut s = FileSource::from_y4m_vec(name, b, Pacing::AsFastAsPossible, false);
        for _ in 0..2 {
            let f = s.next_frame().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((f.image.width(), f.image.height()), (w, h), "{name}");
        }
    }
}

/// The seeds are real images: each must decode.
#[test]
fn image_seeds_decode() {
    for name in [
        "seed-astronaut-24.png",
        "seed-astronaut-24.jpg",
        "seed-grey-8.png",
    ] {
        let b = std::fs::read(fuzz_dir().join("corpus/image").join(name)).unwrap();
        image::load_from_memory(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Small PNG and JPEG seeds from tests/data:
/// `cargo test -p emotiond-hal --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore]
fn write_seeds() {
    let dir = fuzz_dir().join("corpus/image");
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/astronaut_640x480.jpg");
    let img = image::open(src).unwrap().thumbnail(24, 24);
    img.save(dir.join("seed-astronaut-24.png")).unwrap();
    img.to_rgb8()
        .save(dir.join("seed-astronaut-24.jpg"))
        .unwrap();
    img.thumbnail(8, 8)
        .to_luma8()
        .save(dir.join("seed-grey-8.png"))
        .unwrap();
    write_wav_seeds();
    write_y4m_seeds();
}

/// 50 ms of a 440 Hz tone then noise (the synthetic source), in five formats.
fn write_wav_seeds() {
    use emotiond_hal::wav::{Synth, synthesize};
    let dir = fuzz_dir().join("corpus/wav");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, rate, channels, bits, float) in WAV_SEEDS {
        let mono = synthesize(&[
            Synth::Tone {
                hz: 440.0,
                dbfs: -12.0,
                secs: 0.01,
            },
            Synth::Noise {
                dbfs: -30.0,
                secs: 0.005,
            },
        ]);
        // the 16 kHz signal taken at `rate` (nearest sample): what a file at that rate holds
        let frames = (mono.len() as u64 * u64::from(rate) / 16_000) as usize;
        let frames = frames.min(300 / usize::from(channels));
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut w = hound::WavWriter::create(dir.join(name), spec).unwrap();
        for i in 0..frames {
            let s = mono[i * 16_000 / rate as usize];
            for _ in 0..channels {
                match (float, bits) {
                    (true, _) => w.write_sample(f32::from(s) / 32768.0).unwrap(),
                    (false, 8) => w.write_sample((s >> 8) as i8).unwrap(),
                    (false, 16) => w.write_sample(s).unwrap(),
                    (false, _) => w.write_sample(i32::from(s) << 8).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }
}

/// Two frames of the astronaut photo, small, as 4:2:0: full range (what the demo clip's
/// maker writes) and studio range.
fn write_y4m_seeds() {
    let dir = fuzz_dir().join("corpus/y4m");
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/astronaut_640x480.jpg");
    let photo = image::open(src).unwrap();
    for (name, w, h) in Y4M_SEEDS {
        let full = name.contains("full");
        let rgb = photo
            .resize_exact(w, h, image::imageops::FilterType::Triangle)
            .to_rgb8();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut y = Vec::new();
        let (mut u, mut v) = (vec![0u8; (cw * ch) as usize], vec![0u8; (cw * ch) as usize]);
        for (px, py, p) in rgb.enumerate_pixels() {
            let [r, g, b] = p.0.map(f32::from);
            let luma = 0.299 * r + 0.587 * g + 0.114 * b;
            let (cb, cr) = (128.0 + (b - luma) * 0.564, 128.0 + (r - luma) * 0.713);
            let (yy, cb, cr) = if full {
                (luma, cb, cr)
            } else {
                (
                    16.0 + luma * 219.0 / 255.0,
                    128.0 + (cb - 128.0) * 224.0 / 255.0,
                    128.0 + (cr - 128.0) * 224.0 / 255.0,
                )
            };
            y.push(yy.round().clamp(0.0, 255.0) as u8);
            if px % 2 == 0 && py % 2 == 0 {
                let i = ((py / 2) * cw + px / 2) as usize;
                u[i] = cb.round().clamp(0.0, 255.0) as u8;
                v[i] = cr.round().clamp(0.0, 255.0) as u8;
            }
        }
        let mut out = Vec::new();
        {
            let mut enc = y4m::encode(w as usize, h as usize, y4m::Ratio::new(10, 1))
                .with_colorspace(if full {
                    y4m::Colorspace::C420jpeg
                } else {
                    y4m::Colorspace::C420mpeg2
                });
            if full {
                enc = enc.append_vendor_extension(
                    y4m::VendorExtensionString::new(b"COLORRANGE=FULL".to_vec()).unwrap(),
                );
            }
            let mut enc = enc.write_header(&mut out).unwrap();
            for _ in 0..2 {
                enc.write_frame(&y4m::Frame::new([&y, &u, &v], None))
                    .unwrap();
            }
        }
        std::fs::write(dir.join(name), out).unwrap();
    }
}
