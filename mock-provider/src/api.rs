//! The completion endpoints: `POST /v1/chat/completions` (OpenAI) and
//! `POST /v1/messages` (Anthropic). A request is authenticated, read within
//! a size and time limit, parsed, handed to the world as an attempt, and
//! answered as the world says (see `answer.rs`). Every way a request can be
//! wrong gets the provider's own error JSON and status.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::{json, Value};
use stormglass::units::MILLIS;
use stormglass::world::draws::try_draws;
use stormglass::world::AttemptInput;

use crate::answer::{self, Meta};
use crate::metrics::{redact, Tracker};
use crate::App;

/// The header with which a client names the draws of an attempt:
/// `request=R;try=K[;task=T][;input=N]`.
pub const DRAW_HEADER: &str = "x-stormglass-draw";
/// The header that forces a fault on one request (see [`crate::parse_fault`]).
pub const FAULT_HEADER: &str = "x-stormglass-fault";

/// Draws of clients without a draw key are keyed by this bit, the key and
/// the key's arrival count, so they never meet a simulator request's draws.
const ANONYMOUS: u64 = 1 << 63;

/// The wire format of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    OpenAi,
    Anthropic,
}

impl Style {
    fn endpoint(self) -> &'static str {
        match self {
            Self::OpenAi => "chat_completions",
            Self::Anthropic => "messages",
        }
    }
}

/// What went wrong, in terms both providers have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    InvalidRequest,
    Authentication,
    NotFound,
    TooLarge,
    Unsupported,
    Timeout,
    RateLimitRequests,
    RateLimitTokens,
    InsufficientQuota,
    Overloaded,
    Server,
}

/// An error answer before or instead of service.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: Kind,
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: Kind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    fn param(mut self, p: &'static str) -> Self {
        self.param = Some(p);
        self
    }

    fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Kind::InvalidRequest, message)
    }

    /// The provider's error body.
    pub(crate) fn body(&self, style: Style) -> Value {
        match style {
            Style::OpenAi => {
                let kind = match self.kind {
                    Kind::RateLimitRequests => "requests",
                    Kind::RateLimitTokens => "tokens",
                    Kind::InsufficientQuota => "insufficient_quota",
                    Kind::Overloaded | Kind::Server => "server_error",
                    _ => "invalid_request_error",
                };
                let code = self.code.or(match self.kind {
                    Kind::RateLimitRequests | Kind::RateLimitTokens => Some("rate_limit_exceeded"),
                    Kind::InsufficientQuota => Some("insufficient_quota"),
                    Kind::NotFound => Some("model_not_found"),
                    _ => None,
                });
                json!({ "error": {
                    "message": self.message,
                    "type": kind,
                    "param": self.param,
                    "code": code,
                }})
            }
            Style::Anthropic => {
                let kind = match self.kind {
                    Kind::Authentication => "authentication_error",
                    Kind::NotFound => "not_found_error",
                    Kind::TooLarge => "request_too_large",
                    Kind::RateLimitRequests | Kind::RateLimitTokens => "rate_limit_error",
                    Kind::Overloaded => "overloaded_error",
                    Kind::Server => "api_error",
                    _ => "invalid_request_error",
                };
                json!({ "type": "error", "error": { "type": kind, "message": self.message } })
            }
        }
    }

    /// The error as a response, counted by the tracker.
    pub(crate) fn respond(self, style: Style, mut t: Tracker) -> Response {
        t.status = self.status.as_u16();
        t.fault = "bad_request";
        self.response(style)
    }

    pub(crate) fn response(&self, style: Style) -> Response {
        (self.status, axum::Json(self.body(style))).into_response()
    }
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(State(app): State<Arc<App>>, req: Request) -> Response {
    complete(app, Style::OpenAi, req).await
}

/// `POST /v1/messages`.
pub(crate) async fn messages(State(app): State<Arc<App>>, req: Request) -> Response {
    complete(app, Style::Anthropic, req).await
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn chars(&self) -> usize {
        match self {
            Self::Text(s) => s.chars().count(),
            Self::Parts(p) => p
                .iter()
                .filter_map(|p| p.text.as_ref())
                .map(|t| t.chars().count())
                .sum(),
            Self::Other(_) => 0,
        }
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// The fields of a completion request that matter here (both APIs).
#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Option<Content>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
}

impl CompletionRequest {
    /// Prompt tokens, estimated as providers' rule of thumb has it: four
    /// characters a token, plus a few per message.
    fn prompt_tokens(&self) -> u32 {
        let messages = self.messages.as_deref().unwrap_or_default();
        let chars: usize = messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(Content::chars)
            .sum::<usize>()
            + self.system.as_ref().map_or(0, Content::chars);
        let tokens = chars.div_ceil(4) + 3 * messages.len() + 3;
        u32::try_from(tokens).unwrap_or(u32::MAX)
    }
}

/// The parsed draw header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DrawKey {
    pub request: u64,
    pub try_no: u64,
    pub task: Option<usize>,
    pub input: Option<u32>,
}

pub(crate) fn parse_draw_key(s: &str) -> Result<DrawKey, String> {
    let mut d = DrawKey::default();
    let (mut request, mut try_no) = (None, None);
    for part in s.split([';', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("`{part}` is not `name=value`"));
        };
        let num = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{k}` must be a whole number, not `{v}`"))
        };
        match k.trim() {
            "request" => request = Some(num(v)?),
            "try" => try_no = Some(num(v)?),
            "task" => d.task = Some(usize::try_from(num(v)?).unwrap_or(usize::MAX)),
            "input" => d.input = Some(u32::try_from(num(v)?).unwrap_or(u32::MAX)),
            other => {
                return Err(format!(
                    "unknown field `{other}` (expected request, try, task, input)"
                ))
            }
        }
    }
    d.request = request.ok_or("`request` is missing")?;
    d.try_no = try_no.ok_or("`try` is missing")?;
    Ok(d)
}

fn api_key(style: Style, headers: &HeaderMap) -> Option<&str> {
    let bearer = || {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
    };
    let x_api_key = || {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    match style {
        Style::OpenAi => bearer().or_else(x_api_key),
        Style::Anthropic => x_api_key().or_else(bearer),
    }
    .filter(|k| !k.is_empty())
}

fn unauthorized(style: Style, key: Option<&str>) -> ApiError {
    let message = match (style, key) {
        (Style::OpenAi, None) => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string(),
        (Style::Anthropic, None) => "x-api-key header is required".to_string(),
        (Style::OpenAi, Some(k)) => format!("Incorrect API key provided: {}. The keys of this mock provider are the key names in the scenario.", redact(k)),
        (Style::Anthropic, Some(_)) => "invalid x-api-key".to_string(),
    };
    let e = ApiError::new(StatusCode::UNAUTHORIZED, Kind::Authentication, message);
    if key.is_some() {
        e.code("invalid_api_key")
    } else {
        e
    }
}

async fn read_body(app: &App, body: Body) -> Result<bytes::Bytes, ApiError> {
    let limited = Limited::new(body, app.opts.body_limit);
    match tokio::time::timeout(app.opts.read_timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            Kind::Timeout,
            format!(
                "The request body did not arrive within {} ms.",
                app.opts.read_timeout.as_millis()
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Kind::TooLarge,
            format!(
                "Request too large: the body is over this server's limit of {} bytes.",
                app.opts.body_limit
            ),
        )),
        Ok(Err(_)) => Err(ApiError::invalid("The request body could not be read.")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::Unsupported,
            format!("Invalid Content-Type header ({ct}), expected application/json."),
        ))
    }
}

/// A positive `max_tokens`-like field.
fn positive(v: Option<i64>, name: &'static str) -> Result<Option<u32>, ApiError> {
    match v {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
        Some(n) => Err(ApiError::invalid(format!(
            "Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {n} instead."
        ))
        .param(name)),
    }
}

async fn complete(app: Arc<App>, style: Style, req: Request) -> Response {
    let mut t = Tracker::new(
        Arc::clone(&app.metrics),
        app.logger.clone(),
        style.endpoint(),
    );
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;

    t.client_retry = headers
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());

    // Who is asking.
    let token = api_key(style, headers);
    let Some(key) = token.and_then(|k| app.keys.get(k).copied()) else {
        return unauthorized(style, token).respond(style, t);
    };
    t.key = Some(key);

    // What they ask.
    if let Err(e) = check_content_type(headers) {
        return e.respond(style, t);
    }
    let bytes = match read_body(&app, body).await {
        Ok(b) => b,
        Err(e) => return e.respond(style, t),
    };
    let body: CompletionRequest = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            let message = match style {
                Style::OpenAi => format!("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON: {e}.)"),
                Style::Anthropic => format!("The request body is not valid JSON: {e}"),
            };
            return ApiError::invalid(message).respond(style, t);
        }
    };
    let Some(model_name) = body.model.as_deref() else {
        let message = match style {
            Style::OpenAi => "you must provide a model parameter",
            Style::Anthropic => "model: Field required",
        };
        return ApiError::invalid(message).param("model").respond(style, t);
    };
    let Some(&model) = app.models.get(model_name) else {
        let message = match style {
            Style::OpenAi => {
                format!("The model `{model_name}` does not exist or you do not have access to it.")
            }
            Style::Anthropic => format!("model: {model_name}"),
        };
        let e = ApiError::new(StatusCode::NOT_FOUND, Kind::NotFound, message).param("model");
        return e.respond(style, t);
    };
    t.model = Some(model);
    let world = &app.sc.world;
    if world.keys[key].provider != world.models[model].provider {
        // Each provider knows only its own keys.
        return unauthorized(style, token).respond(style, t);
    }
    let Some(messages) = body.messages.as_ref() else {
        let message = match style {
            Style::OpenAi => "Missing required parameter: 'messages'.",
            Style::Anthropic => "messages: Field required",
        };
        let e = ApiError::invalid(message).param("messages");
        return e.code("missing_required_parameter").respond(style, t);
    };
    if messages.is_empty() {
        let message = match style {
            Style::OpenAi => "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            Style::Anthropic => "messages: at least one message is required",
        };
        return ApiError::invalid(message)
            .param("messages")
            .respond(style, t);
    }
    let requested = match style {
        Style::OpenAi => positive(body.max_completion_tokens, "max_completion_tokens")
            .and_then(|a| Ok(a.or(positive(body.max_tokens, "max_tokens")?))),
        Style::Anthropic => match positive(body.max_tokens, "max_tokens") {
            Ok(None) => Err(ApiError::invalid("max_tokens: Field required").param("max_tokens")),
            other => other,
        },
    };
    let requested = match requested {
        Ok(r) => r,
        Err(e) => return e.respond(style, t),
    };

    // Whose luck: the draw key, or the key's arrival count.
    let draw = match headers
        .get(DRAW_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{1}"))
    {
        None => None,
        Some(v) => match parse_draw_key(v) {
            Ok(d) if d.task.is_some_and(|t| t >= app.sc.traffic.tasks.len()) => {
                let e = ApiError::invalid(format!(
                    "{DRAW_HEADER}: task {} does not exist (the scenario has {} tasks)",
                    d.task.unwrap_or(0),
                    app.sc.traffic.tasks.len()
                ));
                return e.respond(style, t);
            }
            Ok(d) => Some(d),
            Err(m) => {
                let e = ApiError::invalid(format!(
                    "{DRAW_HEADER}: {m}; expected `request=R;try=K[;task=T][;input=N]`"
                ));
                return e.respond(style, t);
            }
        },
    };
    let force = match headers.get(FAULT_HEADER) {
        None => None,
        Some(v) => match crate::parse_fault(v.to_str().unwrap_or("")) {
            Ok(f) => Some(f),
            Err(m) => return ApiError::invalid(format!("{FAULT_HEADER}: {m}")).respond(style, t),
        },
    };
    let task = &app.sc.traffic.tasks[draw.and_then(|d| d.task).unwrap_or(0)];
    let max_tokens = requested.unwrap_or(task.max_tokens);
    let input_tokens = draw
        .and_then(|d| d.input)
        .unwrap_or_else(|| body.prompt_tokens());
    t.draw = draw.map(|d| (d.request, d.try_no));
    t.prompt_tokens = input_tokens;
    let stream = body.stream.unwrap_or(false);
    t.stream = stream;
    let json = task.json && draw.is_some()
        || body
            .response_format
            .as_ref()
            .and_then(|f| f.kind.as_deref())
            .is_some_and(|k| k.starts_with("json"));

    let seed = app.sc.seed;
    let admitted = app.engine.admit(key, draw.is_none(), force, |n| {
        let (request, try_no) = match draw {
            Some(d) => (d.request, d.try_no),
            None => (ANONYMOUS | (key as u64) << 40 | n, 0),
        };
        let draws = try_draws(seed, request, model as u64, try_no);
        AttemptInput {
            model,
            key,
            input_tokens,
            max_tokens,
            output_tokens: task.output_tokens(draws.output_z).min(max_tokens),
            draws: draws.attempt,
            tag: 0,
        }
    });
    t.at_ms = admitted.at / MILLIS;
    let meta = Meta {
        style,
        id: app.next_id(),
        model: model_name.to_string(),
        max_tokens,
        input_tokens,
        json,
        stream,
        include_usage: body
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
    };
    answer::respond(app, meta, admitted, t).await
}

/// Adds a header (a value that is not a valid header value is left out:
/// every value here is ours, so that does not happen).
pub(crate) fn put<V: TryInto<HeaderValue>>(headers: &mut HeaderMap, name: &'static str, value: V) {
    if let Ok(v) = value.try_into() {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_keys_parse_and_explain_themselves() {
        assert_eq!(
            parse_draw_key("request=12;try=1;task=0;input=830"),
            Ok(DrawKey {
                request: 12,
                try_no: 1,
                task: Some(0),
                input: Some(830)
            })
        );
        assert_eq!(
            parse_draw_key("request=3, try=0").map(|d| (d.request, d.try_no)),
            Ok((3, 0))
        );
        assert!(parse_draw_key("try=1").unwrap_err().contains("request"));
        assert!(parse_draw_key("request=x;try=1")
            .unwrap_err()
            .contains("whole number"));
        assert!(parse_draw_key("request=1;try=1;seed=4")
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn errors_have_each_providers_shape() {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Kind::RateLimitTokens,
            "slow down",
        );
        let oa = e.body(Style::OpenAi);
        assert_eq!(oa["error"]["type"], "tokens");
        assert_eq!(oa["error"]["code"], "rate_limit_exceeded");
        let an = e.body(Style::Anthropic);
        assert_eq!(an["type"], "error");
        assert_eq!(an["error"]["type"], "rate_limit_error");
    }
}
