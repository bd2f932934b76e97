//! The rollout machine's vocabulary: phases, device progress, what devices report, what the
//! driver must do, decisions and per-stage counts.

use serde::{Deserialize, Serialize};

/// Windows ending this long before the newest one seen are still read (and counted when not
/// seen before).
pub const WINDOW_LAG_MS: i64 = 30_000;
/// Window ends remembered per device.
pub const SEEN: usize = 64;

/// Device clocks may lag the backend's by this much: windows ending this long before an
/// order are still read.
pub const WINDOW_MARGIN_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Running,
    Paused,
    Aborted,
    /// Every stage passed; devices that join or come back still get the model.
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Aborted => "aborted",
            Phase::Done => "done",
        }
    }
    pub const ALL: [Phase; 4] = [Phase::Running, Phase::Paused, Phase::Aborted, Phase::Done];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    Pending,
    Offline,
    Ordered,
    Active,
    Healthy,
    Failed,
    RollbackOrdered,
    RolledBack,
}

impl Progress {
    pub fn as_str(self) -> &'static str {
        match self {
            Progress::Pending => "pending",
            Progress::Offline => "offline",
            Progress::Ordered => "ordered",
            Progress::Active => "active",
            Progress::Healthy => "healthy",
            Progress::Failed => "failed",
            Progress::RollbackOrdered => "rollback_ordered",
            Progress::RolledBack => "rolled_back",
        }
    }
}

/// One device of the rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub stage: usize,
    pub progress: Progress,
    /// Last sign of progress (order, state, healthy window): the silence timeout runs from it.
    pub since_ms: i64,
    pub online: bool,
    pub healthy: u32,
    /// Why it failed: `rejected:<code>`, `rolled_back:<code>`, `unhealthy:<what>`,
    /// `timeout:ordered` (no answer to the order), `timeout:active` (no windows).
    pub reason: Option<String>,
    /// The device reported the new model active (a rollback then has something to undo).
    pub on_new: bool,
    /// Newest state time and window end seen (device clock): older reports are ignored.
    pub state_at_ms: i64,
    pub window_ms: i64,
    /// (boot, stalls) of the last window, to see stalls within a window.
    pub stalls: Option<(u32, u64)>,
    /// Orders sent to this device (restart tests check there is never a second one).
    pub orders: u32,
    /// Ends of the windows counted lately (at most [`SEEN`]): windows are read again within
    /// [`WINDOW_LAG_MS`] of the newest, so that one stored late (another replica committed
    /// it after a newer one) still counts, and once.
    #[serde(default)]
    pub seen: Vec<i64>,
    /// The device's maintenance zone tag (`maintenance.tz_tag`), as tagged: an unknown zone
    /// counts as none (the plan's `tz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

impl Member {
    /// A device not ordered yet.
    pub fn new(stage: usize, progress: Progress, online: bool, now: i64) -> Member {
        Member {
            stage,
            progress,
            since_ms: now,
            online,
            healthy: 0,
            reason: None,
            on_new: false,
            state_at_ms: 0,
            window_ms: 0,
            stalls: None,
            orders: 0,
            seen: Vec::new(),
            tz: None,
        }
    }
}

/// What a device reported about the rollout's model on `models/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// downloading, verifying, testing: alive, not done.
    Working,
    Active,
    Rejected,
    RolledBack,
}

/// A summary window's health inputs (from a summary on the rollout's model).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub end_ms: i64,
    pub boot_id: u32,
    pub frames: u32,
    pub faces: u32,
    pub camera_ok: bool,
    /// Stalls since the device's start (detector + expression).
    pub stalls: u64,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Order(String),
    Rollback(String),
}

/// A decision for the audit log and the rollout's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub at_ms: i64,
    pub kind: String,
    pub detail: String,
}

/// Per stage: how its devices stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StageCount {
    pub percent: u8,
    pub devices: u32,
    pub pending: u32,
    pub offline: u32,
    pub in_progress: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub rolled_back: u32,
}

/// Labelled feedback presses and how many of them agreed with the window's dominant emotion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackCount {
    pub labelled: u64,
    pub agree: u64,
}

impl FeedbackCount {
    pub fn agreement(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.agree as f64 / self.labelled as f64)
    }
}
