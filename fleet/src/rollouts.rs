//! `emotion-fleet rollouts create|list|status|pause|resume|abort`: staged rollouts through
//! the backend's API (`--api URL --token FILE`). Output: one JSON object per line.

use anyhow::{Context, Result, bail};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct Api {
    /// The backend (`emotion-fleet serve`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// A file holding an API token (an operator's to change anything).
    #[arg(long)]
    token: PathBuf,
}

// parsed once per run: Create's many flags cost nothing worth boxing
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum RolloutsCmd {
    /// Start a staged rollout of a signed package (its `.sig` beside it) to a group.
    Create {
        /// The package archive (`model pack`), its signature in PACKAGE.sig (`model sign`).
        package: PathBuf,
        /// The group to roll out to (devices join groups through the API or the dashboard).
        #[arg(long)]
        group: String,
        /// expression or detector.
        #[arg(long, default_value = "expression")]
        slot: String,
        /// Cumulative percentages of the group, the last 100.
        #[arg(long, default_value = "1,10,50,100", value_delimiter = ',')]
        stages: Vec<u8>,
        /// How long each stage holds its success threshold before the next (90s, 30m, 2h).
        #[arg(long, default_value = "30m", value_parser = duration)]
        soak: Duration,
        /// Healthy summary windows on the new model for a device to count as a success.
        #[arg(long, default_value_t = 3)]
        healthy_windows: u32,
        /// An ordered device silent this long has failed.
        #[arg(long, default_value = "15m", value_parser = duration)]
        timeout: Duration,
        /// Successes (percent of the stage's devices not offline) for the stage to advance.
        #[arg(long, default_value_t = 95)]
        success_pct: u8,
        /// Failures (percent of the stage) that pause or abort, once --min-failures failed.
        #[arg(long, default_value_t = 5)]
        failure_pct: u8,
        /// Failures before --failure-pct is judged.
        #[arg(long, default_value_t = 1)]
        min_failures: u32,
        /// pause or abort (abort orders the failed stage back).
        #[arg(long, default_value = "pause")]
        on_failure: String,
        /// Orders (and rollback orders) per second.
        #[arg(long, default_value_t = 50)]
        orders_per_s: u32,
        /// A healthy window saw at least this many faces (0: not checked).
        #[arg(long, default_value_t = 0)]
        min_faces: u32,
        /// Stratify stage membership by this tag key (tags KEY=VALUE or KEY:VALUE).
        #[arg(long)]
        stratify: Option<String>,
        /// Halt when, with at least this many labelled presses on each side since the stage
        /// started, the new model's feedback agreement is more than --feedback-max-drop below
        /// the old model's in the group (0: not checked).
        #[arg(long, default_value_t = 0)]
        feedback_min_labelled: u32,
        /// The largest drop in agreement (0 to 1) the feedback criterion accepts.
        #[arg(long, default_value_t = 0.1)]
        feedback_max_drop: f64,
        /// Maintenance window: install orders go out only during these local hours of each
        /// device, HH:MM-HH:MM (22:00-04:00 wraps midnight); rollbacks are never held back.
        #[arg(long)]
        hours: Option<String>,
        /// The IANA time zone of devices without a zone tag (default UTC), e.g. Europe/Berlin.
        #[arg(long, requires = "hours")]
        tz: Option<String>,
        /// The tag key naming a device's own zone (`--tz-tag tz` reads tags tz=Asia/Tokyo).
        #[arg(long, requires = "hours")]
        tz_tag: Option<String>,
        #[command(flatten)]
        api: Api,
    },
    /// Every rollout, newest first: one line each.
    List {
        #[command(flatten)]
        api: Api,
    },
    /// A rollout's stages, failures and decisions.
    Status {
        id: String,
        #[command(flatten)]
        api: Api,
    },
    /// Stop ordering devices; those ordered go on (resume to go on).
    Pause {
        id: String,
        /// Why (kept in the rollout's decisions and the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: Api,
    },
    /// Go on from a pause, accepting the failures so far (only new ones breach again).
    Resume {
        id: String,
        /// Why (kept in the rollout's decisions and the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: Api,
    },
    /// Stop, and order the devices of the current stage back to their previous model.
    Abort {
        id: String,
        /// Why (kept in the rollout's decisions and the audit log).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: Api,
    },
}

/// `90s`, `30m`, `2h`, `500ms`, or plain seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: a number and a unit (500ms, 90s, 30m, 2h)"))?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("{s:?}: the unit is ms, s, m or h")),
    };
    Ok(Duration::from_millis(ms))
}

fn request(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let token = std::fs::read_to_string(&api.token)
        .with_context(|| format!("cannot read {}", api.token.display()))?;
    let url = format!("{}{path}", api.api.trim_end_matches('/'));
    let req = ureq::request(method, &url)
        .timeout(Duration::from_secs(120))
        .set("Authorization", &format!("Bearer {}", token.trim()));
    let r = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match r {
        Ok(r) => {
            let text = r.into_string().with_context(|| format!("{method} {url}"))?;
            serde_json::from_str(&text).with_context(|| format!("{method} {url}: not JSON"))
        }
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{method} {url}: {code}: {msg}")
        }
        Err(e) => bail!("{method} {url}: {e}"),
    }
}

fn sig_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Run a `rollouts` subcommand; `print` writes one JSON line.
pub fn run(cmd: RolloutsCmd, print: impl Fn(serde_json::Value)) -> Result<()> {
    match cmd {
        RolloutsCmd::Create {
            package,
            group,
            slot,
            stages,
            soak,
            healthy_windows,
            timeout,
            success_pct,
            failure_pct,
            min_failures,
            on_failure,
            orders_per_s,
            min_faces,
            stratify,
            feedback_min_labelled,
            feedback_max_drop,
            hours,
            tz,
            tz_tag,
            api,
        } => {
            let archive = std::fs::read(&package)
                .with_context(|| format!("cannot read {}", package.display()))?;
            let sp = sig_path(&package);
            let sig: serde_json::Value = serde_json::from_slice(
                &std::fs::read(&sp).with_context(|| format!("cannot read {}", sp.display()))?,
            )
            .with_context(|| format!("{} is not a signature file", sp.display()))?;
            let body = serde_json::json!({
                "group": group, "slot": slot,
                "package": base64::engine::general_purpose::STANDARD.encode(&archive),
                "signature": sig,
                "plan": {
                    "stages": stages, "soak_ms": soak.as_millis() as i64,
                    "healthy_windows": healthy_windows, "timeout_ms": timeout.as_millis() as i64,
                    "success_pct": success_pct, "failure_pct": failure_pct,
                    "min_failures": min_failures, "on_failure": on_failure,
                    "orders_per_s": orders_per_s, "min_faces": min_faces, "stratify": stratify,
                    "feedback_min_labelled": feedback_min_labelled,
                    "feedback_max_drop": feedback_max_drop,
                    "maintenance": hours.map(|h| serde_json::json!({
                        "hours": h, "tz": tz, "tz_tag": tz_tag,
                    })),
                },
            });
            print(request(&api, "POST", "/api/v1/rollouts", Some(body))?);
        }
        RolloutsCmd::List { api } => {
            let list = request(&api, "GET", "/api/v1/rollouts", None)?;
            for r in list.as_array().into_iter().flatten() {
                print(r.clone());
            }
        }
        RolloutsCmd::Status { id, api } => print(request(
            &api,
            "GET",
            &format!("/api/v1/rollouts/{id}"),
            None,
        )?),
        RolloutsCmd::Pause { id, reason, api } => print(change(&api, &id, "pause", reason)?),
        RolloutsCmd::Resume { id, reason, api } => print(change(&api, &id, "resume", reason)?),
        RolloutsCmd::Abort { id, reason, api } => print(change(&api, &id, "abort", reason)?),
    }
    Ok(())
}

fn change(api: &Api, id: &str, action: &str, reason: Option<String>) -> Result<serde_json::Value> {
    let body = serde_json::json!({ "reason": reason });
    let body = if reason_is_set(&body) {
        Some(body)
    } else {
        None
    };
    request(
        api,
        "POST",
        &format!("/api/v1/rollouts/{id}/{action}"),
        body,
    )
}

fn reason_is_set(v: &serde_json::Value) -> bool {
    !v["reason"].is_null()
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("45"), Ok(Duration::from_secs(45)));
        assert!(duration("5d").unwrap_err().contains("unit"));
        assert!(duration("m").is_err());
    }
}
