//! Scope: who keeps a stateful policy's state.
//!
//! A strategy runs as `clients = N` replicas. An in-process library (an SDK's
//! retry loop, a breaker in the service's own code) keeps its state per
//! replica: each of the N learns on its own, and N replicas with a 20% retry
//! budget each have N floors. A central gateway or a budget kept in Redis
//! keeps one state for all: what one replica spends, the others cannot.
//! Every stateful policy takes `scope = "replica"` (the default) or
//! `"fleet"`:
//!
//! | policy | what a fleet shares |
//! |---|---|
//! | `budget` | the ratio window, the retries in flight, the token bucket |
//! | `spend_budget` | the window of first-attempt and retry spend |
//! | `breaker` | the breakers (per model or per key): one failure count, one open state, one set of probes |
//! | `throttle` | the requests and accepts of the window, per model |
//! | `cost_guard` | the spend per hour and day, and which alerts have fired |
//! | `key_pool` | disabled keys, resting keys, keys' in-flight counts and last figures |
//! | `concurrency` | the limit, the attempts in flight and the queue (first in, first out across the fleet) |
//! | `rate_limit` | the buckets |
//!
//! Fleet state is an `Rc<RefCell<_>>` that the driver makes once per
//! strategy ([`FleetState::new`]) and hands to every replica
//! ([`super::Client::join_fleet`]). The core stays sans-IO: the state is
//! borrowed for one decision and given back before the core does anything
//! else, and both drivers step a strategy's replicas one input at a time on
//! one thread, so the order in which replicas meet the shared state is the
//! order of their inputs, and a run stays deterministic. Not a lock: a
//! mutex's guard code at every use site made the replica path 3% slower
//! (BENCHMARKS.md), and replicas never run on two threads at once.
//!
//! Replicas are numbered in the order they join (replica 0 first): a fleet
//! concurrency limit's queue names the replica that holds each waiting
//! request by that number, and [`super::Client::poll_room`] answers with it.

use std::cell::{Cell, RefCell, RefMut};
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::breaker::CircuitBreaker;
use super::concurrency::ConcurrencyLimit;
use super::config::StrategyConfig;
use super::cost_guard::CostGuard;
use super::keys::KeyPool;
use super::rate_limit::RateLimiter;
use super::retry::RetryBudget;
use super::spend_budget::SpendBudget;
use super::throttle::AdaptiveThrottle;

/// Which policies of a strategy keep fleet-wide state (the rate limit says
/// so in its own configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetScopes {
    /// The retry budget.
    pub budget: bool,
    /// The spend budget.
    pub spend_budget: bool,
    /// The circuit breakers.
    pub breaker: bool,
    /// The adaptive throttles.
    pub throttle: bool,
    /// The cost guard.
    pub cost_guard: bool,
    /// The key pool's state.
    pub key_pool: bool,
    /// The concurrency limit.
    pub concurrency: bool,
}

/// A policy's state, kept by one replica or shared by the fleet.
#[derive(Debug)]
pub enum Scoped<T> {
    /// This replica's own.
    Replica(T),
    /// Shared by every replica of the strategy.
    Fleet(Rc<RefCell<T>>),
}

/// Mutable access to a [`Scoped`] state (a borrow of the fleet's).
pub enum ScopeGuard<'a, T> {
    /// A replica's own.
    Replica(&'a mut T),
    /// The fleet's, borrowed.
    Fleet(RefMut<'a, T>),
}

impl<T> Scoped<T> {
    /// The state, to change it.
    #[inline]
    pub fn get(&mut self) -> ScopeGuard<'_, T> {
        match self {
            Self::Replica(t) => ScopeGuard::Replica(t),
            Self::Fleet(m) => ScopeGuard::Fleet(m.borrow_mut()),
        }
    }

    /// Calls `f` with the state, to change it. On the replica path this is
    /// one test of the variant: no guard, nothing to drop.
    #[inline(always)]
    pub fn with<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> R {
        match self {
            Self::Replica(t) => f(t),
            Self::Fleet(c) => fleet_mut(c, f),
        }
    }

    /// Calls `f` with the state, to read it.
    #[inline(always)]
    pub fn with_ref<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        match self {
            Self::Replica(t) => f(t),
            Self::Fleet(c) => fleet_ref(c, f),
        }
    }

    /// Whether the state is the fleet's.
    pub fn is_fleet(&self) -> bool {
        matches!(self, Self::Fleet(_))
    }

    /// Replaces a replica's own state with `shared`.
    pub fn share(&mut self, shared: &Rc<RefCell<T>>) {
        *self = Self::Fleet(Rc::clone(shared));
    }
}

/// The fleet's path, kept out of line so that the replica path stays as
/// small as it was before scopes existed.
#[cold]
#[inline(never)]
fn fleet_mut<T, R>(c: &RefCell<T>, f: impl FnOnce(&mut T) -> R) -> R {
    f(&mut c.borrow_mut())
}

#[cold]
#[inline(never)]
fn fleet_ref<T, R>(c: &RefCell<T>, f: impl FnOnce(&T) -> R) -> R {
    f(&c.borrow())
}

impl<T> Deref for ScopeGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match self {
            Self::Replica(t) => t,
            Self::Fleet(g) => g,
        }
    }
}

impl<T> DerefMut for ScopeGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        match self {
            Self::Replica(t) => t,
            Self::Fleet(g) => g,
        }
    }
}

type Shared<T> = Option<Rc<RefCell<T>>>;

/// The fleet-scoped state of one strategy: one of each policy whose scope is
/// `fleet`, fresh, for all its replicas to share.
#[derive(Default)]
pub struct FleetState {
    pub(crate) budget: Shared<RetryBudget>,
    pub(crate) spend: Shared<SpendBudget>,
    pub(crate) breakers: Shared<Vec<CircuitBreaker>>,
    pub(crate) throttles: Shared<Vec<AdaptiveThrottle>>,
    pub(crate) guard: Shared<CostGuard>,
    pub(crate) keys: Shared<KeyPool>,
    pub(crate) conc: Shared<ConcurrencyLimit>,
    pub(crate) limiter: Shared<RateLimiter>,
    /// Replicas joined so far: the next one's number.
    members: Cell<u32>,
}

fn shared<T>(on: bool, make: impl FnOnce() -> Option<T>) -> Shared<T> {
    if on {
        make().map(|t| Rc::new(RefCell::new(t)))
    } else {
        None
    }
}

impl FleetState {
    /// Fresh shared state for the policies of `cfg` that are fleet-scoped
    /// (none for a strategy without any).
    pub fn new(cfg: &StrategyConfig) -> Self {
        let f = cfg.fleet;
        Self {
            budget: shared(f.budget, || Some(RetryBudget::new(cfg.budget))),
            spend: shared(f.spend_budget, || cfg.spend_budget.map(SpendBudget::new)),
            breakers: shared(f.breaker, || Some(breakers_for(cfg))),
            throttles: shared(f.throttle, || Some(throttles_for(cfg))),
            guard: shared(f.cost_guard, || cfg.cost_guard.clone().map(CostGuard::new)),
            keys: shared(f.key_pool, || cfg.key_pool.map(KeyPool::new)),
            conc: shared(f.concurrency, || cfg.concurrency.map(ConcurrencyLimit::new)),
            limiter: shared(cfg.rate_limit.is_some_and(|r| r.fleet), || {
                cfg.rate_limit.map(RateLimiter::new)
            }),
            members: Cell::new(0),
        }
    }

    /// Numbers a joining replica: 0 for the first, then 1, 2 and so on.
    pub(crate) fn enrol(&self) -> u32 {
        let n = self.members.get();
        self.members.set(n + 1);
        n
    }

    /// Whether any policy is fleet-scoped.
    pub fn is_empty(&self) -> bool {
        self.budget.is_none()
            && self.spend.is_none()
            && self.breakers.is_none()
            && self.throttles.is_none()
            && self.guard.is_none()
            && self.keys.is_none()
            && self.conc.is_none()
            && self.limiter.is_none()
    }
}

/// One breaker per model, or per key id any model may use.
pub(crate) fn breakers_for(cfg: &StrategyConfig) -> Vec<CircuitBreaker> {
    let n = if cfg.breaker_per_key {
        cfg.models
            .iter()
            .flat_map(|m| m.keys.iter())
            .map(|&k| usize::from(k) + 1)
            .max()
            .unwrap_or(0)
    } else {
        cfg.models.len()
    };
    (0..n).map(|_| CircuitBreaker::new(cfg.breaker)).collect()
}

/// One throttle per model, or none.
pub(crate) fn throttles_for(cfg: &StrategyConfig) -> Vec<AdaptiveThrottle> {
    cfg.throttle.map_or_else(Vec::new, |t| {
        (0..cfg.models.len())
            .map(|_| AdaptiveThrottle::new(t))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_state_is_one_state_and_replica_state_is_its_own() {
        let shared = Rc::new(RefCell::new(0u32));
        let mut a = Scoped::Replica(0u32);
        let mut b = Scoped::Replica(0u32);
        *a.get() += 1;
        assert_eq!(b.with_ref(|b| *b), 0);
        a.share(&shared);
        b.share(&shared);
        *a.get() += 1;
        *b.get() += 1;
        assert_eq!(a.with_ref(|a| *a), 2);
        assert!(a.is_fleet());
    }
}
