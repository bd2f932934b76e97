//! Replays the committed corpus and crash regressions of the `image` fuzz target
//! (fuzz/corpus/image/, fuzz/regressions/image/) through the entry point the target calls
//! (fuzz/entry/image.rs: `emotiond_hal::decode_image`), without
//! instrumentation. `write_seeds` (ignored) regenerates the seeds from tests/data.

#[path = "../../fuzz/entry/image.rs"]
mod entry;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn image_corpus_replays_without_panics() {
    let mut corpus = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir).join("image")) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| entry::image(&bytes));
            assert!(r.is_ok(), "image: {} panics", p.display());
            corpus += usize::from(dir == "corpus");
        }
    }
    assert!(
        corpus > 0,
        "no corpus for fuzz target image under {}",
        fuzz_dir().display()
    );
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
}
