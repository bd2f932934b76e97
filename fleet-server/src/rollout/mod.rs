//! Staged model rollouts: [`plan`] (parameters, membership), [`window`] (maintenance
//! hours), [`machine`] (the pure state machine, time passed in), [`orders`] (what goes on
//! the wire), [`driver`] (the task in `serve` that ticks them).

pub mod driver;
pub mod machine;
pub mod orders;
pub mod plan;
pub mod types;
pub mod window;

pub use machine::{
    Action, Decision, FeedbackCount, Member, Phase, Progress, Report, Rollout, StageCount, Window,
};
pub use plan::{Maintenance, OnFailure, Plan, PlanError};

/// Rollouts per phase and their devices per progress, over the active rollouts (for
/// `/metrics`; set by the replica that drives rollouts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub phases: [i64; 4],
    /// pending, offline, in progress, succeeded, failed, rolled back
    pub devices: [i64; 6],
}

impl Gauges {
    pub fn add(&mut self, r: &Rollout) {
        if let Some(i) = Phase::ALL.iter().position(|p| *p == r.phase) {
            self.phases[i] += 1;
        }
        for c in r.counts() {
            for (i, v) in [
                c.pending,
                c.offline,
                c.in_progress,
                c.succeeded,
                c.failed,
                c.rolled_back,
            ]
            .into_iter()
            .enumerate()
            {
                self.devices[i] += v as i64;
            }
        }
    }

    /// Prometheus text: `emotion_fleet_rollouts{phase}` and `emotion_fleet_rollout_devices{progress}`.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP emotion_fleet_rollouts active rollouts by phase (on the replica driving them)\n\
             # TYPE emotion_fleet_rollouts gauge\n",
        );
        for (p, v) in Phase::ALL.iter().zip(self.phases) {
            out.push_str(&format!(
                "emotion_fleet_rollouts{{phase=\"{}\"}} {v}\n",
                p.as_str()
            ));
        }
        out.push_str(
            "# HELP emotion_fleet_rollout_devices devices of active rollouts by progress\n\
             # TYPE emotion_fleet_rollout_devices gauge\n",
        );
        let names = [
            "pending",
            "offline",
            "in_progress",
            "succeeded",
            "failed",
            "rolled_back",
        ];
        for (n, v) in names.iter().zip(self.devices) {
            out.push_str(&format!(
                "emotion_fleet_rollout_devices{{progress=\"{n}\"}} {v}\n"
            ));
        }
        out
    }
}
