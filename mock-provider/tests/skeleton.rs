//! The skeleton server over a real socket: a tiny HTTP/1.1 client talks to
//! the library's server bound on 127.0.0.1:0.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scenarios/provider-outage.toml"
);

/// Sends one request with `Connection: close` and returns the status code
/// and the body parsed as JSON.
async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("no answer within 10 s");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a blank line after the headers");
    let status_line = head.lines().next().expect("a status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "status line: {status_line}");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {status_line}"));
    let headers = head.to_ascii_lowercase();
    assert!(
        headers.contains("\r\ncontent-type: application/json"),
        "not JSON:\n{head}"
    );
    assert!(
        !headers.contains("transfer-encoding: chunked"),
        "this client does not decode chunked bodies:\n{head}"
    );
    let json =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"));
    (status, json)
}

fn assert_openai_error(v: &Value, code: &str) {
    let err = &v["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert_eq!(err["type"], "invalid_request_error", "{v}");
    assert!(err["param"].is_null(), "{v}");
    assert_eq!(err["code"], code, "{v}");
    assert_eq!(err.as_object().map(|o| o.len()), Some(4), "{v}");
}

#[tokio::test]
async fn serves_health_models_and_openai_errors() {
    let scenario = stormglass::scenario::load(Path::new(SCENARIO)).expect("scenario loads");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let app = mock_provider::App::new(Arc::new(scenario), mock_provider::Options::default());
    let server = tokio::spawn(mock_provider::serve_with_shutdown(listener, app, async {
        let _ = stopped.await;
    }));

    let (status, body) = request(addr, "GET", "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({ "status": "ok" }));

    let (status, body) = request(addr, "GET", "/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list", "{body}");
    let data = body["data"].as_array().expect("data is an array");
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["gpt-4o", "claude-sonnet-4"], "{body}");
    let owners: Vec<&str> = data.iter().filter_map(|m| m["owned_by"].as_str()).collect();
    assert_eq!(owners, ["openai", "anthropic"], "{body}");
    for m in data {
        assert_eq!(m["object"], "model", "{m}");
        assert_eq!(m["created"], 0, "{m}");
    }

    let (status, body) = request(addr, "GET", "/v1/nope").await;
    assert_eq!(status, 404);
    assert_openai_error(&body, "not_found");

    let (status, body) = request(addr, "POST", "/v1/models").await;
    assert_eq!(status, 405);
    assert_openai_error(&body, "method_not_allowed");

    stop.send(()).expect("server still running");
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown within 10 s")
        .expect("server task did not panic");
    result.expect("server returned Ok");
}
