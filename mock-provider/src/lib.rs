//! mock-provider: an HTTP server that misbehaves exactly as a stormglass
//! scenario says, for any client (the official SDKs, LiteLLM, a team's own
//! service, stormglass's live driver).
//!
//! Endpoints:
//!
//! - `POST /v1/chat/completions` (OpenAI) and `POST /v1/messages`
//!   (Anthropic), streaming or not, answered by the scenario's world model
//!   (`stormglass::world`, the same code the simulator runs): quota pools
//!   with the providers' rate-limit headers, faults, capacity and queueing,
//!   latency, incidents on the scenario clock;
//! - `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus);
//! - `GET|POST /admin/clock` and `POST /admin/fail-first`, from loopback
//!   only: reset, set, jump, pause or resume the scenario clock, refill the
//!   quota pools, fail the next N requests.
//!
//! Per request, a client may send `x-stormglass-draw: request=R;try=K` to
//! get exactly the simulator's draws for that attempt, and
//! `x-stormglass-fault: 503` (or `hang`, `reset`, ...: see [`parse_fault`])
//! to force a fault.
//!
//! ```no_run
//! # async fn demo(scenario: std::sync::Arc<stormglass::scenario::Scenario>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on http://{}", listener.local_addr()?);
//! let app = mock_provider::App::new(scenario, mock_provider::Options::default());
//! mock_provider::serve(listener, app).await
//! # }
//! ```

mod admin;
mod answer;
mod api;
pub mod clock;
mod engine;
mod metrics;
mod text;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use stormglass::scenario::Scenario;
use stormglass::wire::BodyKind;
use stormglass::world::Force;
use tokio::sync::watch;

pub use api::{DRAW_HEADER, FAULT_HEADER};

use crate::engine::Engine;
use crate::metrics::{Logger, Metrics};

/// How the server runs (the command line's flags).
#[derive(Clone, Debug)]
pub struct Options {
    /// Streams send at most one chunk per this interval.
    pub chunk_interval: Duration,
    /// Largest request body accepted (413 beyond).
    pub body_limit: usize,
    /// Time a client has to send its request headers and body (408 beyond).
    pub read_timeout: Duration,
    /// One JSON line per request on standard error.
    pub log: bool,
    /// Fail the first N completion requests, and how.
    pub fail_first: Option<(u64, Force)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            chunk_interval: Duration::from_millis(20),
            body_limit: 4 << 20,
            read_timeout: Duration::from_secs(10),
            log: false,
            fail_first: None,
        }
    }
}

/// The server's state: the scenario, its world on the scenario clock, and
/// what the server counted.
pub struct App {
    sc: Arc<Scenario>,
    opts: Options,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    logger: Option<Logger>,
    models: BTreeMap<String, usize>,
    keys: BTreeMap<String, usize>,
    ids: AtomicU64,
    closed: watch::Sender<bool>,
}

impl App {
    /// A server for `scenario`, at scenario time zero.
    pub fn new(scenario: Arc<Scenario>, opts: Options) -> Arc<Self> {
        let world = &scenario.world;
        let models = world
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let keys = world
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.name.clone(), i))
            .collect();
        Arc::new(Self {
            engine: Arc::new(Engine::new(Arc::clone(world), opts.fail_first)),
            metrics: Arc::new(Metrics::new(
                world.models.iter().map(|m| m.name.clone()).collect(),
                world
                    .keys
                    .iter()
                    .enumerate()
                    // Redacted names can collide (every short key is
                    // `****`): the key's index keeps the series apart.
                    .map(|(i, k)| format!("{}#{i}", metrics::redact(&k.name)))
                    .collect(),
            )),
            logger: opts.log.then(Logger::stderr),
            models,
            keys,
            ids: AtomicU64::new(0),
            closed: watch::Sender::new(false),
            sc: scenario,
            opts,
        })
    }

    /// The scenario served.
    pub fn scenario(&self) -> &Scenario {
        &self.sc
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Completes when the server shuts down: hanging and stalled answers
    /// end then, so a graceful shutdown does not wait for them forever.
    async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Completes when the server shuts down or the world admitted at
    /// `epoch` is reset: an answer of the old world ends then (its scenario
    /// times mean nothing on the new clock).
    async fn interrupted(&self, epoch: u64) {
        tokio::select! {
            () = self.closed() => {}
            () = self.engine.reset_after(epoch) => {}
        }
    }

    fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// Parses a fault name, as the fault header, `--fail-first-with` and
/// `/admin/fail-first` take it: an HTTP status (`429`, `500`, `503`,
/// `529`, any 400-599), `insufficient_quota`, `hang`, `reset`, `broken`,
/// `stall`, `slow`, `malformed` (truncated) or one of the body kinds
/// (`fenced`, `truncated`, `missing_fields`, `plain_text`), or `none`.
pub fn parse_fault(s: &str) -> Result<Force, String> {
    let s = s.trim();
    if let Ok(status) = s.parse::<u16>() {
        return if (400..=599).contains(&status) {
            Ok(Force::Status(status))
        } else {
            Err(format!("status {status} is not an error status (400-599)"))
        };
    }
    let body = |name: &str| BodyKind::ALL.into_iter().find(|k| k.name() == name);
    Ok(match s {
        "none" => Force::Serve,
        "insufficient_quota" => Force::InsufficientQuota(429),
        "hang" => Force::Hang,
        "reset" => Force::Reset,
        "broken" | "broken_stream" => Force::Broken,
        "stall" => Force::Stall,
        "slow" => Force::Slow,
        "malformed" => Force::Malformed(BodyKind::Truncated),
        other => match body(other.strip_prefix("malformed_").unwrap_or(other)) {
            Some(kind) if kind != BodyKind::Valid => Force::Malformed(kind),
            _ => {
                return Err(format!(
                    "unknown fault `{other}`: expected an HTTP status (400-599), insufficient_quota, hang, reset, broken, stall, slow, malformed, fenced, truncated, missing_fields, plain_text or none"
                ))
            }
        },
    })
}

/// The server's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(api::chat_completions))
        .route("/v1/messages", post(api::messages))
        .route("/metrics", get(metrics))
        .route(
            "/admin/clock",
            get(admin::get_clock).post(admin::post_clock),
        )
        .route("/admin/fail-first", post(admin::fail_first))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// Serves `app` on `listener` until ctrl-c (or SIGTERM on Unix), then
/// finishes the requests in flight and returns.
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) -> std::io::Result<()> {
    serve_with_shutdown(listener, app, shutdown_signal()?).await
}

/// One connection's service: the router, with the peer's address for the
/// loopback-only admin routes, and resets played by closing the
/// connection without an answer.
#[derive(Clone)]
struct Conn {
    router: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Conn {
    type Response = Response;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Response, std::io::Error>> + Send + 'static>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        use tower_service::Service as _;
        let mut router = self.router.clone();
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Box::pin(async move {
            let resp = match router.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if resp.extensions().get::<answer::Abort>().is_some() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset by the scenario",
                ));
            }
            Ok(resp)
        })
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then ends hanging
/// and stalled answers, finishes the others and returns.
pub async fn serve_with_shutdown<F>(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};

    let ticker = tokio::spawn(Arc::clone(&app.engine).tick());
    let router = router(Arc::clone(&app));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.opts.read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(_) => {
                        // Out of file descriptors and the like: wait, and
                        // do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = http.serve_connection(
                    TokioIo::new(stream),
                    Conn { router: router.clone(), peer },
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    // A reset, a client that went away, a slow client timed
                    // out: all end the connection, none is the server's error.
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    app.close();
    // Hangs and stalls end at `close`; a client that stops reading gets
    // five seconds more, then the connections are dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    ticker.abort();
    if let Some(logger) = &app.logger {
        logger.flush();
    }
    Ok(())
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

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.render(),
    )
        .into_response()
}

async fn models(State(app): State<Arc<App>>) -> Json<Value> {
    let world = &app.sc.world;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_parse() {
        assert_eq!(parse_fault("503"), Ok(Force::Status(503)));
        assert_eq!(parse_fault("hang"), Ok(Force::Hang));
        assert_eq!(
            parse_fault("fenced"),
            Ok(Force::Malformed(BodyKind::Fenced))
        );
        assert_eq!(
            parse_fault("malformed_plain_text"),
            Ok(Force::Malformed(BodyKind::PlainText))
        );
        assert!(parse_fault("200").unwrap_err().contains("400-599"));
        assert!(parse_fault("valid").is_err());
        assert!(parse_fault("explode")
            .unwrap_err()
            .contains("unknown fault"));
    }
}
