//! Entry point of the `image` fuzz target, shared by `#[path]` between
//! fuzz/fuzz_targets/image.rs and the replay test hal/tests/fuzz_corpus.rs: the decode the
//! daemon runs on outside images (`image::load_from_memory`, JPEG and PNG: POST /analyze,
//! photo files, MJPG camera frames).

/// Decode an image and convert it to RGB as the pipeline does. Must not panic.
pub fn image(data: &[u8]) {
    if let Ok(img) = image::load_from_memory(data) {
        let _ = img.to_rgb8();
    }
}
