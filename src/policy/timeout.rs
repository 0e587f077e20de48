//! Tiered timeouts for one attempt.
//!
//! One timeout for everything is either too short for a long generation or
//! too long to notice a hung connection. Streaming clients therefore watch
//! three clocks: time to the first token (a provider that has not started in
//! 10 s is probably not going to), the silence between chunks (a stalled
//! stream), and the whole attempt. Each tier of task can set its own, as
//! gateways do per route (Envoy's `timeout` and `per_try_timeout`, LiteLLM's
//! `timeout` and `stream_timeout`). The request's own deadline caps them all.
//!
//! Defaults: no first-token or between-chunk timeout, 600 s in total (the
//! OpenAI SDK's default timeout).

use crate::units::{Nanos, SECS};

/// The timeouts of one attempt; `None` means not watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From sending to the first token.
    pub first_token: Option<Nanos>,
    /// Longest silence between chunks.
    pub between_chunks: Option<Nanos>,
    /// From sending to the end.
    pub total: Option<Nanos>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            first_token: None,
            between_chunks: None,
            total: Some(600 * SECS),
        }
    }
}

impl Timeouts {
    /// This set with the other's `Some` values laid over it.
    #[must_use]
    pub fn overlay(self, o: Self) -> Self {
        Self {
            first_token: o.first_token.or(self.first_token),
            between_chunks: o.between_chunks.or(self.between_chunks),
            total: o.total.or(self.total),
        }
    }

    /// The attempt's end-of-life for an attempt sent at `now` for a request
    /// due at `deadline`.
    pub fn attempt_deadline(&self, now: Nanos, deadline: Nanos) -> Nanos {
        match self.total {
            Some(t) => (now + t).min(deadline),
            None => deadline,
        }
    }
}
