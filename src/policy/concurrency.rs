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
//!
//! With `scope = "fleet"` the limit is one gateway's: one count, one limit
//! and one queue of `queue` places for all the replicas. The queue is a
//! FIFO of [`Ticket`]s (which replica holds the waiting request, and
//! which request): the oldest ticket, whichever replica holds it, gets the
//! next free place, and a request that finds a free place while tickets
//! wait queues behind them. A replica cannot call another, so a driver asks
//! any replica [`super::Client::poll_room`] after each input and hands the
//! moment to the replica it names ([`super::Client::handle_room`]); see
//! `policy::contract`.

use std::collections::VecDeque;

use crate::slab::Handle;

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

/// A request waiting in a fleet limit's queue: which replica (its place in
/// the order the replicas joined the fleet) holds it, and which of that
/// replica's requests it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The replica that holds the request.
    pub replica: u32,
    /// The request, in that replica.
    pub request: Handle,
}

/// One replica's limit, or the fleet's.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit {
    cfg: ConcurrencyConfig,
    limit: f64,
    in_flight: u32,
    /// The fleet's queue, oldest first (empty for a replica's limit, whose
    /// queue its client keeps). Only live requests: a replica withdraws its
    /// ticket when the request ends while it waits.
    tickets: VecDeque<Ticket>,
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
            tickets: VecDeque::new(),
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

    /// Whether a request that is not at the head of the fleet's queue may
    /// take a place now: one is free and nobody waits for it.
    pub fn has_room_for_newcomer(&self) -> bool {
        self.has_room() && self.tickets.is_empty()
    }

    /// Requests waiting in the fleet's queue.
    pub fn waiting(&self) -> usize {
        self.tickets.len()
    }

    /// A request joins the back of the fleet's queue.
    pub fn enqueue(&mut self, ticket: Ticket) {
        self.tickets.push_back(ticket);
    }

    /// The oldest waiting request, if a place is free for it.
    pub fn head_with_room(&self) -> Option<Ticket> {
        self.tickets.front().copied().filter(|_| self.has_room())
    }

    /// Takes the oldest waiting request out of the queue if it is
    /// `replica`'s and a place is free for it.
    pub fn take_head(&mut self, replica: u32) -> Option<Ticket> {
        let t = self.head_with_room().filter(|t| t.replica == replica)?;
        self.tickets.pop_front();
        Some(t)
    }

    /// A waiting request ended (its deadline came): its ticket leaves the
    /// queue. Linear in the queue, and only for requests that give up
    /// waiting.
    pub fn withdraw(&mut self, ticket: Ticket) {
        if let Some(i) = self.tickets.iter().position(|&t| t == ticket) {
            self.tickets.remove(i);
        }
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

    #[test]
    fn the_fleet_queue_serves_its_oldest_ticket_first_and_only_to_its_holder() {
        let t = |replica, i| Ticket {
            replica,
            request: Handle::from_u64(i),
        };
        let mut c = ConcurrencyLimit::new(ConcurrencyConfig::Fixed { limit: 1, queue: 5 });
        c.acquire();
        c.enqueue(t(1, 7));
        c.enqueue(t(0, 3));
        c.enqueue(t(1, 8));
        // Full: nobody is served, and nobody jumps.
        assert_eq!(c.head_with_room(), None);
        assert!(!c.has_room_for_newcomer());
        c.release(Signal::Ok);
        // A place is free, but the head is replica 1's: replica 0 waits.
        assert!(!c.has_room_for_newcomer());
        assert_eq!(c.head_with_room(), Some(t(1, 7)));
        assert_eq!(c.take_head(0), None);
        assert_eq!(c.take_head(1), Some(t(1, 7)));
        c.acquire();
        assert_eq!(c.take_head(0), None);
        // Replica 0's request gives up; replica 1's next is the head.
        c.withdraw(t(0, 3));
        c.release(Signal::Ok);
        assert_eq!(c.take_head(1), Some(t(1, 8)));
        assert_eq!(c.waiting(), 0);
        assert!(c.has_room_for_newcomer());
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
