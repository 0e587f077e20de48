//! The figures of one strategy, gathered while a run goes on. Only
//! counters, histograms and fixed-size time series: memory does not grow with
//! the length of the run.

use std::collections::BTreeMap;

use crate::policy::cost_guard::Alert;
use crate::policy::{CancelReason, CostLedger, FailReason, ModelId, RequestResult};
use crate::units::{NanoUsd, Nanos, MICROS, SECS};

use super::hist::LatencyHist;
use super::json::{
    AlertReport, Costs, Latencies, ModelReport, Series, StrategyReport, TenantReport, Tokens,
    ValidationReport,
};
use super::slo::{self, SloConfig, SloReport};

/// How an attempt ended, for per-model counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// An answer the client accepted or rejected on content.
    Answered,
    /// 429.
    RateLimited,
    /// 503/529.
    Overloaded,
    /// Other HTTP errors.
    Error,
    /// Reset or broken stream.
    Broken,
    /// Cancelled by the client (timeout, deadline).
    Cancelled,
    /// Cancelled by the client because the other attempt of its hedged
    /// request answered first: a deliberate cancel, not a failure.
    HedgeLost,
}

impl AttemptEnd {
    /// Whether the attempt counts as an error for the error-rate objective.
    pub fn is_error(self) -> bool {
        !matches!(self, Self::Answered | Self::HedgeLost)
    }

    /// Whether the attempt counts at all for the error-rate objective: a
    /// hedge loser was stopped before it had an outcome, so it is neither
    /// an error nor a success (as for a half-open breaker).
    pub fn has_outcome(self) -> bool {
        self != Self::HedgeLost
    }

    /// How an attempt the client cancelled for `reason` ended.
    pub fn cancelled(reason: CancelReason) -> Self {
        match reason {
            CancelReason::HedgeLost => Self::HedgeLost,
            _ => Self::Cancelled,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct ModelCounts {
    attempts: u64,
    answered: u64,
    rate_limited: u64,
    overloaded: u64,
    errors: u64,
    broken: u64,
    cancelled: u64,
    hedge_lost: u64,
}

/// Width and count of time-series buckets: width max(1 s, (duration + drain)
/// / 2000) in whole seconds, covering the run and its drain: at most about
/// 2,000 buckets whatever the deadlines.
pub fn series_shape(duration: Nanos, drain: Nanos) -> (Nanos, usize) {
    let width = (duration.saturating_add(drain) / 2000).max(SECS);
    let width = width.div_ceil(SECS) * SECS;
    let n = (duration + drain).div_ceil(width) as usize;
    (width, n.max(1))
}

/// What the core counts for a strategy, summed over its replicas.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreCounters {
    /// Retries the retry budget refused.
    pub retries_denied: u64,
    /// Circuit breaker openings.
    pub breaker_opens: u64,
    /// Attempts rejected locally by the adaptive throttle.
    pub throttled_locally: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Requests answered by their hedge.
    pub hedge_wins: u64,
    /// Requests the cost guard sent to the cheapest model.
    pub cost_downgraded: u64,
    /// Attempts the client's rate limit delayed.
    pub paced: u64,
    /// Attempts the client's rate or concurrency limit shed.
    pub shed_locally: u64,
    /// Requests that waited for a concurrency place.
    pub queued_locally: u64,
    /// Keys disabled after a 401 or 403.
    pub keys_disabled: u64,
    /// Keys rested after a 429.
    pub key_rests: u64,
    /// Answers to JSON requests by body kind, and safe defaults.
    pub validation: crate::policy::validation::ValidationCounts,
}

/// A request picked as an exemplar.
#[derive(Clone, Debug)]
pub struct Pick {
    /// Request id.
    pub request: u64,
    /// Why it was picked.
    pub why: String,
    /// Arrival.
    pub arrived: Nanos,
    /// End to end, ns.
    pub latency: Nanos,
    /// `success` or the failure reason.
    pub result: String,
}

/// Slowest requests kept as exemplars.
pub const SLOWEST: usize = 3;
/// Failed requests kept as exemplars (the first of each reason).
pub const FAILED: usize = 4;

/// An incident's window, and the latencies of requests that finished in it.
struct IncidentWindow {
    name: String,
    start: Nanos,
    end: Nanos,
    latency: LatencyHist,
}

/// Most incidents given figures of their own (each keeps a histogram).
pub const MAX_INCIDENTS: usize = 32;

/// Figures of one strategy.
pub struct Collector {
    /// The slowest requests: (latency, request, arrived, result), slowest first.
    slowest: Vec<(Nanos, u64, Nanos, RequestResult)>,
    /// The first failed request of each reason: (request, arrived, latency).
    first_failed: [Option<(u64, Nanos, Nanos)>; FailReason::ALL.len()],
    incidents: Vec<IncidentWindow>,
    slo: Option<SloConfig>,
    /// Virtual time of the series' first bucket (the end of warm-up).
    start: Nanos,
    /// Length of the measured arrival window.
    measured: Nanos,
    /// Requests that met every objective at once (the goodput numerator).
    fast: u64,
    requests: u64,
    successes: u64,
    failures: [u64; FailReason::ALL.len()],
    attempts: u64,
    success: LatencyHist,
    give_up: LatencyHist,
    ttft: LatencyHist,
    tpot: LatencyHist,
    models: Vec<ModelCounts>,
    width: Nanos,
    /// The last bucket looked up and the times it covers, `[lo, hi)`:
    /// events come nearly in time order, so most lookups need no division.
    last_bucket: (Nanos, Nanos, usize),
    offered: Vec<u32>,
    ok: Vec<u32>,
    failed: Vec<[u32; FailReason::ALL.len()]>,
    alerts: Vec<AlertReport>,
    /// Per bucket: requests that met the latency objective (with `[slo]`).
    good: Vec<u32>,
    /// Per bucket: attempts that ended in an error.
    attempt_errors: Vec<u32>,
    /// Per bucket: attempts that ended.
    attempt_ends: Vec<u32>,
    /// Per bucket: cost of the requests that finished, nano-USD.
    cost: Vec<u64>,
}

impl Collector {
    /// A collector for `models` models, latencies up to `max_latency`, and a
    /// run whose measured part goes from `warmup` to `duration`, with up to
    /// `drain` after it. The time series starts at `warmup`.
    pub fn new(
        models: usize,
        max_latency: Nanos,
        (warmup, duration): (Nanos, Nanos),
        drain: Nanos,
        slo: Option<SloConfig>,
        incidents: &[(String, Nanos, Nanos)],
    ) -> Self {
        let max_us = (max_latency / MICROS).max(1_000);
        let incidents = incidents
            .iter()
            .take(MAX_INCIDENTS)
            .map(|(name, start, end)| IncidentWindow {
                name: name.clone(),
                start: *start,
                end: *end,
                latency: LatencyHist::new(max_us),
            })
            .collect();
        let measured = duration.saturating_sub(warmup);
        let (width, n) = series_shape(measured, drain);
        Self {
            slowest: Vec::with_capacity(SLOWEST + 1),
            first_failed: [None; FailReason::ALL.len()],
            incidents,
            slo,
            start: warmup,
            measured,
            fast: 0,
            good: vec![0; n],
            attempt_errors: vec![0; n],
            attempt_ends: vec![0; n],
            cost: vec![0; n],
            requests: 0,
            successes: 0,
            failures: [0; FailReason::ALL.len()],
            attempts: 0,
            success: LatencyHist::new(max_us),
            give_up: LatencyHist::new(max_us),
            ttft: LatencyHist::new(max_us),
            tpot: LatencyHist::new(max_us),
            models: vec![ModelCounts::default(); models],
            width,
            last_bucket: (0, 0, 0),
            offered: vec![0; n],
            ok: vec![0; n],
            failed: vec![[0; FailReason::ALL.len()]; n],
            alerts: Vec::new(),
        }
    }

    /// A replica raised an alert. Each kind fires at most once per
    /// threshold or limit window and replica, so the list stays short.
    pub fn on_alert(&mut self, at: Nanos, replica: u32, alert: Alert) {
        self.alerts.push(AlertReport {
            at_ns: at,
            replica,
            kind: alert.kind.name().to_owned(),
            amount: Costs::from(alert.amount),
            spent: Costs::from(alert.spent),
        });
    }

    fn bucket(&mut self, t: Nanos) -> usize {
        let (lo, hi, b) = self.last_bucket;
        if lo <= t && t < hi {
            return b;
        }
        let last = self.offered.len() - 1;
        let b = ((t.saturating_sub(self.start) / self.width) as usize).min(last);
        // The times that give `b`: before the start counts as the first
        // bucket, past the end as the last.
        let lo = if b == 0 {
            0
        } else {
            self.start + b as u64 * self.width
        };
        let hi = if b == last {
            Nanos::MAX
        } else {
            self.start + (b as u64 + 1) * self.width
        };
        self.last_bucket = (lo, hi, b);
        b
    }

    /// An attempt is sent at `now` (measured requests only).
    #[inline]
    pub fn on_send(&mut self, now: Nanos, model: ModelId) {
        self.attempts += 1;
        self.models[usize::from(model)].attempts += 1;
        let b = self.bucket(now);
        self.offered[b] += 1;
    }

    /// A whole answer streamed: its time per output token after the first
    /// (`(end - first token) / (tokens - 1)`), for answers of two tokens or more.
    #[inline]
    pub fn on_answer(&mut self, first_token: Option<Nanos>, end: Nanos, output_tokens: u32) {
        if let Some(ft) = first_token {
            if output_tokens > 1 && end > ft {
                self.tpot.record((end - ft) / u64::from(output_tokens - 1));
            }
        }
    }

    /// An attempt ended at `now`.
    #[inline]
    pub fn on_attempt_end(&mut self, now: Nanos, model: ModelId, end: AttemptEnd) {
        let b = self.bucket(now);
        if end.has_outcome() {
            self.attempt_ends[b] += 1;
        }
        if end.is_error() {
            self.attempt_errors[b] += 1;
        }
        let m = &mut self.models[usize::from(model)];
        match end {
            AttemptEnd::Answered => m.answered += 1,
            AttemptEnd::RateLimited => m.rate_limited += 1,
            AttemptEnd::Overloaded => m.overloaded += 1,
            AttemptEnd::Error => m.errors += 1,
            AttemptEnd::Broken => m.broken += 1,
            AttemptEnd::Cancelled => m.cancelled += 1,
            AttemptEnd::HedgeLost => m.hedge_lost += 1,
        }
    }

    /// A measured request finished at `now`; true if it became an exemplar
    /// candidate (see [`Self::is_candidate`]).
    #[inline]
    pub fn on_finish(
        &mut self,
        now: Nanos,
        (request, arrived): (u64, Nanos),
        result: RequestResult,
        first_token: Option<Nanos>,
        cost: NanoUsd,
    ) -> bool {
        self.requests += 1;
        let latency = now - arrived;
        let mut picked = false;
        // Bounded exemplar picks: slowest first, ties by request id.
        if self.slowest.len() < SLOWEST
            || self.slowest.last().is_some_and(|&(l, r, _, _)| {
                (latency, std::cmp::Reverse(request)) > (l, std::cmp::Reverse(r))
            })
        {
            let at = self.slowest.partition_point(|&(l, r, _, _)| {
                (l, std::cmp::Reverse(r)) > (latency, std::cmp::Reverse(request))
            });
            self.slowest.insert(at, (latency, request, arrived, result));
            self.slowest.truncate(SLOWEST);
            picked = true;
        }
        if let RequestResult::Failed(reason) = result {
            let slot = &mut self.first_failed[reason.index()];
            if slot.is_none() {
                *slot = Some((request, arrived, latency));
                picked = true;
            }
        }
        for w in &mut self.incidents {
            if (w.start..w.end).contains(&now) {
                w.latency.record(latency);
            }
        }
        let b = self.bucket(now);
        self.cost[b] = self.cost[b].saturating_add(cost.0);
        match result {
            RequestResult::Success => {
                self.successes += 1;
                self.success.record(latency);
                let ttft = first_token.map(|ft| ft.saturating_sub(arrived));
                if let Some(t) = ttft {
                    self.ttft.record(t);
                }
                self.ok[b] += 1;
                if self.slo.as_ref().is_some_and(|s| s.is_fast(latency, ttft)) {
                    self.fast += 1;
                    self.good[b] += 1;
                }
            }
            RequestResult::Failed(r) => {
                self.failures[r.index()] += 1;
                self.give_up.record(latency);
                self.failed[b][r.index()] += 1;
            }
        }
        picked
    }

    /// Whether `request` is, for now, among the exemplar candidates (the
    /// slowest so far, or the first failure of its reason).
    pub fn is_candidate(&self, request: u64) -> bool {
        self.slowest.iter().any(|s| s.1 == request)
            || self.first_failed.iter().flatten().any(|f| f.0 == request)
    }

    /// The strategy's report section.
    pub fn into_report(
        self,
        name: &str,
        clients: u32,
        model_names: &[String],
        ledger: &CostLedger,
        counters: CoreCounters,
        tenants: Vec<TenantReport>,
    ) -> StrategyReport {
        let cost = ledger.measured_total();
        let ratio = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                round6(a as f64 / b as f64)
            }
        };
        let per_1k = if self.successes == 0 {
            None
        } else {
            Some(NanoUsd(
                (u128::from(cost.0) * 1000 / u128::from(self.successes)) as u64,
            ))
        };
        let mut failures = BTreeMap::new();
        for r in FailReason::ALL {
            failures.insert(r.name().to_owned(), self.failures[r.index()]);
        }
        let mut by_reason = BTreeMap::new();
        for r in FailReason::ALL {
            let col: Vec<u32> = self.failed.iter().map(|row| row[r.index()]).collect();
            by_reason.insert(r.name().to_owned(), col);
        }
        let slo = self.slo_report();
        let incidents = self.incident_reports();
        // Every measured request is a success or a failure, so "all" is
        // their sum: bucket counts add exactly (same bounds), and min and
        // max are those of the two, so one record per request is saved.
        let mut all = self.success.clone();
        all.merge(&self.give_up);
        let latency_curve = curve(&all);
        let models = self
            .models
            .iter()
            .enumerate()
            .filter(|(i, m)| m.attempts > 0 || ledger.measured[*i].cost.0 > 0)
            .map(|(i, m)| {
                let c = ledger.measured[i];
                ModelReport {
                    model: model_names[i].clone(),
                    attempts: m.attempts,
                    answered: m.answered,
                    rate_limited: m.rate_limited,
                    overloaded: m.overloaded,
                    errors: m.errors,
                    broken: m.broken,
                    cancelled: m.cancelled,
                    hedge_lost: m.hedge_lost,
                    tokens: Tokens {
                        input: c.input_tokens,
                        output: c.output_tokens,
                    },
                    cost: Costs::from(c.cost),
                }
            })
            .collect();
        let tokens = ledger
            .measured
            .iter()
            .fold(Tokens::default(), |t, m| Tokens {
                input: t.input + m.input_tokens,
                output: t.output + m.output_tokens,
            });
        StrategyReport {
            name: name.to_owned(),
            clients,
            requests: self.requests,
            successes: self.successes,
            success_rate: ratio(self.successes, self.requests),
            failures,
            attempts: self.attempts,
            amplification: ratio(self.attempts, self.requests),
            retries_denied: counters.retries_denied,
            breaker_opens: counters.breaker_opens,
            throttled_locally: counters.throttled_locally,
            hedges: counters.hedges,
            hedge_wins: counters.hedge_wins,
            cost_downgraded: counters.cost_downgraded,
            paced: counters.paced,
            shed_locally: counters.shed_locally,
            queued_locally: counters.queued_locally,
            keys_disabled: counters.keys_disabled,
            key_rests: counters.key_rests,
            keys: Vec::new(),
            layers: Vec::new(),
            validation: ValidationReport {
                valid: counters.validation.valid,
                fenced: counters.validation.fenced,
                missing_fields: counters.validation.missing_fields,
                truncated: counters.validation.truncated,
                plain_text: counters.validation.plain_text,
                safe_defaults: counters.validation.safe_defaults,
            },
            alerts: self.alerts,
            cost: Costs::from(cost),
            cost_per_1k_successes: per_1k.map(Costs::from),
            tokens,
            latency: Latencies {
                success: self.success.summary(),
                give_up: self.give_up.summary(),
                all: all.summary(),
                ttft: self.ttft.summary(),
                tpot: self.tpot.summary(),
            },
            models,
            slo,
            exemplars: Vec::new(),
            incidents,
            latency_curve,
            series: Series {
                start_ns: self.start,
                bucket_ns: self.width,
                offered_attempts: self.offered,
                successes: self.ok,
                failures: by_reason,
                attempt_errors: self.attempt_errors,
                cost_nano_usd: self.cost,
                slo_good: self.slo.as_ref().map(|_| self.good),
            },
            tenants,
        }
    }
}

impl Collector {
    /// The requests picked as exemplars: the slowest, then the first
    /// failure of each reason (in time order, up to [`FAILED`]).
    pub fn exemplar_picks(&self) -> Vec<Pick> {
        let name = |r: RequestResult| match r {
            RequestResult::Success => "success".to_owned(),
            RequestResult::Failed(f) => f.name().to_owned(),
        };
        let mut out: Vec<Pick> = self
            .slowest
            .iter()
            .map(|&(latency, request, arrived, result)| Pick {
                request,
                why: "slowest".into(),
                arrived,
                latency,
                result: name(result),
            })
            .collect();
        let mut failed: Vec<(u64, Nanos, Nanos, FailReason)> = FailReason::ALL
            .iter()
            .filter_map(|&r| self.first_failed[r.index()].map(|(q, a, l)| (q, a, l, r)))
            .collect();
        failed.sort_by_key(|&(q, a, _, _)| (a, q));
        for (request, arrived, latency, reason) in failed.into_iter().take(FAILED) {
            if out.iter().any(|p| p.request == request) {
                continue;
            }
            out.push(Pick {
                request,
                why: format!("failed: {}", reason.name()),
                arrived,
                latency,
                result: reason.name().to_owned(),
            });
        }
        out
    }

    /// Requests that finished, per bucket.
    fn requests_per_bucket(&self) -> Vec<u32> {
        self.ok
            .iter()
            .zip(&self.failed)
            .map(|(ok, f)| ok + f.iter().sum::<u32>())
            .collect()
    }

    fn incident_reports(&self) -> Vec<super::incident::IncidentReport> {
        let axis = super::incident::Axis {
            start: self.start,
            width: self.width,
        };
        let total = self.requests_per_bucket();
        self.incidents
            .iter()
            .map(|w| {
                super::incident::figures(
                    &w.name,
                    (w.start, w.end),
                    self.start + self.measured,
                    &self.ok,
                    &total,
                    axis,
                    w.latency.summary(),
                )
            })
            .collect()
    }

    fn slo_report(&self) -> Option<SloReport> {
        let cfg = self.slo.as_ref()?;
        let axis = slo::Axis {
            start: self.start,
            width: self.width,
            measured: self.measured,
        };
        let requests = self.requests_per_bucket();
        let failed: Vec<u32> = self.failed.iter().map(|f| f.iter().sum()).collect();
        let slow: Vec<u32> = requests
            .iter()
            .zip(&self.good)
            .map(|(r, g)| r - g)
            .collect();
        let objectives = vec![
            slo::objective(
                "availability",
                cfg.availability,
                &slo::Events {
                    total: &requests,
                    bad: &failed,
                },
                axis,
                cfg,
            ),
            slo::objective(
                "latency",
                cfg.latency_quantile,
                &slo::Events {
                    total: &requests,
                    bad: &slow,
                },
                axis,
                cfg,
            ),
            slo::objective(
                "error_rate",
                1.0 - cfg.error_rate,
                &slo::Events {
                    total: &self.attempt_ends,
                    bad: &self.attempt_errors,
                },
                axis,
                cfg,
            ),
        ];
        Some(SloReport {
            met: objectives.iter().all(|o| o.met),
            goodput_rps: slo::per_second(self.fast, self.measured),
            latency_at_quantile_us: slo::quantile_with_misses(
                &self.success,
                self.requests,
                cfg.latency_quantile,
            ),
            objectives,
        })
    }
}

/// Points of the percentile curve: quantiles `1 - 10^(-k/4)` (so evenly
/// spaced on a log "1/(1-q)" axis) up to what the count supports, and the
/// maximum.
fn curve(h: &LatencyHist) -> Vec<super::json::CurvePoint> {
    let n = h.len();
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    for k in 0..=24 {
        let inv = 10f64.powf(f64::from(k) / 4.0);
        if inv > n as f64 {
            break;
        }
        let q = 1.0 - 1.0 / inv;
        out.push(super::json::CurvePoint {
            q: round6(q),
            us: h.quantile_us(q),
        });
    }
    out.push(super::json::CurvePoint {
        q: 1.0,
        us: h.quantile_us(1.0),
    });
    out
}

/// Rounds to six decimals, so JSON carries stable, short numbers.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The remembered bucket gives what the division gives, in any
        /// order of lookups, before the start and past the end included.
        #[test]
        fn cached_bucket_equals_the_division(
            warmup_s in 0u64..50,
            duration_s in 1u64..5000,
            times in proptest::collection::vec(0u64..(6000 * SECS), 1..200),
        ) {
            let warmup = warmup_s * SECS;
            let duration = warmup + duration_s * SECS;
            let mut c = Collector::new(1, 10 * SECS, (warmup, duration), 30 * SECS, None, &[]);
            for t in times {
                let want = ((t.saturating_sub(c.start) / c.width) as usize).min(c.offered.len() - 1);
                prop_assert_eq!(c.bucket(t), want);
                // The same time again and its neighbours, served from the cache.
                prop_assert_eq!(c.bucket(t), want);
                for u in [t.saturating_sub(1), t + 1] {
                    let want = ((u.saturating_sub(c.start) / c.width) as usize).min(c.offered.len() - 1);
                    prop_assert_eq!(c.bucket(u), want);
                }
            }
        }
    }
}
