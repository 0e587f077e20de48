//! Layers (issue 3 part 14): the `layers` key of a strategy, its errors,
//! and the bundled scenario that shows retries multiplying across layers.

mod support;

use std::path::Path;

use stormglass::policy::{Backoff, Disposition, FailureClass};
use stormglass::scenario::{load_str, Scenario, ScenarioError};
use support::{load, run, strategy};

/// A small valid scenario whose one strategy has `layers` as given
/// (the strategy's `layers = ...` line is line 25).
fn with_layers(layers: &str) -> String {
    format!(
        r#"[run]
duration = "1m"
warmup = "0s"

[[provider]]
name = "openai"

[[provider.model]]
name = "gpt-4o"
input_per_mtok = 2.5
output_per_mtok = 10.0

[traffic]
rate = 1

[[traffic.task]]
name = "summarization"
input_tokens = {{ median = 2000, p99 = 8000 }}
output_tokens = {{ median = 200, p99 = 600 }}

[[strategy]]
name = "stack"
routing = {{ default = "gpt-4o" }}
retry = {{ max_retries = 2 }}
layers = {layers}
"#
    )
}

fn ok(layers: &str) -> Scenario {
    load_str(Path::new("t.toml"), &with_layers(layers)).unwrap_or_else(|e| panic!("{e}"))
}

fn err(layers: &str) -> ScenarioError {
    load_str(Path::new("t.toml"), &with_layers(layers)).expect_err("should be rejected")
}

#[track_caller]
fn check(e: &ScenarioError, column: usize, message: &str, hint: &str) {
    assert_eq!((e.line, e.column), (25, column), "wrong location for: {e}");
    assert!(
        e.message.contains(message),
        "{:?} lacks {message:?}",
        e.message
    );
    let h = e.hint.as_deref().unwrap_or_default();
    assert!(h.contains(hint), "hint {h:?} lacks {hint:?}");
}

#[test]
fn layers_resolve_outermost_first_with_presets_and_their_own_classification() {
    let sc = ok(
        r#"[{ name = "app", retry = { max_retries = 3, backoff = "constant", base = "1s" }, on = { overloaded = "fail" } }, { name = "gateway", preset = "litellm-router@1.80" }]"#,
    );
    let l = &sc.strategies[0].layers;
    assert_eq!(l.len(), 2);
    assert_eq!((l[0].name.as_str(), l[1].name.as_str()), ("app", "gateway"));
    assert_eq!(l[0].retry.max_retries, 3);
    assert_eq!(
        l[0].retry.backoff,
        Backoff::Constant {
            base: 1_000_000_000
        }
    );
    assert_eq!(
        l[0].classify.get(FailureClass::Overloaded),
        Disposition::Fail
    );
    assert_eq!(
        l[0].classify.get(FailureClass::RateLimited),
        Disposition::Retry
    );
    // The preset fills the gateway's retries, backoff and classification.
    assert_eq!(l[1].retry.max_retries, 2);
    assert!(matches!(l[1].retry.backoff, Backoff::Litellm { .. }));
    assert_eq!(
        l[1].classify.get(FailureClass::ClientError),
        Disposition::Retry
    );
    // The strategy's own loop is unchanged by its layers.
    assert_eq!(sc.strategies[0].retry.max_retries, 2);
}

#[test]
fn no_layers_is_the_default() {
    let text = with_layers("[]").replace("layers = []\n", "");
    let sc = load_str(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(sc.strategies[0].layers.is_empty());
}

#[test]
fn at_most_four_layers() {
    let e =
        err(r#"[{ name = "a" }, { name = "b" }, { name = "c" }, { name = "d" }, { name = "e" }]"#);
    check(&e, 75, "has 5 layers; at most 4", "multiplies");
}

#[test]
fn layer_names_are_unique_and_not_the_strategy_s() {
    let e = err(r#"[{ name = "app" }, { name = "app" }]"#);
    check(&e, 38, "two layers named `app`", "give each its own");
    let e = err(r#"[{ name = "stack" }]"#);
    check(&e, 20, "two layers named `stack`", "not the strategy's");
}

#[test]
fn an_unknown_layer_preset_is_named_with_the_closest() {
    let e = err(r#"[{ name = "gw", preset = "litellm-router@1.8" }]"#);
    check(
        &e,
        35,
        "unknown preset `litellm-router@1.8`",
        "litellm-router@1.80",
    );
}

#[test]
fn a_layer_s_unknown_failure_kind_and_bad_retry_are_errors() {
    let e = err(r#"[{ name = "app", on = { overload = "fail" } }]"#);
    check(&e, 34, "unknown failure kind `overload`", "overloaded");
    let e = err(r#"[{ name = "app", retry = { max_retries = 1000 } }]"#);
    check(&e, 11, "layer `app` has max_retries = 1000", "at most");
    let e = err(r#"[{ name = "app", retry = { base = "2s", cap = "1s" } }]"#);
    check(
        &e,
        11,
        "layer `app`: retry.cap (1s) is below retry.base (2s)",
        "cap",
    );
    let e =
        err(r#"[{ name = "app", retry = { backoff = "none", retry_after_keeps_step = true } }]"#);
    check(
        &e,
        11,
        "layer `app` sets retry.retry_after_keeps_step = true",
        "drop retry_after_keeps_step",
    );
}

#[test]
fn a_layer_takes_every_retry_key_of_the_strategy() {
    let sc = ok(
        r#"[{ name = "app", retry = { max_elapsed = "30s", honor_should_retry = false, too_long_retry_after = "backoff", retry_after_replaces_backoff = true, retry_after_keeps_step = true } }]"#,
    );
    let r = sc.strategies[0].layers[0].retry;
    assert!(r.retry_after_keeps_step);
    assert_eq!(r.max_elapsed, Some(30_000_000_000));
    assert!(!r.honor_should_retry && r.retry_after_replaces_backoff);
    assert_eq!(
        r.too_long_retry_after,
        stormglass::policy::TooLongRetryAfter::Backoff
    );
}

#[test]
fn a_layer_s_timeout_is_a_positive_duration_and_defaults_to_none() {
    let sc = ok(r#"[{ name = "app", timeout = "30s" }, { name = "gateway" }]"#);
    let l = &sc.strategies[0].layers;
    assert_eq!(l[0].timeout, Some(30_000_000_000));
    assert_eq!(l[1].timeout, None);
    let e = err(r#"[{ name = "app", timeout = "0s" }]"#);
    assert_eq!((e.line, e.column), (25, 37), "wrong location for: {e}");
    assert!(e.message.contains("greater than zero"), "{}", e.message);
    let e = err(r#"[{ name = "app", timeout = "-5s" }]"#);
    assert_eq!((e.line, e.column), (25, 37), "wrong location for: {e}");
    assert!(e.message.contains("negative"), "{}", e.message);
}

#[test]
fn layered_retries_multiply_attempts_in_an_outage() {
    let sc = load("layered-retries.toml");
    let r = run(&sc);
    let one = strategy(&r, "one-loop");
    let stack = strategy(&r, "app-gateway-sdk");
    assert_eq!(one.requests, stack.requests);

    // Six retries either way, but nested they multiply: a request that
    // fails through the outage makes 3 x 3 x 3 = 27 attempts, not 7.
    let failed = |s: &stormglass::report::StrategyReport| {
        s.exemplars
            .iter()
            .find(|e| e.why.starts_with("failed"))
            .map(|e| e.attempts.len() + e.attempts_not_shown as usize)
            .unwrap_or_else(|| panic!("{} has no failed exemplar", s.name))
    };
    assert_eq!(failed(one), 7);
    assert_eq!(failed(stack), 27);

    // Three times the single loop's attempts overall, for no more successes.
    assert!(
        stack.amplification > 2.5 * one.amplification,
        "{} vs {}",
        stack.amplification,
        one.amplification
    );
    assert!(
        stack.success_rate <= one.success_rate + 0.01,
        "{} vs {}",
        stack.success_rate,
        one.success_rate
    );
    assert!(stack.cost.nano_usd <= one.cost.nano_usd * 101 / 100);

    // The report counts each layer: the app runs once per request, the
    // gateway once more per app retry, and each loop retries at most twice
    // per pass.
    assert!(one.layers.is_empty());
    let [app, gw] = &stack.layers[..] else {
        panic!("two layers expected: {:?}", stack.layers)
    };
    assert_eq!((app.name.as_str(), gw.name.as_str()), ("app", "gateway"));
    assert_eq!(app.passes, stack.requests);
    assert_eq!(gw.passes, app.passes + app.retries);
    assert!(app.retries > 0 && app.retries <= 2 * app.passes);
    assert!(gw.retries > app.retries && gw.retries <= 2 * gw.passes);
    assert!(stack.attempts <= 3 * (gw.passes + gw.retries));
}

#[test]
fn a_layer_timeout_lets_the_app_retry_what_its_sdk_would_hang_on() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/layer-timeout.toml");
    let sc = stormglass::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = run(&sc);
    let plain = strategy(&r, "app-no-timeout");
    let bounded = strategy(&r, "app-timeout-30s");
    assert_eq!(plain.requests, bounded.requests);
    let s = 1_000_000; // microseconds

    // Without a bound, the app waits on the SDK's hung attempt (its own
    // timeout is 600 s) until the 150 s deadline: it never retries, and
    // every request of the blackhole fails there.
    assert_eq!(plain.layers[0].retries, 0);
    assert_eq!(plain.attempts, plain.requests);
    let failed = plain.requests - plain.successes;
    assert!(failed > 500, "{failed}");
    assert_eq!(plain.failures["deadline"], failed);
    assert!(plain.latency.give_up.min_us >= 149_900 * s / 1000);

    // With `timeout = "30s"`, each pass is cut at 30 s and the app
    // retries after 1 s: a request gives up after three passes, at 92 s,
    // as a timeout, and those whose last pass starts after the outage (it
    // lasts 120 s) are answered.
    let failed = bounded.requests - bounded.successes;
    assert_eq!(bounded.failures["timeout"], failed);
    assert_eq!(bounded.failures["deadline"], 0);
    let give_up = &bounded.latency.give_up;
    assert!(
        give_up.min_us >= 91_900 * s / 1000 && give_up.max_us <= 92_100 * s / 1000,
        "{give_up:?}"
    );
    assert!(
        bounded.success_rate > plain.success_rate + 0.15,
        "{} vs {}",
        bounded.success_rate,
        plain.success_rate
    );
    // A failed request made three attempts, one per pass; the app retried
    // each of them twice.
    let app = &bounded.layers[0];
    assert!(app.retries >= 2 * failed && app.retries <= 2 * app.passes);
    assert_eq!(bounded.attempts, bounded.requests + app.retries);
    // Every pass the app's timeout ended is counted at the app: each was
    // followed by a retry or was a failed request's last; without the
    // timeout there are none.
    assert_eq!(app.pass_timeouts, app.retries + failed);
    assert!(app.pass_timeouts >= 3 * failed);
    assert_eq!(plain.layers[0].pass_timeouts, 0);
}
