//! The completion endpoints over real loopback sockets: response shapes of
//! both providers, streaming, rate-limit headers and their arithmetic, and
//! every kind of bad input.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{chat, messages, send, sse_events, Server};

fn ask(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello there" }], "max_tokens": 100 })
}

#[tokio::test]
async fn openai_answers_in_openais_shape_with_rate_limit_headers() {
    let s = Server::start(Default::default()).await;
    let r = chat(s.addr, "tight-key-one", &ask("fast"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "fast");
    assert!(v["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(v["created"].as_u64().is_some_and(|c| c > 1_700_000_000));
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().expect("content");
    // The task's output is 20 tokens, one word each.
    assert_eq!(content.split_whitespace().count(), 20, "{content}");
    assert_eq!(v["usage"]["completion_tokens"], 20);
    let prompt = v["usage"]["prompt_tokens"].as_u64().expect("prompt tokens");
    assert!((4..=20).contains(&prompt), "{prompt}");
    assert_eq!(v["usage"]["total_tokens"], prompt + 20);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("60"));
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("1000000"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("2"));
    // 50,000 tokens deep (three seconds of 1M/min), less prompt + max_tokens.
    let tokens: u64 = r
        .header("x-ratelimit-remaining-tokens")
        .and_then(|t| t.parse().ok())
        .expect("remaining tokens");
    let spent = prompt + 100;
    assert!(
        (50_000 - spent..50_000 - spent + 100).contains(&tokens),
        "{tokens}"
    );
    assert_eq!(r.header("x-ratelimit-reset-requests"), Some("1s"));
    assert!(r
        .header("x-ratelimit-reset-tokens")
        .is_some_and(|t| t.ends_with("ms")));

    // An unlimited key sends no rate-limit headers.
    let r = chat(s.addr, "free-key-0001", &ask("fast"), &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-ratelimit-limit-requests").is_none());
    s.stop().await;
}

#[tokio::test]
async fn keys_on_one_pool_share_it_and_a_429_says_when_to_come_back() {
    let s = Server::start(Default::default()).await;
    let mut remaining = Vec::new();
    for key in ["tight-key-one", "tight-key-two", "tight-key-one"] {
        let r = chat(s.addr, key, &ask("fast"), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        remaining.push(
            r.header("x-ratelimit-remaining-requests")
                .map(str::to_string),
        );
    }
    let expect = |n: &str| Some(n.to_string());
    assert_eq!(remaining, [expect("2"), expect("1"), expect("0")]);

    let r = chat(s.addr, "tight-key-two", &ask("fast"), &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["type"], "requests");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Limit 60")),
        "{v}"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    let ms: u64 = r
        .header("retry-after-ms")
        .and_then(|m| m.parse().ok())
        .expect("retry-after-ms");
    assert!((1..=1000).contains(&ms), "{ms}");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));

    // Waiting as told is enough.
    tokio::time::sleep(Duration::from_millis(ms + 5)).await;
    let r = chat(s.addr, "tight-key-one", &ask("fast"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn openai_streams_are_paced_coalesced_and_end_with_usage() {
    let s = Server::start(Default::default()).await;
    let mut body = ask("streamer");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let r = chat(s.addr, "free-key-0001", &body, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body_error.is_none(), "{:?}", r.body_error);
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let events = sse_events(&r.text());
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).expect("JSON chunk"))
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 20, "{text}");
    let usage = chunks.last().expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 20);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");

    // 200 ms to the first token, then 50 tokens/s: 19 more tokens in 380 ms,
    // one chunk per 20 ms at most.
    let first = r.frames.first().expect("frames").0;
    let last = r.frames.last().expect("frames").0;
    assert!(
        first >= Duration::from_millis(190),
        "first token after {first:?}"
    );
    assert!(
        last - first >= Duration::from_millis(340),
        "streamed for {:?}",
        last - first
    );
    let content_chunks = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!(
        (10..=21).contains(&content_chunks),
        "{content_chunks} content chunks"
    );
    s.stop().await;
}

#[tokio::test]
async fn anthropic_answers_in_anthropics_shape_streaming_or_not() {
    let s = Server::start(Default::default()).await;
    let r = messages(s.addr, "ant-key-00001", &ask("claude"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 20);
    assert!(r.header("request-id").is_some());

    let mut body = ask("claude");
    body["stream"] = json!(true);
    let r = messages(s.addr, "ant-key-00001", &body, &[]).await;
    assert_eq!(r.status, 200);
    let events = sse_events(&r.text());
    let names: Vec<&str> = events.iter().filter_map(|(e, _)| e.as_deref()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(names[3..names.len() - 3]
        .iter()
        .all(|n| *n == "content_block_delta"));
    for (name, data) in &events {
        let v: Value = serde_json::from_str(data).expect("JSON event");
        assert_eq!(v["type"].as_str(), name.as_deref());
    }
    let delta: Value = serde_json::from_str(&events[events.len() - 2].1).expect("JSON");
    assert_eq!(delta["usage"]["output_tokens"], 20);
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_providers_error_and_status() {
    let s = Server::start(mock_provider::Options {
        body_limit: 10_000,
        ..Default::default()
    })
    .await;
    let a = s.addr;
    let oa = |status: u16, r: &support::Reply, kind: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v
    };
    // Auth.
    let no_key = send(
        a,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        ask("fast").to_string(),
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    oa(401, &no_key, "invalid_request_error");
    let v = oa(
        401,
        &chat(a, "sk-not-a-key-at-all", &ask("fast"), &[]).await,
        "invalid_request_error",
    );
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert!(
        !v.to_string().contains("sk-not-a-key-at-all"),
        "the key is redacted: {v}"
    );
    // Another provider's key.
    oa(
        401,
        &chat(a, "ant-key-00001", &ask("fast"), &[]).await,
        "invalid_request_error",
    );
    // Body.
    let post = |body: &'static str, ct: &'static str| async move {
        send(
            a,
            "POST",
            "/v1/chat/completions",
            &[
                ("authorization", "Bearer free-key-0001"),
                ("content-type", ct),
            ],
            body,
            Duration::from_secs(5),
        )
        .await
        .expect("reply")
    };
    oa(
        400,
        &post("{not json", "application/json").await,
        "invalid_request_error",
    );
    let v = oa(
        400,
        &post(r#"{"model":"fast"}"#, "application/json").await,
        "invalid_request_error",
    );
    assert_eq!(v["error"]["param"], "messages");
    oa(
        400,
        &post(r#"{"model":"fast","messages":[]}"#, "application/json").await,
        "invalid_request_error",
    );
    oa(
        400,
        &post(r#"{"model":"fast","messages":5}"#, "application/json").await,
        "invalid_request_error",
    );
    oa(
        400,
        &post(
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            "application/json",
        )
        .await,
        "invalid_request_error",
    );
    oa(
        400,
        &post(
            r#"{"model":"fast","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
            "application/json",
        )
        .await,
        "invalid_request_error",
    );
    let v = oa(
        404,
        &post(
            r#"{"model":"gpt-5","messages":[{"role":"user","content":"x"}]}"#,
            "application/json",
        )
        .await,
        "invalid_request_error",
    );
    assert_eq!(v["error"]["code"], "model_not_found");
    oa(
        415,
        &post(r#"{"model":"fast"}"#, "text/plain").await,
        "invalid_request_error",
    );
    let big = format!(
        r#"{{"model":"fast","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(20_000)
    );
    let r = send(
        a,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", "Bearer free-key-0001"),
            ("content-type", "application/json"),
        ],
        big,
        Duration::from_secs(5),
    )
    .await
    .expect("reply");
    oa(413, &r, "invalid_request_error");
    // Bad control headers.
    oa(
        400,
        &chat(
            a,
            "free-key-0001",
            &ask("fast"),
            &[("x-stormglass-draw", "request=1")],
        )
        .await,
        "invalid_request_error",
    );
    oa(
        400,
        &chat(
            a,
            "free-key-0001",
            &ask("fast"),
            &[("x-stormglass-fault", "explode")],
        )
        .await,
        "invalid_request_error",
    );

    // Anthropic's shape for its endpoint.
    let an = |status: u16, r: &support::Reply, kind: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
    };
    let no_max = json!({ "model": "claude", "messages": [{ "role": "user", "content": "x" }] });
    an(
        400,
        &messages(a, "ant-key-00001", &no_max, &[]).await,
        "invalid_request_error",
    );
    an(
        401,
        &messages(a, "nobody-at-all", &ask("claude"), &[]).await,
        "authentication_error",
    );
    an(
        404,
        &messages(a, "ant-key-00001", &ask("claude-9"), &[]).await,
        "not_found_error",
    );

    // The server is still fine.
    assert_eq!(
        chat(a, "free-key-0001", &ask("fast"), &[]).await.status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn slow_clients_cannot_hold_the_server() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s = Server::start(mock_provider::Options {
        read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // Headers that never finish: the connection is closed.
    let mut c = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    c.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the connection");
    // A body that never finishes: 408 in OpenAI's shape.
    let mut c = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    c.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer free-key-0001\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"").await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf))
        .await
        .expect("an answer within 5 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("invalid_request_error"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_model_key_status_and_fault() {
    let s = Server::start(Default::default()).await;
    assert_eq!(
        chat(s.addr, "free-key-0001", &ask("fast"), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        chat(
            s.addr,
            "free-key-0001",
            &ask("fast"),
            &[("x-stormglass-fault", "503")]
        )
        .await
        .status,
        503
    );
    let r = send(s.addr, "GET", "/metrics", &[], "", Duration::from_secs(5))
        .await
        .expect("reply");
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains(r#"mock_provider_requests_total{endpoint="chat_completions",model="fast",key="fre...0001#2",status="200",fault="none"} 1"#), "{text}");
    assert!(
        text.contains(r#"status="503",fault="overloaded"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"mock_provider_request_duration_seconds_count{model="fast"} 2"#),
        "{text}"
    );
    assert!(text.contains("mock_provider_in_flight 0"), "{text}");
    assert!(!text.contains("free-key-0001"), "keys are redacted");
    s.stop().await;
}

#[tokio::test]
async fn anthropic_rate_limit_headers_count_requests_input_and_output_tokens() {
    let s = Server::start(Default::default()).await;
    let r = messages(s.addr, "ant-tier1-key", &ask("claude"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("anthropic-ratelimit-requests-limit"), Some("50"));
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("49")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-input-tokens-limit"),
        Some("30000")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-output-tokens-limit"),
        Some("8000")
    );
    // max_tokens (100) is reserved against the output limit at admission.
    assert_eq!(
        r.header("anthropic-ratelimit-output-tokens-remaining"),
        Some("7900")
    );
    let prompt = r.json()["usage"]["input_tokens"]
        .as_u64()
        .expect("input tokens");
    let input_left: u64 = r
        .header("anthropic-ratelimit-input-tokens-remaining")
        .and_then(|v| v.parse().ok())
        .expect("input remaining");
    assert!(
        (30_000 - prompt..30_000 - prompt + 5).contains(&input_left),
        "{input_left}"
    );
    // Resets are RFC 3339 instants a little in the future.
    let reset = r
        .header("anthropic-ratelimit-requests-reset")
        .expect("reset");
    let at = humantime::parse_rfc3339(reset).expect("RFC 3339");
    let ahead = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(ahead <= Duration::from_secs(2), "{reset}");
    assert!(r.header("x-ratelimit-limit-requests").is_none());
    s.stop().await;
}

#[tokio::test]
async fn a_request_larger_than_the_token_bucket_is_told_not_to_retry() {
    let s = Server::start(Default::default()).await;
    // The tight pool holds 50,000 tokens; this asks for 100,000.
    let mut big = ask("fast");
    big["max_tokens"] = json!(100_000);
    let r = chat(s.addr, "tight-key-one", &big, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "tokens");
    assert_eq!(r.header("x-should-retry"), Some("false"));
    assert!(r.header("retry-after").is_none());
    s.stop().await;
}
