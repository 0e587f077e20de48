//! Concurrency limits: how many attempts a client replica has in flight.
//!
//! A rate limit bounds how often a client sends; a concurrency limit bounds
//! how much it has outstanding, which is what actually fills a provider's
//! slots when answers slow down (Little's law). Two kinds:
//!
//! - `fixed`: a bulkhead (Polly's `ConcurrencyLimiter`, Resilience4j's
//!   `Bulkhead`): at most `limit` attempts in flight, and at most `queue`
//!   requests waiting, first in first out, for a place; beyond that a
//!   request is shed at once;
//! - `aimd`: the same with an adaptive limit (Netflix concurrency-limits'
//!   `AIMDLimit`): it backs off multiplicatively (x `backoff`, default 0.9)
//!   when an attempt is rejected for load (429, 503, 529) or times out, and
//!   grows by one on any other answer while the client uses at least half of
//!   it; bounded by `min` and `max` (defaults 20, 20 and 200 as initial, min
//!   and max, Netflix's).
//!
//! A queued request waits at most until its deadline (less
//! `min_attempt_time`); it then fails as it would have without the queue.
//! Every attempt holds a place, retries and hedges included (a hedge only
//! goes when a place is free, it never queues).

/// Concurrency limit settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConcurrencyConfig {
    /// A bulkhead.
    Fixed {
        /// Attempts in flight.
        limit: u32,
        /// Requests waiting for a place.
        queue: u32,
    },
    /// Additive increase, multiplicative decrease.
    Aimd {
        /// Starting limit.
        initial: u32,
        /// Lowest limit.
        min: u32,
        /// Highest limit.
        max: u32,
        /// Factor applied on a drop (0..1).
        backoff: f64,
        /// Requests waiting for a place.
        queue: u32,
    },
}

/// How an attempt ended, for an adaptive limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Rejected for load or timed out: back off.
    Drop,
    /// Any other answer.
    Ok,
    /// Cancelled by the client (a hedge's loser, a deadline): no news.
    Ignore,
}

/// One replica's limit.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit {
    cfg: ConcurrencyConfig,
    limit: f64,
    in_flight: u32,
}

impl ConcurrencyLimit {
    /// Nothing in flight.
    pub fn new(cfg: ConcurrencyConfig) -> Self {
        let limit = match cfg {
            ConcurrencyConfig::Fixed { limit, .. } => limit,
            ConcurrencyConfig::Aimd { initial, .. } => initial,
        };
        Self {
            cfg,
            limit: f64::from(limit.max(1)),
            in_flight: 0,
        }
    }

    /// The current limit.
    pub fn limit(&self) -> u32 {
        self.limit as u32
    }

    /// Attempts in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Requests allowed to wait.
    pub fn queue(&self) -> usize {
        match self.cfg {
            ConcurrencyConfig::Fixed { queue, .. } | ConcurrencyConfig::Aimd { queue, .. } => {
                queue as usize
            }
        }
    }

    /// Whether one more attempt fits.
    pub fn has_room(&self) -> bool {
        self.in_flight < self.limit()
    }

    /// An attempt starts.
    pub fn acquire(&mut self) {
        self.in_flight += 1;
    }

    /// An attempt ended with `signal`.
    pub fn release(&mut self, signal: Signal) {
        let used = self.in_flight;
        self.in_flight = self.in_flight.saturating_sub(1);
        if let ConcurrencyConfig::Aimd {
            min, max, backoff, ..
        } = self.cfg
        {
            let (min, max) = (f64::from(min.max(1)), f64::from(max.max(1)));
            match signal {
                Signal::Drop => self.limit = (self.limit * backoff).floor().max(min),
                Signal::Ok if f64::from(used) * 2.0 >= self.limit => {
                    self.limit = (self.limit + 1.0).min(max);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bulkhead_holds_its_limit() {
        let mut c = ConcurrencyLimit::new(ConcurrencyConfig::Fixed { limit: 2, queue: 5 });
        c.acquire();
        c.acquire();
        assert!(!c.has_room());
        c.release(Signal::Drop);
        assert!(c.has_room());
        assert_eq!((c.limit(), c.queue()), (2, 5));
    }

    fn aimd() -> ConcurrencyLimit {
        ConcurrencyLimit::new(ConcurrencyConfig::Aimd {
            initial: 20,
            min: 5,
            max: 30,
            backoff: 0.9,
            queue: 0,
        })
    }

    #[test]
    fn aimd_backs_off_on_drops_and_grows_when_used() {
        let mut c = aimd();
        c.acquire();
        c.release(Signal::Drop);
        assert_eq!(c.limit(), 18);
        c.acquire();
        c.release(Signal::Drop);
        assert_eq!(c.limit(), 16);
        // Using less than half of it does not grow it.
        c.acquire();
        c.release(Signal::Ok);
        assert_eq!(c.limit(), 16);
        for _ in 0..8 {
            c.acquire();
        }
        c.release(Signal::Ok);
        assert_eq!(c.limit(), 17);
        c.release(Signal::Ignore);
        assert_eq!(c.limit(), 17);
    }

    proptest! {
        /// The adaptive limit stays within [min, max] whatever happens.
        #[test]
        fn aimd_stays_in_bounds(signals in proptest::collection::vec(0u8..3, 0..500), load in 0u32..40) {
            let mut c = aimd();
            for s in signals {
                for _ in 0..load {
                    c.acquire();
                }
                c.release(match s { 0 => Signal::Drop, 1 => Signal::Ok, _ => Signal::Ignore });
                for _ in 1..load {
                    c.release(Signal::Ignore);
                }
                prop_assert!((5..=30).contains(&c.limit()));
            }
        }
    }
}
