//! Entry point of the `image` fuzz target, shared by `#[path]` between
//! fuzz/fuzz_targets/image.rs and the replay test hal/tests/fuzz_corpus.rs: the decode of
//! outside images (`emotiond_hal::decode_image`, JPEG and PNG with limits: photo files, and
//! what POST /analyze should use).

/// Decode an image and convert it to RGB as the pipeline does. Must not panic.
pub fn image(data: &[u8]) {
    if let Ok(img) = emotiond_hal::decode_image(data) {
        let _ = img.to_rgb8();
    }
}
