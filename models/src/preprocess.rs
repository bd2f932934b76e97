//! Fill a model's input tensor from a region of an RGB image in one pass: crop, resize
//! (bilinear; stretch or letterbox), colour conversion, normalisation and layout, with no
//! intermediate images. Pixels outside the image read as black, as MediaPipe's
//! zero-border `ImageToTensorCalculator` does.
#![forbid(unsafe_code)]

use crate::manifest::{Color, InputSpec, Layout, Resize};
use image::RgbImage;

/// A region of the source image, in pixels (may extend past the image).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Region {
    pub fn whole(img: &RgbImage) -> Region {
        Region {
            x: 0.0,
            y: 0.0,
            w: img.width() as f32,
            h: img.height() as f32,
        }
    }
}

/// How tensor coordinates map back onto the image: needed to place detections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    region: Region,
    scale_x: f32,
    scale_y: f32,
    pad_x: f32,
    pad_y: f32,
    tensor_w: f32,
    tensor_h: f32,
}

impl Fit {
    /// Tensor-normalised point (0..1 of the input) → image pixels.
    pub fn to_image(&self, u: f32, v: f32) -> (f32, f32) {
        (
            self.region.x + (u * self.tensor_w - self.pad_x) / self.scale_x,
            self.region.y + (v * self.tensor_h - self.pad_y) / self.scale_y,
        )
    }
    /// Tensor-normalised length → image pixels.
    pub fn len_to_image(&self, du: f32, dv: f32) -> (f32, f32) {
        (
            du * self.tensor_w / self.scale_x,
            dv * self.tensor_h / self.scale_y,
        )
    }
}

/// Bilinear sample at `(x0 + ax, y0 + ay)` (`x0`, `y0` the floor, `ax`, `ay` the fractions);
/// pixels outside the image read as black.
#[inline]
fn sample(raw: &[u8], w: i64, h: i64, x0: i64, y0: i64, ax: f32, ay: f32) -> [f32; 3] {
    let (p00, p10, p01, p11) = if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
        // All four neighbours inside (nearly every sample): no bounds checks per pixel.
        let i = ((y0 * w + x0) * 3) as usize;
        let j = i + (w * 3) as usize;
        let px = |k: usize| [raw[k] as f32, raw[k + 1] as f32, raw[k + 2] as f32];
        (px(i), px(i + 3), px(j), px(j + 3))
    } else {
        let px = |x: i64, y: i64| -> [f32; 3] {
            if x < 0 || y < 0 || x >= w || y >= h {
                [0.0; 3]
            } else {
                let i = ((y * w + x) * 3) as usize;
                [raw[i] as f32, raw[i + 1] as f32, raw[i + 2] as f32]
            }
        };
        (
            px(x0, y0),
            px(x0 + 1, y0),
            px(x0, y0 + 1),
            px(x0 + 1, y0 + 1),
        )
    };
    let mut out = [0.0; 3];
    for c in 0..3 {
        let top = p00[c] + (p10[c] - p00[c]) * ax;
        let bot = p01[c] + (p11[c] - p01[c]) * ax;
        out[c] = top + (bot - top) * ay;
    }
    out
}

/// Source coordinate `f` split into its floor and fraction, as [`sample`] takes them.
#[inline]
fn split(f: f32) -> (i64, f32) {
    let fl = f.floor();
    (fl as i64, f - fl)
}

/// Columns whose source position is computed once per call rather than once per pixel (a
/// fixed-size table on the stack; wider tensors compute it per pixel, with the same result).
const COLUMN_TABLE: usize = 512;

/// Fill `out` (resized to the tensor's length) from `region` of `img` per `spec`.
///
/// Crop, resize (bilinear), letterbox, colour conversion and normalisation happen in this one
/// pass, written straight into `out`; nothing is allocated once `out` has the tensor's length
/// (the per-frame path calls it with the same buffer every time).
pub fn fill_tensor(img: &RgbImage, region: Region, spec: &InputSpec, out: &mut Vec<f32>) -> Fit {
    let (th, tw, ch) = spec.hwc();
    // Every element is written below, so the old contents need no clearing.
    if out.len() != spec.len() {
        out.clear();
        out.resize(spec.len(), 0.0);
    }
    let rw = region.w.max(1e-3);
    let rh = region.h.max(1e-3);
    let (scale_x, scale_y, pad_x, pad_y) = match spec.resize {
        Resize::Stretch => (tw as f32 / rw, th as f32 / rh, 0.0, 0.0),
        Resize::Letterbox => {
            let s = (tw as f32 / rw).min(th as f32 / rh);
            (s, s, (tw as f32 - rw * s) / 2.0, (th as f32 - rh * s) / 2.0)
        }
    };
    let mut inv = [1.0f32; 3];
    let mut mean = [0.0f32; 3];
    for c in 0..ch.min(3) {
        inv[c] = 1.0 / spec.std[c];
        mean[c] = spec.mean[c];
    }
    let plane = th * tw;
    // Where channel c of pixel p goes: base(p) + c * stride.
    let (pixel_step, stride) = match spec.layout {
        Layout::Nhwc => (ch, 1),
        Layout::Nchw => (1, plane),
    };
    let raw = img.as_raw().as_slice();
    let (w, h) = (img.width() as i64, img.height() as i64);
    // Per column: inside the letterbox's content, and the source x split for sampling.
    let col = |ox: usize| -> (bool, i64, f32) {
        let inside = (ox as f32 + 0.5) >= pad_x && (ox as f32 + 0.5) <= tw as f32 - pad_x;
        let (x0, ax) = split(region.x + (ox as f32 + 0.5 - pad_x) / scale_x - 0.5);
        (inside, x0, ax)
    };
    let mut table = [(false, 0i64, 0.0f32); COLUMN_TABLE];
    let tabled = tw <= COLUMN_TABLE;
    if tabled {
        for (ox, t) in table.iter_mut().enumerate().take(tw) {
            *t = col(ox);
        }
    }
    for oy in 0..th {
        let (y0, ay) = split(region.y + (oy as f32 + 0.5 - pad_y) / scale_y - 0.5);
        let inside_y = (oy as f32 + 0.5) >= pad_y && (oy as f32 + 0.5) <= th as f32 - pad_y;
        // `ox` is also the output column, not only the table's index.
        #[allow(clippy::needless_range_loop)]
        for ox in 0..tw {
            let (inside_x, x0, ax) = if tabled { table[ox] } else { col(ox) };
            let rgb = if inside_y && inside_x {
                sample(raw, w, h, x0, y0, ax, ay)
            } else {
                [0.0; 3]
            };
            let vals: [f32; 3] = match spec.color {
                Color::Rgb => rgb,
                Color::Bgr => [rgb[2], rgb[1], rgb[0]],
                Color::Grey => [0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2], 0.0, 0.0],
            };
            let base = (oy * tw + ox) * pixel_step;
            for c in 0..ch {
                out[base + c * stride] = (vals[c] - mean[c]) * inv[c];
            }
        }
    }
    Fit {
        region,
        scale_x,
        scale_y,
        pad_x,
        pad_y,
        tensor_w: tw as f32,
        tensor_h: th as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::DType;

    fn spec(color: Color, resize: Resize, layout: Layout, shape: Vec<usize>) -> InputSpec {
        let c = if color == Color::Grey { 1 } else { 3 };
        InputSpec {
            shape,
            layout,
            dtype: DType::F32,
            color,
            resize,
            mean: vec![127.5; c],
            std: vec![127.5; c],
        }
    }

    #[test]
    fn uniform_image_normalises_to_constant() {
        let img = RgbImage::from_pixel(64, 48, image::Rgb([255, 0, 127]));
        let s = spec(Color::Rgb, Resize::Stretch, Layout::Nhwc, vec![1, 8, 8, 3]);
        let mut t = Vec::new();
        fill_tensor(
            &img,
            Region {
                x: 8.0,
                y: 8.0,
                w: 32.0,
                h: 32.0,
            },
            &s,
            &mut t,
        );
        assert_eq!(t.len(), 192);
        for px in t.chunks(3) {
            assert!((px[0] - 1.0).abs() < 1e-5);
            assert!((px[1] + 1.0).abs() < 1e-5);
            assert!((px[2] - (-0.5 / 127.5)).abs() < 1e-5);
        }
    }

    #[test]
    fn grey_uses_bt601_and_nchw_layout_puts_planes_first() {
        let img = RgbImage::from_pixel(10, 10, image::Rgb([200, 100, 50]));
        let g = spec(Color::Grey, Resize::Stretch, Layout::Nhwc, vec![1, 4, 4, 1]);
        let mut t = Vec::new();
        fill_tensor(&img, Region::whole(&img), &g, &mut t);
        let y = 0.299 * 200.0 + 0.587 * 100.0 + 0.114 * 50.0;
        assert!((t[5] - (y - 127.5) / 127.5).abs() < 1e-5);
        let c = spec(Color::Rgb, Resize::Stretch, Layout::Nchw, vec![1, 3, 4, 4]);
        fill_tensor(&img, Region::whole(&img), &c, &mut t);
        assert!((t[0] - (200.0 - 127.5) / 127.5).abs() < 1e-5);
        assert!((t[16] - (100.0 - 127.5) / 127.5).abs() < 1e-5);
        assert!((t[32] - (50.0 - 127.5) / 127.5).abs() < 1e-5);
    }

    #[test]
    fn letterbox_pads_the_short_side_and_maps_back() {
        // 200x100 white image into 10x10: content is 10x5, rows 0..2 and 8..10 are padding.
        let img = RgbImage::from_pixel(200, 100, image::Rgb([255, 255, 255]));
        let s = spec(
            Color::Rgb,
            Resize::Letterbox,
            Layout::Nhwc,
            vec![1, 10, 10, 3],
        );
        let mut t = Vec::new();
        let fit = fill_tensor(&img, Region::whole(&img), &s, &mut t);
        let at = |x: usize, y: usize| t[(y * 10 + x) * 3];
        assert!((at(5, 0) + 1.0).abs() < 1e-5, "padding is black");
        assert!((at(5, 5) - 1.0).abs() < 1e-5, "content is white");
        assert!((at(5, 9) + 1.0).abs() < 1e-5);
        let (x, y) = fit.to_image(0.5, 0.25);
        assert!((x - 100.0).abs() < 1e-3 && (y - 0.0).abs() < 1e-3);
        let (w, h) = fit.len_to_image(1.0, 0.5);
        assert!((w - 200.0).abs() < 1e-3 && (h - 100.0).abs() < 1e-3);
    }

    #[test]
    fn outside_the_image_reads_black() {
        let img = RgbImage::from_pixel(10, 10, image::Rgb([255, 255, 255]));
        let s = spec(Color::Rgb, Resize::Stretch, Layout::Nhwc, vec![1, 4, 4, 3]);
        let mut t = Vec::new();
        fill_tensor(
            &img,
            Region {
                x: -20.0,
                y: -20.0,
                w: 10.0,
                h: 10.0,
            },
            &s,
            &mut t,
        );
        assert!(t.iter().all(|v| (*v + 1.0).abs() < 1e-5));
    }
}
