//! A strategy's resolved configuration: everything the core needs, with
//! names turned into indices. Built by the scenario loader, validated there.

use serde::{Deserialize, Serialize};

use super::breaker::BreakerConfig;
use super::concurrency::ConcurrencyConfig;
use super::contract::{KeyId, ModelId};
use super::cost_guard::CostGuardConfig;
use super::hedge::HedgeConfig;
use super::keys::KeyPoolConfig;
use super::rate_limit::RateLimitConfig;
use super::retry::{Backoff, BudgetConfig, Classifier};
use super::routing::RoutingConfig;
use super::scope::FleetScopes;
use super::spend_budget::SpendBudgetConfig;
use super::throttle::ThrottleConfig;
use super::timeout::Timeouts;
use super::validation::ValidationConfig;

/// Complexity tier of a task: picks timeouts and fallback chains.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Short, cheap tasks.
    Simple,
    /// The default.
    #[default]
    Standard,
    /// Long reasoning or generation.
    Complex,
}

impl Tier {
    /// Every tier.
    pub const ALL: [Self; 3] = [Self::Simple, Self::Standard, Self::Complex];

    /// Position in [`Tier::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a client knows of a model: its price and the keys it may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// Name.
    pub name: String,
    /// Input price, pico-USD per token.
    pub price_in: u64,
    /// Output price, pico-USD per token.
    pub price_out: u64,
    /// Keys to rotate through (round-robin).
    pub keys: Vec<KeyId>,
    /// Its provider's index (client-side rate limits per provider).
    pub provider: u16,
}

/// Retry settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryConfig {
    /// Retries per model before falling back.
    pub max_retries: u32,
    /// Backoff between retries.
    pub backoff: Backoff,
    /// Wait at least what `retry-after` says.
    pub honor_retry_after: bool,
    /// Longest `retry-after` still waited for.
    pub max_retry_after: u64,
    /// Obey `x-should-retry`.
    pub honor_should_retry: bool,
    /// What a `retry-after` above `max_retry_after` leads to.
    pub too_long_retry_after: TooLongRetryAfter,
    /// No retry whose wait would end later than this after the loop's
    /// current pass began (the `backoff` crate's `max_elapsed_time`): the
    /// request's arrival for the outermost loop and for a strategy without
    /// layers, the start of the pass for a loop inside a layer; `None`: no
    /// limit.
    pub max_elapsed: Option<u64>,
    /// Wait what a (positive, in-bound) `retry-after` says instead of the
    /// backoff, as the SDKs do, rather than at least it.
    pub retry_after_replaces_backoff: bool,
    /// A retry whose wait the provider's `retry-after` set does not advance
    /// the loop's backoff step (nor its decorrelated memory): the next wait
    /// the backoff sets goes on from the step it left (async-openai 0.43's
    /// `backoff_attempt`). `false`: every retry advances the step.
    pub retry_after_keeps_step: bool,
}

/// What a `retry-after` above `max_retry_after` leads to. The SDKs differ:
/// openai-python 1.x ignores the header and waits its own backoff, later
/// versions do not retry at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TooLongRetryAfter {
    /// No more tries on this model (as if its retries were spent).
    #[default]
    GiveUp,
    /// Ignore the header: the backoff alone sets the wait.
    Backoff,
}

/// Most retry loops around a strategy's own.
pub const MAX_LAYERS: usize = 4;

/// A retry loop around the strategy's own (an application loop around a
/// gateway around an SDK): it retries, after its own backoff, a failure
/// the loops inside it gave up on, by starting them afresh.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerConfig {
    /// Name, for the report.
    pub name: String,
    /// This layer's retries and backoff.
    pub retry: RetryConfig,
    /// Which failures this layer retries.
    pub classify: Classifier,
    /// A bound on each pass of the loops inside this layer (each call this
    /// layer makes, as `asyncio.wait_for(call, timeout)` bounds it): when it
    /// runs out, everything inside is cancelled and this layer sees a
    /// timeout. `None`: no bound but the request's deadline.
    pub timeout: Option<u64>,
}

/// One strategy.
#[derive(Clone, Debug)]
pub struct StrategyConfig {
    /// Name.
    pub name: String,
    /// Replicas.
    pub clients: u32,
    /// Seed of the core's own random stream (jitter).
    pub seed: u64,
    /// Models the client may call.
    pub models: Vec<ModelInfo>,
    /// Retries.
    pub retry: RetryConfig,
    /// Timeouts per tier.
    pub timeouts: [Timeouts; 3],
    /// No attempt starts with less than this left before the deadline.
    pub min_attempt_time: u64,
    /// How the first model is chosen.
    pub routing: RoutingConfig,
    /// Model per task index (static routing).
    pub route_by_task: Vec<ModelId>,
    /// Model for tasks beyond `route_by_task`.
    pub default_model: ModelId,
    /// Fallback chain per tier.
    pub chains: [Vec<ModelId>; 3],
    /// Failure classification.
    pub classify: Classifier,
    /// Retry budget (per replica unless `fleet.budget`).
    pub budget: BudgetConfig,
    /// Circuit breaker (per model and replica).
    pub breaker: BreakerConfig,
    /// Keep one breaker per API key instead of one per model.
    pub breaker_per_key: bool,
    /// Adaptive client-side throttling (per model and replica).
    pub throttle: Option<ThrottleConfig>,
    /// Hedged requests (default: none).
    pub hedge: Option<HedgeConfig>,
    /// Spending limits and alerts (default: none).
    pub cost_guard: Option<CostGuardConfig>,
    /// Client-side rate limits (default: none).
    pub rate_limit: Option<RateLimitConfig>,
    /// Concurrency limit (default: none).
    pub concurrency: Option<ConcurrencyConfig>,
    /// Key selection and key health (default: plain round-robin).
    pub key_pool: Option<KeyPoolConfig>,
    /// What bodies are accepted, and the safe default.
    pub validation: ValidationConfig,
    /// A retry budget counted in tokens or dollars (default: none).
    pub spend_budget: Option<SpendBudgetConfig>,
    /// Which policies keep one state for all replicas (default: none).
    pub fleet: FleetScopes,
    /// Retry loops around the strategy's own, outermost first (default:
    /// none; at most [`MAX_LAYERS`]).
    pub layers: Vec<LayerConfig>,
}
