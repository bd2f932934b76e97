//! SSD anchor generation, box decoding and weighted non-maximum suppression, as MediaPipe's
//! `SsdAnchorsCalculator`, `TensorsToDetectionsCalculator` and `NonMaxSuppressionCalculator`
//! (algorithm WEIGHTED) do them. Pure functions over plain values.
#![forbid(unsafe_code)]

use crate::geometry::{BBox, Detection};
use crate::manifest::SsdDecode;

/// Anchor centre and size, normalised to the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub x_center: f32,
    pub y_center: f32,
    pub w: f32,
    pub h: f32,
}

fn calculate_scale(min_scale: f32, max_scale: f32, idx: usize, num: usize) -> f32 {
    if num == 1 {
        (min_scale + max_scale) * 0.5
    } else {
        min_scale + (max_scale - min_scale) * idx as f32 / (num - 1) as f32
    }
}

/// Anchors for an input of `input_w` × `input_h` pixels, in MediaPipe's order.
pub fn generate_anchors(o: &SsdDecode, input_w: usize, input_h: usize) -> Vec<Anchor> {
    let mut anchors = Vec::new();
    let mut layer_id = 0;
    while layer_id < o.num_layers {
        let mut heights = Vec::new();
        let mut widths = Vec::new();
        let mut ratios = Vec::new();
        let mut scales = Vec::new();
        let mut last = layer_id;
        while last < o.strides.len() && o.strides[last] == o.strides[layer_id] {
            let scale = calculate_scale(o.min_scale, o.max_scale, last, o.strides.len());
            if last == 0 && o.reduce_boxes_in_lowest_layer {
                ratios.extend([1.0, 2.0, 0.5]);
                scales.extend([0.1, scale, scale]);
            } else {
                for &ar in &o.aspect_ratios {
                    ratios.push(ar);
                    scales.push(scale);
                }
                if o.interpolated_scale_aspect_ratio > 0.0 {
                    let next = if last == o.strides.len() - 1 {
                        1.0
                    } else {
                        calculate_scale(o.min_scale, o.max_scale, last + 1, o.strides.len())
                    };
                    scales.push((scale * next).sqrt());
                    ratios.push(o.interpolated_scale_aspect_ratio);
                }
            }
            last += 1;
        }
        for (r, s) in ratios.iter().zip(&scales) {
            let rs = r.sqrt();
            heights.push(s / rs);
            widths.push(s * rs);
        }
        let stride = o.strides[layer_id];
        let fm_h = input_h.div_ceil(stride);
        let fm_w = input_w.div_ceil(stride);
        for y in 0..fm_h {
            for x in 0..fm_w {
                for i in 0..heights.len() {
                    let (w, h) = if o.fixed_anchor_size {
                        (1.0, 1.0)
                    } else {
                        (widths[i], heights[i])
                    };
                    anchors.push(Anchor {
                        x_center: (x as f32 + o.anchor_offset_x) / fm_w as f32,
                        y_center: (y as f32 + o.anchor_offset_y) / fm_h as f32,
                        w,
                        h,
                    });
                }
            }
        }
        layer_id = last;
    }
    anchors
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("detector output sizes do not match the manifest: {0}")]
    Shape(String),
}

/// A reusable list of detections: [`Detections::clear`] keeps every element (and its
/// keypoint buffer) for the next frame, so decoding and NMS allocate nothing once the list
/// has held as many detections as a frame needs.
#[derive(Debug, Clone, Default)]
pub struct Detections {
    items: Vec<Detection>,
    len: usize,
}

impl Detections {
    pub fn clear(&mut self) {
        self.len = 0;
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn as_slice(&self) -> &[Detection] {
        &self.items[..self.len]
    }
    pub fn as_mut_slice(&mut self) -> &mut [Detection] {
        &mut self.items[..self.len]
    }
    /// The next element, reused if an earlier frame had one here (contents stale).
    fn push_slot(&mut self) -> &mut Detection {
        if self.len == self.items.len() {
            self.items.push(Detection {
                bbox: BBox::default(),
                score: 0.0,
                keypoints: Vec::new(),
            });
        }
        self.len += 1;
        &mut self.items[self.len - 1]
    }
    pub fn into_vec(mut self) -> Vec<Detection> {
        self.items.truncate(self.len);
        self.items
    }
}

/// Decode raw regressors (`num_boxes * num_coords`) and score logits (`num_boxes`) into
/// detections above `min_score_thresh`, in model-input coordinates (0..1).
pub fn decode(
    o: &SsdDecode,
    anchors: &[Anchor],
    raw_boxes: &[f32],
    raw_scores: &[f32],
) -> Result<Vec<Detection>, DecodeError> {
    let mut out = Detections::default();
    decode_into(o, anchors, raw_boxes, raw_scores, &mut out)?;
    Ok(out.into_vec())
}

/// [`decode`] into a reused list (cleared first).
pub fn decode_into(
    o: &SsdDecode,
    anchors: &[Anchor],
    raw_boxes: &[f32],
    raw_scores: &[f32],
    out: &mut Detections,
) -> Result<(), DecodeError> {
    let n = o.num_boxes;
    out.clear();
    if anchors.len() != n || raw_boxes.len() != n * o.num_coords || raw_scores.len() < n {
        return Err(DecodeError::Shape(format!(
            "{} anchors, {} box values, {} scores for num_boxes={} num_coords={}",
            anchors.len(),
            raw_boxes.len(),
            raw_scores.len(),
            n,
            o.num_coords
        )));
    }
    let scores_per_box = raw_scores.len() / n;
    for (i, a) in anchors.iter().enumerate() {
        let mut s = raw_scores[i * scores_per_box];
        if o.sigmoid_score {
            if o.score_clipping_thresh > 0.0 {
                s = s.clamp(-o.score_clipping_thresh, o.score_clipping_thresh);
            }
            s = 1.0 / (1.0 + (-s).exp());
        }
        if s < o.min_score_thresh || !s.is_finite() {
            continue;
        }
        let r = &raw_boxes[i * o.num_coords..(i + 1) * o.num_coords];
        let b = &r[o.box_coord_offset..o.box_coord_offset + 4];
        let (xc, yc, w, h) = if o.reverse_output_order {
            (b[0], b[1], b[2], b[3])
        } else {
            (b[1], b[0], b[3], b[2])
        };
        let xc = xc / o.x_scale * a.w + a.x_center;
        let yc = yc / o.y_scale * a.h + a.y_center;
        let w = w / o.w_scale * a.w;
        let h = h / o.h_scale * a.h;
        let d = out.push_slot();
        d.keypoints.clear();
        for k in 0..o.num_keypoints {
            let off = o.keypoint_coord_offset + k * o.num_values_per_keypoint;
            let (kx, ky) = if o.reverse_output_order {
                (r[off], r[off + 1])
            } else {
                (r[off + 1], r[off])
            };
            d.keypoints.push((
                kx / o.x_scale * a.w + a.x_center,
                ky / o.y_scale * a.h + a.y_center,
            ));
        }
        d.bbox = BBox {
            x: xc - w / 2.0,
            y: yc - h / 2.0,
            w,
            h,
        };
        d.score = s;
    }
    Ok(())
}

/// Weighted non-maximum suppression: each cluster of boxes overlapping the best remaining
/// one by more than `iou_threshold` becomes one detection whose box and keypoints are the
/// score-weighted mean of the cluster, and whose score is the best score.
pub fn weighted_nms(dets: Vec<Detection>, iou_threshold: f32, max: usize) -> Vec<Detection> {
    let mut out = Detections::default();
    weighted_nms_into(&dets, iou_threshold, max, &mut Vec::new(), &mut out);
    out.into_vec()
}

/// [`weighted_nms`] over `dets` into a reused list (cleared first); `order` is scratch
/// space (indices of the candidates still unclaimed, best first). Allocates nothing once
/// `order` and `out` have grown to a frame's size.
pub fn weighted_nms_into(
    dets: &[Detection],
    iou_threshold: f32,
    max: usize,
    order: &mut Vec<u32>,
    out: &mut Detections,
) {
    out.clear();
    order.clear();
    order.extend(0..dets.len() as u32);
    // Best score first; equal scores keep their decoding order (a stable sort by score, as
    // before, without the stable sort's scratch buffer).
    order.sort_unstable_by(|&a, &b| {
        dets[b as usize]
            .score
            .total_cmp(&dets[a as usize].score)
            .then(a.cmp(&b))
    });
    while !order.is_empty() && out.len() < max {
        let best = &dets[order[0] as usize];
        let top = best.bbox;
        let in_cluster = |d: &Detection| d.bbox.iou(&top) > iou_threshold || d.bbox == top;
        let mut total = 0.0f32;
        for &i in order.iter() {
            let d = &dets[i as usize];
            if in_cluster(d) {
                total += d.score;
            }
        }
        let merged = out.push_slot();
        merged.bbox = BBox::default();
        merged.score = best.score;
        merged.keypoints.clear();
        merged.keypoints.resize(best.keypoints.len(), (0.0, 0.0));
        for &i in order.iter() {
            let d = &dets[i as usize];
            if !in_cluster(d) {
                continue;
            }
            let wgt = d.score / total;
            merged.bbox.x += d.bbox.x * wgt;
            merged.bbox.y += d.bbox.y * wgt;
            merged.bbox.w += d.bbox.w * wgt;
            merged.bbox.h += d.bbox.h * wgt;
            for (m, k) in merged.keypoints.iter_mut().zip(&d.keypoints) {
                m.0 += k.0 * wgt;
                m.1 += k.1 * wgt;
            }
        }
        order.retain(|&i| !in_cluster(&dets[i as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blazeface() -> SsdDecode {
        SsdDecode {
            num_layers: 4,
            min_scale: 0.1484375,
            max_scale: 0.75,
            strides: vec![8, 16, 16, 16],
            anchor_offset_x: 0.5,
            anchor_offset_y: 0.5,
            aspect_ratios: vec![1.0],
            fixed_anchor_size: true,
            interpolated_scale_aspect_ratio: 1.0,
            reduce_boxes_in_lowest_layer: false,
            num_boxes: 896,
            num_coords: 16,
            box_coord_offset: 0,
            keypoint_coord_offset: 4,
            num_keypoints: 6,
            num_values_per_keypoint: 2,
            reverse_output_order: true,
            x_scale: 128.0,
            y_scale: 128.0,
            w_scale: 128.0,
            h_scale: 128.0,
            sigmoid_score: true,
            score_clipping_thresh: 100.0,
            min_score_thresh: 0.5,
            min_suppression_threshold: 0.3,
            boxes_output: 0,
            scores_output: 1,
        }
    }

    #[test]
    fn blazeface_anchor_grid_matches_mediapipe() {
        let a = generate_anchors(&blazeface(), 128, 128);
        // 16x16 cells x 2 anchors (stride 8) + 8x8 cells x 6 anchors (three stride-16 layers)
        assert_eq!(a.len(), 896);
        assert_eq!(
            a[0],
            Anchor {
                x_center: 0.5 / 16.0,
                y_center: 0.5 / 16.0,
                w: 1.0,
                h: 1.0
            }
        );
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2].x_center, 1.5 / 16.0);
        assert_eq!(a[511].x_center, 15.5 / 16.0);
        assert_eq!(a[511].y_center, 15.5 / 16.0);
        assert_eq!(a[512].x_center, 0.5 / 8.0);
        assert_eq!(a[517], a[512]);
        assert_eq!(a[518].x_center, 1.5 / 8.0);
        assert_eq!(a[895].y_center, 7.5 / 8.0);
    }

    #[test]
    fn anchor_sizes_follow_scales_when_not_fixed() {
        let mut o = blazeface();
        o.fixed_anchor_size = false;
        let a = generate_anchors(&o, 128, 128);
        assert!((a[0].w - 0.1484375).abs() < 1e-6);
        // interpolated anchor: sqrt(scale0 * scale1)
        let s1 = 0.1484375 + (0.75 - 0.1484375) / 3.0;
        assert!((a[1].w - (0.1484375f32 * s1).sqrt()).abs() < 1e-6);
    }

    fn raw_for(
        o: &SsdDecode,
        idx: usize,
        dx: f32,
        dy: f32,
        w: f32,
        h: f32,
        logit: f32,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut boxes = vec![0.0; o.num_boxes * o.num_coords];
        let mut scores = vec![-10.0; o.num_boxes];
        let r = &mut boxes[idx * o.num_coords..];
        r[0] = dx;
        r[1] = dy;
        r[2] = w;
        r[3] = h;
        r[4] = 1.0; // first keypoint x offset in pixels
        r[5] = -2.0;
        scores[idx] = logit;
        (boxes, scores)
    }

    #[test]
    fn decode_applies_anchor_offsets_scales_and_sigmoid() {
        let o = blazeface();
        let anchors = generate_anchors(&o, 128, 128);
        // anchor 512: centre (0.0625, 0.0625) on the 8x8 grid
        let (b, s) = raw_for(&o, 512, 12.8, -6.4, 32.0, 64.0, 2.0);
        let d = decode(&o, &anchors, &b, &s).unwrap();
        assert_eq!(d.len(), 1);
        let d = &d[0];
        let xc = 0.0625 + 0.1;
        let yc = 0.0625 - 0.05;
        assert!((d.bbox.w - 0.25).abs() < 1e-6 && (d.bbox.h - 0.5).abs() < 1e-6);
        assert!((d.bbox.x - (xc - 0.125)).abs() < 1e-6);
        assert!((d.bbox.y - (yc - 0.25)).abs() < 1e-6);
        assert!((d.score - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        assert!((d.keypoints[0].0 - (0.0625 + 1.0 / 128.0)).abs() < 1e-6);
        assert!((d.keypoints[0].1 - (0.0625 - 2.0 / 128.0)).abs() < 1e-6);
    }

    #[test]
    fn decode_drops_low_scores_and_clips_logits() {
        let o = blazeface();
        let anchors = generate_anchors(&o, 128, 128);
        let (b, s) = raw_for(&o, 3, 0.0, 0.0, 10.0, 10.0, -0.1);
        assert!(decode(&o, &anchors, &b, &s).unwrap().is_empty());
        let (b, s) = raw_for(&o, 3, 0.0, 0.0, 10.0, 10.0, 1e9);
        let d = decode(&o, &anchors, &b, &s).unwrap();
        assert!(d[0].score.is_finite() && d[0].score <= 1.0);
    }

    #[test]
    fn decode_rejects_wrong_sizes() {
        let o = blazeface();
        let anchors = generate_anchors(&o, 128, 128);
        assert!(decode(&o, &anchors, &[0.0; 10], &[0.0; 896]).is_err());
    }

    fn det(x: f32, y: f32, s: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y,
                w: 0.2,
                h: 0.2,
            },
            score: s,
            keypoints: vec![(x, y)],
        }
    }

    #[test]
    fn weighted_nms_merges_overlaps_by_score() {
        let out = weighted_nms(
            vec![det(0.0, 0.0, 0.6), det(0.02, 0.0, 0.9), det(0.6, 0.6, 0.7)],
            0.3,
            10,
        );
        assert_eq!(out.len(), 2);
        // best cluster first, score of its best member, box weighted 0.9:0.6
        assert_eq!(out[0].score, 0.9);
        let want_x = (0.02 * 0.9 + 0.0 * 0.6) / 1.5;
        assert!((out[0].bbox.x - want_x).abs() < 1e-6);
        assert!((out[0].keypoints[0].0 - want_x).abs() < 1e-6);
        assert_eq!(out[1].bbox.x, 0.6);
    }

    #[test]
    fn weighted_nms_keeps_separate_faces_and_respects_max() {
        let dets = vec![det(0.0, 0.0, 0.9), det(0.3, 0.0, 0.8), det(0.6, 0.0, 0.7)];
        assert_eq!(weighted_nms(dets.clone(), 0.3, 10).len(), 3);
        let two = weighted_nms(dets, 0.3, 2);
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].score, 0.8);
        assert!(weighted_nms(vec![], 0.3, 10).is_empty());
    }
}
