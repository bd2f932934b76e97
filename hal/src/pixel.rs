//! Pixel format conversions (BT.601, limited range, as V4L2 YUYV and Y4M 4:2:0 use).

use image::RgbImage;

#[inline]
fn yuv_full_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = y as i32 * 256;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 359 * e),
        clamp(c - 88 * d - 183 * e),
        clamp(c + 454 * d),
    ]
}

#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// Packed YUYV 4:2:2 (`stride` bytes per row) to RGB; `None` when the buffer is too short.
pub fn yuyv_to_rgb(buf: &[u8], width: u32, height: u32, stride: u32) -> Option<RgbImage> {
    let (w, h, s) = (
        width as usize,
        height as usize,
        (stride as usize).max(width as usize * 2),
    );
    if w % 2 != 0 || buf.len() < s * h.saturating_sub(1) + w * 2 {
        return None;
    }
    let mut out = vec![0u8; w * h * 3];
    for row in 0..h {
        let src = &buf[row * s..row * s + w * 2];
        let dst = &mut out[row * w * 3..(row + 1) * w * 3];
        for (px, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (y0, u, y1, v) = (px[0], px[1], px[2], px[3]);
            d[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
            d[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
        }
    }
    RgbImage::from_raw(width, height, out)
}

/// Planar 4:2:0 (Y plane, then U and V at half resolution, rounded up) to RGB; `full_range`
/// for JPEG-range samples (0..255), otherwise video range (16..235).
pub fn i420_to_rgb(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    width: u32,
    height: u32,
    full_range: bool,
) -> Option<RgbImage> {
    let conv = if full_range {
        yuv_full_to_rgb
    } else {
        yuv_to_rgb
    };
    let (w, h) = (width as usize, height as usize);
    let cw = w.div_ceil(2);
    let ch = h.div_ceil(2);
    if y.len() < w * h || u.len() < cw * ch || v.len() < cw * ch {
        return None;
    }
    let mut out = vec![0u8; w * h * 3];
    for row in 0..h {
        for col in 0..w {
            let ci = (row / 2) * cw + col / 2;
            let rgb = conv(y[row * w + col], u[ci], v[ci]);
            let o = (row * w + col) * 3;
            out[o..o + 3].copy_from_slice(&rgb);
        }
    }
    RgbImage::from_raw(width, height, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_levels_and_primaries_convert() {
        assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
        let red = yuv_to_rgb(81, 90, 240);
        assert!(red[0] > 240 && red[1] < 10 && red[2] < 10, "{red:?}");
    }

    #[test]
    fn yuyv_frame_decodes_and_short_buffer_is_rejected() {
        let buf = [235u8, 128, 16, 128, 16, 128, 235, 128];
        let img = yuyv_to_rgb(&buf, 2, 2, 4).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(0, 1).0, [0, 0, 0]);
        assert!(yuyv_to_rgb(&buf[..6], 2, 2, 4).is_none());
    }

    #[test]
    fn i420_odd_sizes_round_chroma_up() {
        let y = vec![235u8; 9];
        let uv = vec![128u8; 4];
        let img = i420_to_rgb(&y, &uv, &uv, 3, 3, false).unwrap();
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255]);
        assert!(i420_to_rgb(&y, &uv[..3], &uv, 3, 3, false).is_none());
        let full = i420_to_rgb(&[255u8; 9], &uv, &uv, 3, 3, true).unwrap();
        assert_eq!(full.get_pixel(0, 0).0, [255, 255, 255]);
    }
}
