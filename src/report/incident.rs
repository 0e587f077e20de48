//! What an incident did to a strategy: its success rate and p99 during the
//! incident, and how long the strategy took to recover after it ended.
//!
//! **Recovery time**: the time from the incident's end until the success
//! rate over a sliding [`WINDOW`] is back within [`TOLERANCE`] of the
//! pre-incident level *and stays there for [`HOLD`]*, counting only windows
//! with at least [`MIN_REQUESTS`] requests. If that never happens before the
//! series ends, the strategy "did not recover": that is how a metastable
//! retry storm shows, the trigger gone and the failure still there. An
//! incident that had not ended when arrivals stopped is neither: there was
//! no traffic after it to recover with, so it reads "had not ended by the
//! end of the run" ([`Recovery::NotEnded`]). The pre-incident level is the
//! success rate over the [`BEFORE`] before the incident started (after
//! warm-up).
//!
//! Requests are counted when they finish, so requests that arrived during
//! the incident and failed at their deadline after it count against the
//! recovery: the user sees them fail then.

use serde::Serialize;

use super::hist::LatencySummary;
use crate::units::{Nanos, MINUTES, SECS};

/// Sliding window of the success rate.
pub const WINDOW: Nanos = 10 * SECS;
/// How long the success rate must stay recovered.
pub const HOLD: Nanos = 30 * SECS;
/// How far below the pre-incident level still counts as recovered (1 point).
pub const TOLERANCE: f64 = 0.01;
/// Fewest requests in a window for it to count as recovered.
pub const MIN_REQUESTS: u64 = 10;
/// How long before the incident the pre-incident level is measured.
pub const BEFORE: Nanos = 5 * MINUTES;

/// The time axis of the per-bucket counts.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    /// Time of bucket 0's start.
    pub start: Nanos,
    /// Bucket width.
    pub width: Nanos,
}

/// How a strategy came out of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Back to the level before, and stayed there ([`IncidentReport::recovery_ns`]).
    Recovered,
    /// The incident ended but the success rate never came back before the
    /// series ended: a metastable failure.
    DidNotRecover,
    /// The incident still ran when arrivals stopped: nothing to recover with.
    NotEnded,
    /// Too few requests before the incident to know the level to return to.
    NoLevelBefore,
}

/// One incident, for one strategy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentReport {
    /// The incident's name.
    pub name: String,
    /// Requests that finished during the incident.
    pub requests: u64,
    /// Their success rate (`null` if none finished).
    pub success_rate: Option<f64>,
    /// Latencies of the requests that finished during it (all requests,
    /// failures at the time they gave up).
    pub latency: LatencySummary,
    /// Success rate before the incident (`null` without enough requests
    /// before it: then no recovery time is given).
    pub before_success_rate: Option<f64>,
    /// Whether the strategy recovered before the series ended.
    pub recovered: bool,
    /// Recovered, did not recover, the incident had not ended by the end
    /// of the run, or no level before it to recover to.
    pub recovery: Recovery,
    /// Time from the incident's end to recovery, in nanoseconds (`null` if
    /// it did not recover or there is no pre-incident level).
    pub recovery_ns: Option<u64>,
}

fn bucket(axis: Axis, t: Nanos, n: usize) -> usize {
    ((t.saturating_sub(axis.start) / axis.width.max(1)) as usize).min(n)
}

fn sum(v: &[u32], from: usize, to: usize) -> u64 {
    v[from.min(to)..to].iter().map(|&x| u64::from(x)).sum()
}

/// Figures of one incident from per-bucket successes and totals (requests
/// by the time they finished); arrivals stop at `run_end`.
pub fn figures(
    name: &str,
    (start, end): (Nanos, Nanos),
    run_end: Nanos,
    ok: &[u32],
    total: &[u32],
    axis: Axis,
    latency: LatencySummary,
) -> IncidentReport {
    let n = total.len();
    let (bs, be) = (bucket(axis, start, n), bucket(axis, end, n));
    let rate = |from: usize, to: usize| -> Option<f64> {
        let t = sum(total, from, to);
        (t > 0).then(|| sum(ok, from, to) as f64 / t as f64)
    };
    let during_total = sum(total, bs, be);
    let before_from = bucket(axis, start.saturating_sub(BEFORE), n);
    let before = (sum(total, before_from, bs) >= MIN_REQUESTS)
        .then(|| rate(before_from, bs))
        .flatten();
    let k = (WINDOW.div_ceil(axis.width.max(1)) as usize).max(1);
    let hold = (HOLD.div_ceil(axis.width.max(1)) as usize).max(1);
    // Window ending at bucket boundary `e` (exclusive) is good when it has
    // enough requests and is within TOLERANCE of the level before.
    let good = |e: usize, level: f64| -> bool {
        let from = e.saturating_sub(k);
        sum(total, from, e) >= MIN_REQUESTS
            && rate(from, e).is_some_and(|r| r >= level - TOLERANCE - 1e-12)
    };
    let ended = end < run_end;
    let recovery = before.filter(|_| ended).and_then(|level| {
        // The first window end at or after the incident's end from which
        // every window for HOLD is good.
        let first = bucket(axis, end, n).max(1);
        let mut run = 0usize;
        for e in first..=n {
            if good(e, level) {
                run += 1;
                if run > hold {
                    let at = e - hold;
                    let t = axis.start + at as u64 * axis.width;
                    return Some(t.saturating_sub(end));
                }
            } else {
                run = 0;
            }
        }
        None
    });
    let round = |x: f64| (x * 1e6).round() / 1e6;
    IncidentReport {
        name: name.to_owned(),
        requests: during_total,
        success_rate: rate(bs, be).map(round),
        latency,
        before_success_rate: before.map(round),
        recovered: recovery.is_some(),
        recovery: match (recovery, before) {
            (Some(_), _) => Recovery::Recovered,
            (None, _) if !ended => Recovery::NotEnded,
            (None, Some(_)) => Recovery::DidNotRecover,
            (None, None) => Recovery::NoLevelBefore,
        },
        recovery_ns: recovery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis() -> Axis {
        Axis {
            start: 0,
            width: SECS,
        }
    }

    #[test]
    fn recovery_is_the_start_of_a_good_stretch_that_lasts() {
        // 20 requests a second, all fine, except 100..160 s (the incident,
        // 0 ok) and a relapse at 175..180 s; from 180 s all is well.
        let total = vec![20u32; 400];
        let ok: Vec<u32> = (0..400)
            .map(|i| match i {
                100..160 | 175..180 => 0,
                _ => 20,
            })
            .collect();
        let r = figures(
            "cut",
            (100 * SECS, 160 * SECS),
            400 * SECS,
            &ok,
            &total,
            axis(),
            LatencySummary::default(),
        );
        assert_eq!(r.requests, 1200);
        assert_eq!(r.success_rate, Some(0.0));
        assert_eq!(r.before_success_rate, Some(1.0));
        assert!(r.recovered);
        assert_eq!(r.recovery, Recovery::Recovered);
        // Windows of 10 s are clean from 170 to 175 (not for 30 s), then
        // again from the window ending at 190 s on: recovery at 190 s, 30 s
        // after the end.
        assert_eq!(r.recovery_ns, Some(30 * SECS));
    }

    #[test]
    fn a_storm_that_outlives_its_trigger_did_not_recover() {
        let total = vec![20u32; 400];
        let ok: Vec<u32> = (0..400).map(|i| if i < 100 { 20 } else { 8 }).collect();
        let r = figures(
            "cut",
            (100 * SECS, 160 * SECS),
            400 * SECS,
            &ok,
            &total,
            axis(),
            LatencySummary::default(),
        );
        assert!(!r.recovered);
        assert_eq!(r.recovery, Recovery::DidNotRecover);
        assert_eq!(r.recovery_ns, None);
        // Too few requests before the incident: no level, no recovery time.
        let sparse = vec![0u32; 400];
        let r = figures(
            "cut",
            (100 * SECS, 160 * SECS),
            400 * SECS,
            &sparse,
            &sparse,
            axis(),
            LatencySummary::default(),
        );
        assert_eq!(
            (r.before_success_rate, r.recovered, r.success_rate),
            (None, false, None)
        );
        assert_eq!(r.recovery, Recovery::NoLevelBefore);
    }

    #[test]
    fn an_incident_still_running_when_arrivals_stop_had_not_ended() {
        // All fine before 100 s, nothing succeeds from then on; the incident
        // runs from 100 s to 500 s, arrivals stop at 300 s and the series
        // (with its drain) at 400 s.
        let total = vec![20u32; 400];
        let ok: Vec<u32> = (0..400).map(|i| if i < 100 { 20 } else { 0 }).collect();
        for end in [300 * SECS, 500 * SECS] {
            let r = figures(
                "to the end",
                (100 * SECS, end),
                300 * SECS,
                &ok,
                &total,
                axis(),
                LatencySummary::default(),
            );
            assert_eq!(r.before_success_rate, Some(1.0));
            assert_eq!(r.recovery, Recovery::NotEnded, "end {end}");
            assert!(!r.recovered);
            assert_eq!(r.recovery_ns, None);
        }
        // The same incident ending before arrivals stop did not recover.
        let r = figures(
            "to the end",
            (100 * SECS, 200 * SECS),
            300 * SECS,
            &ok,
            &total,
            axis(),
            LatencySummary::default(),
        );
        assert_eq!(r.recovery, Recovery::DidNotRecover);
    }
}
