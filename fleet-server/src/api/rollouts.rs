//! `/api/v1/rollouts`: create (with the signed package), list, status, pause, resume,
//! abort. Reading needs a viewer, everything else an operator. A change is a load, the
//! machine's transition and a version-guarded save (retried when the driver saved between).

use super::{ApiError, ApiResult, AppState, authorize};
use crate::auth::{self, Role};
use crate::now_ms;
use crate::rollout::orders::{self, Where};
use crate::rollout::{Plan, Rollout};
use crate::store::{Package, RolloutMeta, StoreError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use emotiond_wire::signed::{SignatureFile, Slot};
use serde::Deserialize;
use serde_json::json;

/// A create request carries the package (base64): up to 48 MiB of body.
pub const MAX_CREATE_BODY: usize = 48 * 1024 * 1024;
/// Decisions returned with a rollout's status.
const DECISIONS: i64 = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/rollouts",
            get(list)
                .post(create)
                .layer(DefaultBodyLimit::max(MAX_CREATE_BODY)),
        )
        .route("/api/v1/rollouts/{id}", get(status))
        .route("/api/v1/rollouts/{id}/{action}", post(change))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    group: String,
    slot: Slot,
    /// The archive, base64.
    package: String,
    /// The package's `.sig` file.
    signature: SignatureFile,
    #[serde(default)]
    plan: Plan,
}

fn unprocessable(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
}

fn view(
    meta: &RolloutMeta,
    r: &Rollout,
    decisions: Option<Vec<crate::rollout::Decision>>,
) -> serde_json::Value {
    let mut v = json!({
        "id": meta.id, "group": meta.group, "slot": meta.slot, "model": meta.model,
        "sha256": meta.sha256, "created_ms": meta.created_ms, "created_by": meta.created_by,
        "updated_ms": meta.updated_ms, "phase": r.phase.as_str(), "stage": r.stage + 1,
        "stage_started_ms": r.stage_started_ms, "soak_from_ms": r.soak_from,
        "reason": r.reason, "plan": r.plan, "stages": r.counts(),
    });
    if let Some(d) = decisions {
        let failures: Vec<_> = r
            .members
            .iter()
            .filter_map(|(id, m)| {
                m.reason.as_ref().map(|why| {
                    json!({"device_id": id, "stage": m.stage + 1, "progress": m.progress.as_str(), "reason": why})
                })
            })
            .take(1000)
            .collect();
        v["failures"] = json!(failures);
        v["decisions"] = json!(d);
    }
    v
}

async fn list(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let mut out = Vec::new();
    for m in s.store.rollouts(false).await?.into_iter().take(100) {
        if let Some((meta, r)) = s.store.load_rollout(&m.id).await? {
            out.push(view(&meta, &r, None));
        }
    }
    Ok(Json(out).into_response())
}

async fn status(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let (meta, r) = s
        .store
        .load_rollout(&id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no rollout {id:?}")))?;
    let d = s.store.rollout_decisions(&id, DECISIONS).await?;
    Ok(Json(view(&meta, &r, Some(d))).into_response())
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Create>, JsonRejection>,
) -> ApiResult<Response> {
    let who = authorize(&s, &headers, Role::Operator).await?;
    let Json(c) = body?;
    c.plan
        .check()
        .map_err(|e| unprocessable(format!("plan: {e}")))?;
    if c.group.trim().is_empty() {
        return Err(unprocessable("`group` names a device group"));
    }
    let archive = base64::engine::general_purpose::STANDARD
        .decode(c.package.trim())
        .map_err(|e| unprocessable(format!("`package` is not base64: {e}")))?;
    // the topic is the backend's to choose; only the checks matter here
    let placeholder = Where::Url("https://invalid/".into());
    let offer = orders::offer(&archive, &c.signature, c.slot, placeholder)
        .map_err(|e| unprocessable(e.to_string()))?;
    let devices = s.store.group_devices(&c.group).await?;
    if devices.is_empty() {
        return Err(unprocessable(format!("group {:?} has no devices", c.group)));
    }
    let now = now_ms();
    let id = format!("r{now}-{}", &auth::new_secret("")[..6]);
    let members: Vec<(String, String, bool)> = devices
        .iter()
        .map(|(d, tags, online)| (d.clone(), c.plan.stratum(tags), *online))
        .collect();
    let mut r = Rollout::new(&id, c.plan, &members, now);
    for (d, tags, _) in &devices {
        let tz = r.plan.device_zone(tags);
        r.zone(d, tz, now);
    }
    s.store
        .put_package(&Package {
            sha256: offer.sha256.clone(),
            name: offer.name.clone(),
            version: offer.version.clone(),
            key_id: offer.key_id.clone(),
            signature: offer.signature.clone(),
            body: archive,
        })
        .await?;
    let meta = RolloutMeta {
        id: id.clone(),
        group: c.group,
        slot: c.slot.as_str().to_string(),
        model: format!("{}@{}", offer.name, offer.version),
        sha256: offer.sha256,
        created_ms: now,
        created_by: who.name.clone(),
        updated_ms: now,
        phase: r.phase.as_str().to_string(),
        version: 1,
    };
    match s.store.create_rollout(&meta, &mut r).await {
        Ok(()) => {}
        Err(StoreError::Conflict(m)) => return Err(ApiError::new(StatusCode::CONFLICT, m)),
        Err(e) => return Err(e.into()),
    }
    Ok((StatusCode::CREATED, Json(view(&meta, &r, None))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Why {
    #[serde(default)]
    reason: Option<String>,
}

async fn change(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<Why>>,
) -> ApiResult<Response> {
    if !matches!(action.as_str(), "pause" | "resume" | "abort") {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such route"));
    }
    let who = authorize(&s, &headers, Role::Operator).await?;
    let why = body
        .and_then(|b| b.0.reason)
        .unwrap_or_else(|| format!("{action} by {}", who.name));
    if why.len() > 500 {
        return Err(unprocessable("`reason`: at most 500 bytes"));
    }
    // the driver may save between our load and save: load again and retry
    for _ in 0..5 {
        let (meta, mut r) =
            s.store.load_rollout(&id).await?.ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("no rollout {id:?}"))
            })?;
        let now = now_ms();
        let done = match action.as_str() {
            "pause" => r.pause(now, &why),
            "resume" => r.resume(now, &why),
            _ => r.abort(now, &why),
        };
        done.map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("cannot {action}: {e}")))?;
        if s.store
            .save_rollout(&mut r, meta.version, &who.name, None)
            .await?
        {
            return Ok(Json(view(&meta, &r, None)).into_response());
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the rollout kept changing; try again",
    ))
}
