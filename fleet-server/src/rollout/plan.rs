//! What a rollout is asked to do ([`Plan`]), its checks, and stage membership: random but
//! stable (a hash of the rollout id and the device id), optionally stratified by a tag.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub use super::window::Maintenance;

/// What a breach of the failure threshold does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop ordering; the operator resumes or aborts.
    #[default]
    Pause,
    /// Stop and order the devices of the failed stage back to their previous model.
    Abort,
}

/// A rollout's parameters (the JSON body of `POST /api/v1/rollouts`, less the package).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Plan {
    /// Cumulative percentages of the group, increasing, the last 100: `[1, 10, 50, 100]`.
    pub stages: Vec<u8>,
    /// How long a stage must hold its success threshold before the next one starts.
    pub soak_ms: i64,
    /// Healthy summary windows on the new model before a device counts as a success.
    pub healthy_windows: u32,
    /// An ordered device silent this long (no state, no healthy window) has failed.
    pub timeout_ms: i64,
    /// Successes (percent of the stage's devices online at its start) to advance.
    pub success_pct: u8,
    /// Failures (percent of the stage's devices) that breach, once `min_failures` failed.
    pub failure_pct: u8,
    pub min_failures: u32,
    pub on_failure: OnFailure,
    /// Orders (and rollback orders) per second at most.
    pub orders_per_s: u32,
    /// A healthy window saw at least this many faces (0: not checked).
    pub min_faces: u32,
    /// Stratify stage membership by this tag key (`board` matches tags `board=…`/`board:…`).
    pub stratify: Option<String>,
    /// Feedback halt criterion (expression slot): once the stage's devices on the new model
    /// and the group's devices on the old one each have this many labelled button presses
    /// since the stage started, the new model's agreement may not fall more than
    /// `feedback_max_drop` below the old one's (0: not checked).
    pub feedback_min_labelled: u32,
    pub feedback_max_drop: f64,
    /// Install orders go out only during these local hours of each device (rollback orders
    /// after an abort are never held back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            stages: vec![1, 10, 50, 100],
            soak_ms: 30 * 60 * 1000,
            healthy_windows: 3,
            timeout_ms: 15 * 60 * 1000,
            success_pct: 95,
            failure_pct: 5,
            min_failures: 1,
            on_failure: OnFailure::Pause,
            orders_per_s: 50,
            min_faces: 0,
            stratify: None,
            feedback_min_labelled: 0,
            feedback_max_drop: 0.1,
            maintenance: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl Plan {
    pub fn check(&self) -> Result<(), PlanError> {
        let bad = |m: String| Err(PlanError(m));
        if self.stages.is_empty() || self.stages.len() > 20 {
            return bad("`stages`: 1 to 20 percentages, the last 100".into());
        }
        if self.stages.windows(2).any(|w| w[0] >= w[1])
            || self.stages[0] == 0
            || *self.stages.last().unwrap_or(&0) != 100
        {
            return bad(format!(
                "`stages` {:?}: increasing percentages within 1..=100, the last 100",
                self.stages
            ));
        }
        if self.soak_ms < 0 {
            return bad("`soak_ms` must not be negative".into());
        }
        if self.timeout_ms <= 0 {
            return bad("`timeout_ms` must be positive".into());
        }
        if self.healthy_windows == 0 {
            return bad("`healthy_windows` must be at least 1".into());
        }
        if self.success_pct == 0 || self.success_pct > 100 {
            return bad("`success_pct` must be within 1..=100".into());
        }
        if self.failure_pct > 100 {
            return bad("`failure_pct` must be within 0..=100".into());
        }
        if self.orders_per_s == 0 || self.orders_per_s > 10_000 {
            return bad("`orders_per_s` must be within 1..=10000".into());
        }
        if !(0.0..=1.0).contains(&self.feedback_max_drop) {
            return bad("`feedback_max_drop` must be within 0..=1".into());
        }
        if matches!(&self.stratify, Some(k) if k.trim().is_empty()) {
            return bad("`stratify` names a tag key".into());
        }
        if let Some(m) = &self.maintenance {
            m.check().map_err(PlanError)?;
        }
        Ok(())
    }

    /// The stratum of a device with these tags (empty without `stratify`, or without a
    /// matching tag).
    pub fn stratum(&self, tags: &[String]) -> String {
        let Some(key) = &self.stratify else {
            return String::new();
        };
        tag_value(tags, key).unwrap_or_default().to_string()
    }

    /// The value of a device's maintenance zone tag (none without `maintenance.tz_tag`).
    pub fn device_zone(&self, tags: &[String]) -> Option<String> {
        self.maintenance.as_ref()?.device_zone(tags)
    }
}

/// The value of the first tag `key=value` or `key:value`.
pub fn tag_value<'a>(tags: &'a [String], key: &str) -> Option<&'a str> {
    tags.iter().find_map(|t| {
        t.strip_prefix(key)
            .and_then(|r| r.strip_prefix('=').or_else(|| r.strip_prefix(':')))
    })
}

/// A device's place in the random order of a rollout: the first 8 bytes of
/// SHA-256(rollout id, NUL, device id).
pub fn rank(rollout: &str, device: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(rollout.as_bytes());
    h.update([0]);
    h.update(device.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Each device's stage (index into `stages`). Within each stratum the devices are taken in
/// [`rank`] order and stage `i` holds the first ⌈stages[i] % of the stratum⌉ not in an
/// earlier one: every stratum has a device in the first stage, and the result does not
/// depend on the order `devices` come in.
pub fn assign(
    rollout: &str,
    devices: &[(String, String)],
    stages: &[u8],
) -> BTreeMap<String, usize> {
    let mut strata: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
    for (d, s) in devices {
        strata
            .entry(s.as_str())
            .or_default()
            .push((rank(rollout, d), d.as_str()));
    }
    let mut out = BTreeMap::new();
    for (_, mut list) in strata {
        list.sort();
        let n = list.len();
        for (k, (_, d)) in list.into_iter().enumerate() {
            let stage = stages
                .iter()
                .position(|p| k < (*p as usize * n).div_ceil(100))
                .unwrap_or(stages.len().saturating_sub(1));
            out.insert(d.to_string(), stage);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devs(n: usize, strata: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("dev-{i:05}"), format!("s{}", i % strata.max(1))))
            .collect()
    }

    #[test]
    fn plans_are_checked() {
        assert!(Plan::default().check().is_ok());
        for stages in [
            vec![],
            vec![10, 50],
            vec![0, 100],
            vec![50, 10, 100],
            vec![10, 10, 100],
        ] {
            let p = Plan {
                stages: stages.clone(),
                ..Plan::default()
            };
            let e = p.check().unwrap_err();
            assert!(e.0.contains("stages"), "{stages:?}: {e}");
        }
        let p = Plan {
            orders_per_s: 0,
            ..Plan::default()
        };
        assert!(p.check().unwrap_err().0.contains("orders_per_s"));
        let p = Plan {
            healthy_windows: 0,
            ..Plan::default()
        };
        assert!(p.check().is_err());
        // unknown keys are refused, not ignored
        let e = serde_json::from_str::<Plan>(r#"{"stages":[1,100],"soak":5}"#).unwrap_err();
        assert!(e.to_string().contains("soak"), "{e}");
    }

    #[test]
    fn stage_sizes_follow_the_percentages() {
        let d = devs(1000, 1);
        let a = assign("r1", &d, &[1, 10, 50, 100]);
        let mut count = [0; 4];
        for s in a.values() {
            count[*s] += 1;
        }
        assert_eq!(count, [10, 90, 400, 500]);
        // a tiny fleet still has a canary
        let a = assign("r1", &devs(3, 1), &[1, 100]);
        assert_eq!(a.values().filter(|s| **s == 0).count(), 1);
    }

    #[test]
    fn membership_is_stable_and_random() {
        let d = devs(500, 1);
        let a = assign("r1", &d, &[10, 100]);
        let mut rev = d.clone();
        rev.reverse();
        assert_eq!(
            a,
            assign("r1", &rev, &[10, 100]),
            "input order does not matter"
        );
        let b = assign("r2", &d, &[10, 100]);
        assert_ne!(a, b, "another rollout draws other canaries");
        // not creation order: the canaries are spread over the id range
        let canaries: Vec<usize> = a
            .iter()
            .filter(|(_, s)| **s == 0)
            .map(|(d, _)| d[4..].parse().unwrap())
            .collect();
        assert_eq!(canaries.len(), 50);
        assert!(canaries.iter().any(|i| *i < 250) && canaries.iter().any(|i| *i >= 250));
    }

    #[test]
    fn every_stratum_has_a_canary() {
        let d = devs(300, 3);
        let a = assign("r1", &d, &[1, 100]);
        let strata: std::collections::BTreeSet<&str> = d
            .iter()
            .filter(|(id, _)| a[id] == 0)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(strata.len(), 3);
        let p = Plan {
            stratify: Some("board".into()),
            ..Plan::default()
        };
        assert_eq!(p.stratum(&["site:x".into(), "board=rpi4".into()]), "rpi4");
        assert_eq!(p.stratum(&["board:imx8".into()]), "imx8");
        assert_eq!(p.stratum(&["boardroom".into()]), "");
        assert_eq!(Plan::default().stratum(&["board=rpi4".into()]), "");
    }
}
