//! The rollout state machine: pure, the time passed in (milliseconds since the epoch), no
//! I/O. The driver (`rollout::driver`) feeds it what devices reported and publishes the
//! orders [`Rollout::tick`] returns; the store keeps it between ticks and restarts.
//!
//! A device goes `pending → ordered → active → healthy` (`healthy` after
//! [`Plan::healthy_windows`] healthy summary windows on the new model), or `failed` (the
//! device rejected or rolled the model back, a window was unhealthy, or it was silent past
//! [`Plan::timeout_ms`]). A device offline when its stage starts is `offline`, counted
//! apart: it does not stall the stage, and it is ordered when it comes back. After an abort
//! the devices of the failed stage that may run the new model are ordered back
//! (`rollback_ordered`, then `rolled_back`).
//!
//! Length: ~550 lines: one pure state machine (stages, gates, timeouts, abort and rollback)
//! whose transitions read best in one place; its I/O is in `driver.rs`.

use super::plan::{OnFailure, Plan};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use super::types::*;

/// The most seconds' worth of orders one tick sends (the longest tick is 10 s).
const MAX_BURST_S: f64 = 10.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub plan: Plan,
    pub phase: Phase,
    pub stage: usize,
    pub stage_started_ms: i64,
    /// When the current stage first held its success threshold (the soak runs from it).
    pub soak_from: Option<i64>,
    /// Failures of the current stage an operator's resume accepted.
    pub accepted_failures: u32,
    /// The stage being rolled back after an abort.
    pub aborted_stage: Option<usize>,
    pub reason: Option<String>,
    /// Feedback since the stage started: (canary on the new model, control on the old one).
    #[serde(default)]
    pub feedback: Option<(FeedbackCount, FeedbackCount)>,
    /// An operator resumed after a feedback breach: not checked again until the next stage.
    #[serde(default)]
    feedback_accepted: bool,
    /// The stage whose devices were last noted waiting for their maintenance window (one
    /// `waiting_for_window` decision per stage, not one per tick).
    #[serde(default)]
    window_noted: Option<usize>,
    tokens: f64,
    tokens_ms: i64,
    pub members: BTreeMap<String, Member>,
    #[serde(skip)]
    decisions: Vec<Decision>,
    #[serde(skip)]
    dirty: BTreeSet<String>,
}

impl Rollout {
    /// A new rollout over `devices` (id, stratum, online), its first stage starting now.
    pub fn new(id: &str, plan: Plan, devices: &[(String, String, bool)], now: i64) -> Rollout {
        let pairs: Vec<(String, String)> = devices
            .iter()
            .map(|(d, s, _)| (d.clone(), s.clone()))
            .collect();
        let stages = super::plan::assign(id, &pairs, &plan.stages);
        let members = devices
            .iter()
            .map(|(d, _, online)| {
                let m = Member::new(stages[d], Progress::Pending, *online, now);
                (d.clone(), m)
            })
            .collect();
        let mut r = Rollout {
            id: id.to_string(),
            tokens: (plan.orders_per_s as f64).max(1.0),
            plan,
            phase: Phase::Running,
            stage: 0,
            stage_started_ms: now,
            soak_from: None,
            accepted_failures: 0,
            aborted_stage: None,
            reason: None,
            feedback: None,
            feedback_accepted: false,
            window_noted: None,
            tokens_ms: now,
            members,
            decisions: Vec::new(),
            dirty: BTreeSet::new(),
        };
        r.dirty = r.members.keys().cloned().collect();
        r.decide(now, "created", format!("{} devices", r.members.len()));
        r.start_stage(now);
        r
    }

    /// Decisions made since the last call (to store and audit).
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }

    /// Devices whose entry changed since the last call (to store).
    pub fn take_dirty(&mut self) -> Vec<String> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    fn decide(&mut self, at_ms: i64, kind: &str, detail: String) {
        self.decisions.push(Decision {
            at_ms,
            kind: kind.to_string(),
            detail,
        });
    }

    fn start_stage(&mut self, now: i64) {
        self.stage_started_ms = now;
        self.soak_from = None;
        self.accepted_failures = 0;
        self.feedback = None;
        self.feedback_accepted = false;
        let stage = self.stage;
        let mut offline = 0;
        for (d, m) in self.members.iter_mut() {
            if m.stage == stage && m.progress == Progress::Pending && !m.online {
                m.progress = Progress::Offline;
                self.dirty.insert(d.clone());
                offline += 1;
            }
        }
        let n = self.members.values().filter(|m| m.stage == stage).count();
        let pct = self.plan.stages[stage];
        self.decide(
            now,
            "stage_started",
            format!(
                "stage {} ({pct} %): {n} devices, {offline} offline",
                stage + 1
            ),
        );
    }

    fn fail(&mut self, device: &str, now: i64, reason: String) {
        if let Some(m) = self.members.get_mut(device) {
            m.progress = Progress::Failed;
            m.since_ms = now;
            m.reason = Some(reason.clone());
            self.dirty.insert(device.to_string());
            let stage = m.stage + 1;
            self.decide(
                now,
                "device_failed",
                format!("{device} (stage {stage}): {reason}"),
            );
        }
    }

    /// A `models/state` report about the rollout's model; `reason` is its reason code.
    pub fn report(&mut self, device: &str, r: Report, reason: Option<&str>, at_ms: i64, now: i64) {
        let Some(m) = self.members.get_mut(device) else {
            return;
        };
        // a state from before the order (a pending device's last update) says nothing
        if at_ms <= m.state_at_ms || matches!(m.progress, Progress::Pending | Progress::Offline) {
            return;
        }
        m.state_at_ms = at_ms;
        self.dirty.insert(device.to_string());
        let code = reason.unwrap_or("unknown");
        match (m.progress, r) {
            (Progress::RollbackOrdered, Report::RolledBack | Report::Rejected) => {
                m.progress = Progress::RolledBack;
                m.since_ms = now;
            }
            (Progress::Ordered | Progress::Active, Report::Working) => m.since_ms = now,
            (Progress::Ordered, Report::Active) => {
                m.progress = Progress::Active;
                m.on_new = true;
                m.since_ms = now;
                m.healthy = 0;
            }
            (Progress::Ordered | Progress::Active | Progress::Healthy, Report::Rejected) => {
                let why = format!("rejected:{code}");
                self.fail(device, now, why);
            }
            (Progress::Ordered | Progress::Active | Progress::Healthy, Report::RolledBack) => {
                m.on_new = false;
                let why = format!("rolled_back:{code}");
                self.fail(device, now, why);
            }
            _ => {}
        }
    }

    /// A summary window of a device running the rollout's model.
    pub fn window(&mut self, device: &str, w: &Window, now: i64) {
        let (min_faces, need) = (self.plan.min_faces, self.plan.healthy_windows);
        let Some(m) = self.members.get_mut(device) else {
            return;
        };
        if w.end_ms <= m.window_ms - WINDOW_LAG_MS || m.seen.contains(&w.end_ms) {
            return;
        }
        if m.seen.len() >= SEEN {
            m.seen.remove(0);
        }
        m.seen.push(w.end_ms);
        // stalls are counted since the device's start: compare with the newest window only
        let newest = w.end_ms > m.window_ms;
        let stalled = newest && matches!(m.stalls, Some((b, s)) if b == w.boot_id && w.stalls > s);
        if newest {
            m.window_ms = w.end_ms;
            m.stalls = Some((w.boot_id, w.stalls));
        }
        self.dirty.insert(device.to_string());
        if m.progress == Progress::Ordered {
            // windows on the new model say it is active even if the state was missed
            m.progress = Progress::Active;
            m.on_new = true;
            m.healthy = 0;
        }
        if !matches!(m.progress, Progress::Active | Progress::Healthy) {
            return;
        }
        let mut why = Vec::new();
        if w.frames == 0 {
            why.push("no frames".to_string());
        }
        if !w.camera_ok {
            why.push("camera".to_string());
        }
        if stalled {
            why.push("stall".to_string());
        }
        if w.faces < min_faces {
            why.push(format!("{} faces < {min_faces}", w.faces));
        }
        if why.is_empty() {
            m.since_ms = now;
            if m.progress == Progress::Active {
                m.healthy += 1;
                if m.healthy >= need {
                    m.progress = Progress::Healthy;
                }
            }
        } else {
            self.fail(device, now, format!("unhealthy:{}", why.join(",")));
        }
    }

    /// A window on another model: only the read position moves on.
    pub fn skip_window(&mut self, device: &str, end_ms: i64) {
        if let Some(m) = self.members.get_mut(device) {
            if end_ms > m.window_ms {
                m.window_ms = end_ms;
                self.dirty.insert(device.to_string());
            }
        }
    }

    /// A device's online status changed (its retained `status`).
    pub fn online(&mut self, device: &str, online: bool, now: i64) {
        if let Some(m) = self.members.get_mut(device) {
            if m.online == online {
                return;
            }
            m.online = online;
            if online && m.progress == Progress::Offline {
                m.progress = Progress::Pending;
                m.since_ms = now;
            }
            self.dirty.insert(device.to_string());
        }
    }

    /// A device's maintenance zone tag (`Plan::device_zone` of its tags), each tick: a
    /// changed tag is kept, and one naming no known zone is noted (the plan's zone applies).
    pub fn zone(&mut self, device: &str, tag: Option<String>, now: i64) {
        let Some(m) = self.members.get_mut(device) else {
            return;
        };
        if m.tz == tag {
            return;
        }
        m.tz = tag.clone();
        self.dirty.insert(device.to_string());
        if let Some(t) = tag.filter(|t| super::window::zone(t).is_none()) {
            let why = format!("{device}: {t:?} is not a known time zone, the plan's applies");
            self.decide(now, "device_zone_unknown", why);
        }
    }

    /// A device that joined the group after the rollout was created: it gets the model with
    /// the current stage (after an abort: nothing).
    pub fn join(&mut self, device: &str, online: bool, now: i64) {
        if self.members.contains_key(device) || self.phase == Phase::Aborted {
            return;
        }
        let progress = if online {
            Progress::Pending
        } else {
            Progress::Offline
        };
        let m = Member::new(self.stage, progress, online, now);
        self.members.insert(device.to_string(), m);
        self.dirty.insert(device.to_string());
        let stage = self.stage + 1;
        self.decide(now, "device_joined", format!("{device} (stage {stage})"));
    }

    pub fn pause(&mut self, now: i64, why: &str) -> Result<(), String> {
        if self.phase != Phase::Running {
            return Err(format!("the rollout is {}", self.phase.as_str()));
        }
        self.phase = Phase::Paused;
        self.reason = Some(why.to_string());
        self.decide(now, "paused", why.to_string());
        Ok(())
    }

    /// Resume a paused rollout: the failures counted so far are accepted (only new ones
    /// breach again).
    pub fn resume(&mut self, now: i64, why: &str) -> Result<(), String> {
        if self.phase != Phase::Paused {
            return Err(format!("the rollout is {}", self.phase.as_str()));
        }
        self.phase = Phase::Running;
        self.reason = None;
        self.accepted_failures = self.count(self.stage).failed;
        self.feedback_accepted = self.feedback_breach().is_some();
        self.decide(now, "resumed", why.to_string());
        Ok(())
    }

    /// Stop and roll the current stage back.
    pub fn abort(&mut self, now: i64, why: &str) -> Result<(), String> {
        if matches!(self.phase, Phase::Aborted | Phase::Done) {
            return Err(format!("the rollout is {}", self.phase.as_str()));
        }
        self.phase = Phase::Aborted;
        self.aborted_stage = Some(self.stage);
        self.reason = Some(why.to_string());
        self.decide(
            now,
            "aborted",
            format!("stage {} rolled back: {why}", self.stage + 1),
        );
        Ok(())
    }

    pub fn count(&self, stage: usize) -> StageCount {
        let mut c = StageCount {
            percent: self.plan.stages.get(stage).copied().unwrap_or(0),
            ..StageCount::default()
        };
        for m in self.members.values().filter(|m| m.stage == stage) {
            c.devices += 1;
            match m.progress {
                Progress::Pending => c.pending += 1,
                Progress::Offline => c.offline += 1,
                Progress::Ordered | Progress::Active => c.in_progress += 1,
                Progress::Healthy => c.succeeded += 1,
                Progress::Failed => c.failed += 1,
                Progress::RollbackOrdered | Progress::RolledBack => c.rolled_back += 1,
            }
        }
        c
    }

    pub fn counts(&self) -> Vec<StageCount> {
        (0..self.plan.stages.len()).map(|s| self.count(s)).collect()
    }

    /// Timeouts, the thresholds, then orders within the rate. Call every few seconds.
    pub fn tick(&mut self, now: i64) -> Vec<Action> {
        self.timeouts(now);
        if self.phase == Phase::Running {
            self.evaluate(now);
        }
        self.orders(now)
    }

    fn timeouts(&mut self, now: i64) {
        let t = self.plan.timeout_ms;
        let late: Vec<(String, Progress)> = self
            .members
            .iter()
            .filter(|(_, m)| {
                matches!(m.progress, Progress::Ordered | Progress::Active) && now - m.since_ms > t
            })
            .map(|(d, m)| (d.clone(), m.progress))
            .collect();
        for (d, p) in late {
            let what = if p == Progress::Ordered {
                "ordered"
            } else {
                "active"
            };
            self.fail(&d, now, format!("timeout:{what}"));
        }
    }

    /// Labelled feedback since the current stage started, on the new model (its devices)
    /// and on the old one (the group's other devices): the driver's figures.
    pub fn set_feedback(&mut self, canary: FeedbackCount, control: FeedbackCount) {
        self.feedback = Some((canary, control));
    }

    /// Why the feedback criterion halts the rollout, if it does.
    fn feedback_breach(&self) -> Option<String> {
        let min = self.plan.feedback_min_labelled as u64;
        let (canary, control) = self.feedback?;
        if min == 0 || self.feedback_accepted || canary.labelled < min || control.labelled < min {
            return None;
        }
        let (new, old) = (canary.agreement()?, control.agreement()?);
        (new < old - self.plan.feedback_max_drop).then(|| {
            format!(
                "feedback agreement {new:.2} on the new model ({} labelled) vs {old:.2} on the old \
                 model ({} labelled), more than {} below",
                canary.labelled, control.labelled, self.plan.feedback_max_drop
            )
        })
    }

    fn evaluate(&mut self, now: i64) {
        let c = self.count(self.stage);
        let counted = c.devices - c.offline;
        let failed = c.failed.saturating_sub(self.accepted_failures);
        let p = &self.plan;
        if c.failed >= p.min_failures
            && failed > 0
            && failed as u64 * 100 >= p.failure_pct as u64 * counted as u64
        {
            let why = format!(
                "stage {}: {} of {counted} devices failed (threshold {} %, at least {})",
                self.stage + 1,
                c.failed,
                p.failure_pct,
                p.min_failures
            );
            let _ = match p.on_failure {
                OnFailure::Pause => self.pause(now, &why),
                OnFailure::Abort => self.abort(now, &why),
            };
            return;
        }
        if let Some(why) = self.feedback_breach() {
            let why = format!("stage {}: {why}", self.stage + 1);
            let _ = match self.plan.on_failure {
                OnFailure::Pause => self.pause(now, &why),
                OnFailure::Abort => self.abort(now, &why),
            };
            return;
        }
        let p = &self.plan;
        let ok = c.succeeded as u64 * 100 >= p.success_pct as u64 * counted as u64;
        if !ok {
            self.soak_from = None;
            return;
        }
        let from = *self.soak_from.get_or_insert(now);
        if now - from < p.soak_ms {
            return;
        }
        let detail = format!(
            "stage {} passed: {} of {counted} healthy, {} offline",
            self.stage + 1,
            c.succeeded,
            c.offline
        );
        if self.stage + 1 == self.plan.stages.len() {
            self.phase = Phase::Done;
            self.decide(now, "done", detail);
        } else {
            self.decide(now, "advanced", detail);
            self.stage += 1;
            self.start_stage(now);
        }
    }

    fn orders(&mut self, now: i64) -> Vec<Action> {
        let rate = self.plan.orders_per_s as f64;
        let dt = (now - self.tokens_ms).max(0) as f64 / 1000.0;
        // the bucket holds the time since the last tick's worth (the driver ticks every
        // 1-10 s), at least a second's and at most MAX_BURST_S': a gap saves up no more
        self.tokens = (self.tokens + dt * rate).min(rate * dt.clamp(1.0, MAX_BURST_S));
        self.tokens_ms = now;
        let mut out = Vec::new();
        let stage = self.stage;
        let rollback = match self.phase {
            Phase::Running | Phase::Done => false,
            Phase::Aborted => true,
            Phase::Paused => return out,
        };
        let aborted = self.aborted_stage;
        let mut gate = self.plan.maintenance.as_ref().map(|w| w.gate());
        let mut waiting = false;
        for (d, m) in self.members.iter_mut() {
            if self.tokens < 1.0 {
                break;
            }
            let act = if rollback {
                let undo = matches!(
                    m.progress,
                    Progress::Ordered | Progress::Active | Progress::Healthy
                ) || (m.progress == Progress::Failed && m.on_new)
                    || (m.progress == Progress::Failed
                        && m.reason.as_deref() == Some("timeout:ordered"));
                if Some(m.stage) != aborted || !undo {
                    continue;
                }
                m.progress = Progress::RollbackOrdered;
                Action::Rollback(d.clone())
            } else {
                if m.progress != Progress::Pending || m.stage > stage {
                    continue;
                }
                if !m.online {
                    m.progress = Progress::Offline;
                    self.dirty.insert(d.clone());
                    continue;
                }
                // outside its maintenance window a device stays pending (no timeout)
                if gate.as_mut().is_some_and(|g| !g.open(now, m.tz.as_deref())) {
                    waiting = true;
                    continue;
                }
                m.progress = Progress::Ordered;
                m.orders += 1;
                // windows that ended well before the order are not on the new model (the
                // driver reads windows after this, with a margin for device clocks)
                m.window_ms = m.window_ms.max(now - WINDOW_MARGIN_MS);
                Action::Order(d.clone())
            };
            m.since_ms = now;
            self.dirty.insert(d.clone());
            self.tokens -= 1.0;
            out.push(act);
        }
        if waiting && self.window_noted != Some(stage) {
            self.window_noted = Some(stage);
            let hours = self
                .plan
                .maintenance
                .as_ref()
                .map_or("", |w| w.hours.as_str());
            let why = format!(
                "stage {}: devices outside their maintenance hours {hours} (local) wait, pending",
                stage + 1
            );
            self.decide(now, "waiting_for_window", why);
        }
        out
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "machine_window_tests.rs"]
mod window_tests;
