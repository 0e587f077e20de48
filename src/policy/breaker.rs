//! Circuit breakers: stop sending to a model that keeps failing.
//!
//! Retrying a model that is down costs a backoff and an attempt per try, for
//! every request, for as long as the outage lasts: the fallback comes, but
//! late. A breaker notices the failures and, for a while, sends nothing to
//! that model at all: routing and fallback skip it, so requests go straight
//! to the next model in their chain. After the break a few probes test the
//! model again (Michael Nygard, *Release It!*; Polly v8's circuit breaker;
//! LiteLLM's deployment cooldown).
//!
//! | kind | opens when | then | defaults | source |
//! |---|---|---|---|---|
//! | `ratio` | over the last `window`, at least `min_throughput` attempts and a failure share of at least `failure_ratio` | open for `break_for`, then half-open: `probes` attempts decide (a success closes it, a failure opens it again) | 0.1, 100, 30 s, 5 s, 1 | Polly v8 `CircuitBreakerStrategyOptions` |
//! | `cooldown` | more than `allowed_fails` failures within the last minute | cooled down for `cooldown`, then closed | 3, 5 s | LiteLLM router `allowed_fails`, `cooldown_time` |
//!
//! Failures are the outcomes that say the model is unwell: 429, 5xx,
//! timeouts, resets, broken streams and malformed bodies. A 4xx the client
//! caused counts neither way. One breaker per model and client replica.

use crate::units::{Nanos, SECS};

use super::window::SlidingWindow;

/// A breaker's configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BreakerConfig {
    /// No breaker.
    None,
    /// Polly-style: a failure ratio over a sliding window.
    Ratio {
        /// Failure share that opens it.
        failure_ratio: f64,
        /// Attempts the window needs before it may open.
        min_throughput: u32,
        /// Sliding window.
        window: Nanos,
        /// How long it stays open.
        break_for: Nanos,
        /// Attempts let through while half-open.
        probes: u32,
    },
    /// LiteLLM-style: too many failures in a minute cool the model down.
    Cooldown {
        /// Failures per minute tolerated.
        allowed_fails: u32,
        /// How long the model is skipped.
        cooldown: Nanos,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Nanos },
    HalfOpen { in_flight: u32 },
}

/// One model's breaker.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    state: State,
    /// Counters: successes, failures.
    window: SlidingWindow,
    opened: u32,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        let window = match cfg {
            BreakerConfig::Ratio { window, .. } => window,
            BreakerConfig::Cooldown { .. } => 60 * SECS,
            BreakerConfig::None => SECS,
        };
        Self {
            cfg,
            state: State::Closed,
            window: SlidingWindow::new(window),
            opened: 0,
        }
    }

    /// How many times it has opened.
    pub fn times_opened(&self) -> u32 {
        self.opened
    }

    /// Whether it is open (or half-open with no probe to spare) at `now`.
    pub fn is_open(&self, now: Nanos) -> bool {
        match (self.state, self.cfg) {
            (State::Open { until }, _) => now < until,
            (State::HalfOpen { in_flight }, BreakerConfig::Ratio { probes, .. }) => {
                in_flight >= probes
            }
            _ => false,
        }
    }

    /// An open breaker whose time is up becomes half-open (ratio) or closed
    /// (cooldown).
    fn refresh(&mut self, now: Nanos) {
        if let State::Open { until } = self.state {
            if now >= until {
                self.state = match self.cfg {
                    BreakerConfig::Ratio { .. } => State::HalfOpen { in_flight: 0 },
                    _ => State::Closed,
                };
                self.window.clear();
            }
        }
    }

    /// Whether an attempt may go to the model now; a half-open breaker
    /// counts it as one of its probes.
    pub fn allow(&mut self, now: Nanos) -> bool {
        self.refresh(now);
        match (self.state, self.cfg) {
            (State::Open { .. }, _) => false,
            (State::HalfOpen { in_flight }, BreakerConfig::Ratio { probes, .. }) => {
                if in_flight >= probes {
                    return false;
                }
                self.state = State::HalfOpen {
                    in_flight: in_flight + 1,
                };
                true
            }
            _ => true,
        }
    }

    /// An attempt to the model was abandoned before it answered (the loser
    /// of a hedge): no news of the model's health, but a half-open breaker
    /// gets its probe back.
    pub fn on_abandoned(&mut self) {
        if let State::HalfOpen { in_flight } = self.state {
            self.state = State::HalfOpen {
                in_flight: in_flight.saturating_sub(1),
            };
        }
    }

    /// An attempt to the model ended: `ok` is whether it succeeded (an
    /// outcome that says nothing about the model's health counts as a
    /// success, as in Polly). Returns true when this opened the breaker.
    pub fn on_result(&mut self, now: Nanos, ok: bool) -> bool {
        if self.cfg == BreakerConfig::None {
            return false;
        }
        self.refresh(now);
        match self.state {
            State::HalfOpen { .. } => {
                if ok {
                    self.state = State::Closed;
                    self.window.clear();
                    return false;
                }
                return self.open(now);
            }
            // A late answer from before it opened: no news.
            State::Open { .. } => return false,
            State::Closed => {}
        }
        self.window.add(now, usize::from(!ok));
        if ok {
            // Only a failure can trip it (Polly evaluates on failures).
            return false;
        }
        let [good, bad] = self.window.sums(now);
        let trip = match self.cfg {
            BreakerConfig::Ratio {
                failure_ratio,
                min_throughput,
                ..
            } => {
                good + bad >= u64::from(min_throughput)
                    && bad as f64 >= failure_ratio * (good + bad) as f64
            }
            BreakerConfig::Cooldown { allowed_fails, .. } => bad > u64::from(allowed_fails),
            BreakerConfig::None => false,
        };
        trip && self.open(now)
    }

    fn open(&mut self, now: Nanos) -> bool {
        let for_ = match self.cfg {
            BreakerConfig::Ratio { break_for, .. } => break_for,
            BreakerConfig::Cooldown { cooldown, .. } => cooldown,
            BreakerConfig::None => return false,
        };
        self.state = State::Open {
            until: now.saturating_add(for_),
        };
        self.opened += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MILLIS;
    use proptest::prelude::*;

    fn ratio() -> BreakerConfig {
        BreakerConfig::Ratio {
            failure_ratio: 0.5,
            min_throughput: 10,
            window: 10 * SECS,
            break_for: 5 * SECS,
            probes: 1,
        }
    }

    #[test]
    fn opens_on_the_failure_ratio_then_probes_then_closes() {
        let mut b = CircuitBreaker::new(ratio());
        // Nine failures: below the minimum throughput, still closed.
        for i in 0..9 {
            assert!(!b.on_result(i * MILLIS, false));
        }
        assert!(b.allow(SECS));
        // The tenth trips it.
        assert!(b.on_result(SECS, false));
        assert!(!b.allow(SECS) && b.is_open(SECS));
        assert!(!b.allow(6 * SECS - 1));
        // After the break: one probe, and no second one while it is out.
        assert!(b.allow(6 * SECS));
        assert!(!b.allow(6 * SECS));
        // The probe fails: open again for another break.
        assert!(b.on_result(6 * SECS, false));
        assert!(!b.allow(10 * SECS));
        assert!(b.allow(11 * SECS));
        // This probe succeeds: closed, with a fresh window.
        assert!(!b.on_result(11 * SECS, true));
        assert!(b.allow(11 * SECS) && b.allow(11 * SECS));
        assert_eq!(b.times_opened(), 2);
    }

    #[test]
    fn successes_keep_it_closed() {
        let mut b = CircuitBreaker::new(ratio());
        for i in 0..100 {
            assert!(!b.on_result(i * 10 * MILLIS, i % 3 != 0), "{i}");
        }
        assert!(b.allow(SECS));
    }

    #[test]
    fn cooldown_skips_the_model_then_closes_without_probes() {
        let mut b = CircuitBreaker::new(BreakerConfig::Cooldown {
            allowed_fails: 3,
            cooldown: 5 * SECS,
        });
        for i in 0..3 {
            assert!(!b.on_result(i * SECS, false));
        }
        assert!(b.on_result(3 * SECS, false));
        assert!(!b.allow(7 * SECS));
        assert!(b.allow(8 * SECS) && b.allow(8 * SECS));
        // The old failures are forgotten: it takes four more to cool down.
        for i in 0..3 {
            assert!(!b.on_result(9 * SECS + i, false));
        }
    }

    proptest! {
        /// Closed, it never opens below the minimum throughput or the ratio;
        /// open, it lets nothing through until the break is over.
        #[test]
        fn opens_only_for_cause(results in proptest::collection::vec((0u64..500, any::<bool>()), 1..300)) {
            let mut results = results;
            results.sort_unstable();
            let mut b = CircuitBreaker::new(ratio());
            let mut log: Vec<(u64, bool)> = Vec::new();
            for (ms10, ok) in results {
                let now = ms10 * 10 * MILLIS;
                if !b.allow(now) {
                    prop_assert!(b.is_open(now));
                    continue;
                }
                let before = b.state;
                log.push((now / SECS, ok));
                if b.on_result(now, ok) && before == State::Closed {
                    let second = now / SECS;
                    let window: Vec<bool> = log.iter().filter(|(s, _)| *s + 10 > second).map(|x| x.1).collect();
                    let bad = window.iter().filter(|ok| !**ok).count();
                    prop_assert!(window.len() >= 10 && bad * 2 >= window.len());
                }
                // The breaker starts a fresh window whenever it leaves closed
                // or comes back to it.
                if before != State::Closed || b.state != State::Closed {
                    log.clear();
                }
            }
        }
    }
}
