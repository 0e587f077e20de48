//! Each preset resolves to the figures the README cites from its source.
//! (What a preset does in a run is in tests/scenarios.rs.)

use std::path::Path;

use stormglass::policy::{Backoff, Disposition, FailureClass, StrategyConfig, TooLongRetryAfter};
use stormglass::scenario::load_str;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;

/// The strategy a `[[strategy]]` with only this preset resolves to.
fn resolve(preset: &str) -> StrategyConfig {
    let text = format!(
        r#"[run]
duration = "1m"

[[provider]]
name = "p"
  [[provider.model]]
  name = "m"
  input_per_mtok = 1.0
  output_per_mtok = 1.0

[traffic]
rate = 1
  [[traffic.task]]
  name = "t"
  input_tokens = {{ median = 200, p99 = 600 }}
  output_tokens = {{ median = 20, p99 = 80 }}
  max_tokens = 100

[[strategy]]
name = "s"
preset = "{preset}"
routing = {{ default = "m" }}
"#
    );
    let sc = load_str(Path::new("presets.toml"), &text).unwrap_or_else(|e| panic!("{preset}: {e}"));
    StrategyConfig::clone(&sc.strategies[0])
}

fn disposition(s: &StrategyConfig, class: FailureClass) -> Disposition {
    s.classify.get(class)
}

#[test]
fn async_openai_0_43_retries_429_and_5xx_three_times_without_jitter() {
    let s = resolve("async-openai@0.43");
    assert_eq!(s.retry.max_retries, 3);
    assert_eq!(
        s.retry.backoff,
        Backoff::Exponential {
            base: 100 * MS,
            cap: 8 * S
        }
    );
    // 100 ms, 200 ms, 400 ms.
    let waits: Vec<u64> = (0..3).map(|n| s.retry.backoff.delay(n, 0, 0.5)).collect();
    assert_eq!(waits, [100 * MS, 200 * MS, 400 * MS]);
    // Any retry-after is waited, however long, instead of the backoff;
    // x-should-retry is not read.
    assert!(s.retry.honor_retry_after && s.retry.retry_after_replaces_backoff);
    assert_eq!(s.retry.max_retry_after, u64::MAX);
    // ... and such a wait leaves the step where it was (`backoff_attempt`).
    assert!(s.retry.retry_after_keeps_step);
    assert!(!s.retry.honor_should_retry);
    use Disposition::{Fail, Retry};
    use FailureClass as F;
    for (class, d) in [
        (F::RateLimited, Retry),
        (F::InsufficientQuota, Fail),
        (F::Overloaded, Retry),
        (F::ServerError, Retry),
        (F::ClientError, Fail),
        (F::AuthError, Fail),
        (F::Conflict, Fail),
        (F::Timeout, Fail),
        (F::Reset, Fail),
        (F::BrokenStream, Fail),
        (F::Malformed, Fail),
    ] {
        assert_eq!(disposition(&s, class), d, "{class:?}");
    }
    // reqwest's default client has no timeout: only the deadline ends an
    // attempt.
    assert!(s.timeouts.iter().all(|t| t.total.is_none()));
}

#[test]
fn a_preset_without_a_timeout_has_none_and_the_others_have_theirs() {
    let polly = resolve("polly-standard@8");
    assert!(polly.timeouts.iter().all(|t| t.total.is_none()));
    let litellm = resolve("litellm-router@1.80");
    assert!(litellm.timeouts.iter().all(|t| t.total == Some(6000 * S)));
    let envoy = resolve("envoy@1");
    assert!(envoy.timeouts.iter().all(|t| t.total == Some(15 * S)));
    let openai = resolve("openai-python@3.54");
    assert!(openai.timeouts.iter().all(|t| t.total == Some(600 * S)));
    assert_eq!(openai.retry.too_long_retry_after, TooLongRetryAfter::GiveUp);
    // The Stainless SDKs wait the header instead of their step; stacks that
    // do not read it, and stormglass's default, wait at least it.
    assert!(openai.retry.retry_after_replaces_backoff);
    assert!(
        resolve("anthropic-python@2.12")
            .retry
            .retry_after_replaces_backoff
    );
    assert!(!envoy.retry.retry_after_replaces_backoff);
    assert!(
        !resolve("async-openai@0.29")
            .retry
            .retry_after_replaces_backoff
    );
}

#[test]
fn litellm_1_80_waits_its_first_step_twice_plus_jitter_and_retries_nearly_everything() {
    let s = resolve("litellm-router@1.80");
    assert_eq!(s.retry.max_retries, 2);
    assert_eq!(
        s.retry.backoff,
        Backoff::Litellm {
            base: 500 * MS,
            cap: 8 * S
        }
    );
    // 0.5 s, 0.5 s, 1 s without the jitter; up to 0.75 s more with it.
    let low: Vec<u64> = (0..3).map(|n| s.retry.backoff.delay(n, 0, 0.0)).collect();
    assert_eq!(low, [500 * MS, 500 * MS, 1000 * MS]);
    assert!(s.retry.backoff.delay(0, 0, 0.999) > 1200 * MS);
    // retry-after up to 60 s; a longer one leaves the backoff to decide.
    assert!(s.retry.honor_retry_after && !s.retry.honor_should_retry);
    assert!(s.retry.retry_after_replaces_backoff);
    assert_eq!(s.retry.max_retry_after, 60 * S);
    assert_eq!(s.retry.too_long_retry_after, TooLongRetryAfter::Backoff);
    use Disposition::{Fail, Fallback, Retry};
    use FailureClass as F;
    for (class, d) in [
        (F::RateLimited, Retry),
        (F::InsufficientQuota, Retry),
        (F::Overloaded, Retry),
        (F::ServerError, Retry),
        (F::ClientError, Retry),
        (F::AuthError, Fail),
        (F::Conflict, Retry),
        (F::Timeout, Retry),
        (F::Reset, Retry),
        (F::BrokenStream, Fallback),
        (F::Malformed, Fail),
    ] {
        assert_eq!(disposition(&s, class), d, "{class:?}");
    }
    // 1.80's default cooldown: the failure-rate rule of a group of one.
    assert_eq!(
        s.breaker,
        stormglass::policy::breaker::BreakerConfig::FailureRate {
            failure_threshold: 0.5,
            all_failed_min: 1000,
            cooldown: 5 * S,
            single_deployment: true,
        }
    );
}

/// The sum of a strategy's offered attempts over [from_s, to_s).
fn attempts_in(s: &stormglass::report::StrategyReport, from_s: u64, to_s: u64) -> u64 {
    let w = s.series.bucket_ns / S;
    let start = s.series.start_ns / S;
    s.series
        .offered_attempts
        .iter()
        .enumerate()
        .filter(|(i, _)| (from_s..to_s).contains(&(start + *i as u64 * w)))
        .map(|(_, n)| u64::from(*n))
        .sum()
}

#[test]
fn litellm_1_80_cools_its_lone_deployment_a_minute_into_an_outage() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/litellm-cooldown.toml");
    let sc = stormglass::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = stormglass::sim::run(&sc, 2)
        .unwrap_or_else(|e| panic!("{e}"))
        .0;
    let by = |n: &str| r.strategies.iter().find(|s| s.name == n).expect(n);
    let (cool, none) = (by("litellm"), by("no-cooldown"));
    // The outage is 2m..7m. For its first minute the success counter of
    // the last calls before it still counts: no cooldown, the same attempts.
    assert_eq!(attempts_in(cool, 120, 180), attempts_in(none, 120, 180));
    // Then every new failure cools the model for 5 s: about 48 times in the
    // four minutes left, and requests skip it for the fallback.
    assert!(
        (30..=60).contains(&cool.breaker_opens),
        "{}",
        cool.breaker_opens
    );
    assert_eq!(none.breaker_opens, 0);
    let (a, b) = (attempts_in(cool, 190, 420), attempts_in(none, 190, 420));
    assert!(2 * a < b, "{a} vs {b}");
    // The fallback serves everyone either way; the cooldown saves the
    // retries on the dead model, and the time they took.
    assert!(cool.success_rate > 0.999 && none.success_rate > 0.999);
    assert!(cool.amplification < 0.6 * none.amplification);
    assert!(cool.latency.all.p50_us < none.latency.all.p50_us);
}

#[test]
fn async_openai_0_29_retries_with_the_backoff_crate_until_15_minutes() {
    let s = resolve("async-openai@0.29");
    assert_eq!(
        s.retry.backoff,
        Backoff::Randomized {
            base: 500 * MS,
            cap: 60 * S
        }
    );
    // The middle of each draw: 0.5 s, 0.75 s, 1.125 s, ... 60 s.
    assert_eq!(s.retry.backoff.delay(1, 0, 0.5), 750 * MS);
    assert_eq!(s.retry.backoff.delay(40, 0, 0.5), 60 * S);
    assert_eq!(s.retry.max_elapsed, Some(900 * S));
    // The count never ends it: even at the shortest draws, 100 retries
    // take longer than 15 minutes.
    assert_eq!(s.retry.max_retries, 100);
    let shortest: u64 = (0..100).map(|n| s.retry.backoff.delay(n, 0, 0.0)).sum();
    assert!(shortest > 900 * S, "{shortest}");
    // The header is not read.
    assert!(!s.retry.honor_retry_after && !s.retry.honor_should_retry);
    // What is retried is 0.43's table.
    let new = resolve("async-openai@0.43");
    for class in FailureClass::ALL {
        assert_eq!(
            disposition(&s, class),
            disposition(&new, class),
            "{class:?}"
        );
    }
    assert!(s.timeouts.iter().all(|t| t.total.is_none()));
    // Every other preset leaves `max_elapsed` alone.
    assert_eq!(new.retry.max_elapsed, None);
    // The `backoff` crate never reads retry-after: no step to keep.
    assert!(!s.retry.retry_after_keeps_step);
}
