//! What crosses the wire between a provider and a client: the body's shape
//! and the rate-limit figures a provider sends. Shared by `world/` (which
//! produces them) and `policy/` (which sees them), so neither imports the other.

use serde::{Deserialize, Serialize};

/// The request field that carries the output-token limit. OpenAI's
/// reasoning models (o1, o3, gpt-5, ...) refuse `max_tokens` and want
/// `max_completion_tokens`; other chat models and OpenAI-compatible servers
/// take `max_tokens`, and Anthropic's API knows only `max_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens` (the default).
    #[default]
    MaxTokens,
    /// `max_completion_tokens` (OpenAI reasoning models).
    MaxCompletionTokens,
}

/// The shape of a successful response body, as a client's parser finds it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// Well-formed: JSON with the fields asked for.
    #[default]
    Valid,
    /// JSON wrapped in a markdown code fence.
    Fenced,
    /// Cut short.
    Truncated,
    /// JSON without the required fields.
    MissingFields,
    /// Plain text where JSON was asked for.
    PlainText,
}

impl BodyKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 5] = [
        Self::Valid,
        Self::Fenced,
        Self::Truncated,
        Self::MissingFields,
        Self::PlainText,
    ];

    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Fenced => "fenced",
            Self::Truncated => "truncated",
            Self::MissingFields => "missing_fields",
            Self::PlainText => "plain_text",
        }
    }
}

/// The kind of an HTTP error body, as the provider's `error.type`/`code` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// 429 for a request or token limit.
    RateLimit,
    /// 429 `insufficient_quota`: the account is out of credit (permanent).
    InsufficientQuota,
    /// 503/529: the provider is overloaded or down.
    Overloaded,
    /// 500 and other server errors.
    Server,
    /// 4xx other than 429: the request itself is wrong.
    InvalidRequest,
    /// 401/403: the key is not accepted.
    Authentication,
}

/// The rate-limit figures a provider sends with every response (OpenAI's
/// `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`). `None` where the
/// provider sent no such header (no pool, or not that kind of limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    /// Requests left in the current window.
    pub remaining_requests: Option<u32>,
    /// Tokens left in the current window.
    pub remaining_tokens: Option<u32>,
    /// Nanoseconds until the request limit is whole again.
    pub reset_requests: Option<u64>,
    /// Nanoseconds until the token limit is whole again.
    pub reset_tokens: Option<u64>,
    /// The request limit per minute (`x-ratelimit-limit-requests`): with it
    /// a client knows the refill rate, so it can pace before the 429.
    #[serde(default)]
    pub limit_requests: Option<u32>,
    /// The token limit per minute of the bucket `remaining_tokens` is from.
    #[serde(default)]
    pub limit_tokens: Option<u32>,
}
