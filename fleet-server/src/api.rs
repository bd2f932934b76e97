//! The HTTP API (fleet-server/API.md) and the dashboard's files. Every `/api/v1/` route and
//! `/metrics` needs a bearer token or a session cookie; bodies are capped; every refusal is
//! a status code with `{"error": "..."}`.
//!
//! Length: ~530 lines: the router and one short handler per route, read top to bottom against
//! API.md; the rollout routes are already in `api/rollouts.rs`.

use crate::auth::{self, Role, Who};
use crate::store::{Scope, Store, StoreError};
use crate::{Metrics, dashboard, now_ms, rollup};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

mod limit;
mod login;
mod rollouts;
pub use login::Logins;
pub use rollouts::MAX_CREATE_BODY;

/// A live event: its SSE name and JSON data.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub name: &'static str,
    pub data: Arc<str>,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub events: broadcast::Sender<LiveEvent>,
    /// Groups and the fleet with fewer devices than this show no aggregates.
    pub k: i64,
    pub started_ms: i64,
    /// Failed logins per user name and client address ([`crate::throttle`]).
    pub logins: Arc<Logins>,
}

/// Session length for dashboard logins.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;
const COOKIE: &str = "ef_session";
/// Request bodies: logins, groups, tokens are all small.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(code: StatusCode, msg: impl Into<String>) -> ApiError {
        ApiError(code, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        log::error!("api: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not available",
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        ApiError::new(e.status(), e.body_text())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Readiness: the store answers within 2 s (a replica that lost its database is taken out
/// of a load balancer's rotation; `/healthz`, its liveness, stays `ok`).
async fn ready(State(st): State<AppState>) -> Response {
    match tokio::time::timeout(std::time::Duration::from_secs(2), st.store.token_count()).await {
        Ok(Ok(_)) => "ready".into_response(),
        Ok(Err(e)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store does not answer: {e}"),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store did not answer within 2 s",
        )
        .into_response(),
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/login", post(login::login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/devices/{id}", get(device))
        .route("/api/v1/devices/{id}/groups", put(set_groups))
        .route("/api/v1/devices/{id}/summaries", get(summaries))
        .route("/api/v1/series", get(series))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/feedback", get(feedback))
        .route("/api/v1/feedback/models", get(feedback_models))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/events", get(events))
        .route("/api/v1/tokens", get(tokens).post(add_token))
        .route("/api/v1/tokens/{name}", delete(delete_token))
        .route("/api/v1/users", post(add_user))
        .merge(rollouts::routes())
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/", get(|| async { dashboard::asset("index.html") }))
        .route(
            "/static/{*path}",
            get(|Path(p): Path<String>| async move { dashboard::asset(&p) }),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(limit::refuse_oversized))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

async fn count(State(s): State<AppState>, req: Request, next: Next) -> Response {
    s.metrics.http_requests.inc();
    let mut r = next.run(req).await;
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Who sends this request, if they may do what needs `need`: 401 without valid
/// credentials, 403 with a role too low.
async fn authorize(s: &AppState, headers: &HeaderMap, need: Role) -> ApiResult<Who> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| cookie_value(headers, COOKIE));
    let Some(secret) = secret.filter(|s| !s.is_empty() && s.len() <= 256) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an API token (Authorization: Bearer ...) or a login is needed",
        ));
    };
    let who = s
        .store
        .who(&auth::secret_hash(secret))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown or expired token"))?;
    if who.role < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a {}; this needs an {}",
                who.name,
                who.role.as_str(),
                need.as_str()
            ),
        ));
    }
    Ok(who)
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let who = authorize(&s, &headers, Role::Viewer).await?;
    if let Some(c) = cookie_value(&headers, COOKIE) {
        s.store.end_session(&auth::secret_hash(c)).await?;
    }
    s.store.audit(&who.name, "logout", "").await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
    )
        .into_response())
}

async fn me(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Who>> {
    Ok(Json(authorize(&s, &headers, Role::Viewer).await?))
}

async fn devices(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    Ok(Json(s.store.devices(None).await?).into_response())
}

async fn device(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    match s.store.devices(Some(&id)).await?.pop() {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no device {id:?}"),
        )),
    }
}

#[derive(Deserialize)]
struct Groups {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

async fn set_groups(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Groups>, JsonRejection>,
) -> ApiResult<Response> {
    let who = authorize(&s, &headers, Role::Operator).await?;
    let Json(g) = body?;
    for n in g.groups.iter().chain(&g.tags) {
        if !auth::valid_name(n) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{n:?}: group and tag names are 1-64 of A-Z a-z 0-9 - _ . @"),
            ));
        }
    }
    if g.groups.len() + g.tags.len() > 64 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "at most 64 groups and tags",
        ));
    }
    if !s.store.set_groups(&id, &g.groups, &g.tags).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no device {id:?}"),
        ));
    }
    s.store
        .audit(
            &who.name,
            "set_groups",
            &json!({"device": id, "groups": g.groups, "tags": g.tags}).to_string(),
        )
        .await?;
    let d = s.store.devices(Some(&id)).await?.pop();
    if let Some(d) = &d {
        let _ = s.events.send(LiveEvent {
            name: "device",
            data: serde_json::to_string(d).unwrap_or_default().into(),
        });
    }
    Ok(Json(d).into_response())
}

#[derive(Deserialize)]
struct Range {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    limit: Option<i64>,
}

async fn summaries(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<Range>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let Query(r) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = r.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "limit: 1 to 10000"));
    }
    let rows = s
        .store
        .summaries(
            &id,
            r.from_ms.unwrap_or(0),
            r.to_ms.unwrap_or(i64::MAX),
            limit,
        )
        .await?;
    Ok(Json(rows).into_response())
}

#[derive(Deserialize)]
struct SeriesQuery {
    device: Option<String>,
    group: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    step: Option<String>,
}

async fn series(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SeriesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let step = match q.step.as_deref().unwrap_or("minute") {
        "minute" => rollup::MINUTE_MS,
        "hour" => rollup::HOUR_MS,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("step {other:?}: minute or hour"),
            ));
        }
    };
    let to = q.to_ms.unwrap_or_else(now_ms);
    let from = q.from_ms.unwrap_or(to - 3_600_000);
    if from > to || (to - from) / step > 50_000 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "from_ms..to_ms: at most 50000 steps, from before to",
        ));
    }
    let scope = match (q.device, q.group) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "device or group, not both",
            ));
        }
        (Some(d), None) => Scope::Device(d),
        (None, Some(g)) => Scope::Group(g),
        (None, None) => Scope::Fleet,
    };
    Ok(Json(s.store.series(&scope, step, from, to, s.k).await?).into_response())
}

async fn stats(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let st = s.store.stats().await?;
    let mut v = serde_json::to_value(st).unwrap_or_default();
    v["started_ms"] = json!(s.started_ms);
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
struct FeedbackQuery {
    device: Option<String>,
    limit: Option<i64>,
}

async fn feedback(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<FeedbackQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(
        s.store
            .feedback(q.device.as_deref(), q.limit.unwrap_or(100))
            .await?,
    )
    .into_response())
}

async fn feedback_models(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    Ok(Json(s.store.feedback_by_model().await?).into_response())
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok(Json(s.store.audit_log(q.limit.unwrap_or(100)).await?).into_response())
}

async fn events(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    let metrics = s.metrics.clone();
    // A client that falls behind the channel is dropped (it reconnects), never waited for.
    let stream = BroadcastStream::new(s.events.subscribe()).map_while(move |r| match r {
        Ok(ev) => Some(Ok::<_, std::convert::Infallible>(
            SseEvent::default().event(ev.name).data(&*ev.data),
        )),
        Err(_) => {
            metrics.sse_dropped.inc();
            None
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn tokens(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Operator).await?;
    Ok(Json(s.store.tokens().await?).into_response())
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    role: Role,
}

async fn add_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewToken>, JsonRejection>,
) -> ApiResult<Response> {
    let who = authorize(&s, &headers, Role::Operator).await?;
    let Json(t) = body?;
    if !auth::valid_name(&t.name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name: 1-64 of A-Z a-z 0-9 - _ . @",
        ));
    }
    let secret = auth::new_secret("eft_");
    if !s
        .store
        .add_token(&t.name, t.role, &auth::secret_hash(&secret))
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("a token named {:?} exists", t.name),
        ));
    }
    s.store
        .audit(
            &who.name,
            "token_created",
            &format!("{} ({})", t.name, t.role.as_str()),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": t.name, "role": t.role, "token": secret})),
    )
        .into_response())
}

async fn delete_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let who = authorize(&s, &headers, Role::Operator).await?;
    if !s.store.delete_token(&name).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token {name:?}"),
        ));
    }
    s.store.audit(&who.name, "token_deleted", &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct NewUser {
    user: String,
    password: String,
    role: Role,
}

async fn add_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewUser>, JsonRejection>,
) -> ApiResult<Response> {
    let who = authorize(&s, &headers, Role::Operator).await?;
    let Json(u) = body?;
    if !auth::valid_name(&u.user) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user: 1-64 of A-Z a-z 0-9 - _ . @",
        ));
    }
    if u.password.chars().count() < 10 || u.password.len() > 1024 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password: 10 to 1024 characters",
        ));
    }
    let pw = u.password.clone();
    let phc = tokio::task::spawn_blocking(move || auth::hash_password(&pw))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed"))?;
    s.store.put_user(&u.user, u.role, &phc).await?;
    s.store
        .audit(
            &who.name,
            "user_set",
            &format!("{} ({})", u.user, u.role.as_str()),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": u.user, "role": u.role})),
    )
        .into_response())
}

async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    authorize(&s, &headers, Role::Viewer).await?;
    if let Ok(st) = s.store.stats().await {
        use std::sync::atomic::Ordering::Relaxed;
        s.metrics.devices.store(st.devices, Relaxed);
        s.metrics.devices_online.store(st.online, Relaxed);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response())
}
