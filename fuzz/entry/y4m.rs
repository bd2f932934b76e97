//! Entry point of the `y4m` fuzz target, shared by `#[path]` between fuzz/fuzz_targets/y4m.rs
//! and the replay test hal/tests/fuzz_corpus.rs: a Y4M clip read as the file camera reads one
//! (`emotiond_hal::FileSource`: the y4m crate's header and frame parser, the colour space,
//! frame rate and size checks, the conversion to RGB).

use emotiond_hal::{Camera, CameraError, FileSource, Pacing};

/// Read every frame of a clip (at most 64). Must not panic.
pub fn y4m(data: &[u8]) {
    let mut s =
        FileSource::from_y4m_vec("fuzz.y4m", data.to_vec(), Pacing::AsFastAsPossible, false);
    for _ in 0..64 {
        match s.next_frame() {
            Ok(f) => assert!(f.image.width() > 0 && f.image.height() > 0),
            Err(CameraError::End) => break,
            Err(_) => {}
        }
    }
}
