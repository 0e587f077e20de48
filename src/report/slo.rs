//! Service level objectives: is a strategy good enough, how much of its
//! error budget did the run spend, and when would the standard multi-window
//! burn-rate alerts have paged?
//!
//! Three objectives, each a share of good events that must reach a target:
//!
//! - **availability**: a request is good if it succeeded;
//! - **latency**: a request is good if it succeeded within `latency` (and,
//!   if set, got its first token within `ttft`). Failures count as misses:
//!   unlike the all-requests p99, a strategy cannot look fast by failing fast;
//! - **error rate**: an attempt is good if it did not end in an error (an
//!   HTTP error, a reset, a broken stream, or a client-side timeout). This is
//!   what a gateway's error-rate alert sees, and what retries hide from
//!   availability.
//!
//! The error budget of an objective is the share of bad events it allows,
//! `1 - target`, over the SLO `window`. The burn rate over a span of time is
//! its bad share divided by the budget: 1 spends exactly the budget over the
//! window. The budget a run consumes is its burn rate times its measured
//! length over the window. An alert (Google SRE workbook, chapter 5,
//! "Alerting on SLOs", multiwindow multi-burn-rate) fires while the burn rate
//! over both its long and its short window is at least its threshold;
//! windows are evaluated at each time-series bucket's end, over the buckets
//! that exist so far (a window longer than the run so far covers the run).
//!
//! Everything here works on per-bucket counts, so memory stays flat whatever
//! the run's length.

use serde::Serialize;

use crate::units::{format_duration, Nanos, HOURS, MINUTES, SECS};

/// A multi-window burn-rate alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BurnAlert {
    /// Name in the report.
    pub name: String,
    /// Long window in nanoseconds.
    pub long_ns: Nanos,
    /// Short window in nanoseconds.
    pub short_ns: Nanos,
    /// Fires at this burn rate or above over both windows.
    pub burn_rate: f64,
}

impl BurnAlert {
    /// An alert named after its windows and rate ("1h/5m at 14.4x").
    pub fn new(long: Nanos, short: Nanos, burn_rate: f64) -> Self {
        Self {
            name: format!(
                "{}/{} at {burn_rate}x",
                format_duration(long),
                format_duration(short)
            ),
            long_ns: long,
            short_ns: short,
            burn_rate,
        }
    }

    /// The SRE workbook's paging pair: 2% of a 30-day budget in an hour,
    /// 5% in six hours.
    pub fn workbook_defaults() -> Vec<Self> {
        vec![
            Self::new(HOURS, 5 * MINUTES, 14.4),
            Self::new(6 * HOURS, 30 * MINUTES, 6.0),
        ]
    }
}

/// The scenario's `[slo]`, resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloConfig {
    /// Share of requests that must succeed.
    pub availability: f64,
    /// Latency target in nanoseconds.
    pub latency_ns: Nanos,
    /// Share of requests that must meet the latency target.
    pub latency_quantile: f64,
    /// First-token target in nanoseconds, if any.
    pub ttft_ns: Option<Nanos>,
    /// Share of attempts that may end in an error.
    pub error_rate: f64,
    /// SLO window in nanoseconds.
    pub window_ns: Nanos,
    /// Burn-rate alerts.
    pub alerts: Vec<BurnAlert>,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self {
            availability: 0.999,
            latency_ns: 2 * SECS,
            latency_quantile: 0.99,
            ttft_ns: None,
            error_rate: 0.001,
            window_ns: 30 * 24 * HOURS,
            alerts: BurnAlert::workbook_defaults(),
        }
    }
}

impl SloConfig {
    /// Whether a successful request of this latency and first-token time
    /// meets the latency objective (and so counts towards goodput).
    #[inline]
    pub fn is_fast(&self, latency: Nanos, ttft: Option<Nanos>) -> bool {
        latency <= self.latency_ns
            && match (self.ttft_ns, ttft) {
                (None, _) => true,
                (Some(limit), Some(t)) => t <= limit,
                (Some(_), None) => false,
            }
    }
}

/// Most firing intervals kept per alert (the count of all is kept too).
pub const MAX_FIRINGS: usize = 64;

/// One span of virtual time during which an alert fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Firing {
    /// When it started to fire (end of the first bucket over the threshold).
    pub at_ns: Nanos,
    /// When it stopped (end of the first bucket under it), or the end of the series.
    pub until_ns: Nanos,
}

/// What one alert did in the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertReport {
    /// The alert's name.
    pub name: String,
    /// How many times it started to fire.
    pub times_fired: u64,
    /// The first [`MAX_FIRINGS`] firings.
    pub firings: Vec<Firing>,
}

/// One objective's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectiveReport {
    /// `availability`, `latency` or `error_rate`.
    pub name: &'static str,
    /// Share of good events required.
    pub target: f64,
    /// Share of good events in the run.
    pub actual: f64,
    /// Good events.
    pub good: u64,
    /// All events.
    pub total: u64,
    /// Whether `actual` reached `target`.
    pub met: bool,
    /// Share of the window's error budget this run spent (1 = all of it):
    /// the run's burn rate times its measured length over the window.
    pub budget_consumed: f64,
    /// The highest burn rate over any span of the shortest alert window.
    pub worst_burn_rate: f64,
    /// The alerts, in configuration order.
    pub alerts: Vec<AlertReport>,
}

/// A strategy's SLO section.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloReport {
    /// Every objective met.
    pub met: bool,
    /// Requests per second that met every objective at once: they succeeded
    /// within the latency (and first-token) target.
    pub goodput_rps: f64,
    /// The latency at the objective's quantile counting failures as misses
    /// (infinitely slow), in microseconds; `null` when more requests failed
    /// than the quantile allows, so no latency would meet it.
    pub latency_at_quantile_us: Option<u64>,
    /// Availability, latency, error rate.
    pub objectives: Vec<ObjectiveReport>,
}

/// Per-bucket counts of one objective.
pub struct Events<'a> {
    /// All events per bucket.
    pub total: &'a [u32],
    /// Bad events per bucket.
    pub bad: &'a [u32],
}

/// The time axis of a series.
#[derive(Clone, Copy, Debug)]
pub struct Axis {
    /// Virtual time of bucket 0's start.
    pub start: Nanos,
    /// Bucket width.
    pub width: Nanos,
    /// Length of the measured run (arrivals after warm-up), for the budget.
    pub measured: Nanos,
}

fn prefix(v: &[u32]) -> Vec<u64> {
    let mut out = Vec::with_capacity(v.len() + 1);
    let mut acc = 0u64;
    out.push(0);
    for &x in v {
        acc += u64::from(x);
        out.push(acc);
    }
    out
}

fn buckets(window: Nanos, width: Nanos) -> usize {
    (window.div_ceil(width.max(1)) as usize).max(1)
}

/// Evaluates one objective.
pub fn objective(
    name: &'static str,
    target: f64,
    ev: &Events<'_>,
    axis: Axis,
    cfg: &SloConfig,
) -> ObjectiveReport {
    let total_p = prefix(ev.total);
    let bad_p = prefix(ev.bad);
    let n = ev.total.len();
    let total = total_p[n];
    let bad = bad_p[n].min(total);
    let allowed = (1.0 - target).max(1e-12);
    let burn = |from: usize, to: usize| -> Option<f64> {
        let t = total_p[to] - total_p[from];
        if t == 0 {
            return None;
        }
        let b = (bad_p[to] - bad_p[from]).min(t);
        Some(b as f64 / t as f64 / allowed)
    };
    let actual = if total == 0 {
        1.0
    } else {
        (total - bad) as f64 / total as f64
    };
    let run_burn = burn(0, n).unwrap_or(0.0);
    let budget_consumed = run_burn * axis.measured as f64 / cfg.window_ns.max(1) as f64;
    let shortest = cfg
        .alerts
        .iter()
        .map(|a| a.short_ns)
        .min()
        .unwrap_or(5 * MINUTES);
    let k = buckets(shortest, axis.width);
    let worst = (1..=n)
        .filter_map(|end| burn(end.saturating_sub(k), end))
        .fold(0.0f64, f64::max);
    let alerts = cfg
        .alerts
        .iter()
        .map(|a| {
            let (kl, ks) = (
                buckets(a.long_ns, axis.width),
                buckets(a.short_ns, axis.width),
            );
            let mut rep = AlertReport {
                name: a.name.clone(),
                times_fired: 0,
                firings: Vec::new(),
            };
            let mut open: Option<Nanos> = None;
            for end in 1..=n {
                let at = axis.start + end as u64 * axis.width;
                let firing = matches!(
                    (burn(end.saturating_sub(kl), end), burn(end.saturating_sub(ks), end)),
                    (Some(l), Some(s)) if l >= a.burn_rate && s >= a.burn_rate
                );
                match (firing, open) {
                    (true, None) => {
                        open = Some(at);
                        rep.times_fired += 1;
                    }
                    (false, Some(from)) => {
                        if rep.firings.len() < MAX_FIRINGS {
                            rep.firings.push(Firing {
                                at_ns: from,
                                until_ns: at,
                            });
                        }
                        open = None;
                    }
                    _ => {}
                }
            }
            if let Some(from) = open {
                if rep.firings.len() < MAX_FIRINGS {
                    rep.firings.push(Firing {
                        at_ns: from,
                        until_ns: axis.start + n as u64 * axis.width,
                    });
                }
            }
            rep
        })
        .collect();
    ObjectiveReport {
        name,
        target,
        actual: super::collect::round6(actual),
        good: total - bad,
        total,
        met: actual >= target,
        budget_consumed: super::collect::round6(budget_consumed),
        worst_burn_rate: super::collect::round6(worst),
        alerts,
    }
}

/// Requests per second over the measured run.
pub fn per_second(count: u64, measured: Nanos) -> f64 {
    if measured == 0 {
        return 0.0;
    }
    super::collect::round6(count as f64 * SECS as f64 / measured as f64)
}

/// The latency at quantile `q` of all requests when failures count as
/// infinitely slow: the success histogram's quantile `q * total / successes`,
/// or `None` if more than `1 - q` of requests failed. The quantile is
/// nudged down by a millionth so that float rounding cannot push an exactly
/// reachable quantile over 1.
pub fn quantile_with_misses(success: &super::hist::LatencyHist, total: u64, q: f64) -> Option<u64> {
    let ok = success.len();
    if ok == 0 || total == 0 {
        return None;
    }
    let need = q * total as f64;
    if need > ok as f64 + 1e-9 {
        return None;
    }
    let q_ok = (need / ok as f64 - 1e-6).clamp(0.0, 1.0);
    Some(success.quantile_us(q_ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MILLIS;

    fn axis(n: usize) -> Axis {
        Axis {
            start: 0,
            width: SECS,
            measured: n as u64 * SECS,
        }
    }

    #[test]
    fn burn_rate_alert_fires_when_both_windows_burn_and_stops_after() {
        // 1000 requests a second; 2% fail from t=100 s to t=200 s. Budget 0.1%
        // gives a burn rate of 20 during the bad spell.
        let n = 600;
        let total = vec![1000u32; n];
        let bad: Vec<u32> = (0..n)
            .map(|i| if (100..200).contains(&i) { 20 } else { 0 })
            .collect();
        let cfg = SloConfig {
            alerts: vec![BurnAlert::new(60 * SECS, 10 * SECS, 14.4)],
            ..SloConfig::default()
        };
        let r = objective(
            "availability",
            0.999,
            &Events {
                total: &total,
                bad: &bad,
            },
            axis(n),
            &cfg,
        );
        assert!(!r.met);
        assert_eq!(r.total, 600_000);
        assert_eq!(r.good, 600_000 - 2_000);
        // The short window is all bad after 10 s (burn 20); the long one
        // reaches 14.4 after 0.72 * 60 s = 43.2 s, so at the end of second 144.
        let a = &r.alerts[0];
        assert_eq!(a.times_fired, 1);
        assert_eq!(a.firings[0].at_ns, 144 * SECS);
        // After the spell, the short window clears within 10 s... but the
        // long window must stay high too; the short one decides: it drops
        // under 14.4 once fewer than 7.2 of its 10 s are bad: at 203 s.
        assert_eq!(a.firings[0].until_ns, 203 * SECS);
        assert!((r.worst_burn_rate - 20.0).abs() < 1e-9);
        // 2000 bad of 600,000 over 10 minutes of a 30-day window.
        let expected = (2000.0 / 600_000.0 / 0.001) * 600.0 / (30.0 * 86400.0);
        assert!(
            (r.budget_consumed - expected).abs() < 1e-6,
            "{}",
            r.budget_consumed
        );
    }

    #[test]
    fn a_clean_run_meets_its_objective_and_never_alerts() {
        let total = vec![10u32; 100];
        let bad = vec![0u32; 100];
        let r = objective(
            "availability",
            0.999,
            &Events {
                total: &total,
                bad: &bad,
            },
            axis(100),
            &SloConfig::default(),
        );
        assert!(r.met);
        assert_eq!(r.worst_burn_rate, 0.0);
        assert!(r
            .alerts
            .iter()
            .all(|a| a.times_fired == 0 && a.firings.is_empty()));
    }

    #[test]
    fn latency_with_misses_is_none_when_too_many_fail() {
        let mut h = super::super::hist::LatencyHist::new(60_000_000);
        for i in 0..98u64 {
            h.record((i + 1) * MILLIS);
        }
        // 98 successes of 100 requests: 98% cannot meet a p99.
        assert_eq!(quantile_with_misses(&h, 100, 0.99), None);
        // Of 98 requests all successful the p50 is about 49 ms.
        let p50 = quantile_with_misses(&h, 98, 0.5).unwrap_or(0);
        assert!((48_000..=50_000).contains(&p50), "{p50}");
        // With 2 failures in 100, the p90 is the success quantile 90/98.
        let p90 = quantile_with_misses(&h, 100, 0.9).unwrap_or(0);
        assert!((89_000..=91_000).contains(&p90), "{p90}");
    }
}
