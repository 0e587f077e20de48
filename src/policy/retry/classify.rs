//! Error classification: what each kind of failure leads to.
//!
//! Not every failure is worth a retry. A 429 or a 503 says "later"; a
//! timeout or a reset may be luck; a 500 from a model that keeps failing is
//! better answered by another model; a 400 or a bad key will fail the same
//! way every time, and `insufficient_quota` (a 429 that means the account is
//! out of credit) never gets better by waiting. The defaults below follow the
//! official SDKs' retry rules (they retry 408, 409, 429 and 5xx, timeouts and
//! connection errors; here 408 counts as a timeout, while 409 is a
//! `conflict` that fails by default, as other 4xx do, unless the provider
//! sends `x-should-retry: true` or the strategy says `conflict = "retry"`,
//! as the SDK presets do) and LiteLLM's
//! router, which sends 500s and bad output down the fallback chain rather
//! than hammering the same deployment.

use serde::{Deserialize, Serialize};

use crate::wire::ErrorType;

use super::super::contract::Outcome;

/// What a failure leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Retry the same model after a backoff (while retries remain, then fall back).
    Retry,
    /// Go to the next model of the fallback chain at once.
    Fallback,
    /// Give up: the request fails.
    Fail,
}

/// The kinds of failed attempt a strategy can treat differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureClass {
    /// 429 rate limit.
    RateLimited,
    /// 429 `insufficient_quota`.
    InsufficientQuota,
    /// 503 / 529.
    Overloaded,
    /// 500 and other 5xx.
    ServerError,
    /// 400, 404, other 4xx.
    ClientError,
    /// 401 / 403.
    AuthError,
    /// Any of the attempt's timeouts.
    Timeout,
    /// Connection reset.
    Reset,
    /// Stream broken off.
    BrokenStream,
    /// A body that is not what was asked for.
    Malformed,
    /// 409 (a lock timeout or a conflict), which the official SDKs retry.
    Conflict,
}

impl FailureClass {
    /// Every class, in table order.
    pub const ALL: [Self; 11] = [
        Self::RateLimited,
        Self::InsufficientQuota,
        Self::Overloaded,
        Self::ServerError,
        Self::ClientError,
        Self::AuthError,
        Self::Timeout,
        Self::Reset,
        Self::BrokenStream,
        Self::Malformed,
        Self::Conflict,
    ];

    /// Name in scenario files (`[strategy.on]` keys).
    pub fn name(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::InsufficientQuota => "insufficient_quota",
            Self::Overloaded => "overloaded",
            Self::ServerError => "server_error",
            Self::ClientError => "client_error",
            Self::AuthError => "auth_error",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::BrokenStream => "broken_stream",
            Self::Malformed => "malformed",
            Self::Conflict => "conflict",
        }
    }

    /// The class for a name, if any.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }

    /// The default disposition.
    pub fn default_disposition(self) -> Disposition {
        match self {
            Self::RateLimited
            | Self::Overloaded
            | Self::Timeout
            | Self::Reset
            | Self::BrokenStream => Disposition::Retry,
            Self::ServerError | Self::Malformed => Disposition::Fallback,
            Self::ClientError | Self::AuthError | Self::InsufficientQuota | Self::Conflict => {
                Disposition::Fail
            }
        }
    }

    /// The class of an HTTP error answer.
    pub fn of_http(status: u16, error: ErrorType) -> Self {
        match (status, error) {
            (_, ErrorType::InsufficientQuota) => Self::InsufficientQuota,
            (429, _) | (_, ErrorType::RateLimit) => Self::RateLimited,
            (503 | 529, _) | (_, ErrorType::Overloaded) => Self::Overloaded,
            (401 | 403, _) | (_, ErrorType::Authentication) => Self::AuthError,
            (408, _) => Self::Timeout,
            (409, _) => Self::Conflict,
            (400..=499, _) => Self::ClientError,
            _ => Self::ServerError,
        }
    }

    /// The class of a failed outcome; `None` for a success or a cancellation.
    pub fn of(o: &Outcome) -> Option<Self> {
        match *o {
            Outcome::HttpError { status, error, .. } => Some(Self::of_http(status, error)),
            Outcome::Reset { .. } => Some(Self::Reset),
            Outcome::BrokenStream { .. } => Some(Self::BrokenStream),
            Outcome::Success { .. } | Outcome::Cancelled { .. } => None,
        }
    }
}

/// A table from failure class to disposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classifier {
    table: [Disposition; 11],
}

impl Default for Classifier {
    fn default() -> Self {
        let mut table = [Disposition::Fail; 11];
        for (i, c) in FailureClass::ALL.into_iter().enumerate() {
            table[i] = c.default_disposition();
        }
        Self { table }
    }
}

impl Classifier {
    /// Overrides one class.
    pub fn set(&mut self, class: FailureClass, d: Disposition) {
        self.table[class as usize] = d;
    }

    /// The disposition of a class.
    pub fn get(&self, class: FailureClass) -> Disposition {
        self.table[class as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Classifier::default();
        let http = |s, e| c.get(FailureClass::of_http(s, e));
        assert_eq!(http(429, ErrorType::RateLimit), Disposition::Retry);
        assert_eq!(http(503, ErrorType::Overloaded), Disposition::Retry);
        assert_eq!(http(529, ErrorType::Overloaded), Disposition::Retry);
        assert_eq!(http(500, ErrorType::Server), Disposition::Fallback);
        assert_eq!(http(400, ErrorType::InvalidRequest), Disposition::Fail);
        assert_eq!(http(409, ErrorType::InvalidRequest), Disposition::Fail);
        assert_eq!(
            FailureClass::of_http(409, ErrorType::InvalidRequest),
            FailureClass::Conflict
        );
        assert_eq!(http(401, ErrorType::Authentication), Disposition::Fail);
        assert_eq!(http(403, ErrorType::Authentication), Disposition::Fail);
        assert_eq!(http(429, ErrorType::InsufficientQuota), Disposition::Fail);
        assert_eq!(c.get(FailureClass::Timeout), Disposition::Retry);
        assert_eq!(c.get(FailureClass::Reset), Disposition::Retry);
        assert_eq!(c.get(FailureClass::Malformed), Disposition::Fallback);
    }

    #[test]
    fn names_round_trip() {
        for c in FailureClass::ALL {
            assert_eq!(FailureClass::from_name(c.name()), Some(c));
        }
    }
}
