//! A step harness for the core, in the spirit of quinn-proto's test `Pair`:
//! feed inputs, jump virtual time to the next timer, collect the actions,
//! and cap the steps so that a livelock fails a test instead of hanging it.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::units::Nanos;
use crate::wire::RateLimits;

use super::client::Client;
use super::config::StrategyConfig;
use super::contract::{Action, AttemptId, Outcome, Request};

/// Drives one [`Client`] by hand.
pub struct Harness {
    /// The core under test.
    pub client: Client,
    /// Current virtual time.
    pub now: Nanos,
    /// Every action so far, with the time it was emitted.
    pub log: Vec<(Nanos, Action)>,
    steps: u32,
    max_steps: u32,
}

impl Harness {
    /// A harness around a fresh client seeded with `seed`.
    pub fn new(cfg: StrategyConfig, seed: u64) -> Self {
        Self {
            client: Client::new(Arc::new(cfg), ChaCha8Rng::seed_from_u64(seed)),
            now: 0,
            log: Vec::new(),
            steps: 0,
            max_steps: 100_000,
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        self.steps += 1;
        assert!(
            self.steps <= self.max_steps,
            "harness: more than {} steps",
            self.max_steps
        );
        let mut out = Vec::new();
        while let Some(a) = self.client.poll_action() {
            self.log.push((self.now, a));
            out.push(a);
        }
        out
    }

    /// Moves time forward to `t` without firing timers.
    pub fn set_time(&mut self, t: Nanos) {
        assert!(t >= self.now, "time runs forward");
        self.now = t;
    }

    /// A request arrives now.
    pub fn request(&mut self, req: Request) -> Vec<Action> {
        self.client.handle_request(self.now, req);
        self.drain()
    }

    /// An attempt's first token arrives now.
    pub fn first_token(&mut self, id: AttemptId) -> Vec<Action> {
        self.client.handle_first_token(self.now, id);
        self.drain()
    }

    /// An attempt ends now.
    pub fn outcome(&mut self, id: AttemptId, o: Outcome) -> Vec<Action> {
        self.client
            .handle_outcome(self.now, id, o, RateLimits::default());
        self.drain()
    }

    /// Jumps to the next timer and fires it; `None` when no timer is left.
    pub fn next_timer(&mut self) -> Option<Vec<Action>> {
        let t = self.client.poll_timeout()?;
        self.now = self.now.max(t);
        self.client.handle_timeout(self.now);
        Some(self.drain())
    }
}

/// The first `Send` in a list of actions: (attempt, model, try on model).
pub fn sent(actions: &[Action]) -> Option<(AttemptId, u16, u32)> {
    actions.iter().find_map(|a| match *a {
        Action::Send {
            attempt,
            model,
            try_on_model,
            ..
        } => Some((attempt, model, try_on_model)),
        _ => None,
    })
}

/// The `Finish` in a list of actions, if any.
pub fn finished(actions: &[Action]) -> Option<Action> {
    actions
        .iter()
        .copied()
        .find(|a| matches!(a, Action::Finish { .. }))
}
