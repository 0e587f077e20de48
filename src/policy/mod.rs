//! The resilience core: retry, backoff, classification, timeouts, routing,
//! fallback and cost, as one sans-IO state machine per client ([`Client`]).
//!
//! Modelled on quinn-proto: no sockets, no tokio, no clock reads, no
//! randomness but a generator handed in from the configuration. Time comes in
//! as an argument, decisions go out as [`Action`]s. The simulator and the live
//! driver both drive this same code, so a policy compared in simulation is
//! the policy that runs for real. This module imports nothing from `sim/`,
//! `live/`, `world/` or `report/`: a client sees outcomes, never the
//! provider's hidden state.

pub mod breaker;
pub mod client;
pub mod concurrency;
pub mod config;
pub mod contract;
pub mod cost;
pub mod cost_guard;
pub mod draws;
pub mod fallback;
pub mod harness;
pub mod hedge;
pub mod keys;
pub mod rate_limit;
pub mod retry;
pub mod routing;
pub mod scope;
pub mod spend_budget;
pub mod throttle;
pub mod timeout;
pub mod validation;
pub mod window;

pub use client::Client;
pub use config::{ModelInfo, RetryConfig, StrategyConfig, Tier, TooLongRetryAfter};
pub use contract::{
    Action, AttemptId, CancelReason, FailReason, KeyId, ModelId, Outcome, Request, RequestResult,
};
pub use cost::{CostLedger, ModelCost};
pub use retry::{Backoff, Classifier, Disposition, FailureClass};
pub use timeout::Timeouts;
