//! Detection metrics of `emotiond eval --boxes`, pure: detections matched to hand-drawn face
//! boxes at an IoU threshold, precision and recall at the detector's operating point, and
//! average precision with PASCAL VOC's all-point interpolation.
//!
//! Matching follows VOC's: detections in order of falling score (ties in input order); each
//! takes the box of its image it overlaps most; when that IoU is at least the threshold and
//! the box is not taken yet, the detection is a true positive and takes it, otherwise it is a
//! false positive (a second detection of a face counts against the detector). Boxes no
//! detection took are the missed faces.

use serde::Serialize;

/// `[x, y, w, h]` in pixels.
pub type Rect = [f64; 4];

pub fn iou(a: &Rect, b: &Rect) -> f64 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index of the image in the ground truth list.
    pub image: usize,
    pub rect: Rect,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionMetrics {
    /// Hand-drawn boxes.
    pub boxes: u64,
    pub detections: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    /// TP / detections; `None` without detections.
    pub precision: Option<f64>,
    /// TP / boxes; `None` without boxes.
    pub recall: Option<f64>,
    /// Area under the all-point interpolated precision/recall curve; `None` without boxes.
    pub average_precision: Option<f64>,
    /// (image, box index) of each box no detection took.
    #[serde(skip)]
    pub missed: Vec<(usize, usize)>,
}

/// `truth[i]` holds image `i`'s boxes; `dets` the detector's faces of all images.
pub fn evaluate(truth: &[Vec<Rect>], dets: &[Detection], threshold: f64) -> DetectionMetrics {
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
    let mut taken: Vec<Vec<bool>> = truth.iter().map(|b| vec![false; b.len()]).collect();
    let mut hits = Vec::with_capacity(dets.len());
    for &i in &order {
        let d = &dets[i];
        let boxes = truth.get(d.image).map(Vec::as_slice).unwrap_or(&[]);
        let best = boxes
            .iter()
            .enumerate()
            .map(|(j, b)| (j, iou(&d.rect, b)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let hit = match best {
            Some((j, o)) if o >= threshold && !taken[d.image][j] => {
                taken[d.image][j] = true;
                true
            }
            _ => false,
        };
        hits.push(hit);
    }
    let boxes: u64 = truth.iter().map(|b| b.len() as u64).sum();
    let tp = hits.iter().filter(|h| **h).count() as u64;
    let missed = taken
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            t.iter()
                .enumerate()
                .filter(|(_, took)| !**took)
                .map(move |(j, _)| (i, j))
        })
        .collect();
    DetectionMetrics {
        boxes,
        detections: dets.len() as u64,
        true_positives: tp,
        false_positives: dets.len() as u64 - tp,
        precision: (!dets.is_empty()).then(|| tp as f64 / dets.len() as f64),
        recall: (boxes > 0).then(|| tp as f64 / boxes as f64),
        average_precision: (boxes > 0).then(|| average_precision(&hits, boxes)),
        missed,
    }
}

/// VOC all-point AP of a score-sorted list of verdicts (true = true positive) against `boxes`
/// hand-drawn boxes: precision made monotone from the right, summed over each step in recall.
pub fn average_precision(hits: &[bool], boxes: u64) -> f64 {
    let (mut recall, mut precision) = (vec![0.0], vec![0.0]);
    let mut tp = 0u64;
    for (n, &h) in hits.iter().enumerate() {
        tp += h as u64;
        recall.push(tp as f64 / boxes as f64);
        precision.push(tp as f64 / (n + 1) as f64);
    }
    recall.push(1.0);
    precision.push(0.0);
    for i in (0..precision.len() - 1).rev() {
        precision[i] = precision[i].max(precision[i + 1]);
    }
    (1..recall.len())
        .filter(|&i| recall[i] != recall[i - 1])
        .map(|i| (recall[i] - recall[i - 1]) * precision[i])
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(image: usize, rect: Rect, score: f64) -> Detection {
        Detection { image, rect, score }
    }

    #[test]
    fn iou_by_hand() {
        // overlap 5 × 5 = 25, union 100 + 100 − 25 = 175
        assert!((iou(&[0., 0., 10., 10.], &[5., 5., 10., 10.]) - 1.0 / 7.0).abs() < 1e-12);
        assert_eq!(iou(&[0., 0., 10., 10.], &[10., 0., 5., 5.]), 0.0);
        assert_eq!(iou(&[3., 4., 5., 6.], &[3., 4., 5., 6.]), 1.0);
    }

    /// One image, boxes G1 = (0,0,10,10) and G2 = (20,0,10,10). Detections by score:
    /// D1 0.9 on G1 (IoU 1, TP), D2 0.8 on nothing (FP), D3 0.7 on G2 (TP), D4 0.6 on G1 again
    /// (IoU 90/110 = 0.82, but G1 is taken: FP).
    /// Cumulative: recall 1/2, 1/2, 1, 1; precision 1, 1/2, 2/3, 1/2.
    /// Monotone precision from the right: 1, 2/3, 2/3, 1/2. Recall steps: 0 → 1/2 at
    /// precision 1, 1/2 → 1 at precision 2/3: AP = 1/2 + 1/3 = 5/6.
    /// Operating point: precision 2/4, recall 2/2; nothing missed.
    #[test]
    fn one_image_worked_by_hand() {
        let truth = vec![vec![[0., 0., 10., 10.], [20., 0., 10., 10.]]];
        let dets = [
            det(0, [1., 0., 10., 10.], 0.6),
            det(0, [0., 0., 10., 10.], 0.9),
            det(0, [20., 0., 10., 10.], 0.7),
            det(0, [50., 50., 10., 10.], 0.8),
        ];
        let m = evaluate(&truth, &dets, 0.5);
        assert_eq!(
            (m.boxes, m.detections, m.true_positives, m.false_positives),
            (2, 4, 2, 2)
        );
        assert_eq!((m.precision, m.recall), (Some(0.5), Some(1.0)));
        assert!((m.average_precision.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        assert!(m.missed.is_empty());
    }

    /// Two images: image 0 has A = (0,0,10,10), image 1 has B = (0,0,20,20) and
    /// C = (40,0,20,20). Detections: image 0 at (5,0,10,10), score 0.9 — IoU with A is
    /// 50/150 = 1/3 < 0.5: FP; image 1 on B, score 0.5: TP.
    /// Sorted: FP, TP → recall 0, 1/3; precision 0, 1/2. Monotone: 1/2, 1/2. Only step:
    /// 0 → 1/3 at 1/2: AP = 1/6. Missed: A (image 0, box 0) and C (image 1, box 1).
    #[test]
    fn two_images_with_missed_faces_worked_by_hand() {
        let truth = vec![
            vec![[0., 0., 10., 10.]],
            vec![[0., 0., 20., 20.], [40., 0., 20., 20.]],
        ];
        let dets = [
            det(0, [5., 0., 10., 10.], 0.9),
            det(1, [0., 0., 20., 20.], 0.5),
        ];
        let m = evaluate(&truth, &dets, 0.5);
        assert_eq!((m.true_positives, m.false_positives), (1, 1));
        assert_eq!(m.precision, Some(0.5));
        assert!((m.recall.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.average_precision.unwrap() - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(m.missed, vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn no_boxes_and_no_detections() {
        let m = evaluate(&[vec![]], &[], 0.5);
        assert_eq!(
            (m.precision, m.recall, m.average_precision),
            (None, None, None)
        );
        // a face on a photo without faces: precision 0, recall undefined
        let m = evaluate(&[vec![]], &[det(0, [0., 0., 5., 5.], 0.7)], 0.5);
        assert_eq!((m.precision, m.recall), (Some(0.0), None));
    }

    #[test]
    fn perfect_detector_has_ap_one() {
        let truth = vec![vec![[0., 0., 10., 10.]], vec![[5., 5., 10., 10.]]];
        let dets = [
            det(0, [0., 0., 10., 10.], 0.8),
            det(1, [5., 5., 10., 10.], 0.9),
        ];
        let m = evaluate(&truth, &dets, 0.5);
        assert_eq!(m.average_precision, Some(1.0));
    }
}
