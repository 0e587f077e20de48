//! Fallback chains: which models to try when one gives up.
//!
//! When a model keeps failing, more retries against it add load and latency;
//! another model (another provider, ideally) often answers at once. LiteLLM's
//! router calls these `fallbacks`, Portkey a fallback target list. Chains are
//! per complexity tier, because a cheap model is a fine fallback for a
//! classification and a poor one for a proof. The routed model comes first;
//! the chain's models follow in order, each model at most once.

use super::contract::ModelId;

/// Up to this many models per request (the routed one plus fallbacks).
pub const MAX_CHAIN: usize = 8;

/// The models a request may use, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    models: [ModelId; MAX_CHAIN],
    len: u8,
}

impl Chain {
    /// The routed model, then the router's other candidates (priority
    /// routing), then the request's tier chain; each model once.
    pub fn build(first: ModelId, candidates: &[ModelId], tier_chain: &[ModelId]) -> Self {
        let mut c = Self {
            models: [0; MAX_CHAIN],
            len: 0,
        };
        c.push(first);
        for &m in candidates.iter().chain(tier_chain) {
            c.push(m);
        }
        c
    }

    fn push(&mut self, m: ModelId) {
        let len = usize::from(self.len);
        if len < MAX_CHAIN && !self.models[..len].contains(&m) {
            self.models[len] = m;
            self.len += 1;
        }
    }

    /// The model at position `i`, if the chain is that long.
    pub fn get(&self, i: usize) -> Option<ModelId> {
        (i < usize::from(self.len)).then(|| self.models[i])
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the chain is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
