//! Decoding JPEG and PNG bytes from outside (photo files, `POST /analyze`) with limits: the
//! image crate's defaults let a 149-byte PNG declaring 16777224 x 6 pixels allocate 100 MB
//! (found by fuzzing, issue 13 item 4), and up to 512 MB, which a 1 GB board cannot spare.

use image::{DynamicImage, ImageResult, Limits};
use std::io::Cursor;

/// The largest width or height decoded (8K video is 7680 wide).
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// The most a decode may allocate: 4096 x 4096 RGB is 48 MiB.
pub const MAX_IMAGE_ALLOC: u64 = 64 << 20;

/// Decode an image, its format guessed from its bytes, within [`MAX_IMAGE_SIDE`] and
/// [`MAX_IMAGE_ALLOC`]; an image over them is an error (`Limits`), not an allocation.
pub fn decode_image(bytes: &[u8]) -> ImageResult<DynamicImage> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    reader.decode()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzzer's input (fuzz/regressions/image/; its IHDR CRC corrected, which fuzzing
    /// builds of the png crate do not check): a PNG declaring 16777224 x 6 grey pixels in
    /// 149 bytes.
    #[test]
    fn a_tiny_png_declaring_a_huge_image_is_refused_before_allocating() {
        let bomb = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/image/png-16777224x6-100MB"
        ))
        .unwrap();
        assert!(bomb.len() < 200);
        let e = decode_image(&bomb).unwrap_err();
        assert!(matches!(e, image::ImageError::Limits(_)), "{e}");
    }

    #[test]
    fn an_ordinary_png_and_jpeg_decode() {
        let img = image::RgbImage::from_pixel(16, 9, image::Rgb([10, 200, 30]));
        for fmt in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
            let mut buf = Cursor::new(Vec::new());
            img.write_to(&mut buf, fmt).unwrap();
            let d = decode_image(buf.get_ref()).unwrap();
            assert_eq!((d.width(), d.height()), (16, 9), "{fmt:?}");
        }
    }
}
