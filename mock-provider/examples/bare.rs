//! The ceiling for the mock provider's throughput benchmark: a bare axum
//! handler that parses the same chat completion request and returns a
//! fixed completion, on the same runtime. No world model, no headers, no
//! metrics. See BENCHMARKS.md.
//!
//! `cargo run --release -p mock-provider --example bare -- 18091`

use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[allow(dead_code)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Request {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

async fn complete(Json(req): Json<Request>) -> Json<Value> {
    Json(json!({
        "id": "chatcmpl-bare",
        "object": "chat.completion",
        "created": 0,
        "model": req.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "lorem ipsum dolor sitam conse adipi elits seddo lorem ipsum dolor sitam conse adipi elits seddo" },
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": 10, "completion_tokens": 16, "total_tokens": 26 },
    }))
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18091);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            println!(
                "bare handler listening on http://{}",
                listener.local_addr()?
            );
            let app = Router::new().route("/v1/chat/completions", post(complete));
            axum::serve(listener, app).await
        })
}
