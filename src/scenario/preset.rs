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

use crate::policy::breaker::BreakerConfig;
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
    /// No retry ending later than this after the request arrived.
    pub max_elapsed: Option<Nanos>,
    /// A `retry-after` is waited instead of the backoff, not at least.
    pub retry_after_replaces_backoff: bool,
    /// A wait `retry-after` set leaves the backoff step where it was.
    pub retry_after_keeps_step: bool,
    /// Whole-attempt timeout.
    pub total: PresetTimeout,
    /// Dispositions that differ from stormglass's default table.
    pub on: &'static [(FailureClass, Disposition)],
    /// The breaker the stack has of itself (LiteLLM's deployment cooldown).
    pub cooldown: Option<BreakerConfig>,
    /// A retry budget the stack has by default.
    pub budget: Option<BudgetConfig>,
}

/// A preset's whole-attempt timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PresetTimeout {
    /// The stack sets none: only the request's deadline ends an attempt.
    Unbounded,
    /// This long.
    After(Nanos),
}

use Disposition::{Fail, Fallback, Retry};
use FailureClass as F;

/// The Stainless SDKs retry 408, 409, 429, 5xx and connection errors
/// (`_should_retry`), all on the same model (they know of no other).
const STAINLESS_ON: &[(FailureClass, Disposition)] = &[
    (F::ServerError, Retry),
    (F::Malformed, Fail),
    (F::Conflict, Retry),
];

/// async-openai retries 429 (but `insufficient_quota`) and every 5xx, and
/// hands anything else back: reqwest errors (timeouts, resets), 4xx, a
/// body that does not parse; a stream is not retried once it has begun.
const ASYNC_OPENAI_ON: &[(FailureClass, Disposition)] = &[
    (F::ServerError, Retry),
    (F::Timeout, Fail),
    (F::Reset, Fail),
    (F::BrokenStream, Fail),
    (F::Malformed, Fail),
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
        max_elapsed: None,
        retry_after_replaces_backoff: true,
        retry_after_keeps_step: false,
        total: PresetTimeout::After(600 * SECS),
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
    // openai 2.51.0 still has the 1.95 rule (_base_client.py:801,
    // `0 < retry_after <= 60`); 2.52.0 is the first with
    // `MAX_RETRY_AFTER_DELAY = 2 * 60` (_constants.py:15), waited up to it
    // (_base_client.py:807) and refused above it in `_should_retry`
    // (_base_client.py:822-828). Both wheels from PyPI were diffed: nothing
    // else in _base_client.py or _constants.py changed between them.
    stainless("openai-python@2.51", 60 * SECS, TooLongRetryAfter::Backoff),
    stainless("openai-python@2.52", 120 * SECS, TooLongRetryAfter::GiveUp),
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
    // BerriAI/litellm 1.80.0 (PyPI wheel): litellm/constants.py
    // `DEFAULT_MAX_RETRIES = 2` (line 25), `DEFAULT_ALLOWED_FAILS = 3`,
    // `DEFAULT_COOLDOWN_TIME_SECONDS = 5`, `INITIAL_RETRY_DELAY = 0.5`,
    // `MAX_RETRY_DELAY = 8.0`, `JITTER = 0.75` (lines 202-204). The
    // router's wait (router.py `_time_to_sleep_before_retry`, 4586-4633,
    // for a model group of one deployment) is utils.py
    // `_calculate_retry_after` (5905-5928): a `retry-after` of 0 < ra <= 60
    // s plus the jitter, else the `litellm` backoff (see backoff.rs).
    // `retry-after` is read in seconds or as a date (5871-5902), never
    // `retry-after-ms`; `x-should-retry` is not read.
    Preset {
        name: "litellm-router@1.80",
        max_retries: 2,
        backoff: Some((BackoffKind::Litellm, 500 * MILLIS, 8 * SECS)),
        honor_retry_after: true,
        max_retry_after: 60 * SECS,
        too_long_retry_after: TooLongRetryAfter::Backoff,
        honor_should_retry: false,
        max_elapsed: None,
        retry_after_replaces_backoff: true,
        retry_after_keeps_step: false,
        // router.py:478 `timeout or litellm.request_timeout`, which is
        // `REQUEST_TIMEOUT` = 6000 s (constants.py:254), per call.
        total: PresetTimeout::After(6000 * SECS),
        // router.py `should_retry_this_error` (4474-4538), for a group of
        // one deployment: everything is retried but a 404 and a 401
        // (`AuthenticationError`), and a 429 is a `RateLimitError` whatever
        // its type. A stream broken off goes to the fallbacks
        // (`_acompletion_streaming_iterator`, `MidStreamFallbackError`). A
        // body the model got wrong is an answer to the router.
        on: &[
            (F::InsufficientQuota, Retry),
            (F::ServerError, Retry),
            (F::ClientError, Retry),
            (F::Conflict, Retry),
            (F::BrokenStream, Fallback),
            (F::Malformed, Fail),
        ],
        // Cooldown: with `allowed_fails` at its default, 1.80 decides by
        // failure rate (router_utils/cooldown_handlers.py
        // `_should_cooldown_deployment`, 165-254); a one-deployment group
        // cools down only when every call counted failed and there were at
        // least 1,000 (`SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD`,
        // constants.py:49), or on a 401 or 404, for the answer's
        // `retry-after` or `cooldown_time` (5 s, router.py
        // `deployment_callback_on_failure`, 4802-4870).
        cooldown: Some(BreakerConfig::FailureRate {
            failure_threshold: 0.5,
            all_failed_min: 1000,
            cooldown: 5 * SECS,
            single_deployment: true,
        }),
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
        max_elapsed: None,
        retry_after_replaces_backoff: false,
        retry_after_keeps_step: false,
        total: PresetTimeout::After(15 * SECS),
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
        max_elapsed: None,
        retry_after_replaces_backoff: false,
        retry_after_keeps_step: false,
        total: PresetTimeout::Unbounded,
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
    // 64bit/async-openai 0.43.0 (crates.io): the default client wraps
    // reqwest in `OpenAIRetryLayer::default()` (src/executor.rs:143-149),
    // 3 retries (src/middleware/retry/openai.rs:52-56). `retry_request`
    // (openai.rs:147-239) retries a 429 unless its body says
    // `insufficient_quota`, any 5xx, and reqwest connect errors; everything
    // else, a 2xx body that does not parse included, goes back to the
    // caller. The wait is `retry-after` in whole seconds when present, else
    // 100 ms x 2^n capped at 8 s, no jitter (openai.rs:219-224, 251-257),
    // where n counts only the retries whose wait the backoff set.
    // `reqwest::Client::new()` has no timeout (src/client.rs:112).
    Preset {
        name: "async-openai@0.43",
        max_retries: 3,
        backoff: Some((BackoffKind::Exponential, 100 * MILLIS, 8 * SECS)),
        honor_retry_after: true,
        max_retry_after: Nanos::MAX,
        too_long_retry_after: TooLongRetryAfter::Backoff,
        honor_should_retry: false,
        max_elapsed: None,
        retry_after_replaces_backoff: true,
        // `backoff_attempt` (openai.rs:219-224) grows only when no
        // `retry-after` set the wait; `attempts` counts every retry.
        retry_after_keeps_step: true,
        total: PresetTimeout::Unbounded,
        on: ASYNC_OPENAI_ON,
        cooldown: None,
        budget: None,
    },
    // async-openai 0.29.0 (crates.io), before the tower layer: the client
    // holds a `backoff::ExponentialBackoff::default()` (src/client.rs:20-26,
    // 53) and `execute_raw` (322-386) runs `backoff::future::retry`: a 5xx
    // (344) or a 429 that is not `insufficient_quota` (365-376) is
    // `Transient` with `retry_after: None`, everything else `Permanent`.
    // backoff 0.4.0: src/default.rs:4-13 (0.5 s, factor 0.5, x1.5, 60 s,
    // 15 min), src/exponential.rs:61-136 (the draw, the growth, no retry
    // ending past 15 min since `reset`, which future.rs:104 calls per
    // request). No retry count: 15 minutes end it.
    Preset {
        name: "async-openai@0.29",
        max_retries: 100,
        backoff: Some((BackoffKind::Randomized, 500 * MILLIS, 60 * SECS)),
        honor_retry_after: false,
        max_retry_after: 60 * SECS,
        too_long_retry_after: TooLongRetryAfter::GiveUp,
        honor_should_retry: false,
        max_elapsed: Some(900 * SECS),
        retry_after_replaces_backoff: false,
        retry_after_keeps_step: false,
        total: PresetTimeout::Unbounded,
        on: ASYNC_OPENAI_ON,
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
        // The rule changed between 2.51.0 and 2.52.0.
        let rule = |n| find(n).map(|p| (p.max_retry_after, p.too_long_retry_after));
        assert_eq!(rule("openai-python@2.51"), old);
        assert_eq!(rule("openai-python@2.52"), new);
        let stainless = |n: &str| {
            find(n).map(|p| {
                (
                    p.max_retries,
                    p.backoff,
                    p.total,
                    p.on,
                    p.honor_should_retry,
                )
            })
        };
        for v in ["2.51", "2.52", "3.54"] {
            let name = format!("openai-python@{v}");
            assert_eq!(stainless(&name), stainless("openai-python@1.95"));
        }
    }
}
