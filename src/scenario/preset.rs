//! Presets: the retry, timeout and failure settings of the stacks people
//! really run, so a team can model what it has today before what it wants.
//!
//! A preset is named `<stack>@<version>` and fills what a `[[strategy]]`
//! leaves out; every field the strategy gives itself wins. Each entry is
//! pinned to the version whose source was read, and each figure below was
//! checked against that source (README, "Presets", lists them with their
//! files). What could not be checked is left out and says so there.
//!
//! This is configuration, not policy: the core runs a preset with the same
//! retry loop, breaker and budget as any strategy.

use crate::policy::retry::{BudgetConfig, Disposition, FailureClass};
use crate::policy::TooLongRetryAfter;
use crate::units::{Nanos, MILLIS, SECS};

use super::schema::BackoffKind;

/// A known stack's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Preset {
    /// `<stack>@<version>`.
    pub name: &'static str,
    /// Retries per model.
    pub max_retries: u32,
    /// Backoff kind, first step and cap; `None` keeps stormglass's default.
    pub backoff: Option<(BackoffKind, Nanos, Nanos)>,
    /// Whether `retry-after` is waited for.
    pub honor_retry_after: bool,
    /// The longest `retry-after` waited for.
    pub max_retry_after: Nanos,
    /// What a longer one leads to.
    pub too_long_retry_after: TooLongRetryAfter,
    /// Whether `x-should-retry` is obeyed.
    pub honor_should_retry: bool,
    /// Whole-attempt timeout.
    pub total: Option<Nanos>,
    /// Dispositions that differ from stormglass's default table.
    pub on: &'static [(FailureClass, Disposition)],
    /// LiteLLM-style cooldown: (allowed fails per minute, cooldown).
    pub cooldown: Option<(u32, Nanos)>,
    /// A retry budget the stack has by default.
    pub budget: Option<BudgetConfig>,
}

use Disposition::{Fail, Retry};
use FailureClass as F;

/// The Stainless SDKs retry 408, 409, 429, 5xx and connection errors
/// (`_should_retry`), all on the same model (they know of no other).
const STAINLESS_ON: &[(FailureClass, Disposition)] = &[
    (F::ServerError, Retry),
    (F::Malformed, Fail),
    (F::Conflict, Retry),
];

/// The Stainless SDKs (openai-python, anthropic-python) share everything
/// but their `retry-after` rule: 2 retries, 0.5 s x 2^n capped at 8 s less
/// up to 25%, a 600 s timeout, `x-should-retry` obeyed.
const fn stainless(
    name: &'static str,
    max_retry_after: Nanos,
    too_long_retry_after: TooLongRetryAfter,
) -> Preset {
    Preset {
        name,
        max_retries: 2,
        backoff: Some((BackoffKind::SdkJitter, 500 * MILLIS, 8 * SECS)),
        honor_retry_after: true,
        max_retry_after,
        too_long_retry_after,
        honor_should_retry: true,
        total: Some(600 * SECS),
        on: STAINLESS_ON,
        cooldown: None,
        budget: None,
    }
}

/// Every preset, in the order the README lists them.
pub(crate) const PRESETS: &[Preset] = &[
    // openai/openai-python 1.95.1: src/openai/_constants.py (2 retries,
    // 0.5 s, 8 s, timeout 600 s); _base_client.py `_calculate_retry_timeout`
    // waits a retry-after only when 0 < ra <= 60, else its own backoff, and
    // `_should_retry` does not look at retry-after.
    stainless("openai-python@1.95", 60 * SECS, TooLongRetryAfter::Backoff),
    // openai 3.54.0: `MAX_RETRY_AFTER_DELAY = 2 * 60`; `_should_retry`
    // refuses a retry whose retry-after exceeds it.
    stainless("openai-python@3.54", 120 * SECS, TooLongRetryAfter::GiveUp),
    // anthropic 2.12.0: the same constants; `_calculate_retry_timeout`
    // waits any positive retry-after, capped at 4,294,967 s (a platform
    // limit of time.sleep), and `_should_retry` ignores its length.
    stainless(
        "anthropic-python@2.12",
        4_294_967 * SECS,
        TooLongRetryAfter::Backoff,
    ),
    // BerriAI/litellm 1.80: litellm/constants.py `DEFAULT_MAX_RETRIES = 2`,
    // `DEFAULT_ALLOWED_FAILS = 3`, `DEFAULT_COOLDOWN_TIME_SECONDS = 5`. The
    // router's wait between retries was not verified: stormglass's default
    // backoff stays.
    Preset {
        name: "litellm-router@1.80",
        max_retries: 2,
        backoff: None,
        honor_retry_after: true,
        max_retry_after: 60 * SECS,
        too_long_retry_after: TooLongRetryAfter::GiveUp,
        honor_should_retry: true,
        total: None,
        on: &[],
        cooldown: Some((3, 5 * SECS)),
        budget: None,
    },
    // Envoy 1.x (v3 API): route RetryPolicy `num_retries` defaults to 1;
    // the router's back-off is fully jittered exponential, base 25 ms, max
    // 10 x base; the cluster's circuit breaker `max_retries` (parallel
    // retries) defaults to 3; the route timeout defaults to 15 s.
    // `retry_on` has no default: the preset assumes `5xx`, which covers
    // 5xx answers, resets and timeouts but not 429 or 409.
    Preset {
        name: "envoy@1",
        max_retries: 1,
        backoff: Some((BackoffKind::FullJitter, 25 * MILLIS, 250 * MILLIS)),
        honor_retry_after: false,
        max_retry_after: 60 * SECS,
        too_long_retry_after: TooLongRetryAfter::GiveUp,
        honor_should_retry: false,
        total: Some(15 * SECS),
        on: &[
            (F::RateLimited, Fail),
            (F::ServerError, Retry),
            (F::Malformed, Fail),
        ],
        cooldown: None,
        budget: Some(BudgetConfig::Concurrent {
            percent: 0.0,
            min_concurrent: 3,
        }),
    },
    // App-vNext/Polly v8, Polly.Core RetryStrategyOptions: 3 retries,
    // constant back-off of 2 s, no jitter, no delay generator (so no
    // retry-after), and `ShouldHandle` retries every failure (any exception
    // but cancellation). No timeout unless a timeout strategy is added.
    Preset {
        name: "polly-standard@8",
        max_retries: 3,
        backoff: Some((BackoffKind::Constant, 2 * SECS, 2 * SECS)),
        honor_retry_after: false,
        max_retry_after: 60 * SECS,
        too_long_retry_after: TooLongRetryAfter::GiveUp,
        honor_should_retry: false,
        total: None,
        on: &[
            (F::InsufficientQuota, Retry),
            (F::ServerError, Retry),
            (F::ClientError, Retry),
            (F::AuthError, Retry),
            (F::Malformed, Retry),
            (F::Conflict, Retry),
        ],
        cooldown: None,
        budget: None,
    },
];

/// The preset of that name.
pub(crate) fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_pinned() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(p.name.contains('@'), "{} has no version", p.name);
            assert!(PRESETS[..i].iter().all(|q| q.name != p.name));
            assert_eq!(find(p.name).map(|q| q.name), Some(p.name));
        }
        assert!(find("openai-python").is_none());
    }

    #[test]
    fn the_openai_versions_differ_only_in_the_retry_after_rule() {
        let old = find("openai-python@1.95").map(|p| (p.max_retry_after, p.too_long_retry_after));
        let new = find("openai-python@3.54").map(|p| (p.max_retry_after, p.too_long_retry_after));
        assert_eq!(old, Some((60 * SECS, TooLongRetryAfter::Backoff)));
        assert_eq!(new, Some((120 * SECS, TooLongRetryAfter::GiveUp)));
    }
}
