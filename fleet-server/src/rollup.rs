//! Rollups computed at ingest, so that charts never scan raw summaries: per device and for
//! the whole fleet, per minute and per hour. Pure: a batch of newly stored summaries folds
//! into additive deltas that the store adds to its rows (`+=`), so replicas, restarts and
//! out-of-order arrival all end in the same sums.

use emotiond_wire::Summary;
use std::collections::BTreeMap;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const STEPS: [i64; 2] = [MINUTE_MS, HOUR_MS];

/// Sums over the summaries of one bucket. Emotions, valence and arousal are summed weighted
/// by `faces_seen` (each summary's values are means over its face observations), so a
/// bucket's mean is `sum / weight`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sums {
    pub summaries: i64,
    pub faces_seen: i64,
    pub dwell_s: f64,
    /// Σ faces_seen over summaries with faces (the weight of `emotions`).
    pub weight: f64,
    pub emotions: [f64; 7],
    /// Σ faces_seen over summaries with a valence, and the weighted sums.
    pub va_weight: f64,
    pub valence: f64,
    pub arousal: f64,
}

impl Sums {
    pub fn of(s: &Summary) -> Sums {
        let w = s.faces_seen as f64;
        let mut out = Sums {
            summaries: 1,
            faces_seen: s.faces_seen as i64,
            dwell_s: s.dwell_s as f64,
            ..Sums::default()
        };
        if s.faces_seen > 0 {
            out.weight = w;
            for (o, e) in out.emotions.iter_mut().zip(s.emotions.to_array()) {
                *o = e as f64 * w;
            }
            if let (Some(v), Some(a)) = (s.valence, s.arousal) {
                out.va_weight = w;
                out.valence = v as f64 * w;
                out.arousal = a as f64 * w;
            }
        }
        out
    }

    pub fn add(&mut self, o: &Sums) {
        self.summaries += o.summaries;
        self.faces_seen += o.faces_seen;
        self.dwell_s += o.dwell_s;
        self.weight += o.weight;
        for (a, b) in self.emotions.iter_mut().zip(o.emotions) {
            *a += b;
        }
        self.va_weight += o.va_weight;
        self.valence += o.valence;
        self.arousal += o.arousal;
    }

    /// Face-weighted means: emotions, valence, arousal (None without faces).
    pub fn means(&self) -> (Option<[f64; 7]>, Option<f64>, Option<f64>) {
        let e = (self.weight > 0.0).then(|| self.emotions.map(|x| x / self.weight));
        let (v, a) = if self.va_weight > 0.0 {
            (
                Some(self.valence / self.va_weight),
                Some(self.arousal / self.va_weight),
            )
        } else {
            (None, None)
        };
        (e, v, a)
    }
}

/// A rollup row's key: scope (`fleet` or `device:<id>`), step and bucket start.
pub type Key = (String, i64, i64);

pub fn device_scope(id: &str) -> String {
    format!("device:{id}")
}
pub const FLEET: &str = "fleet";

/// The bucket of a summary: by its window's end (ms since the epoch).
pub fn bucket(t_ms: i64, step_ms: i64) -> i64 {
    t_ms - t_ms.rem_euclid(step_ms)
}

/// Deltas for a batch of newly stored summaries (duplicates must not be passed in).
pub fn fold<'a>(new: impl IntoIterator<Item = &'a Summary>) -> BTreeMap<Key, Sums> {
    let mut out: BTreeMap<Key, Sums> = BTreeMap::new();
    for s in new {
        let t = s.window_end_ms as i64;
        let sums = Sums::of(s);
        for step in STEPS {
            let b = bucket(t, step);
            for scope in [device_scope(&s.device_id), FLEET.to_string()] {
                out.entry((scope, step, b)).or_default().add(&sums);
            }
        }
    }
    out
}

/// Per (device, boot): summaries newly stored and the highest seq among them. With the
/// stored rows this gives completeness: seq counts 0, 1, 2... per boot, so a boot expects
/// `max_seq + 1` summaries.
pub fn boots<'a>(
    new: impl IntoIterator<Item = &'a Summary>,
) -> BTreeMap<(String, u32), (i64, i64)> {
    let mut out: BTreeMap<(String, u32), (i64, i64)> = BTreeMap::new();
    for s in new {
        let e = out
            .entry((s.device_id.clone(), s.boot_id))
            .or_insert((0, -1));
        e.0 += 1;
        e.1 = e.1.max(s.seq as i64);
    }
    out
}

/// Windows lost in a boot: expected (max_seq + 1) minus stored, never negative.
pub fn lost(stored: i64, max_seq: i64) -> i64 {
    (max_seq + 1 - stored).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use emotiond_wire::summary::{PerEmotion, sample};

    fn at(dev: &str, boot: u32, seq: u64, end_ms: u64, faces: u32, happy: f32) -> Summary {
        let mut s = sample();
        s.device_id = dev.into();
        s.boot_id = boot;
        s.seq = seq;
        s.window_end_ms = end_ms;
        s.window_start_ms = end_ms - 10_000;
        s.faces_seen = faces;
        s.emotions = PerEmotion::from_array([0.0, 0.0, 0.0, happy, 0.0, 0.0, 1.0 - happy]);
        s.valence = (faces > 0).then_some(happy);
        s.arousal = (faces > 0).then_some(0.5);
        s
    }

    #[test]
    fn buckets_are_weighted_by_faces_and_split_by_scope_and_step() {
        let t0 = 1_700_000_020_000u64; // 40 s into a minute
        let a = at("a", 1, 0, t0, 30, 1.0);
        let b = at("b", 1, 0, t0 + 10_000, 10, 0.0);
        let c = at("a", 1, 1, t0 + 30_000, 0, 0.0); // next minute, no faces
        let f = fold([&a, &b, &c]);
        let m0 = bucket(t0 as i64, MINUTE_MS);
        let fleet = f[&(FLEET.to_string(), MINUTE_MS, m0)];
        assert_eq!(fleet.summaries, 2);
        assert_eq!(fleet.faces_seen, 40);
        let (e, v, _) = fleet.means();
        assert!((e.unwrap()[3] - 0.75).abs() < 1e-9, "30 of 40 faces happy");
        assert!((v.unwrap() - 0.75).abs() < 1e-9);
        let a_next = f[&(device_scope("a"), MINUTE_MS, m0 + MINUTE_MS)];
        assert_eq!(a_next.summaries, 1);
        assert_eq!(a_next.means(), (None, None, None), "no faces: no means");
        let hour = f[&(FLEET.to_string(), HOUR_MS, bucket(t0 as i64, HOUR_MS))];
        assert_eq!(hour.summaries, 3);
        // a: 2 minutes + 1 hour; b: 1 + 1; fleet: 2 + 1
        assert_eq!(f.len(), 8);
    }

    #[test]
    fn completeness_counts_per_boot_from_seq_zero() {
        let s: Vec<Summary> = [0u64, 1, 3, 4]
            .iter()
            .map(|&q| at("a", 9, q, 1_700_000_000_000 + q * 10_000, 1, 0.5))
            .chain([at("a", 10, 0, 1_700_000_100_000, 1, 0.5)])
            .collect();
        let b = boots(&s);
        assert_eq!(b[&("a".to_string(), 9)], (4, 4));
        assert_eq!(b[&("a".to_string(), 10)], (1, 0));
        assert_eq!(lost(4, 4), 1, "seq 2 is missing");
        assert_eq!(lost(5, 4), 0, "a late seq 2 fills the gap");
        assert_eq!(lost(0, -1), 0);
    }
}
