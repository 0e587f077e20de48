//! Answers as the world decided them: error answers with the provider's
//! headers, whole bodies at the modelled end, and streams paced by the
//! modelled time to first token and speed, coalesced into at most one chunk
//! per `chunk_interval`. Faults are played as a client meets them: a reset
//! closes the connection (before any header, or mid-stream), a broken
//! stream stops mid-way with the provider's error event (a non-streamed
//! answer: half the body, then the connection drops), a stall sends nothing
//! more, a hang never answers.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use stormglass::units::{Nanos, MILLIS, SECS};
use stormglass::wire::{BodyKind, ErrorType};
use stormglass::world::{JobEnd, LimitFigure, LimitKind, PoolFigures, Rejection, Timeline};

use crate::api::{put, ApiError, Kind, Style};
use crate::engine::{Admitted, Answer, JobGuard};
use crate::metrics::Tracker;
use crate::text::Text;
use crate::App;

/// Marks a response that must not be sent: the connection is closed
/// instead (a reset). The connection service turns it into an error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Abort;

pub(crate) fn abort() -> Response {
    let mut r = Response::new(Body::empty());
    r.extensions_mut().insert(Abort);
    r
}

/// What the answer needs to know of the request.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub style: Style,
    pub id: u64,
    pub model: String,
    pub max_tokens: u32,
    pub input_tokens: u32,
    pub json: bool,
    pub stream: bool,
    pub include_usage: bool,
}

impl Meta {
    fn id(&self) -> String {
        match self.style {
            Style::OpenAi => format!("chatcmpl-mock{:016x}", self.id),
            Style::Anthropic => format!("msg_mock{:016x}", self.id),
        }
    }

    fn finish_reason(&self, tokens: u32) -> &'static str {
        match (self.style, tokens >= self.max_tokens) {
            (Style::OpenAi, true) => "length",
            (Style::OpenAi, false) => "stop",
            (Style::Anthropic, true) => "max_tokens",
            (Style::Anthropic, false) => "end_turn",
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A reset time as OpenAI writes it: Go's duration format ("1s", "6m0s",
/// "12ms", "1.5s").
pub(crate) fn go_duration(ns: Nanos) -> String {
    let ms = ns.div_ceil(MILLIS);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        let s = format!("{}.{:03}", rest / 1000, rest % 1000);
        format!("{}s", s.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// A reset time as Anthropic writes it: the RFC 3339 instant.
fn rfc3339_in(ns: Nanos) -> String {
    let at = SystemTime::now() + Duration::from_nanos(ns);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Header names for (limit, remaining, reset) of each figure.
const OPENAI_LIMITS: [[&str; 3]; 2] = [
    [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ],
    [
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ],
];
const ANTHROPIC_LIMITS: [[&str; 3]; 4] = [
    [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ],
    [
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ],
    [
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
    ],
    [
        "anthropic-ratelimit-output-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
    ],
];

/// The rate-limit headers every answer carries, in the provider's names.
/// The token figure is the pool's tokens-per-minute limit, else its
/// tightest input/output limit.
fn limit_headers(h: &mut HeaderMap, style: Style, f: &PoolFigures) {
    let tokens = f
        .tokens
        .or_else(|| tightest(f.input_tokens, f.output_tokens));
    match style {
        Style::OpenAi => {
            for ([limit, remaining, reset], fig) in
                OPENAI_LIMITS.into_iter().zip([f.requests, tokens])
            {
                if let Some(fig) = fig {
                    put(h, limit, fig.limit);
                    put(h, remaining, fig.remaining);
                    put(h, reset, go_duration(fig.reset));
                }
            }
        }
        Style::Anthropic => {
            let figs = [f.requests, tokens, f.input_tokens, f.output_tokens];
            for ([limit, remaining, reset], fig) in ANTHROPIC_LIMITS.into_iter().zip(figs) {
                if let Some(fig) = fig {
                    put(h, limit, fig.limit);
                    put(h, remaining, fig.remaining);
                    put(h, reset, rfc3339_in(fig.reset));
                }
            }
        }
    }
}

fn tightest(a: Option<LimitFigure>, b: Option<LimitFigure>) -> Option<LimitFigure> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The request id and rate-limit headers every answer carries.
fn base_headers(h: &mut HeaderMap, meta: &Meta, figures: &PoolFigures) {
    let rid = format!("req_mock{:016x}", meta.id);
    match meta.style {
        Style::OpenAi => put(h, "x-request-id", rid),
        Style::Anthropic => put(h, "request-id", rid),
    }
    limit_headers(h, meta.style, figures);
}

/// The error a world rejection is, in the provider's terms.
fn rejection_error(meta: &Meta, r: &Rejection, figures: &PoolFigures) -> ApiError {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let wait = r.retry_after.map_or(String::new(), |w| {
        format!(" Please try again in {}.", go_duration(w))
    });
    let (kind, message) = match r.error {
        ErrorType::RateLimit => {
            let (kind, what, fig) = match r.limit {
                Some(LimitKind::Tokens) => (
                    Kind::RateLimitTokens,
                    "tokens per min (TPM)",
                    figures
                        .tokens
                        .or(figures.input_tokens)
                        .or(figures.output_tokens),
                ),
                _ => (
                    Kind::RateLimitRequests,
                    "requests per min (RPM)",
                    figures.requests,
                ),
            };
            let limit = fig.map_or(String::new(), |f| {
                format!(": Limit {}, Remaining {}", f.limit, f.remaining)
            });
            let message = match meta.style {
                Style::OpenAi => format!(
                    "Rate limit reached for {} in organization org-mock on {what}{limit}.{wait}",
                    meta.model
                ),
                Style::Anthropic => format!(
                    "This request would exceed your organization's rate limit of {what}{limit}.{wait}"
                ),
            };
            (kind, message)
        }
        ErrorType::InsufficientQuota => (
            Kind::InsufficientQuota,
            match meta.style {
                Style::OpenAi => {
                    "You exceeded your current quota, please check your plan and billing details."
                        .to_string()
                }
                Style::Anthropic => {
                    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.".to_string()
                }
            },
        ),
        ErrorType::Overloaded => (
            Kind::Overloaded,
            match meta.style {
                Style::OpenAi => "The server is overloaded or not ready yet.".to_string(),
                Style::Anthropic => "Overloaded".to_string(),
            },
        ),
        ErrorType::Server => (
            Kind::Server,
            match meta.style {
                Style::OpenAi => {
                    "The server had an error while processing your request. Sorry about that!"
                        .to_string()
                }
                Style::Anthropic => "Internal server error".to_string(),
            },
        ),
        ErrorType::Authentication => (Kind::Authentication, "Invalid authentication.".to_string()),
        ErrorType::InvalidRequest => (Kind::InvalidRequest, "Invalid request.".to_string()),
    };
    ApiError::new(status, kind, message)
}

fn fault_name(r: &Rejection) -> &'static str {
    match r.error {
        ErrorType::RateLimit => "rate_limit",
        ErrorType::InsufficientQuota => "insufficient_quota",
        ErrorType::Overloaded => "overloaded",
        ErrorType::Server => "server_error",
        ErrorType::Authentication => "authentication",
        ErrorType::InvalidRequest => "invalid_request",
    }
}

fn end_name(tl: &Timeline) -> &'static str {
    match tl.end {
        JobEnd::Complete(BodyKind::Valid) => "none",
        JobEnd::Complete(BodyKind::Fenced) => "malformed_fenced",
        JobEnd::Complete(BodyKind::Truncated) => "malformed_truncated",
        JobEnd::Complete(BodyKind::MissingFields) => "malformed_missing_fields",
        JobEnd::Complete(BodyKind::PlainText) => "malformed_plain_text",
        JobEnd::Reset => "reset",
        JobEnd::Broken => "broken_stream",
        JobEnd::Stalled(_) => "stall",
    }
}

/// Answers an admitted attempt.
pub(crate) async fn respond(app: Arc<App>, meta: Meta, a: Admitted, mut t: Tracker) -> Response {
    let clock = app.engine.clock();
    let epoch = a.epoch;
    match a.answer {
        Answer::Reject(r) => {
            t.fault = fault_name(&r);
            tokio::select! {
                () = clock.sleep_until(a.at.saturating_add(r.after)) => {}
                () = app.interrupted(epoch) => return abort(),
            }
            t.status = r.status;
            let e = rejection_error(&meta, &r, &a.figures);
            let mut resp = e.response(meta.style);
            let h = resp.headers_mut();
            base_headers(h, &meta, &a.figures);
            if let Some(w) = r.retry_after {
                put(h, "retry-after", w.div_ceil(SECS));
                put(h, "retry-after-ms", w.div_ceil(MILLIS));
            }
            if let Some(s) = r.should_retry {
                put(h, "x-should-retry", if s { "true" } else { "false" });
            }
            resp
        }
        Answer::Hang => {
            t.fault = "hang";
            app.interrupted(epoch).await;
            abort()
        }
        Answer::Serve(tl) => serve(app, meta, a.figures, tl, a.job, epoch, t).await,
        Answer::Queued(rx) => {
            let tl = tokio::select! {
                tl = rx => tl,
                () = app.interrupted(epoch) => return abort(),
            };
            match tl {
                Ok(tl) => serve(app, meta, a.figures, tl, a.job, epoch, t).await,
                Err(_) => {
                    // The world was reset while this request waited.
                    let e = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Kind::Overloaded,
                        "The mock provider's world was reset while this request waited.",
                    );
                    e.respond(meta.style, t)
                }
            }
        }
    }
}

async fn serve(
    app: Arc<App>,
    meta: Meta,
    figures: PoolFigures,
    tl: Timeline,
    job: Option<JobGuard>,
    epoch: u64,
    mut t: Tracker,
) -> Response {
    t.fault = end_name(&tl);
    let clock = app.engine.clock();
    if tl.end == JobEnd::Reset && (!meta.stream || tl.first_token_at.is_none()) {
        // A reset before any byte of the answer: no answer at all, streamed
        // or not.
        tokio::select! {
            () = clock.sleep_until(tl.end_at) => {}
            () = app.interrupted(epoch) => {}
        }
        t.status = 0;
        return abort();
    }
    t.completion_tokens = tl.output_tokens;
    let kind = match tl.end {
        JobEnd::Complete(kind) => kind,
        _ => BodyKind::Valid,
    };
    if meta.stream {
        t.status = 200;
        let text = Text::new(kind, meta.json, tl.output_tokens);
        let mut headers = HeaderMap::with_capacity(12);
        base_headers(&mut headers, &meta, &figures);
        put(
            &mut headers,
            "content-type",
            "text/event-stream; charset=utf-8",
        );
        put(&mut headers, "cache-control", "no-cache");
        let sse = Sse {
            phase: match meta.style {
                Style::OpenAi => Phase::Tokens,
                Style::Anthropic => Phase::Open,
            },
            app,
            meta,
            tl,
            text,
            sent: 0,
            last: None,
            job,
            t,
            epoch,
        };
        let stream = futures_util::stream::unfold(sse, Sse::step);
        let mut resp = Response::new(Body::from_stream(stream));
        *resp.headers_mut() = headers;
        return resp;
    }

    let wait_until = match tl.end {
        JobEnd::Stalled(last) => last,
        _ => tl.end_at,
    };
    tokio::select! {
        () = clock.sleep_until(wait_until) => {}
        () = app.interrupted(epoch) => return abort(),
    }
    if tl.end == JobEnd::Reset {
        t.status = 0;
        return abort();
    }
    let text = Text::new(kind, meta.json, tl.output_tokens);
    let body = whole_body(&meta, &text, tl.output_tokens);
    t.status = 200;
    let mut resp = match tl.end {
        JobEnd::Complete(_) => {
            t.complete = true;
            if let Some(job) = job {
                job.finish();
            }
            Response::new(Body::from(body))
        }
        JobEnd::Broken | JobEnd::Stalled(_) => {
            // Half the body, then the connection drops (broken) or nothing
            // more comes (stalled).
            let mut cut = body.len() / 2;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            let half = Bytes::from(body[..cut].to_string());
            let stalled = matches!(tl.end, JobEnd::Stalled(_));
            let tail = async move {
                if stalled {
                    app.interrupted(epoch).await;
                }
                drop((job, t));
                // Let the half go out before the connection drops.
                tokio::task::yield_now().await;
                Err::<Bytes, _>(io::Error::other("the answer broke off"))
            };
            let s = futures_util::stream::iter([Ok::<_, io::Error>(half)])
                .chain(futures_util::stream::once(tail));
            Response::new(Body::from_stream(s))
        }
        JobEnd::Reset => return abort(),
    };
    let h = resp.headers_mut();
    base_headers(h, &meta, &figures);
    put(h, "content-type", "application/json");
    resp
}

use futures_util::StreamExt as _;

/// A whole (non-streamed) answer. Written directly, not through a JSON
/// tree: it is on the hot path, and only the model name and the content
/// need escaping.
fn whole_body(meta: &Meta, text: &Text, tokens: u32) -> String {
    let finish = meta.finish_reason(tokens);
    let model = serde_json::Value::from(meta.model.as_str());
    let content = serde_json::Value::from(text.all());
    let id = meta.id();
    let (input, total) = (
        meta.input_tokens,
        u64::from(meta.input_tokens) + u64::from(tokens),
    );
    match meta.style {
        Style::OpenAi => format!(
            "{{\"id\":\"{id}\",\"object\":\"chat.completion\",\"created\":{},\"model\":{model},\
             \"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{content},\"refusal\":null}},\
             \"logprobs\":null,\"finish_reason\":\"{finish}\"}}],\
             \"usage\":{{\"prompt_tokens\":{input},\"completion_tokens\":{tokens},\"total_tokens\":{total}}},\
             \"system_fingerprint\":null}}",
            unix_now()
        ),
        Style::Anthropic => format!(
            "{{\"id\":\"{id}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{model},\
             \"content\":[{{\"type\":\"text\",\"text\":{content}}}],\"stop_reason\":\"{finish}\",\
             \"stop_sequence\":null,\"usage\":{{\"input_tokens\":{input},\"output_tokens\":{tokens}}}}}"
        ),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Anthropic's opening events.
    Open,
    /// Content, chunk by chunk.
    Tokens,
    /// The end the world decided.
    Finish,
    Done,
}

/// A streamed answer in progress.
struct Sse {
    app: Arc<App>,
    meta: Meta,
    tl: Timeline,
    text: Text,
    phase: Phase,
    /// Tokens sent so far.
    sent: u32,
    /// Scenario time of the last chunk.
    last: Option<Nanos>,
    job: Option<JobGuard>,
    t: Tracker,
    /// The world's epoch at admission.
    epoch: u64,
}

type Item = Result<Bytes, io::Error>;

fn broken() -> io::Error {
    io::Error::other("the stream broke off")
}

impl Sse {
    /// When the last token the client will get is sent.
    fn stop_at(&self) -> Nanos {
        match self.tl.end {
            JobEnd::Stalled(last) => last,
            _ => self.tl.end_at,
        }
    }

    async fn step(mut self) -> Option<(Item, Self)> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Open => {
                    self.phase = Phase::Tokens;
                    let start = json!({
                        "type": "message_start",
                        "message": {
                            "id": self.meta.id(), "type": "message", "role": "assistant",
                            "model": self.meta.model, "content": [], "stop_reason": null,
                            "stop_sequence": null,
                            "usage": { "input_tokens": self.meta.input_tokens, "output_tokens": 1 },
                        }
                    });
                    let block = json!({
                        "type": "content_block_start", "index": 0,
                        "content_block": { "type": "text", "text": "" },
                    });
                    let out = format!(
                        "event: message_start\ndata: {start}\n\n\
                         event: content_block_start\ndata: {block}\n\n\
                         event: ping\ndata: {{\"type\": \"ping\"}}\n\n"
                    );
                    return Some((Ok(Bytes::from(out)), self));
                }
                Phase::Tokens => {
                    let stop = self.stop_at();
                    let target = match (self.tl.first_token_at, self.last) {
                        // Reset before the first token.
                        (None, _) => stop,
                        (Some(ft), None) => ft.min(stop),
                        (Some(_), Some(last)) => {
                            let step = u64::try_from(self.app.opts.chunk_interval.as_nanos())
                                .unwrap_or(u64::MAX)
                                .max(1);
                            last.saturating_add(step).min(stop)
                        }
                    };
                    let clock = self.app.engine.clock();
                    tokio::select! {
                        () = clock.sleep_until(target) => {}
                        () = self.app.interrupted(self.epoch) => return Some((Err(broken()), self)),
                    }
                    // Pacing follows elapsed time: a chunk that goes out
                    // late carries every token due by now, so a busy server
                    // sends bigger chunks, not a slower stream.
                    let target = clock.now().clamp(target, stop);
                    self.last = Some(target);
                    if target >= stop {
                        self.phase = Phase::Finish;
                    }
                    if self.tl.first_token_at.is_none() {
                        continue;
                    }
                    let n = if target >= stop {
                        self.tl.output_tokens
                    } else {
                        self.tl.tokens_by(target).min(self.tl.output_tokens)
                    };
                    let first = self.sent == 0;
                    if n <= self.sent && !first {
                        continue;
                    }
                    let piece = self.text.range(self.sent, n);
                    self.sent = n;
                    let out = self.delta(piece, first);
                    return Some((Ok(Bytes::from(out)), self));
                }
                Phase::Finish => {
                    self.phase = Phase::Done;
                    match self.tl.end {
                        JobEnd::Complete(_) => {
                            let out = self.ending();
                            self.t.complete = true;
                            if let Some(job) = self.job.take() {
                                job.finish();
                            }
                            return Some((Ok(Bytes::from(out)), self));
                        }
                        JobEnd::Broken => {
                            // The stream ends with the provider's error
                            // event instead of its proper end (a reset, by
                            // contrast, drops the connection).
                            let out = match self.meta.style {
                                Style::Anthropic => {
                                    let e = json!({
                                        "type": "error",
                                        "error": { "type": "overloaded_error", "message": "Overloaded" },
                                    });
                                    format!("event: error\ndata: {e}\n\n")
                                }
                                Style::OpenAi => {
                                    let e = json!({ "error": {
                                        "message": "The server had an error while processing your request. Sorry about that!",
                                        "type": "server_error", "param": null, "code": null,
                                    }});
                                    format!("data: {e}\n\n")
                                }
                            };
                            return Some((Ok(Bytes::from(out)), self));
                        }
                        JobEnd::Stalled(_) => {
                            self.app.interrupted(self.epoch).await;
                            return Some((Err(broken()), self));
                        }
                        JobEnd::Reset => {
                            // Let the last chunk go out before the
                            // connection drops.
                            tokio::task::yield_now().await;
                            return Some((Err(broken()), self));
                        }
                    }
                }
            }
        }
    }

    fn delta(&self, piece: &str, first: bool) -> String {
        let text = serde_json::Value::from(piece);
        match self.meta.style {
            Style::OpenAi => {
                let delta = if first {
                    json!({ "role": "assistant", "content": text, "refusal": null })
                } else {
                    json!({ "content": text })
                };
                let mut chunk = self.chunk(json!([{
                    "index": 0, "delta": delta, "logprobs": null, "finish_reason": null,
                }]));
                if self.meta.include_usage {
                    chunk["usage"] = serde_json::Value::Null;
                }
                format!("data: {chunk}\n\n")
            }
            Style::Anthropic => {
                let d = json!({
                    "type": "content_block_delta", "index": 0,
                    "delta": { "type": "text_delta", "text": text },
                });
                format!("event: content_block_delta\ndata: {d}\n\n")
            }
        }
    }

    fn chunk(&self, choices: serde_json::Value) -> serde_json::Value {
        json!({
            "id": self.meta.id(),
            "object": "chat.completion.chunk",
            "created": unix_now(),
            "model": self.meta.model,
            "system_fingerprint": null,
            "choices": choices,
        })
    }

    fn ending(&self) -> String {
        let tokens = self.tl.output_tokens;
        let finish = self.meta.finish_reason(tokens);
        match self.meta.style {
            Style::OpenAi => {
                let mut last = self.chunk(json!([{
                    "index": 0, "delta": {}, "logprobs": null, "finish_reason": finish,
                }]));
                let mut out = String::new();
                if self.meta.include_usage {
                    last["usage"] = serde_json::Value::Null;
                    let mut usage = self.chunk(json!([]));
                    usage["usage"] = json!({
                        "prompt_tokens": self.meta.input_tokens,
                        "completion_tokens": tokens,
                        "total_tokens": u64::from(self.meta.input_tokens) + u64::from(tokens),
                    });
                    out.push_str(&format!("data: {last}\n\ndata: {usage}\n\n"));
                } else {
                    out.push_str(&format!("data: {last}\n\n"));
                }
                out.push_str("data: [DONE]\n\n");
                out
            }
            Style::Anthropic => {
                let stop = json!({ "type": "content_block_stop", "index": 0 });
                let delta = json!({
                    "type": "message_delta",
                    "delta": { "stop_reason": finish, "stop_sequence": null },
                    "usage": { "output_tokens": tokens },
                });
                format!(
                    "event: content_block_stop\ndata: {stop}\n\n\
                     event: message_delta\ndata: {delta}\n\n\
                     event: message_stop\ndata: {{\"type\": \"message_stop\"}}\n\n"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openais() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(12 * MILLIS), "12ms");
        assert_eq!(go_duration(12 * MILLIS - 5), "12ms");
        assert_eq!(go_duration(SECS), "1s");
        assert_eq!(go_duration(1500 * MILLIS), "1.5s");
        assert_eq!(go_duration(360 * SECS), "6m0s");
        assert_eq!(go_duration(3723 * SECS), "1h2m3s");
    }
}
