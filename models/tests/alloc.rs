//! No per-frame allocation in the steady state (issue 16), checked with a counting global
//! allocator on the real default models (tract) and real photos. This file is its own test
//! binary so that the allocator counts nothing but what its tests do; it counts per thread,
//! so tests running in parallel do not see each other's allocations.
//!
//! What is asserted:
//! - our pre- and post-processing (crop + resize + colour + normalise into the input tensor,
//!   SSD decoding, weighted NMS, the mapping of boxes back to the frame, softmax) allocates
//!   nothing once warmed up;
//! - a whole frame (detect + classify every face) allocates exactly what the two engines'
//!   runs allocate, the same number every frame, and the bytes live do not grow.
//!
//! tract itself allocates on every run: `SimplePlan::run` builds a fresh `SimpleState` (its
//! value table, op states and matmul scratch space) and every op writes its output into a
//! newly allocated tensor. The state cannot be kept between runs here: it holds `Rc`s and a
//! `RefCell`, so it is not `Send`, and an engine must be (it moves to its inference thread);
//! keeping it would save about one allocation per run anyway (measured: 2,974 with a reused
//! state, 2,973 with a fresh one, BlazeFace). Most are made by `OptMatMulPack` (2,488 of
//! BlazeFace's; `cargo run --release -p emotiond-models --example tract_profile` counts them
//! per op). Those allocations are measured and printed (`--nocapture`), not removed.

use emotiond_models::classifier::crop_region;
use emotiond_models::preprocess::{Region, fill_tensor};
use emotiond_models::ssd::{Detections, decode_into, generate_anchors, weighted_nms_into};
use emotiond_models::{
    Attempt, Engine, ExpressionClassifier, FaceDetector, ModelPackage, Runtimes, Tensor, builtin,
    load_engine,
};
use image::RgbImage;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

/// Counts this thread's allocations (alloc, alloc_zeroed, realloc) and bytes live.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(allocs: u64, bytes: i64) {
    // try_with: no count while the thread's locals are being torn down.
    let _ = ALLOCS.try_with(|a| a.set(a.get() + allocs));
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(1, l.size() as i64);
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(1, l.size() as i64);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(0, -(l.size() as i64));
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(1, new as i64 - l.size() as i64);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// This thread's allocations so far and its bytes live.
fn counters() -> (u64, i64) {
    (ALLOCS.with(Cell::get), LIVE.with(Cell::get))
}

/// Allocations made by `f` on this thread.
fn allocs_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = counters().0;
    let r = f();
    (counters().0 - before, r)
}

fn photo(name: &str) -> RgbImage {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name);
    image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

fn pkg(name: &str) -> ModelPackage {
    builtin::load(name).expect("embedded").expect("loads")
}

fn tract(p: &ModelPackage) -> Box<dyn Engine> {
    load_engine(p, &Attempt::Tract, &Runtimes::default(), 1).unwrap()
}

const WARMUP: usize = 3;
const FRAMES: usize = 10;

#[test]
fn the_counter_sees_an_allocation() {
    // Without this, a counter that never counts would pass every test below.
    let (n, v) = allocs_in(|| vec![1u8; 100]);
    assert_eq!(n, 1);
    drop(v);
}

#[test]
fn pre_and_post_processing_allocate_nothing_once_warm() {
    let det_pkg = pkg(builtin::DEFAULT_DETECTOR);
    let cls_pkg = pkg(builtin::DEFAULT_EXPRESSION);
    let mut engine = tract(&det_pkg);
    let ssd = det_pkg.manifest.ssd.clone().unwrap();
    let (h, w, _) = det_pkg.manifest.input.hwc();
    let anchors = generate_anchors(&ssd, w, h);
    for name in ["astronaut_640x480.jpg", "five_faces_640x480.jpg"] {
        let img = photo(name);
        let (mut input, mut crop_input) = (Vec::new(), Vec::new());
        let mut outputs: Vec<Tensor> = Vec::new();
        let (mut cands, mut faces, mut order) =
            (Detections::default(), Detections::default(), Vec::new());
        for i in 0..WARMUP + FRAMES {
            let (pre, _) = allocs_in(|| {
                fill_tensor(
                    &img,
                    Region::whole(&img),
                    &det_pkg.manifest.input,
                    &mut input,
                )
            });
            engine.run(&input, &mut outputs).unwrap();
            let (post, _) = allocs_in(|| {
                decode_into(
                    &ssd,
                    &anchors,
                    &outputs[ssd.boxes_output].data,
                    &outputs[ssd.scores_output].data,
                    &mut cands,
                )
                .unwrap();
                weighted_nms_into(
                    cands.as_slice(),
                    ssd.min_suppression_threshold,
                    8,
                    &mut order,
                    &mut faces,
                );
            });
            assert!(!faces.is_empty(), "{name}: no face found");
            // The crop of each face (boxes here are in tensor coordinates; any box will do
            // for counting).
            let (crop, _) = allocs_in(|| {
                for f in faces.as_slice() {
                    let r = crop_region(&f.bbox, &cls_pkg.manifest.crop, img.width(), img.height());
                    fill_tensor(&img, r, &cls_pkg.manifest.input, &mut crop_input);
                }
            });
            if i >= WARMUP {
                assert_eq!(
                    (pre, post, crop),
                    (0, 0, 0),
                    "{name}, frame {i}: allocations in (preprocess, decode + NMS, crop)"
                );
            }
        }
    }
}

#[test]
fn a_whole_frame_allocates_only_what_tract_does_the_same_every_frame() {
    let det_pkg = pkg(builtin::DEFAULT_DETECTOR);
    let cls_pkg = pkg(builtin::DEFAULT_EXPRESSION);
    let mut det = FaceDetector::new(&det_pkg, tract(&det_pkg)).unwrap();
    let mut cls = ExpressionClassifier::new(&cls_pkg, tract(&cls_pkg)).unwrap();
    // The engines on their own, fed the same tensors, to know what tract allocates per run.
    let mut det_engine = tract(&det_pkg);
    let mut cls_engine = tract(&cls_pkg);
    for (name, want_faces) in [("astronaut_640x480.jpg", 1), ("five_faces_640x480.jpg", 5)] {
        let img = photo(name);
        // Sized beforehand: their own growth would count as the frame's.
        let mut per_frame = Vec::with_capacity(WARMUP + FRAMES);
        let mut live = Vec::with_capacity(WARMUP + FRAMES);
        for _ in 0..WARMUP + FRAMES {
            let (n, faces) = allocs_in(|| {
                let faces = det.detect_faces(&img).unwrap();
                let mut found = 0;
                for f in faces {
                    std::hint::black_box(cls.classify(&img, &f.bbox).unwrap());
                    found += 1;
                }
                found
            });
            assert_eq!(faces, want_faces, "{name}");
            per_frame.push(n);
            live.push(counters().1);
        }
        let steady = &per_frame[WARMUP..];
        assert!(
            steady.iter().all(|&n| n == steady[0]),
            "{name}: allocations per frame vary: {per_frame:?}"
        );
        assert!(
            live[WARMUP..].iter().all(|&b| b == live[WARMUP]),
            "{name}: bytes live grow: {live:?}"
        );

        // What tract allocates for the same work: one detector run and one classifier run
        // per face, on warmed-up engines with our buffers already sized.
        let mut input = Vec::new();
        let mut outputs = Vec::new();
        fill_tensor(
            &img,
            Region::whole(&img),
            &det_pkg.manifest.input,
            &mut input,
        );
        det_engine.run(&input, &mut outputs).unwrap();
        let (det_run, _) = allocs_in(|| det_engine.run(&input, &mut outputs).unwrap());
        let mut crop_input = Vec::new();
        let face = det.detect_faces(&img).unwrap()[0].bbox;
        let r = crop_region(&face, &cls_pkg.manifest.crop, img.width(), img.height());
        fill_tensor(&img, r, &cls_pkg.manifest.input, &mut crop_input);
        cls_engine.run(&crop_input, &mut outputs).unwrap();
        let (cls_run, _) = allocs_in(|| cls_engine.run(&crop_input, &mut outputs).unwrap());
        eprintln!(
            "{name}: {} allocations per frame: tract's detector run {det_run}, its classifier \
             run {cls_run} x {want_faces} faces",
            steady[0]
        );
        assert_eq!(
            steady[0],
            det_run + cls_run * want_faces as u64,
            "{name}: a frame allocates more than its engine runs do"
        );
    }
}
