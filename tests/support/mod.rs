//! Shared helpers for integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use stormglass::report::{Report, StrategyReport};
use stormglass::scenario::{self, Scenario};

/// A bundled scenario file.
pub(crate) fn bundled(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Loads a bundled scenario.
pub(crate) fn load(name: &str) -> Scenario {
    scenario::load(&bundled(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a scenario on two threads.
pub(crate) fn run(sc: &Scenario) -> Report {
    stormglass::sim::run(sc, 2)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// A strategy's section by name.
pub(crate) fn strategy<'a>(r: &'a Report, name: &str) -> &'a StrategyReport {
    r.strategies
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no strategy {name}"))
}

/// Sum of a series over [from_s, to_s) seconds of virtual time (the series
/// starts at `series.start_ns`, the end of warm-up).
pub(crate) fn window(s: &StrategyReport, series: &[u32], from_s: u64, to_s: u64) -> u64 {
    let w = s.series.bucket_ns / 1_000_000_000;
    let start = s.series.start_ns / 1_000_000_000;
    series
        .iter()
        .enumerate()
        .filter(|(i, _)| start + (*i as u64) * w >= from_s && start + (*i as u64) * w < to_s)
        .map(|(_, &v)| u64::from(v))
        .sum()
}

/// Failed requests in [from_s, to_s), all reasons.
pub(crate) fn failures_in(s: &StrategyReport, from_s: u64, to_s: u64) -> u64 {
    s.series
        .failures
        .values()
        .map(|v| window(s, v, from_s, to_s))
        .sum()
}
