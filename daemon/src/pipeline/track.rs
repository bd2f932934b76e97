//! Face tracking across frames (greedy IoU association, stable ids that are never reused)
//! and per-track smoothing of emotion probabilities (exponential, time-constant based, so
//! it behaves the same at any frame rate). Pure: times are passed in as seconds.

use emotiond_models::BBox;

#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub id: u64,
    pub bbox: BBox,
    /// Smoothed probabilities, order of `EMOTIONS`.
    pub probs: [f32; 7],
    pub last_seen: f64,
}

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Minimum IoU for a detection to continue a track.
    pub iou_threshold: f32,
    /// A track not seen for this long is ended.
    pub max_missed_s: f64,
    /// Smoothing time constant; 0 disables smoothing.
    pub smoothing_tau_s: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            iou_threshold: 0.3,
            max_missed_s: 1.0,
            smoothing_tau_s: 0.5,
        }
    }
}

#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

/// What `update` did with one detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub track_id: u64,
    /// Seconds since this track was last seen (0 for a new track).
    pub dt: f64,
    pub probs: [f32; 7],
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Tracker {
        Tracker {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Associate this frame's faces (box + raw probabilities) at time `t` with tracks.
    /// Returns one observation per face, in input order, carrying smoothed probabilities.
    pub fn update(&mut self, t: f64, faces: &[(BBox, [f32; 7])]) -> Vec<Observation> {
        let max_missed = self.cfg.max_missed_s;
        self.tracks.retain(|tr| t - tr.last_seen <= max_missed);
        // Every (track, face) pair above the threshold, best IoU first.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, tr) in self.tracks.iter().enumerate() {
            for (fi, (b, _)) in faces.iter().enumerate() {
                let iou = tr.bbox.iou(b);
                if iou >= self.cfg.iou_threshold {
                    pairs.push((iou, ti, fi));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut face_track: Vec<Option<usize>> = vec![None; faces.len()];
        let mut used = vec![false; self.tracks.len()];
        for (_, ti, fi) in pairs {
            if !used[ti] && face_track[fi].is_none() {
                used[ti] = true;
                face_track[fi] = Some(ti);
            }
        }
        let mut out = Vec::with_capacity(faces.len());
        for (fi, (b, p)) in faces.iter().enumerate() {
            match face_track[fi] {
                Some(ti) => {
                    let tr = &mut self.tracks[ti];
                    let dt = (t - tr.last_seen).max(0.0);
                    let alpha = if self.cfg.smoothing_tau_s > 0.0 {
                        (1.0 - (-dt / self.cfg.smoothing_tau_s).exp()) as f32
                    } else {
                        1.0
                    };
                    for (s, x) in tr.probs.iter_mut().zip(p) {
                        *s += alpha * (x - *s);
                    }
                    tr.bbox = *b;
                    tr.last_seen = t;
                    out.push(Observation {
                        track_id: tr.id,
                        dt,
                        probs: tr.probs,
                    });
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id,
                        bbox: *b,
                        probs: *p,
                        last_seen: t,
                    });
                    out.push(Observation {
                        track_id: id,
                        dt: 0.0,
                        probs: *p,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> BBox {
        BBox {
            x,
            y: 0.2,
            w: 0.2,
            h: 0.2,
        }
    }
    const HAPPY: [f32; 7] = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    const SAD: [f32; 7] = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];

    #[test]
    fn ids_are_stable_across_small_moves_and_new_faces_get_new_ids() {
        let mut t = Tracker::new(TrackerConfig::default());
        let o = t.update(0.0, &[(b(0.1), HAPPY), (b(0.6), SAD)]);
        let (a, c) = (o[0].track_id, o[1].track_id);
        assert_ne!(a, c);
        // faces swap order in the input and move a little
        let o = t.update(0.1, &[(b(0.62), SAD), (b(0.12), HAPPY)]);
        assert_eq!((o[0].track_id, o[1].track_id), (c, a));
        assert!((o[0].dt - 0.1).abs() < 1e-9);
        // a face far from both starts a third track
        let o = t.update(0.2, &[(b(0.35), HAPPY)]);
        assert!(o[0].track_id != a && o[0].track_id != c);
    }

    #[test]
    fn tracks_expire_and_ids_are_not_reused() {
        let mut t = Tracker::new(TrackerConfig::default());
        let first = t.update(0.0, &[(b(0.1), HAPPY)])[0].track_id;
        assert_eq!(t.update(0.9, &[(b(0.1), HAPPY)])[0].track_id, first);
        let later = t.update(2.5, &[(b(0.1), HAPPY)])[0].track_id;
        assert_ne!(later, first);
        assert_eq!(t.tracks().len(), 1);
    }

    #[test]
    fn one_detection_cannot_continue_two_tracks() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(0.0, &[(b(0.1), HAPPY), (b(0.15), HAPPY)]);
        let o = t.update(0.1, &[(b(0.12), HAPPY)]);
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn smoothing_follows_the_time_constant() {
        let mut t = Tracker::new(TrackerConfig {
            smoothing_tau_s: 0.5,
            ..Default::default()
        });
        t.update(0.0, &[(b(0.1), HAPPY)]);
        let o = t.update(0.5, &[(b(0.1), SAD)]);
        let alpha = 1.0 - (-1.0f32).exp();
        assert!((o[0].probs[4] - alpha).abs() < 1e-5);
        assert!((o[0].probs[3] - (1.0 - alpha)).abs() < 1e-5);
        let mut raw = Tracker::new(TrackerConfig {
            smoothing_tau_s: 0.0,
            ..Default::default()
        });
        raw.update(0.0, &[(b(0.1), HAPPY)]);
        assert_eq!(raw.update(0.1, &[(b(0.1), SAD)])[0].probs, SAD);
    }
}
