//! Entry point of the `wav` fuzz target, shared by `#[path]` between fuzz/fuzz_targets/wav.rs
//! and the replay test hal/tests/fuzz_corpus.rs: a WAV file read as the daemon's file
//! microphone and `emotiond analyze` read one (`emotiond_hal::wav`: hound's header parser,
//! the sample formats, the conversion to 16 kHz mono).

/// Read a whole WAV file from memory. Must not panic; what it declares bounds what it gives.
pub fn wav(data: &[u8]) {
    if let Ok((info, samples)) = emotiond_hal::wav::read_wav_bytes("fuzz.wav", data) {
        // the converter resamples to 16 kHz mono from at least 4 kHz: at most 4 output
        // samples per input frame, and a frame is at least one byte
        assert!(
            samples.len() <= 4 * data.len() + 4096,
            "{} samples from {} bytes ({info:?})",
            samples.len(),
            data.len()
        );
    }
}
