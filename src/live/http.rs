//! One attempt over real HTTP: the request in the provider's format, the
//! streamed answer read event by event, and what a client sees of it turned
//! into the core's inputs (first token, chunks, the outcome with the
//! rate-limit figures the provider sent).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context as _};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::header::HeaderMap;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::conn::Bounded;
use crate::policy::Outcome;
use crate::units::{Nanos, MICROS, MILLIS, SECS};
use crate::wire::{BodyKind, ErrorType, MaxTokensField, RateLimits};
use crate::world::ApiStyle;

/// The largest SSE event the driver buffers; a stream without an event
/// boundary in this many bytes is not the provider's.
const MAX_EVENT: usize = 1 << 20;

/// The pooled keep-alive HTTP/1.1 client, for `http://` and `https://`.
pub type Http = HyperClient<HttpsConnector<Bounded>, Full<Bytes>>;

/// A client that keeps at most `max_conns` connections open (idle ones
/// included, at most `max_idle` of them). With `tls` it trusts the
/// platform's root certificates plus those in `ca_cert` (a PEM file);
/// without, it speaks plain `http://` only and loads no roots.
pub fn client(
    max_conns: usize,
    max_idle: usize,
    tls: bool,
    ca_cert: Option<&Path>,
) -> anyhow::Result<Http> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // The TLS layer handles the scheme; the TCP connector sees both.
    connector.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(tls, ca_cert)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(Bounded::new(connector, max_conns));
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle.min(max_conns))
        .build(https))
}

/// rustls on the `ring` provider, trusting the platform's roots (when `tls`)
/// and every certificate of the PEM file `ca_cert`.
fn tls_config(tls: bool, ca_cert: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    if tls {
        // Certificates the platform store holds but rustls cannot use are
        // skipped, as browsers do; an empty store shows as an untrusted
        // certificate at the first connection (see `tls_error`).
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(path) = ca_cert {
        let shown = path.display();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("--ca-cert {shown}: cannot read it"))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("--ca-cert {shown}: not a PEM certificate file"))?;
        if certs.is_empty() {
            bail!("--ca-cert {shown}: no certificate in it (expected PEM blocks `-----BEGIN CERTIFICATE-----`)");
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("--ca-cert {shown}: not a usable CA certificate"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls has no default protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The TLS failure behind a request's error, if that is what it was, said
/// the way a user can act on it.
pub fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(match t {
                rustls::Error::InvalidCertificate(c) => format!(
                    "the server's certificate is not trusted ({c:?}): if it is signed by your own CA, pass --ca-cert PEM"
                ),
                other => format!("the TLS handshake failed: {other}"),
            });
        }
        // io::Error hides its payload from `source()` (it gives the
        // payload's source): step into it instead.
        cur = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|i| i as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// What a live attempt has received so far, for the answer to a cancel.
#[derive(Debug, Default)]
pub struct Progress {
    /// The response head came (the provider had started: the prompt bills).
    pub started: AtomicBool,
    /// Output tokens received.
    pub tokens: AtomicU32,
}

/// Everything needed to send one attempt.
#[derive(Clone, Debug)]
pub struct AttemptSpec {
    /// `http(s)://host:port`, no trailing slash.
    pub base: String,
    /// The provider's API.
    pub style: ApiStyle,
    /// Model name.
    pub model: String,
    /// API key (a mock provider's key name, or a real key from the environment).
    pub key: String,
    /// Prompt tokens to send (the prompt is sized to this).
    pub input_tokens: u32,
    /// The output-token limit.
    pub max_tokens: u32,
    /// The field it goes in (`max_tokens`, or `max_completion_tokens` for
    /// OpenAI's reasoning models).
    pub max_tokens_field: MaxTokensField,
    /// Whether the answer must be JSON.
    pub json: bool,
    /// `x-stormglass-draw`, when the target is our mock provider.
    pub draw: Option<String>,
    /// Stream the answer (when the strategy watches first tokens or chunk
    /// gaps, or hedges); otherwise ask for the whole answer at once.
    pub stream: bool,
}

/// Something the driver feeds to the core about an attempt.
#[derive(Debug)]
pub enum Signal {
    /// A connection came free for an attempt that had to wait for one
    /// (for the driver's figures; not an input of the core).
    Connected,
    /// The first output token came.
    FirstToken,
    /// Another chunk came.
    Chunk,
    /// The attempt ended.
    Done(Outcome, RateLimits),
}

/// Prompt text of about `tokens` tokens (four characters a token).
fn prompt(tokens: u32, json: bool) -> String {
    let mut p = String::with_capacity(tokens as usize * 4 + 64);
    if json {
        p.push_str("Reply with JSON only: {\"answer\": \"...\"}. ");
    }
    while p.len() < tokens as usize * 4 {
        p.push_str("tell me more ");
    }
    p
}

/// The path and JSON body of an attempt, in its provider's format.
fn body(spec: &AttemptSpec) -> (&'static str, Value) {
    let text = prompt(spec.input_tokens, spec.json);
    match spec.style {
        ApiStyle::Openai => {
            let limit = match spec.max_tokens_field {
                MaxTokensField::MaxTokens => "max_tokens",
                MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            };
            let mut b = json!({
                "model": spec.model,
                "messages": [{ "role": "user", "content": text }],
            });
            b[limit] = json!(spec.max_tokens);
            if spec.stream {
                b["stream"] = json!(true);
                b["stream_options"] = json!({ "include_usage": true });
            }
            if spec.json {
                b["response_format"] = json!({ "type": "json_object" });
            }
            ("/v1/chat/completions", b)
        }
        ApiStyle::Anthropic => (
            "/v1/messages",
            json!({
                "model": spec.model,
                "messages": [{ "role": "user", "content": text }],
                "max_tokens": spec.max_tokens,
                "stream": spec.stream,
            }),
        ),
    }
}

fn request(spec: &AttemptSpec) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
    let (path, body) = body(spec);
    let mut req = hyper::Request::post(format!("{}{path}", spec.base))
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("stormglass/", env!("CARGO_PKG_VERSION")),
        );
    req = match spec.style {
        ApiStyle::Openai => req.header("authorization", format!("Bearer {}", spec.key)),
        ApiStyle::Anthropic => req
            .header("x-api-key", &spec.key)
            .header("anthropic-version", "2023-06-01"),
    };
    if let Some(d) = &spec.draw {
        req = req.header("x-stormglass-draw", d);
    }
    Ok(req.body(Full::new(Bytes::from(body.to_string())))?)
}

/// Sends one attempt and reports what happens on `tx`, ending with
/// `Signal::Done` (unless the driver drops the task first, on a cancel).
pub async fn attempt(
    http: Http,
    spec: AttemptSpec,
    progress: Arc<Progress>,
    mut tx: impl FnMut(Signal),
) {
    let input = spec.input_tokens;
    let req = match request(&spec) {
        Ok(r) => r,
        Err(_) => {
            tx(Signal::Done(reset(0, 0), RateLimits::default()));
            return;
        }
    };
    let resp = match http.request(req).await {
        Ok(r) => r,
        // No answer at all: to a client, a reset connection.
        Err(_) => {
            tx(Signal::Done(reset(0, 0), RateLimits::default()));
            return;
        }
    };
    progress.started.store(true, Ordering::Relaxed);
    let status = resp.status().as_u16();
    let limits = rate_limits(spec.style, resp.headers());
    if status >= 400 {
        let retry_after = retry_after(resp.headers());
        let should_retry = resp
            .headers()
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        // The error body, bounded: only its kind matters.
        let body = http_body_util::Limited::new(resp.into_body(), 64 << 10)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let error = error_type(status, &body);
        tx(Signal::Done(
            Outcome::HttpError {
                status,
                error,
                retry_after,
                should_retry,
            },
            limits,
        ));
        return;
    }

    if !spec.stream {
        tx(Signal::Done(whole(spec, resp.into_body()).await, limits));
        return;
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut text = String::new();
    let mut usage: Option<u32> = None;
    let mut first = true;
    let mut finished = false;
    let mut broken = false;
    // The connection dropped mid-stream: a reset (a broken stream ends
    // with the provider's error event, or simply stops short).
    let mut dropped = false;
    let received = |text: &str, progress: &Progress| {
        let t = u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX);
        progress.tokens.store(t, Ordering::Relaxed);
    };
    'read: loop {
        let frame = match body.frame().await {
            None => break,
            Some(Err(_)) => {
                dropped = true;
                break;
            }
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        if buf.len() > MAX_EVENT {
            // No event boundary in a megabyte: not the provider's stream.
            broken = true;
            break;
        }
        while let Some(end) = find_event_end(&buf) {
            let event = buf.split_to(end);
            let event = String::from_utf8_lossy(&event);
            let mut name = None;
            let mut payload = String::new();
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    payload.push_str(d.trim_start());
                }
            }
            if payload.is_empty() {
                continue;
            }
            if payload == "[DONE]" {
                finished = true;
                break 'read;
            }
            let Ok(v) = serde_json::from_str::<Value>(&payload) else {
                continue;
            };
            let kind = name.as_deref().or_else(|| v["type"].as_str()).unwrap_or("");
            let delta = match spec.style {
                ApiStyle::Openai => {
                    if let Some(u) = v["usage"]["completion_tokens"].as_u64() {
                        usage = u32::try_from(u).ok();
                    }
                    v["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_string)
                }
                ApiStyle::Anthropic => match kind {
                    "content_block_delta" => v["delta"]["text"].as_str().map(str::to_string),
                    "message_delta" => {
                        if let Some(u) = v["usage"]["output_tokens"].as_u64() {
                            usage = u32::try_from(u).ok();
                        }
                        None
                    }
                    "message_stop" => {
                        finished = true;
                        break 'read;
                    }
                    "error" => {
                        broken = true;
                        break 'read;
                    }
                    _ => None,
                },
            };
            if let Some(d) = delta {
                if !d.is_empty() {
                    text.push_str(&d);
                    received(&text, &progress);
                    tx(if first {
                        Signal::FirstToken
                    } else {
                        Signal::Chunk
                    });
                    first = false;
                }
            }
        }
    }
    let so_far = u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX);
    let outcome = if finished && !broken {
        Outcome::Success {
            input_tokens: input,
            output_tokens: usage.unwrap_or(so_far),
            body: body_kind(spec.json, &text),
        }
    } else if dropped && !broken {
        reset(input, so_far)
    } else {
        Outcome::BrokenStream {
            input_tokens: input,
            output_tokens: so_far,
        }
    };
    tx(Signal::Done(outcome, limits));
}

/// A whole (non-streamed) answer: its content and usage, or what a client
/// makes of a body that is not the provider's JSON.
async fn whole(spec: AttemptSpec, body: hyper::body::Incoming) -> Outcome {
    let input_tokens = spec.input_tokens;
    let bytes = match http_body_util::Limited::new(body, 16 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        // The body broke off.
        Err(_) => {
            return Outcome::BrokenStream {
                input_tokens,
                output_tokens: 0,
            }
        }
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let (text, usage) = match spec.style {
        ApiStyle::Openai => (
            v["choices"][0]["message"]["content"].as_str(),
            v["usage"]["completion_tokens"].as_u64(),
        ),
        ApiStyle::Anthropic => (
            v["content"][0]["text"].as_str(),
            v["usage"]["output_tokens"].as_u64(),
        ),
    };
    match text {
        Some(text) => Outcome::Success {
            input_tokens,
            output_tokens: usage
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or_else(|| u32::try_from(text.len().div_ceil(4)).unwrap_or(u32::MAX)),
            body: body_kind(spec.json, text),
        },
        // A 2xx that is not the provider's answer (HTML from a proxy, say):
        // no parser can use it, whatever the task, so it is the core's one
        // always-refused kind and the request's failure reads `malformed`
        // (plain text would pass as an answer to a task that needs no JSON).
        None => Outcome::Success {
            input_tokens,
            output_tokens: 0,
            body: BodyKind::Truncated,
        },
    }
}

fn reset(input_tokens: u32, output_tokens: u32) -> Outcome {
    Outcome::Reset {
        input_tokens,
        output_tokens,
    }
}

/// The end of the first complete SSE event in `buf` (after its blank line).
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a client's parser makes of an answer: for a JSON task, whether it
/// is the asked-for object, fenced in markdown, cut short, without its
/// `answer` field, or not JSON at all.
pub fn body_kind(json: bool, text: &str) -> BodyKind {
    if !json {
        return BodyKind::Valid;
    }
    let t = text.trim();
    if t.starts_with("```") {
        return BodyKind::Fenced;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Object(o)) if o.contains_key("answer") => BodyKind::Valid,
        Ok(Value::Object(_)) => BodyKind::MissingFields,
        Ok(_) => BodyKind::PlainText,
        Err(_) if t.starts_with('{') || t.starts_with('[') => BodyKind::Truncated,
        Err(_) => BodyKind::PlainText,
    }
}

/// The error body's kind, by status and the provider's `type`/`code`.
///
/// Out of credit, OpenAI answers 429 `insufficient_quota`; Anthropic
/// answers 400 `invalid_request_error` "Your credit balance is too low to
/// access the Anthropic API", or "You have reached your specified API
/// usage limits" at a spend limit (and documents 402 `billing_error`).
/// All of them are the core's fatal `insufficient_quota`, not a rate limit
/// to wait out nor a request to fix.
pub fn error_type(status: u16, body: &[u8]) -> ErrorType {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = &v["error"];
    let kind = err["type"].as_str().unwrap_or("");
    let code = err["code"].as_str().unwrap_or("");
    let message = err["message"].as_str().unwrap_or("");
    let out_of_credit = status == 400
        && kind == "invalid_request_error"
        && (message.contains("credit balance is too low")
            || message.contains("reached your specified") && message.contains("API usage limits"));
    if kind == "insufficient_quota"
        || code == "insufficient_quota"
        || kind == "billing_error"
        || out_of_credit
    {
        return ErrorType::InsufficientQuota;
    }
    match status {
        429 => ErrorType::RateLimit,
        503 | 529 => ErrorType::Overloaded,
        401 | 403 => ErrorType::Authentication,
        400..=499 => ErrorType::InvalidRequest,
        _ if kind == "overloaded_error" => ErrorType::Overloaded,
        _ => ErrorType::Server,
    }
}

/// `retry-after-ms`, else `retry-after` (seconds, or an HTTP date).
pub fn retry_after(h: &HeaderMap) -> Option<Nanos> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some((ms * MILLIS as f64) as Nanos);
        }
    }
    let v = get("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then_some((s * SECS as f64) as Nanos);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    )
}

/// A Go-style duration ("1s", "6m0s", "12ms", "1.5s", "1h2m3.5s").
pub fn go_duration(s: &str) -> Option<Nanos> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let (unit, scale) = [
            ("ns", 1.0),
            ("us", MICROS as f64),
            ("µs", MICROS as f64),
            ("ms", MILLIS as f64),
            ("h", 3600.0 * SECS as f64),
            ("m", 60.0 * SECS as f64),
            ("s", SECS as f64),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += value * scale;
    }
    Some(total as Nanos)
}

/// The rate-limit figures of a response, in the provider's headers.
pub fn rate_limits(style: ApiStyle, h: &HeaderMap) -> RateLimits {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let num = |n: &str| get(n).and_then(|v| v.parse::<u32>().ok());
    match style {
        ApiStyle::Openai => RateLimits {
            remaining_requests: num("x-ratelimit-remaining-requests"),
            remaining_tokens: num("x-ratelimit-remaining-tokens"),
            reset_requests: get("x-ratelimit-reset-requests").and_then(go_duration),
            reset_tokens: get("x-ratelimit-reset-tokens").and_then(go_duration),
            limit_requests: num("x-ratelimit-limit-requests"),
            limit_tokens: num("x-ratelimit-limit-tokens"),
        },
        ApiStyle::Anthropic => {
            let reset = |n: &str| {
                let at = humantime::parse_rfc3339_weak(get(n)?).ok()?;
                Some(
                    at.duration_since(SystemTime::now())
                        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                )
            };
            RateLimits {
                remaining_requests: num("anthropic-ratelimit-requests-remaining"),
                remaining_tokens: num("anthropic-ratelimit-tokens-remaining")
                    .or_else(|| num("anthropic-ratelimit-output-tokens-remaining")),
                reset_requests: reset("anthropic-ratelimit-requests-reset"),
                reset_tokens: reset("anthropic-ratelimit-tokens-reset")
                    .or_else(|| reset("anthropic-ratelimit-output-tokens-reset")),
                limit_requests: num("anthropic-ratelimit-requests-limit"),
                limit_tokens: num("anthropic-ratelimit-tokens-limit")
                    .or_else(|| num("anthropic-ratelimit-output-tokens-limit")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_figures_are_read_with_the_remaining_ones() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-ratelimit-limit-requests", "600"),
            ("x-ratelimit-remaining-requests", "12"),
            ("x-ratelimit-reset-requests", "1.5s"),
            ("x-ratelimit-limit-tokens", "150000"),
            ("x-ratelimit-remaining-tokens", "9000"),
        ] {
            h.insert(k, v.parse().unwrap());
        }
        let l = rate_limits(ApiStyle::Openai, &h);
        assert_eq!(
            (l.limit_requests, l.remaining_requests),
            (Some(600), Some(12))
        );
        assert_eq!(l.reset_requests, Some(1500 * MILLIS));
        assert_eq!(
            (l.limit_tokens, l.remaining_tokens),
            (Some(150_000), Some(9000))
        );
        let mut h = HeaderMap::new();
        h.insert("anthropic-ratelimit-requests-limit", "50".parse().unwrap());
        h.insert(
            "anthropic-ratelimit-output-tokens-limit",
            "8000".parse().unwrap(),
        );
        let l = rate_limits(ApiStyle::Anthropic, &h);
        assert_eq!((l.limit_requests, l.limit_tokens), (Some(50), Some(8000)));
    }

    #[test]
    fn the_token_limit_goes_in_the_models_field() {
        let mut spec = AttemptSpec {
            base: "http://127.0.0.1:1".into(),
            style: ApiStyle::Openai,
            model: "o3-mini".into(),
            key: "k".into(),
            input_tokens: 10,
            max_tokens: 321,
            max_tokens_field: MaxTokensField::MaxCompletionTokens,
            json: false,
            draw: None,
            stream: false,
        };
        let (path, b) = body(&spec);
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(b["max_completion_tokens"], 321);
        assert!(b.get("max_tokens").is_none(), "{b}");
        spec.max_tokens_field = MaxTokensField::MaxTokens;
        let (_, b) = body(&spec);
        assert_eq!(b["max_tokens"], 321);
        assert!(b.get("max_completion_tokens").is_none(), "{b}");
        spec.style = ApiStyle::Anthropic;
        let (path, b) = body(&spec);
        assert_eq!(path, "/v1/messages");
        assert_eq!(b["max_tokens"], 321);
    }

    #[test]
    fn a_certificate_error_is_found_inside_nested_io_errors() {
        // As hyper-util reports a failed handshake: io::Error(Other) around
        // io::Error(InvalidData) around rustls's error.
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        let why = tls_error(&outer).expect("found");
        assert!(
            why.contains("not trusted") && why.contains("--ca-cert"),
            "{why}"
        );
        assert!(tls_error(&std::io::Error::other("refused")).is_none());
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("1s"), Some(SECS));
        assert_eq!(go_duration("6m0s"), Some(360 * SECS));
        assert_eq!(go_duration("12ms"), Some(12 * MILLIS));
        assert_eq!(go_duration("1.5s"), Some(1500 * MILLIS));
        assert_eq!(go_duration("1h2m3s"), Some(3723 * SECS));
        assert_eq!(go_duration(""), None);
        assert_eq!(go_duration("5 apples"), None);
    }

    #[test]
    fn bodies_are_classified_as_a_parser_would() {
        assert_eq!(body_kind(false, "anything"), BodyKind::Valid);
        assert_eq!(body_kind(true, "{\"answer\": \"x\"}"), BodyKind::Valid);
        assert_eq!(body_kind(true, "```json\n{}\n```"), BodyKind::Fenced);
        assert_eq!(body_kind(true, "{\"answer\": \"x"), BodyKind::Truncated);
        assert_eq!(
            body_kind(true, "{\"text\": \"x\"}"),
            BodyKind::MissingFields
        );
        assert_eq!(body_kind(true, "lorem ipsum"), BodyKind::PlainText);
    }

    #[test]
    fn errors_are_read_from_status_and_body() {
        let quota = br#"{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(error_type(429, quota), ErrorType::InsufficientQuota);
        let credit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#;
        assert_eq!(error_type(400, credit), ErrorType::InsufficientQuota);
        let limit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC."}}"#;
        assert_eq!(error_type(400, limit), ErrorType::InsufficientQuota);
        let billing =
            br#"{"type":"error","error":{"type":"billing_error","message":"Billing error"}}"#;
        assert_eq!(error_type(402, billing), ErrorType::InsufficientQuota);
        let bad = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(error_type(400, bad), ErrorType::InvalidRequest);
        assert_eq!(error_type(429, b"{}"), ErrorType::RateLimit);
        assert_eq!(error_type(529, b""), ErrorType::Overloaded);
        assert_eq!(error_type(500, b"not json"), ErrorType::Server);
        assert_eq!(error_type(401, b""), ErrorType::Authentication);
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(2 * SECS));
        h.insert("retry-after-ms", "1500".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(1500 * MILLIS));
    }
}
