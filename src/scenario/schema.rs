//! The scenario file as written: serde types, unknown keys rejected.
//!
//! Every default is named here and in the README's scenario reference. Names
//! that other parts refer to (models, keys, pools) are `Spanned`, so that a
//! reference to a missing name is reported where it is written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use crate::policy::{Disposition, Tier};
pub use crate::world::config::{ApiStyle, OutageMode};

use super::types::{
    CountDist, Duration, LatencyDist, NonNegative, Positive, PositiveDuration, Probability,
    SpeedDist,
};

/// One scenario file (the main file or an included one).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Files to read first, relative to this file (catalogues, price tables).
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Run settings.
    pub run: Option<RunSection>,
    /// Price table: model name to prices, used by models that give none.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Providers, each with its models, quota pools and keys.
    #[serde(default)]
    pub provider: Vec<Spanned<ProviderSection>>,
    /// Time windows that change a provider's behaviour.
    #[serde(default)]
    pub incident: Vec<Spanned<IncidentSection>>,
    /// Arrivals and task mix.
    pub traffic: Option<TrafficSection>,
    /// Policy stacks to compare.
    #[serde(default)]
    pub strategy: Vec<Spanned<StrategySection>>,
    /// Service level objectives every strategy is judged by (default: none).
    pub slo: Option<Spanned<SloSection>>,
    /// Thresholds that `stormglass check` enforces, per strategy.
    #[serde(default)]
    pub expect: Vec<Spanned<ExpectSection>>,
}

/// `[run]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Report name; default: the file's stem. Output goes to `reports/<name>/`.
    pub name: Option<String>,
    /// Seed of every random stream; default 1.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long arrivals go on (requests still in flight then are finished).
    pub duration: PositiveDuration,
    /// Requests arriving before this are simulated but left out of the figures.
    #[serde(default)]
    pub warmup: Duration,
}

fn default_seed() -> u64 {
    1
}

/// Prices in USD per million tokens.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million input (prompt) tokens.
    pub input_per_mtok: NonNegative,
    /// USD per million output (completion) tokens.
    pub output_per_mtok: NonNegative,
}

/// `[[provider]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// Unique name.
    pub name: String,
    /// `openai` (default) or `anthropic`.
    #[serde(default)]
    pub style: ApiStyle,
    /// Whether the provider stops work when the client disconnects; default
    /// false: abandoned work holds its slot until it would have finished.
    #[serde(default)]
    pub cancel_on_disconnect: bool,
    /// How long a fast failure (500, 503, 429) takes to come back; default 50ms.
    pub error_latency: Option<PositiveDuration>,
    /// Quota pools (organisation or project limits).
    #[serde(default)]
    pub pool: Vec<Spanned<PoolSection>>,
    /// API keys; each points at a pool. Default: one key `<provider>-key` on
    /// no pool (unlimited) when none is given.
    #[serde(default)]
    pub key: Vec<Spanned<KeySection>>,
    /// Models served by this provider.
    #[serde(default)]
    pub model: Vec<Spanned<ModelSection>>,
    /// The request field of the output-token limit for its models
    /// (`max_tokens` or `max_completion_tokens`); default `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<crate::wire::MaxTokensField>,
}

/// `[[provider.pool]]`: a quota shared by the keys that point at it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Unique name within the provider.
    pub name: String,
    /// Requests per minute.
    pub rpm: Option<Positive>,
    /// Tokens per minute (OpenAI style: prompt plus `max_tokens` at admission).
    pub tpm: Option<Positive>,
    /// Input tokens per minute (Anthropic style).
    pub itpm: Option<Positive>,
    /// Output tokens per minute (Anthropic style; `max_tokens` at admission).
    pub otpm: Option<Positive>,
    /// Sub-minute enforcement: the bucket holds this much of a minute's quota
    /// (default "60s": a full minute may be spent at once; "1s" enforces per second).
    pub burst: Option<PositiveDuration>,
    /// Whether rejected requests still count against the request limit; default false.
    #[serde(default)]
    pub count_rejected: bool,
}

/// `[[provider.key]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    /// Unique name.
    pub name: String,
    /// The pool whose limits this key shares; none means unlimited.
    pub pool: Option<Spanned<String>>,
    /// From this time on the provider refuses the key with 401.
    pub revoked_at: Option<Duration>,
    /// Live mode against a real endpoint: the environment variable holding
    /// the key (keys never appear in scenario files).
    pub env: Option<String>,
}

/// `[[provider.model]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Unique name across providers (as a client would write it).
    pub name: String,
    /// USD per million input tokens; default from `[prices]`.
    pub input_per_mtok: Option<NonNegative>,
    /// USD per million output tokens; default from `[prices]`.
    pub output_per_mtok: Option<NonNegative>,
    /// Time to first token when not queued; default median 500ms, p99 2s.
    pub ttft: Option<LatencyDist>,
    /// Output tokens per second; default median 60, p1 20.
    pub tokens_per_s: Option<SpeedDist>,
    /// Slow tail: with this probability an attempt is `factor` times slower.
    pub slow_tail: Option<SlowTail>,
    /// Output speed is divided by (1 + occupancy_slowdown x busy fraction); default 0.
    #[serde(default)]
    pub occupancy_slowdown: NonNegative,
    /// Concurrent slots and queue; default 1000 slots, 1000 queued.
    pub capacity: Option<Capacity>,
    /// Base fault rates; default none.
    #[serde(default)]
    pub faults: Faults,
    /// The request field of the output-token limit; default the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<crate::wire::MaxTokensField>,
}

/// A slow tail.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlowTail {
    /// Probability that an attempt is slow.
    pub probability: Probability,
    /// How many times slower (time to first token and output).
    pub factor: Positive,
}

/// Concurrent slots plus a FIFO queue.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Requests served at once.
    pub slots: u32,
    /// Requests waiting for a slot; beyond it the provider answers overloaded.
    #[serde(default)]
    pub queue: u32,
}

/// Base fault rates, each a probability per attempt.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// HTTP 500 internal error.
    #[serde(default)]
    pub error_500: Probability,
    /// The request hangs: no response until the client gives up.
    #[serde(default)]
    pub hang: Probability,
    /// The connection is reset during the response.
    #[serde(default)]
    pub reset: Probability,
    /// The stream breaks after some tokens.
    #[serde(default)]
    pub broken_stream: Probability,
    /// The stream stalls after some tokens: nothing more arrives, and the
    /// provider holds the slot until the answer would have ended.
    #[serde(default)]
    pub stall: Probability,
    /// A body that is JSON wrapped in a markdown fence.
    #[serde(default)]
    pub malformed_fenced: Probability,
    /// A body cut short.
    #[serde(default)]
    pub malformed_truncated: Probability,
    /// A JSON body that lacks required fields.
    #[serde(default)]
    pub malformed_missing_fields: Probability,
    /// Plain text where JSON was asked for.
    #[serde(default)]
    pub malformed_plain_text: Probability,
}

/// The kinds of incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// The target is down (`mode = "fast"`: 503 at once; `"blackhole"`: hangs).
    Outage,
    /// Extra errors with probability `rate`, status `status` (default 500).
    ErrorSpike,
    /// Time to first token and output slowed by `factor`.
    Latency,
    /// Slots and queue multiplied by `factor` (0..1).
    CapacityCut,
    /// A quota pool's limits multiplied by `factor` (0..1).
    QuotaCut,
    /// Extra malformed bodies with probability `rate`, kind `malformed`.
    MalformedBurst,
}

/// A malformed body's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// JSON in a markdown fence.
    Fenced,
    /// Cut short.
    Truncated,
    /// JSON without required fields.
    MissingFields,
    /// Plain text.
    PlainText,
}

/// `[[incident]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSection {
    /// Name shown in the report; default `<kind>@<start>`.
    pub name: Option<String>,
    /// What happens.
    pub kind: IncidentKind,
    /// When it starts.
    pub start: Duration,
    /// How long it lasts.
    pub duration: PositiveDuration,
    /// The model it hits (or give `provider`, or `pool` for a quota cut).
    pub model: Option<Spanned<String>>,
    /// The provider it hits (all its models).
    pub provider: Option<Spanned<String>>,
    /// The quota pool it hits (`quota_cut`), as `provider/pool` or `pool`.
    pub pool: Option<Spanned<String>>,
    /// `outage`: `fast` (default) or `blackhole`.
    pub mode: Option<OutageMode>,
    /// `error_spike`, `malformed_burst`: probability per attempt.
    pub rate: Option<Probability>,
    /// `error_spike`: HTTP status (default 500).
    pub status: Option<u16>,
    /// `latency`: slowdown (>= 1); `capacity_cut`, `quota_cut`: remaining fraction (0..1).
    pub factor: Option<Positive>,
    /// `malformed_burst`: the body kind.
    pub malformed: Option<MalformedKind>,
}

/// `[traffic]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSection {
    /// Poisson arrival rate in requests per second (or give `profile`).
    pub rate: Option<Positive>,
    /// Piecewise-linear rate profile: `{ at, rate }` points; constant after the last.
    #[serde(default)]
    pub profile: Vec<Spanned<ProfilePoint>>,
    /// Extra bursts on top of the rate.
    #[serde(default)]
    pub burst: Vec<Spanned<Burst>>,
    /// User-facing deadline of a request; default 60s.
    pub deadline: Option<PositiveDuration>,
    /// The task mix.
    #[serde(default)]
    pub task: Vec<Spanned<TaskSection>>,
    /// A loop someone forgot: requests at a fixed rate.
    #[serde(default)]
    pub runaway: Vec<Spanned<RunawaySection>>,
    /// Other tenants sharing a quota pool, with their own fixed policy.
    #[serde(default)]
    pub tenant: Vec<Spanned<TenantSection>>,
}

/// A point of a rate profile.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePoint {
    /// When.
    pub at: Duration,
    /// Requests per second at that time.
    pub rate: NonNegative,
}

/// A burst of extra arrivals.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// When it starts.
    pub at: Duration,
    /// How many requests.
    pub requests: u32,
    /// Spread over this long (Poisson).
    pub over: PositiveDuration,
}

/// `[[traffic.task]]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    /// Task type (classification, summarization, code_generation, ...).
    pub name: String,
    /// Relative share of arrivals; default 1.
    pub weight: Option<NonNegative>,
    /// Prompt tokens.
    pub input_tokens: CountDist,
    /// Output tokens the model would write (capped by `max_tokens`).
    pub output_tokens: CountDist,
    /// `max_tokens` sent with the request; default 4096.
    pub max_tokens: Option<u32>,
    /// Complexity tier; default standard.
    #[serde(default)]
    pub tier: Tier,
    /// Whether the answer must be JSON; default false.
    #[serde(default)]
    pub json: bool,
    /// Deadline for this task; default the traffic deadline.
    pub deadline: Option<PositiveDuration>,
}

/// `[[traffic.runaway]]`: a loop sending at a fixed rate through the strategy.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunawaySection {
    /// Requests per second, evenly spaced.
    pub rate: Positive,
    /// The task it sends.
    pub task: Spanned<String>,
    /// When it starts; default 0s.
    #[serde(default)]
    pub start: Duration,
    /// When it stops; default the end of the run.
    pub end: Option<Duration>,
}

/// `[[traffic.tenant]]`: another team on a shared quota pool, with the
/// official SDKs' default retries (2 retries, exponential jitter 0.5s..8s).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    /// Name in the report.
    pub name: String,
    /// Poisson rate in requests per second.
    pub rate: Positive,
    /// The model it calls.
    pub model: Spanned<String>,
    /// The key it uses (its pool is what it shares).
    pub key: Spanned<String>,
    /// The task it sends; default the first task of the mix.
    pub task: Option<Spanned<String>>,
}

/// `[[strategy]]`: one policy stack.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySection {
    /// Unique name.
    pub name: String,
    /// A known stack (`"openai-python@3.54"`, ...) whose retry, timeout and
    /// failure settings fill what the strategy leaves out; default none.
    pub preset: Option<Spanned<String>>,
    /// Replicas of the client; requests are spread across them; default 1.
    pub clients: Option<u32>,
    /// Model per task type, and the default model.
    pub routing: RoutingSection,
    /// Retries and backoff.
    #[serde(default)]
    pub retry: RetrySection,
    /// Timeouts, with per-tier overrides.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    /// Fallback chains per tier (models tried after the routed one).
    #[serde(default)]
    pub fallback: FallbackSection,
    /// What to do on each kind of failure: `retry`, `fallback` or `fail`.
    #[serde(default)]
    pub on: BTreeMap<Spanned<String>, Disposition>,
    /// Retry budget (default: none).
    pub budget: Option<Spanned<BudgetSection>>,
    /// Circuit breaker per model (default: none).
    pub breaker: Option<Spanned<BreakerSection>>,
    /// Adaptive client-side throttling per model (default: none).
    pub throttle: Option<ThrottleSection>,
    /// Hedged requests (default: none).
    pub hedge: Option<Spanned<HedgeSection>>,
    /// Spending limits and alerts (default: none).
    pub cost_guard: Option<Spanned<CostGuardSection>>,
    /// Client-side rate limits (default: none).
    pub rate_limit: Option<Spanned<RateLimitSection>>,
    /// Concurrency limit (default: none).
    pub concurrency: Option<Spanned<ConcurrencySection>>,
    /// Key selection and key health (default: plain round-robin).
    pub key_pool: Option<KeyPoolSection>,
    /// What bodies a JSON request accepts, and a safe default.
    #[serde(default)]
    pub validation: ValidationSection,
    /// A retry budget counted in tokens or dollars (default: none).
    pub spend_budget: Option<Spanned<SpendBudgetSection>>,
    /// Keys to use per provider (default: all of the provider's keys, round-robin).
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<Spanned<String>>>,
    /// Retry loops around the strategy's own, outermost first (an
    /// application loop around a gateway around an SDK); default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Spanned<LayerSection>>,
}

/// One entry of a strategy's `layers`: a retry loop around the ones inside
/// it, which retries what they gave up on by running them afresh.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSection {
    /// Name in the report; unique within the strategy.
    pub name: Spanned<String>,
    /// A known stack whose retry and failure settings fill what the layer
    /// leaves out; default none.
    pub preset: Option<Spanned<String>>,
    /// This layer's retries and backoff (defaults as `[strategy.retry]`).
    #[serde(default)]
    pub retry: RetrySection,
    /// Which failures this layer retries (defaults as the strategy's `on`).
    #[serde(default)]
    pub on: BTreeMap<Spanned<String>, Disposition>,
    /// A bound on each pass of the loops inside this layer (each call it
    /// makes), greater than zero; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<PositiveDuration>,
}

/// Retry budget kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Finagle: retries at most `percent` of requests over `window`, plus `min_per_s`.
    Ratio,
    /// Envoy: retries in flight at most `percent` of active requests, at least `min_concurrent`.
    Concurrent,
    /// gRPC: a bucket of `max_tokens`, -1 per failure, +`token_ratio` per success.
    TokenBucket,
}

/// `[strategy.budget]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    /// Which budget.
    pub kind: BudgetKind,
    /// `ratio`, `concurrent`: share of requests (default 0.2).
    pub percent: Option<Probability>,
    /// `ratio`: retries per second always allowed (default 10).
    pub min_per_s: Option<NonNegative>,
    /// `ratio`: sliding window (default 10s).
    pub window: Option<PositiveDuration>,
    /// `concurrent`: retries in flight always allowed (default 3).
    pub min_concurrent: Option<u32>,
    /// `token_bucket`: bucket size (default 10).
    pub max_tokens: Option<Positive>,
    /// `token_bucket`: tokens a success gives back (default 0.1).
    pub token_ratio: Option<Positive>,
    /// `replica` (default): each replica keeps its own; `fleet`: one state
    /// shared by all replicas of the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// Circuit breaker kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerKind {
    /// Polly v8: a failure ratio over a sliding window, then half-open probes.
    Ratio,
    /// LiteLLM: too many failures in a minute cool the model down.
    Cooldown,
    /// LiteLLM 1.80's default: the failure share of the calls counted.
    FailureRate,
}

/// `[strategy.breaker]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSection {
    /// Which breaker.
    pub kind: BreakerKind,
    /// `ratio`: failure share that opens it (default 0.1).
    pub failure_ratio: Option<Probability>,
    /// `ratio`: attempts the window needs first (default 100).
    pub min_throughput: Option<u32>,
    /// `ratio`: sliding window (default 30s).
    pub window: Option<PositiveDuration>,
    /// `ratio`: how long it stays open (default 5s).
    pub break_for: Option<PositiveDuration>,
    /// `ratio`: attempts let through while half-open (default 1).
    pub probes: Option<u32>,
    /// `cooldown`: failures per minute tolerated (default 3).
    pub allowed_fails: Option<u32>,
    /// `cooldown`, `failure_rate`: how long the model is skipped (default
    /// 5s; `failure_rate` takes an answer's `retry-after` first).
    pub cooldown: Option<PositiveDuration>,
    /// `failure_rate`: failure share above which a failure cools (0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<Probability>,
    /// `failure_rate`: calls, all failed, that cool a lone deployment (1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_failed_min: Option<u32>,
    /// `failure_rate`: the model is its group's only deployment (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_deployment: Option<bool>,
    /// `model` (default) or `key`: what each breaker watches.
    pub per: Option<BreakerPer>,
    /// `replica` (default): each replica keeps its own; `fleet`: one state
    /// shared by all replicas of the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// What a breaker watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerPer {
    /// One breaker per model.
    Model,
    /// One breaker per API key.
    Key,
}

/// `[strategy.throttle]`: Google SRE adaptive client-side throttling.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSection {
    /// The multiplier K: the client sends up to K times what the backend
    /// accepts (default 2, the SRE book's value; at least 1).
    pub k: Option<Spanned<f64>>,
    /// The window (default 2m).
    pub window: Option<PositiveDuration>,
    /// No rejection while the window holds fewer requests (default 0).
    pub min_requests: Option<u64>,
    /// `replica` (default): each replica keeps its own; `fleet`: one state
    /// shared by all replicas of the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// What a client-side rate limit is kept per.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPerKind {
    /// One bucket pair per provider.
    Provider,
    /// One bucket pair per API key.
    Key,
}

/// What an attempt does when the rate limit has no room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenEmpty {
    /// Wait for room, bounded by the deadline.
    Wait,
    /// Do not send it.
    Shed,
}

/// `[strategy.rate_limit]`: token buckets on requests and tokens per minute.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt plus `max_tokens`).
    pub tpm: Option<u64>,
    /// Refill a bucket holds; default 60s.
    pub burst: Option<PositiveDuration>,
    /// `provider` (default) or `key`.
    pub per: Option<LimitPerKind>,
    /// `wait` (default) or `shed`.
    pub when_empty: Option<WhenEmpty>,
    /// Follow the provider's `x-ratelimit-*` figures; default false.
    pub from_headers: Option<bool>,
    /// `replica` (default): each replica keeps its own buckets; `fleet`:
    /// one set shared by all replicas of the strategy.
    pub scope: Option<Scope>,
}

/// Who keeps a stateful policy's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each client replica its own, as an in-process library does.
    #[default]
    Replica,
    /// One state shared by every replica, as a central gateway or a Redis
    /// bucket is.
    Fleet,
}

/// What a spend budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendUnitKind {
    /// Prompt plus output tokens.
    Tokens,
    /// US dollars.
    Usd,
}

/// `[strategy.spend_budget]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpendBudgetSection {
    /// `tokens` or `usd`.
    pub unit: SpendUnitKind,
    /// Retry spend as a share of first-attempt spend; default 0.2.
    pub percent: Option<Probability>,
    /// Retry spend always allowed over the window (tokens, or USD); default 0.
    pub floor: Option<NonNegative>,
    /// Sliding window; default 1m.
    pub window: Option<PositiveDuration>,
    /// `replica` (default): each replica keeps its own; `fleet`: one state
    /// shared by all replicas of the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// `[strategy.validation]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSection {
    /// Strip a markdown fence and accept the JSON inside; default true.
    pub accept_fenced: Option<bool>,
    /// Answer a request that would fail as malformed with a safe default;
    /// default false.
    pub safe_default: Option<bool>,
}

/// How a key is picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySelectKind {
    /// In turn.
    RoundRobin,
    /// Fewest in flight, then fewest sent.
    LeastUsed,
    /// Most requests left by the provider's last figures.
    MostRemaining,
}

/// `[strategy.key_pool]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPoolSection {
    /// Selection; default `round_robin`.
    pub select: Option<KeySelectKind>,
    /// Rest after a 429 without `retry-after`; default 1s.
    pub rest: Option<PositiveDuration>,
    /// `replica` (default): each replica keeps its own; `fleet`: one state
    /// shared by all replicas of the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// Concurrency limit kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyKind {
    /// A bulkhead.
    Fixed,
    /// Additive increase, multiplicative decrease.
    Aimd,
}

/// `[strategy.concurrency]`: attempts in flight per replica.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySection {
    /// `fixed` or `aimd`.
    pub kind: ConcurrencyKind,
    /// `fixed`: attempts in flight (default 1000).
    pub limit: Option<u32>,
    /// Requests waiting for a place (default 0).
    pub queue: Option<u32>,
    /// `aimd`: starting limit (default 20).
    pub initial: Option<u32>,
    /// `aimd`: lowest limit (default 20).
    pub min: Option<u32>,
    /// `aimd`: highest limit (default 200).
    pub max: Option<u32>,
    /// `aimd`: factor on a drop (default 0.9).
    pub backoff: Option<Probability>,
    /// `replica` (default): each replica keeps its own; `fleet`: one state
    /// shared by all replicas of the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// What a cost guard does at its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardActionKind {
    /// Raise an alert only.
    Alert,
    /// Send new requests to the cheapest model of their chain.
    Downgrade,
    /// Fail new requests at once.
    Reject,
}

/// `[strategy.cost_guard]`: spending limits per hour and day, and alerts.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CostGuardSection {
    /// USD per hour of virtual time.
    pub hourly_usd: Option<Positive>,
    /// USD per day of virtual time.
    pub daily_usd: Option<Positive>,
    /// Total spend, in USD, at which an alert fires (once each).
    #[serde(default)]
    pub alerts_usd: Vec<Positive>,
    /// At a limit: `alert`, `downgrade` or `reject` (default `reject`).
    pub action: Option<GuardActionKind>,
    /// `replica` (default): each replica keeps its own; `fleet`: one state
    /// shared by all replicas of the strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// Where a hedge goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HedgeTo {
    /// The same model.
    Same,
    /// The next model of the request's chain.
    Next,
}

/// `[strategy.hedge]`: one more attempt beside a late one.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeSection {
    /// A duration (`"2s"`) or a percentile of the model's observed time to
    /// first token (`"p95"`); default 2s (Polly v8).
    pub delay: Option<Spanned<String>>,
    /// `same` or `next`; default `same`.
    pub to: Option<HedgeTo>,
}

/// `[strategy.routing]`: static routing by task type.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSection {
    /// How the first model is chosen; default `static`.
    pub kind: Option<RoutingKind>,
    /// `static`: the model for tasks not named in `by_task` (required).
    pub default: Option<Spanned<String>>,
    /// `static`: task name to model.
    #[serde(default)]
    pub by_task: BTreeMap<Spanned<String>, Spanned<String>>,
    /// `priority`, `latency`, `cost`, `least_in_flight`, `p2c`: the candidates.
    pub models: Option<Vec<Spanned<String>>>,
    /// `weighted`: candidates and their weights.
    pub weights: Option<BTreeMap<Spanned<String>, Positive>>,
    /// `cost`: the tiers each candidate may serve (default: every tier).
    pub tiers: Option<BTreeMap<Spanned<String>, Vec<Tier>>>,
    /// `latency`: weight of a new sample in the moving average (default 0.2).
    pub alpha: Option<Probability>,
    /// `latency`: probability of trying another candidate (default 0.05).
    pub explore: Option<Probability>,
}

/// Routing kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingKind {
    /// By task type, else `default`.
    Static,
    /// First of `models`, the others follow (failover).
    Priority,
    /// At random by `weights`.
    Weighted,
    /// Lowest moving average of time to first token, with exploration.
    Latency,
    /// Cheapest candidate that serves the request's tier.
    Cost,
    /// Fewest of this client's attempts in flight.
    LeastInFlight,
    /// Power of two choices by attempts in flight.
    P2c,
}

/// Backoff kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// Retry at once.
    None,
    /// Always `base`.
    Constant,
    /// `base x 2^n`, capped, no jitter.
    Exponential,
    /// Uniform in 0..min(cap, base x 2^n) (AWS "full jitter").
    #[default]
    FullJitter,
    /// Half of min(cap, base x 2^n) plus a uniform share of the other half.
    EqualJitter,
    /// min(cap, uniform(base, previous x 3)) (AWS "decorrelated jitter").
    Decorrelated,
    /// min(cap, base x 2^n) x (1 - 0.25 u): the Stainless SDKs' jitter.
    SdkJitter,
    /// min(cap, base x 2^max(0, n-1)) + up to 0.75 s: LiteLLM's router.
    Litellm,
    /// Within 50% of min(cap, base x 1.5^n): the `backoff` crate.
    Randomized,
}

/// `[strategy.retry]`. Every field left out comes from the strategy's
/// `preset` if it has one, else from the default named here.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Retries per model before moving down the fallback chain; default 2
    /// (the OpenAI and Anthropic SDKs' `max_retries`).
    pub max_retries: Option<u32>,
    /// Backoff kind; default full_jitter.
    pub backoff: Option<BackoffKind>,
    /// First backoff step; default 500ms (the SDKs' initial delay).
    pub base: Option<Duration>,
    /// Largest backoff; default 8s (the SDKs' max delay).
    pub cap: Option<Duration>,
    /// Wait at least what `retry-after`/`retry-after-ms` says; default true.
    pub honor_retry_after: Option<bool>,
    /// A `retry-after` longer than this is not waited for (the error is
    /// final for this model); default 60s (the SDKs' bound).
    pub max_retry_after: Option<Duration>,
    /// What a `retry-after` above `max_retry_after` leads to; default
    /// `give_up`.
    pub too_long_retry_after: Option<crate::policy::TooLongRetryAfter>,
    /// Obey `x-should-retry: true/false`; default true.
    pub honor_should_retry: Option<bool>,
    /// No retry whose wait ends later than this after the request arrived;
    /// default none (the `backoff` crate's `max_elapsed_time`).
    pub max_elapsed: Option<PositiveDuration>,
    /// Wait what `retry-after` says instead of the backoff, not at least
    /// it; default false.
    pub retry_after_replaces_backoff: Option<bool>,
    /// A retry whose wait `retry-after` set does not advance the backoff
    /// step; default false (true in the async-openai@0.43 preset). Left
    /// out of the report's scenario echo when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_keeps_step: Option<bool>,
}

/// Timeouts of one attempt.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSet {
    /// From sending to the first token.
    pub first_token: Option<PositiveDuration>,
    /// Longest silence between two chunks of a stream.
    pub between_chunks: Option<PositiveDuration>,
    /// From sending to the last byte.
    pub total: Option<PositiveDuration>,
}

/// `[strategy.timeouts]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    /// From sending to the first token; default none.
    pub first_token: Option<PositiveDuration>,
    /// Longest silence between chunks; default none.
    pub between_chunks: Option<PositiveDuration>,
    /// Whole attempt; default 600s (the OpenAI SDK's default timeout).
    pub total: Option<PositiveDuration>,
    /// No attempt starts with less than this left before the request's
    /// deadline; default 0s (deadline propagation, SRE book).
    pub min_attempt_time: Option<Duration>,
    /// Overrides for simple tasks.
    pub simple: Option<TimeoutSet>,
    /// Overrides for standard tasks.
    pub standard: Option<TimeoutSet>,
    /// Overrides for complex tasks.
    pub complex: Option<TimeoutSet>,
}

/// `[strategy.fallback]`: models tried, in order, after the routed model.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackSection {
    /// Chain for every tier without its own.
    #[serde(default)]
    pub chain: Vec<Spanned<String>>,
    /// Chain for simple tasks.
    pub simple: Option<Vec<Spanned<String>>>,
    /// Chain for standard tasks.
    pub standard: Option<Vec<Spanned<String>>>,
    /// Chain for complex tasks.
    pub complex: Option<Vec<Spanned<String>>>,
}

/// `[slo]`: what "good" means for the service; defaults after the SRE
/// workbook's examples (99.9% available, p99 under 2 s, 0.1% errors, 30 days).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloSection {
    /// Share of requests that must succeed; default 0.999.
    pub availability: Option<Probability>,
    /// End-to-end latency a request must meet (failures count as misses); default "2s".
    pub latency: Option<PositiveDuration>,
    /// Share of requests that must meet `latency` (and `ttft`); default 0.99.
    pub latency_quantile: Option<Probability>,
    /// Time to first token a request must also meet; default: none.
    pub ttft: Option<PositiveDuration>,
    /// Share of attempts that may end in an error; default 0.001.
    pub error_rate: Option<Probability>,
    /// The SLO window the error budget is defined over; default "30d".
    pub window: Option<PositiveDuration>,
    /// Multi-window burn-rate alerts; default the SRE workbook's page pair
    /// (1h and 5m at 14.4x, 6h and 30m at 6x).
    #[serde(default)]
    pub alert: Vec<Spanned<BurnAlertSection>>,
}

/// `[[slo.alert]]`: fires while the burn rate over both windows is at least `burn_rate`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BurnAlertSection {
    /// Name in the report; default "<long>/<short> at <burn_rate>x".
    pub name: Option<String>,
    /// Long window.
    pub long: PositiveDuration,
    /// Short window (no longer than `long`).
    pub short: PositiveDuration,
    /// Burn rate at which it fires (1 = spending exactly the budget over the window).
    pub burn_rate: Positive,
}

/// `[[expect]]`: thresholds for one strategy (or every strategy), each a
/// condition string such as `"< 2s"` or `"> 0.999"`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSection {
    /// The strategy these apply to; default: every strategy.
    pub strategy: Option<Spanned<String>>,
    /// Success rate (successes / requests).
    pub success: Option<Spanned<String>>,
    /// Attempts per request.
    pub amplification: Option<Spanned<String>>,
    /// Median latency, all requests.
    pub p50: Option<Spanned<String>>,
    /// 90th percentile, all requests.
    pub p90: Option<Spanned<String>>,
    /// 95th percentile, all requests.
    pub p95: Option<Spanned<String>>,
    /// 99th percentile, all requests.
    pub p99: Option<Spanned<String>>,
    /// 99.9th percentile, all requests.
    pub p999: Option<Spanned<String>>,
    /// 99th percentile of time to first token.
    pub ttft_p99: Option<Spanned<String>>,
    /// Median time per output token (a duration per token, e.g. "< 20ms").
    pub tpot_p50: Option<Spanned<String>>,
    /// Recovery time after the first incident; fails if it did not recover.
    pub recovery: Option<Spanned<String>>,
    /// Cost of the run in USD.
    pub cost: Option<Spanned<String>>,
    /// Cost per 1,000 successful requests in USD.
    pub cost_per_1k: Option<Spanned<String>>,
    /// Requests per second that met every SLO (needs `[slo]`).
    pub goodput: Option<Spanned<String>>,
    /// Share of the availability error budget spent (needs `[slo]`).
    pub error_budget: Option<Spanned<String>>,
}
