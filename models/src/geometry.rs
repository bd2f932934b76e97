//! Boxes and detections in normalised frame coordinates (0..1 of width and height).
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Axis-aligned box, normalised to the frame: x, y of the top-left corner, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }
    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
    /// Intersection over union; 0 for boxes that do not overlap or have no area.
    pub fn iou(&self, o: &BBox) -> f32 {
        let x0 = self.x.max(o.x);
        let y0 = self.y.max(o.y);
        let x1 = (self.x + self.w).min(o.x + o.w);
        let y1 = (self.y + self.h).min(o.y + o.h);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + o.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
    /// Clip to the unit square.
    pub fn clamped(&self) -> BBox {
        let x0 = self.x.clamp(0.0, 1.0);
        let y0 = self.y.clamp(0.0, 1.0);
        let x1 = (self.x + self.w).clamp(0.0, 1.0);
        let y1 = (self.y + self.h).clamp(0.0, 1.0);
        BBox {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }
}

/// One detected face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub bbox: BBox,
    /// Detector confidence in 0..1.
    pub score: f32,
    /// Landmarks (x, y), normalised like the box (BlazeFace: right eye, left eye, nose tip,
    /// mouth centre, right ear tragion, left ear tragion).
    pub keypoints: Vec<(f32, f32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 0.2,
            h: 0.2,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        let far = BBox {
            x: 0.5,
            y: 0.5,
            w: 0.2,
            h: 0.2,
        };
        assert_eq!(a.iou(&far), 0.0);
        let half = BBox {
            x: 0.1,
            y: 0.0,
            w: 0.2,
            h: 0.2,
        };
        // intersection 0.1*0.2 = 0.02, union 0.04 + 0.04 - 0.02 = 0.06
        assert!((a.iou(&half) - 1.0 / 3.0).abs() < 1e-5);
        let empty = BBox {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0,
        };
        assert_eq!(empty.iou(&empty), 0.0);
    }

    #[test]
    fn clamping_keeps_inside_part() {
        let b = BBox {
            x: -0.1,
            y: 0.9,
            w: 0.3,
            h: 0.3,
        }
        .clamped();
        assert!((b.x - 0.0).abs() < 1e-6 && (b.w - 0.2).abs() < 1e-6);
        assert!((b.y - 0.9).abs() < 1e-6 && (b.h - 0.1).abs() < 1e-6);
    }
}
