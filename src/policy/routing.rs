//! Routing: which model a request goes to first.
//!
//! | kind | picks | source |
//! |---|---|---|
//! | `static` | the model of the request's task type, else `default` | LiteLLM model groups per route, Portkey conditional routing |
//! | `priority` | the first of `models`; the rest follow it in the chain (failover) | LiteLLM `order`, Envoy priorities |
//! | `weighted` | one of `weights`, at random in proportion | LiteLLM `weight`, Portkey load balancing |
//! | `latency` | the candidate with the lowest moving average (EWMA) of observed time to first token; with probability `explore` another one, so stale averages get fresh samples | LiteLLM latency-based routing |
//! | `cost` | the cheapest candidate that `tiers` says can serve the request's tier (estimated at prompt plus `max_tokens`) | LiteLLM cost-based routing |
//! | `least_in_flight` | the candidate with the fewest of this client's attempts in flight | Envoy least request |
//! | `p2c` | of two candidates drawn at random, the one with fewer in flight | power of two choices (Mitzenmacher) |
//!
//! Routing sees only what a real client could: the request, the prices, and
//! its own attempts (their latencies and how many are in flight), never the
//! provider's state. The routed model comes first in the request's chain,
//! the tier's fallback chain follows (for `priority`, the other candidates
//! first). A failed attempt counts as a `failure_penalty` sample (30 s) for
//! the latency average.

use rand::RngCore;

use crate::dist::unit;
use crate::units::{Nanos, SECS};

use super::config::{ModelInfo, StrategyConfig, Tier};
use super::contract::{ModelId, Request};

/// How the first model is chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum RoutingConfig {
    /// By task type (`StrategyConfig::route_by_task`, `default_model`).
    Static,
    /// First of the list; the others follow in the chain.
    Priority(Vec<ModelId>),
    /// At random, in proportion to the weights.
    Weighted(Vec<(ModelId, f64)>),
    /// Lowest EWMA of time to first token, with exploration.
    Latency {
        /// Candidates.
        models: Vec<ModelId>,
        /// Weight of a new sample (0..1).
        alpha: f64,
        /// Probability of trying another candidate.
        explore: f64,
    },
    /// Cheapest candidate that serves the tier; `tiers[i]` is a bit set of
    /// the tiers candidate `i` may serve.
    Cost {
        /// Candidates and the tiers each serves (bit `Tier::index()`).
        models: Vec<(ModelId, u8)>,
    },
    /// Fewest attempts in flight.
    LeastInFlight(Vec<ModelId>),
    /// Power of two choices.
    PowerOfTwo(Vec<ModelId>),
}

/// A failed attempt's sample for the latency average.
pub const FAILURE_PENALTY: Nanos = 30 * SECS;

/// What a router remembers: per model, the latency average and attempts in
/// flight (this client's own observations).
#[derive(Clone, Debug)]
pub struct Router {
    ewma: Vec<Option<f64>>,
    in_flight: Vec<u32>,
}

impl Router {
    /// A router for `n` models with no observations yet.
    pub fn new(n: usize) -> Self {
        Self {
            ewma: vec![None; n],
            in_flight: vec![0; n],
        }
    }

    /// An attempt went to `model`.
    pub fn on_send(&mut self, model: ModelId) {
        self.in_flight[usize::from(model)] += 1;
    }

    /// An attempt to `model` ended.
    pub fn on_end(&mut self, model: ModelId) {
        let f = &mut self.in_flight[usize::from(model)];
        *f = f.saturating_sub(1);
    }

    /// A latency sample for `model` (time to first token, or the failure penalty).
    pub fn on_sample(&mut self, cfg: &StrategyConfig, model: ModelId, sample: Nanos) {
        if let RoutingConfig::Latency { alpha, .. } = cfg.routing {
            let e = &mut self.ewma[usize::from(model)];
            let x = sample as f64;
            *e = Some(e.map_or(x, |old| old + alpha * (x - old)));
        }
    }

    /// Attempts in flight to `model`.
    pub fn in_flight(&self, model: ModelId) -> u32 {
        self.in_flight[usize::from(model)]
    }

    /// The first model for `req`, and, for `priority`, the candidates that
    /// follow it. Draws from `rng` only for the random kinds.
    pub fn route<'c>(
        &self,
        cfg: &'c StrategyConfig,
        req: &Request,
        rng: &mut impl RngCore,
    ) -> (ModelId, &'c [ModelId]) {
        let pick = match &cfg.routing {
            RoutingConfig::Static => cfg
                .route_by_task
                .get(usize::from(req.task))
                .copied()
                .unwrap_or(cfg.default_model),
            RoutingConfig::Priority(models) => return (models[0], &models[1..]),
            RoutingConfig::Weighted(w) => {
                let total: f64 = w.iter().map(|x| x.1).sum();
                let mut u = unit(rng.next_u64()) * total;
                let mut chosen = w[w.len() - 1].0;
                for &(m, weight) in w {
                    if u < weight {
                        chosen = m;
                        break;
                    }
                    u -= weight;
                }
                chosen
            }
            RoutingConfig::Latency {
                models, explore, ..
            } => {
                // Unmeasured models first (they get a sample), then the lowest average.
                let best = models
                    .iter()
                    .copied()
                    .min_by(|&a, &b| {
                        let key = |m: ModelId| self.ewma[usize::from(m)].unwrap_or(-1.0);
                        key(a).total_cmp(&key(b))
                    })
                    .unwrap_or(cfg.default_model);
                if models.len() > 1 && *explore > 0.0 && unit(rng.next_u64()) < *explore {
                    let others: Vec<ModelId> =
                        models.iter().copied().filter(|&m| m != best).collect();
                    others[(unit(rng.next_u64()) * others.len() as f64) as usize % others.len()]
                } else {
                    best
                }
            }
            RoutingConfig::Cost { models } => {
                let bit = 1u8 << req.tier.index();
                let estimate = |m: &ModelInfo| {
                    u128::from(req.input_tokens) * u128::from(m.price_in)
                        + u128::from(req.max_tokens) * u128::from(m.price_out)
                };
                models
                    .iter()
                    .filter(|(_, tiers)| tiers & bit != 0)
                    .min_by_key(|(m, _)| estimate(&cfg.models[usize::from(*m)]))
                    .or_else(|| {
                        models
                            .iter()
                            .min_by_key(|(m, _)| estimate(&cfg.models[usize::from(*m)]))
                    })
                    .map_or(cfg.default_model, |(m, _)| *m)
            }
            RoutingConfig::LeastInFlight(models) => models
                .iter()
                .copied()
                .min_by_key(|&m| self.in_flight(m))
                .unwrap_or(cfg.default_model),
            RoutingConfig::PowerOfTwo(models) => {
                let n = models.len();
                if n == 1 {
                    models[0]
                } else {
                    let a = (unit(rng.next_u64()) * n as f64) as usize % n;
                    let mut b = (unit(rng.next_u64()) * (n - 1) as f64) as usize % (n - 1);
                    if b >= a {
                        b += 1;
                    }
                    let (ma, mb) = (models[a], models[b]);
                    if self.in_flight(mb) < self.in_flight(ma) {
                        mb
                    } else {
                        ma
                    }
                }
            }
        };
        (pick, &[])
    }
}

/// The tier bit set for a list of tiers.
pub fn tier_bits(tiers: &[Tier]) -> u8 {
    tiers.iter().fold(0, |b, t| b | (1 << t.index()))
}

#[cfg(test)]
mod tests;
