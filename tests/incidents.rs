//! Incident figures on the bundled scenarios: success and p99 during an
//! incident, and recovery time after it.

mod support;

use stormglass::units::SECS;
use support::{load, run, strategy};

#[test]
fn retry_storm_fixed_retries_never_recover_while_jitter_and_budgets_do() {
    let r = run(&load("retry-storm.toml"));
    let cut = |name: &str| strategy(&r, name).incidents[0].clone();
    for name in ["fixed-no-jitter", "full-jitter", "fixed-with-budget"] {
        let i = cut(name);
        assert_eq!(i.name, "quota cut");
        // Before the cut the service was healthy.
        let before = i.before_success_rate.unwrap();
        assert!(before > 0.99, "{name}: {before}");
    }
    // The storm outlives its trigger: no recovery before the run ends.
    let fixed = cut("fixed-no-jitter");
    assert!(!fixed.recovered);
    assert_eq!(fixed.recovery_ns, None);
    assert!(fixed.success_rate.unwrap() < 0.10);
    // Full jitter recovers about a minute after the cut ends: its requests
    // with 20 s deadlines drain first (stated range: 30 s to 2 min).
    let full = cut("full-jitter");
    let t = full.recovery_ns.unwrap();
    assert!(
        (30 * SECS..120 * SECS).contains(&t),
        "full jitter recovered after {t} ns"
    );
    // The retry budget keeps a third of requests going during the cut and
    // recovers within a minute.
    let budget = cut("fixed-with-budget");
    assert!(budget.success_rate.unwrap() > 0.3);
    assert!(budget.recovery_ns.unwrap() < 60 * SECS);
    // p99 during the cut: the jitter strategy waits out its deadline.
    assert!(full.latency.p99_us > 19_000_000 && full.latency.p99_us <= 20_100_000);
}

#[test]
fn provider_outage_fallback_holds_during_the_outage_and_retries_alone_do_not() {
    let r = run(&load("provider-outage.toml"));
    let retry = strategy(&r, "retry-only").incidents[0].clone();
    let chain = strategy(&r, "fallback-chain").incidents[0].clone();
    assert!(retry.success_rate.unwrap() < 0.05);
    assert!(chain.success_rate.unwrap() > 0.99);
    // Falling back never lost the level: recovered at once.
    assert_eq!(chain.recovery_ns, Some(0));
    // Retries alone come back once the model does, within a deadline.
    assert!(retry.recovery_ns.unwrap() <= 60 * SECS);
}
