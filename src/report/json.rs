//! `report.json`, schema version 1 (`schema/report.v1.json`).
//!
//! Numbers are integers (counts, microseconds, nano-USD) or ratios rounded to
//! six decimals; money is also given as a fixed-precision USD string. Maps
//! are `BTreeMap`s, so key order is fixed. Same binary, scenario and seed:
//! the same bytes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::units::NanoUsd;

use super::hist::LatencySummary;

/// The schema version written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The crate version that wrote it.
    pub stormglass_version: String,
    /// `sim` (or `live`).
    pub mode: String,
    /// What was run.
    pub scenario: ScenarioInfo,
    /// The scenario's `[[expect]]` thresholds, for `stormglass check`.
    pub expect: Vec<super::check::Expectation>,
    /// One entry per strategy, in file order.
    pub strategies: Vec<StrategyReport>,
    /// The live driver's own figures (live mode; `null` in a simulation).
    pub live: Option<LiveInfo>,
}

/// What the live driver reports about itself.
#[derive(Clone, Debug, Serialize)]
pub struct LiveInfo {
    /// The target, as given.
    pub target: String,
    /// Whether it was our mock provider (clock reset, draw keys sent).
    pub mock_provider: bool,
    /// Scenario time the run started at.
    pub from_ns: u64,
    /// Length of the arrival window.
    pub duration_ns: u64,
    /// The most connections the driver kept open to the target.
    pub max_connections: u64,
    /// Per strategy, in run order.
    pub strategies: Vec<LiveStrategyInfo>,
}

/// The live driver's own figures for one strategy's run.
#[derive(Clone, Debug, Serialize)]
pub struct LiveStrategyInfo {
    /// Strategy name.
    pub name: String,
    /// Requests handed to the core.
    pub requests: u64,
    /// Attempts sent over HTTP.
    pub attempts_sent: u64,
    /// How late the driver handed requests to the core: when this is
    /// large, the load generator, not the target, was the bottleneck.
    pub schedule_lag_p50_ns: u64,
    /// 99th percentile of the schedule lag.
    pub schedule_lag_p99_ns: u64,
    /// Largest schedule lag.
    pub schedule_lag_max_ns: u64,
    /// Attempts that found all `max_connections` busy and waited for one.
    pub connection_waits: u64,
    /// 99th percentile of those waits (0 when none waited).
    pub connection_wait_p99_ns: u64,
    /// Whether `--max-cost` stopped the arrivals.
    pub stopped_by_cost_guard: bool,
    /// What the run spent, in USD (every attempt, warm-up included).
    pub spent_usd: f64,
}

/// What was run.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioInfo {
    /// Report name.
    pub name: String,
    /// The scenario file as given.
    pub file: String,
    /// Seed.
    pub seed: u64,
    /// Arrival window in nanoseconds.
    pub duration_ns: u64,
    /// Warm-up left out of the figures, in nanoseconds.
    pub warmup_ns: u64,
    /// Incidents: name, start and end in nanoseconds.
    pub incidents: Vec<IncidentInfo>,
    /// The scenario's `[slo]`, resolved (`null` without one).
    pub slo: Option<super::slo::SloConfig>,
    /// The merged scenario after includes.
    pub resolved: serde_json::Value,
}

/// An incident's window.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentInfo {
    /// Name.
    pub name: String,
    /// Start.
    pub start_ns: u64,
    /// End.
    pub end_ns: u64,
}

/// Money, as integer nano-USD and as a USD string with six decimals.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Costs {
    /// Nano-USD.
    pub nano_usd: u64,
    /// USD, six decimals.
    pub usd: Usd,
}

/// A USD amount written as a fixed-precision string.
#[derive(Clone, Copy, Debug)]
pub struct Usd(pub NanoUsd);

impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl From<NanoUsd> for Costs {
    fn from(c: NanoUsd) -> Self {
        Self {
            nano_usd: c.0,
            usd: Usd(c),
        }
    }
}

/// Token counts.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Tokens {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
}

/// Latency summaries.
#[derive(Clone, Debug, Serialize)]
pub struct Latencies {
    /// End to end, successful requests.
    pub success: LatencySummary,
    /// Time to give up, failed requests.
    pub give_up: LatencySummary,
    /// Every request.
    pub all: LatencySummary,
    /// Time to the first token of the answer, successful requests.
    pub ttft: LatencySummary,
    /// Time per output token after the first, answered attempts (values
    /// are microseconds per token).
    pub tpot: LatencySummary,
}

/// Per-model figures.
#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    /// Model name.
    pub model: String,
    /// Attempts sent.
    pub attempts: u64,
    /// Attempts that got a whole answer.
    pub answered: u64,
    /// 429s.
    pub rate_limited: u64,
    /// 503/529s.
    pub overloaded: u64,
    /// Other HTTP errors.
    pub errors: u64,
    /// Resets and broken streams.
    pub broken: u64,
    /// Attempts the client cancelled (timeouts, deadlines).
    pub cancelled: u64,
    /// Attempts the client cancelled because the other attempt of their
    /// hedged request answered first (not errors).
    pub hedge_lost: u64,
    /// Tokens billed.
    pub tokens: Tokens,
    /// Cost.
    pub cost: Costs,
}

/// Time series, one value per bucket, from the end of warm-up on.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// Virtual time at which bucket 0 starts (the end of warm-up), in nanoseconds.
    pub start_ns: u64,
    /// Bucket width in nanoseconds.
    pub bucket_ns: u64,
    /// Attempts sent.
    pub offered_attempts: Vec<u32>,
    /// Requests that succeeded.
    pub successes: Vec<u32>,
    /// Requests that failed, by reason (every reason, as in `failures`).
    pub failures: BTreeMap<String, Vec<u32>>,
    /// Attempts that ended in an error (HTTP error, reset, broken stream,
    /// cancelled by a client timeout), by the time they ended.
    pub attempt_errors: Vec<u32>,
    /// Requests that met the latency objective (with `[slo]`, else `null`).
    pub slo_good: Option<Vec<u32>>,
    /// Cost of the requests that finished, by the time they finished, in nano-USD.
    pub cost_nano_usd: Vec<u64>,
}

/// One attempt of an exemplar request.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptTrace {
    /// Model.
    pub model: String,
    /// API key.
    pub key: String,
    /// When it was sent (virtual time, ns).
    pub start_ns: u64,
    /// When it ended for the client (`null` if it never did).
    pub end_ns: Option<u64>,
    /// How it ended.
    pub outcome: String,
    /// Time from its end to the next attempt's start (the backoff), if any.
    pub wait_before_next_ns: Option<u64>,
}

/// A request shown whole: why it was picked, and its attempts.
#[derive(Clone, Debug, Serialize)]
pub struct Exemplar {
    /// Request id.
    pub request: u64,
    /// `slowest` or `failed: <reason>`.
    pub why: String,
    /// Arrival (virtual time, ns).
    pub arrived_ns: u64,
    /// End to end, microseconds.
    pub latency_us: u64,
    /// `success` or the failure reason.
    pub result: String,
    /// Its attempts in order (at most 32).
    pub attempts: Vec<AttemptTrace>,
    /// Attempts past the first 32.
    pub attempts_not_shown: u32,
}

/// A point of a latency percentile curve.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CurvePoint {
    /// Quantile.
    pub q: f64,
    /// Latency at it, microseconds (the top of its HDR bucket).
    pub us: u64,
}

/// Complete answers to JSON requests by body kind.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ValidationReport {
    /// Valid JSON.
    pub valid: u64,
    /// JSON in a markdown fence.
    pub fenced: u64,
    /// JSON without the required fields.
    pub missing_fields: u64,
    /// Cut short.
    pub truncated: u64,
    /// Prose.
    pub plain_text: u64,
    /// Requests answered with the strategy's safe default.
    pub safe_defaults: u64,
}

/// One API key's attempts (measured requests).
#[derive(Clone, Debug, Serialize)]
pub struct KeyReport {
    /// Name.
    pub key: String,
    /// The quota pool it draws on (`provider/pool`), none if unlimited.
    pub pool: Option<String>,
    /// Attempts sent with it.
    pub attempts: u64,
    /// Answered (any body).
    pub answered: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// Answered 401 or 403.
    pub auth_errors: u64,
}

/// An alert a replica raised.
#[derive(Clone, Debug, Serialize)]
pub struct AlertReport {
    /// Virtual time it was raised.
    pub at_ns: u64,
    /// The replica that raised it.
    pub replica: u32,
    /// `cost_threshold`, `hourly_limit` or `daily_limit`.
    pub kind: String,
    /// The threshold or limit.
    pub amount: Costs,
    /// The spend it was measured on (total, or the window's).
    pub spent: Costs,
}

/// Another tenant's figures.
#[derive(Clone, Debug, Serialize)]
pub struct TenantReport {
    /// Name.
    pub name: String,
    /// Requests.
    pub requests: u64,
    /// Successes.
    pub successes: u64,
    /// Attempts.
    pub attempts: u64,
}

/// One strategy.
#[derive(Clone, Debug, Serialize)]
pub struct StrategyReport {
    /// Name.
    pub name: String,
    /// Replicas.
    pub clients: u32,
    /// Measured requests.
    pub requests: u64,
    /// Successful requests.
    pub successes: u64,
    /// successes / requests.
    pub success_rate: f64,
    /// Failed requests by reason.
    pub failures: BTreeMap<String, u64>,
    /// Attempts sent for measured requests.
    pub attempts: u64,
    /// attempts / requests.
    pub amplification: f64,
    /// Retries of measured requests that the retry budget refused.
    pub retries_denied: u64,
    /// Times a model's circuit breaker opened (all replicas).
    pub breaker_opens: u64,
    /// Attempts of measured requests the adaptive throttle rejected locally.
    pub throttled_locally: u64,
    /// Hedges sent for measured requests.
    pub hedges: u64,
    /// Measured requests answered by their hedge.
    pub hedge_wins: u64,
    /// Measured requests the cost guard sent to the cheapest model.
    pub cost_downgraded: u64,
    /// Attempts of measured requests the client's rate limit delayed.
    pub paced: u64,
    /// Attempts of measured requests the client's rate or concurrency limit shed.
    pub shed_locally: u64,
    /// Measured requests that waited for a concurrency place.
    pub queued_locally: u64,
    /// Keys a key pool disabled after a 401 or 403 (all replicas).
    pub keys_disabled: u64,
    /// Times a key pool rested a key after a 429 (all replicas).
    pub key_rests: u64,
    /// Per API key used, in the scenario's key order: the pool it draws on
    /// and how its attempts ended.
    pub keys: Vec<KeyReport>,
    /// Complete answers to measured JSON requests by body kind, and safe
    /// defaults given.
    pub validation: ValidationReport,
    /// Alerts raised (cost thresholds and limits), in the order raised.
    pub alerts: Vec<AlertReport>,
    /// Cost of measured requests.
    pub cost: Costs,
    /// Cost per 1,000 successful requests.
    pub cost_per_1k_successes: Option<Costs>,
    /// Tokens billed.
    pub tokens: Tokens,
    /// Latencies.
    pub latency: Latencies,
    /// A few requests shown attempt by attempt: the slowest, and the first
    /// failure of each reason (up to 4).
    pub exemplars: Vec<Exemplar>,
    /// Per incident: success and p99 during it, recovery after it.
    pub incidents: Vec<super::incident::IncidentReport>,
    /// Percentile curve of all requests' latencies, for charts.
    pub latency_curve: Vec<CurvePoint>,
    /// SLO verdicts (with `[slo]`, else `null`).
    pub slo: Option<super::slo::SloReport>,
    /// Per model.
    pub models: Vec<ModelReport>,
    /// Time series.
    pub series: Series,
    /// Other tenants on shared pools, in this strategy's run.
    pub tenants: Vec<TenantReport>,
    /// The strategy's outer retry loops (`layers`), outermost first; empty
    /// without layers.
    pub layers: Vec<LayerReport>,
}

/// One outer retry loop of a strategy (its `layers`).
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// Name.
    pub name: String,
    /// Runs of this layer's loop for measured requests: one per request
    /// plus one per retry of a layer outside it.
    pub passes: u64,
    /// Retries this layer made for measured requests, each a fresh pass of
    /// every loop inside it (one whose wait an enclosing pass's end
    /// dropped is not counted: its pass never started).
    pub retries: u64,
    /// Passes of the loops inside this layer that its `timeout` ended
    /// (measured requests; 0 without a `timeout`). A timeout that ends the
    /// passes of several layers at once counts at the outermost of them.
    pub pass_timeouts: u64,
}
