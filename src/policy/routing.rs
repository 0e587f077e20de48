//! Routing: which model a request goes to first.
//!
//! Static routing by task type is what most teams start with: cheap models
//! for classification and extraction, strong ones for code and reasoning
//! (LiteLLM's `model_group` per route, Portkey's conditional routing on
//! metadata). Routing sees only the request, never the provider's state.

use super::config::StrategyConfig;
use super::contract::{ModelId, Request};

/// The model a request is sent to first.
pub fn route(cfg: &StrategyConfig, req: &Request) -> ModelId {
    cfg.route_by_task
        .get(usize::from(req.task))
        .copied()
        .unwrap_or(cfg.default_model)
}
