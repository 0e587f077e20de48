//! mock-provider: an HTTP server that reproduces the faults of a stormglass
//! scenario for real clients.
//!
//! This is the skeleton: it loads a scenario and serves
//!
//! - `GET /health`: `{"status":"ok"}`;
//! - `GET /v1/models`: the scenario's models in the OpenAI list format;
//! - anything else: a 404 (or 405 for a known path with another method)
//!   with an OpenAI-style error body.
//!
//! The completion endpoints and the fault model come later.
//!
//! ```no_run
//! # async fn demo(scenario: std::sync::Arc<stormglass::scenario::Scenario>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on http://{}", listener.local_addr()?);
//! mock_provider::serve(listener, scenario).await
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use stormglass::scenario::Scenario;

/// The server's routes, sharing one loaded scenario.
pub fn router(scenario: Arc<Scenario>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(scenario)
}

/// Serves [`router`] on `listener` until ctrl-c (or SIGTERM on Unix), then
/// finishes the requests in flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scenario: Arc<Scenario>,
) -> std::io::Result<()> {
    serve_with_shutdown(listener, scenario, shutdown_signal()?).await
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes
/// the requests in flight and returns.
pub async fn serve_with_shutdown<F>(
    listener: tokio::net::TcpListener,
    scenario: Arc<Scenario>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(scenario))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts listening for ctrl-c (and SIGTERM on Unix) at once, and returns a
/// future that completes on the first of them.
///
/// Call it before announcing that the server is up, so that a signal sent
/// right after the announcement is not lost. Must be called within a tokio
/// runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn models(State(scenario): State<Arc<Scenario>>) -> Json<Value> {
    let world = &scenario.world;
    let data: Vec<Value> = world
        .models
        .iter()
        .map(|m| {
            let owner = world
                .providers
                .get(m.provider)
                .map_or("", |p| p.name.as_str());
            json!({ "id": m.name, "object": "model", "created": 0, "owned_by": owner })
        })
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

/// An error response in the OpenAI format.
fn openai_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = json!({
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": null,
            "code": code,
        }
    });
    (status, Json(body)).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    openai_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("Invalid URL ({method} {})", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    openai_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("Method {method} is not allowed for {}", uri.path()),
    )
}
