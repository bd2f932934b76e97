//! The whole frame path on 1, 2, ... analysis threads (`pipeline.threads`): frames of the
//! built-in demo clip (real photos) decoded (Y4M → RGB) into the drop-oldest queue, the
//! analysis threads (detect + classify, each with its own models) and the results taken back
//! in capture order, as `emotiond run` does. One JSON object per line per thread count:
//! frames/s through the whole path, latency from decode to result (p50, p95; one frame
//! waiting per thread), frames dropped at the queue (0: the feed is a closed loop), and the
//! speed-up over one thread.
//!
//!     cargo bench -p emotiond --bench threads [-- FRAMES] [--threads 1,2] [--engine tract]
//!
//! Under `cargo test --benches` (CI) it runs 12 frames per case: a check that it works, not a
//! figure. Pin it with `taskset -c 0` / `taskset -c 0,1` to measure one and two cores.

use emotiond::analyzer::Analyzer;
use emotiond::config::ModelsConfig;
use emotiond::demo::DEMO_CLIP;
use emotiond::pipeline::workers::{Next, Pool};
use emotiond::queue::DropOldest;
use emotiond::shutdown::Shutdown;
use emotiond_hal::{Camera, FileSource, Pacing};
use emotiond_models::EngineKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Run {
    frames: usize,
    secs: f64,
    latency_ms: Vec<f64>,
    dropped: u64,
    faces: usize,
}

fn run(threads: usize, frames: usize, models: &ModelsConfig) -> Run {
    let analyzers = Analyzer::load_copies(models, threads).expect("models");
    // closed loop: 2 × threads + 1 frames are always out (what the pool lets its threads hold
    // and one more), a new one is decoded each time a result comes back; so the camera never
    // decodes frames that would be dropped (which on one core would steal the analysis
    // thread's time), a free thread always finds a frame, and the queue never overflows
    let out = 2 * threads + 1;
    let queue = Arc::new(DropOldest::new(out));
    let stop = Shutdown::new();
    let mut cam = FileSource::from_y4m_bytes("demo", DEMO_CLIP, Pacing::AsFastAsPossible, true);
    let mut feed = || queue.push(cam.next_frame().expect("the looping demo clip"));
    let mut pool = Pool::start(analyzers, queue.clone(), stop.clone()).expect("threads");
    for _ in 0..out {
        feed();
    }
    let mut latency_ms = Vec::with_capacity(frames);
    let mut faces = 0;
    let mut taken = 0;
    let mut t0 = Instant::now();
    // warm-up: the first frames of each thread (allocations, caches) are not measured
    let warm = 2 * threads;
    while latency_ms.len() < frames {
        match pool.next(Duration::from_secs(30)) {
            Next::Item(d) => {
                feed();
                taken += 1;
                if taken == warm {
                    t0 = Instant::now();
                } else if taken > warm {
                    latency_ms.push((d.finished - d.frame.captured).as_secs_f64() * 1e3);
                    faces += d.result.expect("analysis").faces.len();
                }
            }
            Next::Timeout => panic!("no frame analysed within 30 s"),
            Next::Closed => panic!("the queue closed"),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let dropped = queue.dropped();
    stop.trigger();
    drop(pool);
    Run {
        frames,
        secs,
        latency_ms,
        dropped,
        faces,
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let frames: usize = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with('-')
                && (*i == 0 || !matches!(args[i - 1].as_str(), "--threads" | "--engine"))
        })
        .map(|(_, a)| a.parse().expect("FRAMES: a number"))
        .unwrap_or(if bench { 600 } else { 12 });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<usize> = value("--threads")
        .map(|s| {
            s.split(',')
                .map(|t| t.parse().expect("--threads: numbers, e.g. 1,2"))
                .collect()
        })
        .unwrap_or_else(|| (1..=cores.clamp(2, 4)).collect());
    let mut models = ModelsConfig {
        verify_test_vectors: false,
        ..ModelsConfig::default()
    };
    if let Some(e) = value("--engine") {
        models.engine = e
            .parse::<EngineKind>()
            .expect("--engine: tract, tflite or onnxruntime");
    }
    let mut one = None;
    for &n in &threads {
        let r = run(n, frames, &models);
        let mut l = r.latency_ms.clone();
        l.sort_by(f64::total_cmp);
        let fps = r.frames as f64 / r.secs;
        let base = *one.get_or_insert(if n == 1 { fps } else { f64::NAN });
        println!(
            "{}",
            serde_json::json!({
                "bench": "threads",
                "threads": n,
                "cores": cores,
                "engine": models.engine.to_string(),
                "frames": r.frames,
                "frames_per_s": (fps * 10.0).round() / 10.0,
                "speedup_vs_1": if base.is_nan() { None } else { Some((fps / base * 100.0).round() / 100.0) },
                "latency_ms_p50": (pct(&l, 0.5) * 100.0).round() / 100.0,
                "latency_ms_p95": (pct(&l, 0.95) * 100.0).round() / 100.0,
                "dropped": r.dropped,
                "faces_per_frame": (r.faces as f64 / r.frames as f64 * 100.0).round() / 100.0,
            })
        );
    }
}
