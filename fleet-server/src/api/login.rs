//! `POST /api/v1/login`: a user's password checked against the store, no more often than
//! [`crate::throttle`] allows per user name and per client address. The address is the TCP
//! peer's; `X-Forwarded-For` is not trusted (behind a reverse proxy every client has the
//! proxy's address).

use super::{ApiError, ApiResult, AppState, COOKIE, SESSION_MS};
use crate::auth::{self, Role, Who};
use crate::now_ms;
use crate::throttle::{self, Lockout, Refused, Scope, Throttle};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

/// This process's login throttle (each replica counts its own), on a monotonic clock.
pub struct Logins {
    epoch: Instant,
    throttle: Mutex<Throttle>,
}

impl Default for Logins {
    fn default() -> Self {
        Logins {
            epoch: Instant::now(),
            throttle: Mutex::new(Throttle::default()),
        }
    }
}

impl Logins {
    fn with<T>(&self, f: impl FnOnce(&mut Throttle, i64) -> T) -> T {
        let now = self.epoch.elapsed().as_millis() as i64;
        // the throttle's state stays consistent even if a holder panicked
        let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut t, now)
    }

    fn begin<'a>(&'a self, user: &'a str, ip: IpAddr) -> Result<Attempt<'a>, Refused> {
        self.with(|t, now| t.begin(user, ip, now))?;
        Ok(Attempt {
            logins: self,
            user,
            ip,
            open: true,
        })
    }
}

/// An attempt the throttle let through. Dropped undecided (the client went away, the store
/// failed) it is abandoned: no longer in progress, not a failure.
struct Attempt<'a> {
    logins: &'a Logins,
    user: &'a str,
    ip: IpAddr,
    open: bool,
}

impl Attempt<'_> {
    fn failed(mut self) -> Vec<Lockout> {
        self.open = false;
        self.logins.with(|t, now| t.failed(self.user, self.ip, now))
    }

    fn succeeded(mut self) {
        self.open = false;
        self.logins.with(|t, _| t.succeeded(self.user, self.ip));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.open {
            self.logins.with(|t, _| t.abandoned(self.user, self.ip));
        }
    }
}

/// An address as the throttle counts it: IPv6 per /64.
fn shown(ip: IpAddr) -> String {
    match throttle::address_key(ip) {
        IpAddr::V6(net) => format!("{net}/64"),
        v4 => v4.to_string(),
    }
}

/// 429 with `Retry-After` and `{"error": ...}` saying why and when to try again.
fn refused(user: &str, ip: IpAddr, r: Refused) -> Response {
    let s = r.retry_after_s();
    let msg = match (r.scope, r.locked) {
        (Scope::User, true) => {
            format!("too many failed logins for user {user:?}: try again in {s} s")
        }
        (Scope::Address, true) => {
            format!(
                "too many failed logins from {}: try again in {s} s",
                shown(ip)
            )
        }
        (Scope::User, false) => {
            format!("too many logins for user {user:?} at once: try again in {s} s")
        }
        (Scope::Address, false) => {
            format!(
                "too many logins from {} at once: try again in {s} s",
                shown(ip)
            )
        }
    };
    let mut resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg).into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(s));
    resp
}

/// The audit detail of a lockout that has just started.
fn lockout_detail(user: &str, ip: IpAddr, l: &Lockout) -> String {
    let (n, min) = (l.failures, l.for_ms / 60_000);
    let window = throttle::WINDOW_MS / 60_000;
    match l.scope {
        Scope::User => format!(
            "user {user}: {n} failed logins within {window} min, refused for {min} min (the last from {})",
            shown(ip)
        ),
        Scope::Address => format!(
            "address {}: {n} failed logins within {window} min, refused for {min} min (the last as {user})",
            shown(ip)
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct Login {
    user: String,
    password: String,
}

pub(super) async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<Login>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(l) = body?;
    let name: String = l.user.chars().take(64).collect();
    let ip = peer.ip();
    // refused before the store or the password is looked at
    let attempt = match s.logins.begin(&name, ip) {
        Ok(a) => a,
        Err(r) => return Ok(refused(&name, ip, r)),
    };
    let user = s.store.user(&l.user).await?;
    let ok = match &user {
        Some((_, phc)) => {
            let (pw, phc) = (l.password.clone(), phc.clone());
            tokio::task::spawn_blocking(move || auth::verify_password(&pw, &phc))
                .await
                .unwrap_or(false)
        }
        None => {
            // the same work for an unknown user: no timing oracle for user names
            let pw = l.password.clone();
            let _ = tokio::task::spawn_blocking(move || auth::hash_password(&pw)).await;
            false
        }
    };
    if !ok {
        let lockouts = attempt.failed();
        s.store
            .audit(&name, "login_failed", &format!("from {ip}"))
            .await?;
        // once per lockout: the refused attempts that follow are not logged
        for lockout in &lockouts {
            let detail = lockout_detail(&name, ip, lockout);
            log::warn!("login: {detail}");
            s.store.audit(&name, "login_locked", &detail).await?;
        }
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user or password",
        ));
    }
    attempt.succeeded();
    let role = user.map(|u| u.0).unwrap_or(Role::Viewer);
    let who = Who { name, role };
    let secret = auth::new_secret("efs_");
    s.store
        .add_session(&auth::secret_hash(&secret), &who, now_ms() + SESSION_MS)
        .await?;
    s.store.audit(&who.name, "login", role.as_str()).await?;
    let cookie = format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_MS / 1000
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(who)).into_response())
}
