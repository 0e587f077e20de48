//! A real HTTP/1.1 client (hyper) and a server on a loopback port, for the
//! mock provider's integration tests.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/mock.toml");

/// A server on 127.0.0.1:<free port>, stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(opts: mock_provider::Options) -> Self {
        Self::start_file(SCENARIO, opts).await
    }

    pub async fn start_file(path: &str, opts: mock_provider::Options) -> Self {
        let sc = stormglass::scenario::load(Path::new(path)).expect("scenario loads");
        let app = mock_provider::App::new(Arc::new(sc), opts);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mock_provider::serve_with_shutdown(listener, app, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has finished (within 10 s).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("the server stops within 10 s")
                .expect("the server task did not panic")
                .expect("the server ended cleanly");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// An answer as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body bytes received.
    pub body: Vec<u8>,
    /// Why the body ended early, if it did.
    pub body_error: Option<String>,
    /// Each body frame with the time since the request was sent.
    pub frames: Vec<(Duration, Bytes)>,
    /// Time from sending to the response headers.
    pub head_after: Duration,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection. `Err` if no response head came
/// (connection closed or reset); the body is read until its end, an error,
/// or `body_limit` of time.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    body_limit: Duration,
) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(body.into()))
        .map_err(|e| e.to_string())?;
    let sent = Instant::now();
    let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
    let head_after = sent.elapsed();
    let (parts, mut body) = resp.into_parts();
    let mut reply = Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: Vec::new(),
        body_error: None,
        frames: Vec::new(),
        head_after,
    };
    let deadline = tokio::time::Instant::now() + body_limit;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                reply.body_error = Some("timed out".into());
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                reply.body_error = Some(e.to_string());
                break;
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    reply.body.extend_from_slice(&data);
                    reply.frames.push((sent.elapsed(), data));
                }
            }
        }
    }
    Ok(reply)
}

/// `POST /v1/chat/completions` as `key`, waiting at most 10 s.
pub async fn chat(addr: SocketAddr, key: &str, body: &Value, extra: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    send(
        addr,
        "POST",
        "/v1/chat/completions",
        &headers,
        body.to_string(),
        Duration::from_secs(10),
    )
    .await
    .expect("a response")
}

/// `POST /v1/messages` as `key`, waiting at most 10 s.
pub async fn messages(addr: SocketAddr, key: &str, body: &Value, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![
        ("x-api-key", key),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    send(
        addr,
        "POST",
        "/v1/messages",
        &headers,
        body.to_string(),
        Duration::from_secs(10),
    )
    .await
    .expect("a response")
}

/// `POST /admin/...` with a JSON body.
pub async fn admin(addr: SocketAddr, path: &str, body: &Value) -> Value {
    let r = send(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string(),
        Duration::from_secs(10),
    )
    .await
    .expect("a response");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// The `data:` payloads of an SSE body, with their event names.
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, data)
        })
        .collect()
}
