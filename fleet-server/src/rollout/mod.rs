//! Staged model rollouts: [`plan`] (parameters, membership), [`machine`] (the pure state
//! machine, time passed in).

pub mod machine;
pub mod plan;

pub use machine::{Action, Decision, Member, Phase, Progress, Report, Rollout, StageCount, Window};
pub use plan::{OnFailure, Plan, PlanError};
