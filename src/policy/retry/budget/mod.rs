//! Retry budgets: how many retries the client may send, whatever its
//! per-request retry count says.
//!
//! Why budgets and not max retries? `max_retries = 3` bounds the extra load
//! of *one* request to 3x, but when a provider is failing *every* request
//! retries, so the offered load quadruples exactly when the provider can
//! least take it: a retry storm. A budget bounds the retries of the whole
//! client relative to its ordinary traffic, so a failing provider sees at
//! most a little extra load (Finagle's RetryBudget; Envoy's retry_budget;
//! gRPC's retry throttling, A6; the SRE book's chapter on handling overload
//! recommends a per-client retry budget of 10% of requests).
//!
//! Three kinds, each with its own meaning:
//!
//! | kind | rule | defaults | source |
//! |---|---|---|---|
//! | `ratio` | retries over the last `window` at most `percent` of requests over that window, with a floor of `min_per_s` retries per second | 20%, 10/s, 10 s | Finagle `RetryBudget` |
//! | `concurrent` | retries in flight at most `percent` of active requests, but at least `min_concurrent` | 20%, 3 | Envoy `retry_budget` |
//! | `token_bucket` | a bucket of `max_tokens`; a failed attempt costs 1, a success gives back `token_ratio`; retries only while more than half full | 10, 0.1 | gRPC retry throttling (A6) |
//!
//! A retry the budget refuses is not made: the request goes down its
//! fallback chain if it has one, and fails with its last error otherwise.
//! Budgets are per client replica (`scope = "replica"`); a fleet-wide budget
//! is a later addition.

mod concurrent;
mod ratio;
mod token;

pub use concurrent::ConcurrentBudget;
pub use ratio::RatioBudget;
pub use token::TokenBucketBudget;

use crate::units::Nanos;

/// A retry budget's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BudgetConfig {
    /// No budget: `max_retries` alone bounds retries.
    Unlimited,
    /// Finagle: retries at most `percent` of requests over `window`, plus a floor.
    Ratio {
        /// Share of requests that may be retried.
        percent: f64,
        /// Retries per second always allowed.
        min_per_s: f64,
        /// Sliding window.
        window: Nanos,
    },
    /// Envoy: retries in flight at most `percent` of active requests.
    Concurrent {
        /// Share of active requests.
        percent: f64,
        /// Retries in flight always allowed.
        min_concurrent: u32,
    },
    /// gRPC: a token bucket drained by failures and refilled by successes.
    TokenBucket {
        /// Bucket size.
        max_tokens: f64,
        /// Tokens a success gives back.
        token_ratio: f64,
    },
}

/// A budget's state.
#[derive(Clone, Debug)]
pub enum RetryBudget {
    /// No budget.
    Unlimited,
    /// See [`RatioBudget`].
    Ratio(RatioBudget),
    /// See [`ConcurrentBudget`].
    Concurrent(ConcurrentBudget),
    /// See [`TokenBucketBudget`].
    TokenBucket(TokenBucketBudget),
}

impl RetryBudget {
    /// A full budget.
    pub fn new(cfg: BudgetConfig) -> Self {
        match cfg {
            BudgetConfig::Unlimited => Self::Unlimited,
            BudgetConfig::Ratio {
                percent,
                min_per_s,
                window,
            } => Self::Ratio(RatioBudget::new(percent, min_per_s, window)),
            BudgetConfig::Concurrent {
                percent,
                min_concurrent,
            } => Self::Concurrent(ConcurrentBudget::new(percent, min_concurrent)),
            BudgetConfig::TokenBucket {
                max_tokens,
                token_ratio,
            } => Self::TokenBucket(TokenBucketBudget::new(max_tokens, token_ratio)),
        }
    }

    /// A new request arrived.
    pub fn on_request(&mut self, now: Nanos) {
        match self {
            Self::Ratio(b) => b.on_request(now),
            Self::Concurrent(b) => b.on_request(),
            Self::Unlimited | Self::TokenBucket(_) => {}
        }
    }

    /// A request finished.
    pub fn on_request_done(&mut self) {
        if let Self::Concurrent(b) = self {
            b.on_request_done();
        }
    }

    /// An attempt ended: a success or a failure.
    pub fn on_attempt(&mut self, success: bool) {
        if let Self::TokenBucket(b) = self {
            b.on_attempt(success);
        }
    }

    /// A retry wants to go at `now`: whether the budget lets it, and if so
    /// it is counted.
    pub fn try_retry(&mut self, now: Nanos) -> bool {
        match self {
            Self::Unlimited => true,
            Self::Ratio(b) => b.try_retry(now),
            Self::Concurrent(b) => b.try_retry(),
            Self::TokenBucket(b) => b.try_retry(),
        }
    }

    /// A retry that was let through has ended (its attempt finished).
    pub fn on_retry_done(&mut self) {
        if let Self::Concurrent(b) = self {
            b.on_retry_done();
        }
    }
}
