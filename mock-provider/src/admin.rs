//! Test control, from loopback only: the scenario clock and "fail the
//! first N requests".
//!
//! `POST /admin/clock` takes `{"action": "reset"}` (time zero, a fresh
//! world: full quota pools, no work in flight, arrival counts at zero),
//! `{"action": "set", "to": "40m"}` (forward only: reset first to go
//! back), `{"action": "jump", "by": "5m"}`,
//! `{"action": "pause"}` or `{"action": "resume"}`, each optionally with
//! `"reset_quotas": true`. `GET /admin/clock` says where the clock is.
//! `POST /admin/fail-first` takes `{"count": 3, "fault": "503"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::{BodyExt as _, Limited};
use serde::Deserialize;
use serde_json::json;
use stormglass::units::{format_duration, parse_duration, MILLIS};

use crate::{openai_error, App};

/// A 403 for a client that is not on loopback.
fn forbidden(peer: SocketAddr) -> Option<Response> {
    if peer.ip().is_loopback() {
        None
    } else {
        Some(openai_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin endpoints answer loopback clients only".into(),
        ))
    }
}

/// Reads an admin request's small JSON body, within the server's read
/// timeout.
async fn body(app: &App, req: Request) -> Result<bytes::Bytes, Response> {
    let limited = Limited::new(req.into_body(), 64 << 10);
    match tokio::time::timeout(app.opts.read_timeout, limited.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(_)) => Err(bad("the body is over 64 KiB or could not be read".into())),
        Err(_) => Err(openai_error(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time".into(),
        )),
    }
}

const CLOCK_SHAPE: &str =
    r#"{"action": "reset"|"set"|"jump"|"pause"|"resume", "to"|"by": "5m", "reset_quotas": true}"#;

/// An admin request's JSON body: loopback only, read within the timeout,
/// parsed as `T`; otherwise the error answer (naming `shape`).
async fn parse<T: serde::de::DeserializeOwned>(
    app: &App,
    peer: SocketAddr,
    req: Request,
    shape: &str,
) -> Result<T, Response> {
    if let Some(r) = forbidden(peer) {
        return Err(r);
    }
    let bytes = body(app, req).await?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("{e}; expected {shape}")))
}

fn bad(message: String) -> Response {
    openai_error(StatusCode::BAD_REQUEST, "invalid_admin_request", message)
}

fn clock_state(app: &App) -> Response {
    let clock = app.engine.clock();
    let now = clock.now();
    Json(json!({
        "now": format_duration(now / MILLIS * MILLIS),
        "now_ns": now,
        "paused": clock.paused(),
        "fail_first_left": app.engine.fail_first_left(),
    }))
    .into_response()
}

/// `GET /admin/clock`.
pub(crate) async fn get_clock(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if let Some(r) = forbidden(peer) {
        return r;
    }
    clock_state(&app)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    action: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reset_quotas: bool,
}

/// `POST /admin/clock`.
pub(crate) async fn post_clock(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let req: ClockRequest = match parse(&app, peer, req, CLOCK_SHAPE).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let duration = |field: &Option<String>, name: &str| match field {
        Some(s) => parse_duration(s).map_err(|e| format!("`{name}`: {e}")),
        None => Err(format!(
            "`{}` needs `{name}`, a duration such as \"40m\"",
            req.action
        )),
    };
    let clock = app.engine.clock();
    match req.action.as_str() {
        "reset" => app.engine.reset(),
        "set" => match duration(&req.to, "to") {
            // Back in time, the world's buckets and jobs would wait for the
            // old times to come round again: that is what a reset is for.
            Ok(to) if to < clock.now() => {
                return bad(format!(
                    "`set` only moves the clock forward (it is at {}); use {{\"action\": \"reset\"}} first, then set",
                    format_duration(clock.now() / MILLIS * MILLIS)
                ))
            }
            Ok(to) => {
                clock.set(to);
            }
            Err(e) => return bad(e),
        },
        "jump" => match duration(&req.by, "by") {
            Ok(by) => {
                clock.jump(by);
            }
            Err(e) => return bad(e),
        },
        "pause" => {
            clock.pause();
        }
        "resume" => {
            clock.resume();
        }
        other => {
            return bad(format!(
                "unknown action `{other}`: expected reset, set, jump, pause or resume"
            ))
        }
    }
    if req.reset_quotas {
        app.engine.reset_quotas();
    }
    clock_state(&app)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailFirst {
    count: u64,
    #[serde(default)]
    fault: Option<String>,
}

/// `POST /admin/fail-first`.
pub(crate) async fn fail_first(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let req: FailFirst = match parse(&app, peer, req, r#"{"count": 3, "fault": "503"}"#).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let fault = match crate::parse_fault(req.fault.as_deref().unwrap_or("500")) {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    app.engine.set_fail_first(req.count, fault);
    clock_state(&app)
}
