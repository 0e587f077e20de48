//! The figures of one strategy, gathered while a run goes on. Only
//! counters, histograms and fixed-size time series: memory does not grow with
//! the length of the run.

use std::collections::BTreeMap;

use crate::policy::cost_guard::Alert;
use crate::policy::{CostLedger, FailReason, ModelId, RequestResult};
use crate::units::{NanoUsd, Nanos, MICROS, SECS};

use super::hist::LatencyHist;
use super::json::{
    AlertReport, Costs, Latencies, ModelReport, Series, StrategyReport, TenantReport, Tokens,
    ValidationReport,
};

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

/// Figures of one strategy.
pub struct Collector {
    requests: u64,
    successes: u64,
    failures: [u64; FailReason::ALL.len()],
    attempts: u64,
    success: LatencyHist,
    give_up: LatencyHist,
    all: LatencyHist,
    ttft: LatencyHist,
    models: Vec<ModelCounts>,
    width: Nanos,
    offered: Vec<u32>,
    ok: Vec<u32>,
    failed: Vec<[u32; FailReason::ALL.len()]>,
    alerts: Vec<AlertReport>,
}

impl Collector {
    /// A collector for `models` models, latencies up to `max_latency`, and a
    /// run of `duration` with up to `drain` after it.
    pub fn new(models: usize, max_latency: Nanos, duration: Nanos, drain: Nanos) -> Self {
        let max_us = (max_latency / MICROS).max(1_000);
        let (width, n) = series_shape(duration, drain);
        Self {
            requests: 0,
            successes: 0,
            failures: [0; FailReason::ALL.len()],
            attempts: 0,
            success: LatencyHist::new(max_us),
            give_up: LatencyHist::new(max_us),
            all: LatencyHist::new(max_us),
            ttft: LatencyHist::new(max_us),
            models: vec![ModelCounts::default(); models],
            width,
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

    fn bucket(&self, t: Nanos) -> usize {
        ((t / self.width) as usize).min(self.offered.len() - 1)
    }

    /// An attempt is sent at `now` (measured requests only).
    #[inline]
    pub fn on_send(&mut self, now: Nanos, model: ModelId) {
        self.attempts += 1;
        self.models[usize::from(model)].attempts += 1;
        let b = self.bucket(now);
        self.offered[b] += 1;
    }

    /// An attempt ended.
    #[inline]
    pub fn on_attempt_end(&mut self, model: ModelId, end: AttemptEnd) {
        let m = &mut self.models[usize::from(model)];
        match end {
            AttemptEnd::Answered => m.answered += 1,
            AttemptEnd::RateLimited => m.rate_limited += 1,
            AttemptEnd::Overloaded => m.overloaded += 1,
            AttemptEnd::Error => m.errors += 1,
            AttemptEnd::Broken => m.broken += 1,
            AttemptEnd::Cancelled => m.cancelled += 1,
        }
    }

    /// A measured request finished at `now`.
    #[inline]
    pub fn on_finish(
        &mut self,
        now: Nanos,
        arrived: Nanos,
        result: RequestResult,
        first_token: Option<Nanos>,
    ) {
        self.requests += 1;
        let latency = now - arrived;
        self.all.record(latency);
        let b = self.bucket(now);
        match result {
            RequestResult::Success => {
                self.successes += 1;
                self.success.record(latency);
                if let Some(ft) = first_token {
                    self.ttft.record(ft.saturating_sub(arrived));
                }
                self.ok[b] += 1;
            }
            RequestResult::Failed(r) => {
                self.failures[r.index()] += 1;
                self.give_up.record(latency);
                self.failed[b][r.index()] += 1;
            }
        }
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
            if col.iter().any(|&x| x > 0) {
                by_reason.insert(r.name().to_owned(), col);
            }
        }
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
                all: self.all.summary(),
                ttft: self.ttft.summary(),
            },
            models,
            series: Series {
                bucket_ns: self.width,
                offered_attempts: self.offered,
                successes: self.ok,
                failures: by_reason,
            },
            tenants,
        }
    }
}

/// Rounds to six decimals, so JSON carries stable, short numbers.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
