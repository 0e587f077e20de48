//! The provider model as resolved from a scenario: indices instead of names.

use crate::dist::LogNormal;
use crate::units::Nanos;
use crate::wire::{BodyKind, MaxTokensField};

use serde::{Deserialize, Serialize};

/// Everything the world model needs.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// The run seed (the world's draws are keyed by it).
    pub seed: u64,
    /// Providers.
    pub providers: Vec<ProviderSpec>,
    /// Models of all providers; a model's index is its id.
    pub models: Vec<ModelSpec>,
    /// Quota pools of all providers.
    pub pools: Vec<PoolSpec>,
    /// API keys of all providers.
    pub keys: Vec<KeySpec>,
    /// Incidents, in file order.
    pub incidents: Vec<IncidentSpec>,
}

/// A provider.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    /// Name.
    pub name: String,
    /// API style.
    pub style: ApiStyle,
    /// Whether abandoned work is stopped.
    pub cancel_on_disconnect: bool,
    /// Latency of a fast failure.
    pub error_latency: Nanos,
}

impl ProviderSpec {
    /// The status an overloaded provider answers with.
    pub fn overload_status(&self) -> u16 {
        match self.style {
            ApiStyle::Openai => 503,
            ApiStyle::Anthropic => 529,
        }
    }
}

/// Base fault probabilities per attempt.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultRates {
    /// HTTP 500.
    pub error_500: f64,
    /// No answer.
    pub hang: f64,
    /// Reset mid-response.
    pub reset: f64,
    /// Stream broken after some tokens.
    pub broken_stream: f64,
    /// Stream stalled after some tokens (no end until the client gives up).
    pub stall: f64,
    /// Malformed bodies, by kind (fenced, truncated, missing fields, plain text).
    pub malformed: [(BodyKind, f64); 4],
}

/// A model.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    /// Name.
    pub name: String,
    /// Index of its provider.
    pub provider: usize,
    /// Price of an input token in pico-USD.
    pub price_in: u64,
    /// Price of an output token in pico-USD.
    pub price_out: u64,
    /// Time to first token in nanoseconds (unqueued).
    pub ttft: LogNormal,
    /// Output tokens per second.
    pub tps: LogNormal,
    /// Slow-tail probability.
    pub slow_p: f64,
    /// Slow-tail factor.
    pub slow_factor: f64,
    /// Output speed divisor slope over occupancy.
    pub occupancy_slowdown: f64,
    /// Concurrent slots.
    pub slots: u32,
    /// Queue length.
    pub queue: u32,
    /// Base faults.
    pub faults: FaultRates,
    /// Which field a client sends the output-token limit in (the live
    /// driver; the simulator and the mock provider need not know).
    pub max_tokens_field: MaxTokensField,
}

/// A quota pool: limits per minute, `None` where unlimited.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    /// Name (`provider/pool`).
    pub name: String,
    /// Provider index.
    pub provider: usize,
    /// Requests per minute.
    pub rpm: Option<f64>,
    /// Tokens per minute (prompt + max_tokens).
    pub tpm: Option<f64>,
    /// Input tokens per minute.
    pub itpm: Option<f64>,
    /// Output tokens per minute (max_tokens at admission).
    pub otpm: Option<f64>,
    /// Bucket depth as a share of a minute.
    pub burst: Nanos,
    /// Whether rejected requests count against the request limit.
    pub count_rejected: bool,
}

/// An API key.
#[derive(Clone, Debug)]
pub struct KeySpec {
    /// Name.
    pub name: String,
    /// Provider index.
    pub provider: usize,
    /// Pool index, if the key is limited.
    pub pool: Option<usize>,
    /// From this time on the key is refused with 401 (revoked or rotated).
    pub revoked_at: Option<Nanos>,
    /// The environment variable that holds the real key, for live runs
    /// against a real endpoint (the world model does not use it).
    pub env: Option<String>,
}

/// What an incident hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One model.
    Model(usize),
    /// Every model of a provider.
    Provider(usize),
    /// One quota pool.
    Pool(usize),
}

/// What an incident does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Effect {
    /// Down: fast 503 or blackhole.
    Outage(OutageMode),
    /// Extra errors.
    ErrorSpike {
        /// Probability per attempt.
        rate: f64,
        /// HTTP status.
        status: u16,
    },
    /// Slower by a factor.
    Latency(f64),
    /// Capacity multiplied by a fraction.
    CapacityCut(f64),
    /// Quota multiplied by a fraction.
    QuotaCut(f64),
    /// Extra malformed bodies.
    MalformedBurst {
        /// Probability per attempt.
        rate: f64,
        /// Body kind.
        kind: BodyKind,
    },
}

/// An incident: an effect on a target over a time window.
#[derive(Clone, Debug)]
pub struct IncidentSpec {
    /// Name.
    pub name: String,
    /// Start (inclusive).
    pub start: Nanos,
    /// End (exclusive).
    pub end: Nanos,
    /// Target.
    pub target: Target,
    /// Effect.
    pub effect: Effect,
}

impl IncidentSpec {
    /// Whether the incident is in force at `now`.
    pub fn active(&self, now: Nanos) -> bool {
        self.start <= now && now < self.end
    }

    /// Whether it hits model `m` of provider `p`.
    pub fn hits_model(&self, m: usize, p: usize) -> bool {
        match self.target {
            Target::Model(x) => x == m,
            Target::Provider(x) => x == p,
            Target::Pool(_) => false,
        }
    }
}

/// The API a provider speaks: decides its overload status and how its quota
/// counts tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiStyle {
    /// OpenAI: overload is 503; tokens admitted as prompt plus `max_tokens`.
    #[default]
    Openai,
    /// Anthropic: overload is 529; input and output tokens limited separately.
    Anthropic,
}

/// How an outage fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// 503 at once.
    #[default]
    Fast,
    /// No answer: requests hang until the client gives up.
    Blackhole,
}
