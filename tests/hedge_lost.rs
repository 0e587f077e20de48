//! The loser of a hedge is cancelled on purpose: it is counted per model as
//! `hedge_lost`, not as `cancelled`, and the SLO's error-rate objective
//! counts it neither as an error nor as a good attempt.

mod support;

use support::{load, run, strategy};

#[test]
fn hedge_losers_are_counted_apart_and_are_not_errors() {
    let mut sc = load("slow-tail.toml");
    // slow-tail has no [slo]: borrow retry-storm's objectives.
    sc.slo = load("retry-storm.toml").slo;
    assert!(sc.slo.is_some());
    let r = run(&sc);
    for s in &r.strategies {
        let sum = |f: fn(&stormglass::report::json::ModelReport) -> u64| -> u64 {
            s.models.iter().map(f).sum()
        };
        let lost = sum(|m| m.hedge_lost);
        let errors = sum(|m| m.rate_limited + m.overloaded + m.errors + m.broken + m.cancelled);
        let attempts = sum(|m| m.attempts);
        if s.hedges == 0 {
            assert_eq!(lost, 0, "{}", s.name);
        } else {
            // A hedged request that got an answer while its other attempt
            // was still out cancels that one: at most one loser per hedge.
            assert!(
                lost > 0 && lost <= s.hedges,
                "{}: {lost} of {}",
                s.name,
                s.hedges
            );
        }
        // Every attempt ended one way: answered, an error, or lost a hedge.
        assert_eq!(attempts, sum(|m| m.answered) + errors + lost, "{}", s.name);
        // The error series and the error-rate objective leave losers out.
        let series: u64 = s.series.attempt_errors.iter().map(|&v| u64::from(v)).sum();
        assert_eq!(series, errors, "{}", s.name);
        let slo = s.slo.as_ref().expect("an SLO report");
        let er = slo
            .objectives
            .iter()
            .find(|o| o.name == "error_rate")
            .expect("an error-rate objective");
        assert_eq!(er.total, attempts - lost, "{}", s.name);
        assert_eq!(er.total - er.good, errors, "{}", s.name);
    }
    // Counted as errors, the losers would swamp the real errors of a
    // hedging strategy (3,305 against 118 with this seed) and fail its
    // error-rate objective for doing what it was set up to do.
    let p95 = strategy(&r, "hedge-p95");
    let lost: u64 = p95.models.iter().map(|m| m.hedge_lost).sum();
    let errors: u64 = p95
        .series
        .attempt_errors
        .iter()
        .map(|&v| u64::from(v))
        .sum();
    assert!(lost > 10 * errors, "{lost} lost, {errors} errors");
}
