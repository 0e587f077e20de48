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
//! | `cooldown` | more than `allowed_fails` failures within the last minute | cooled down for `cooldown`, then closed | 3, 5 s | LiteLLM router `allowed_fails`, `cooldown_time` (its legacy rule, used when `allowed_fails` is set) |
//! | `failure_rate` | a failure whose share of the calls counted is over `failure_threshold`, or a 429 (both unless `single_deployment`); every call failed and at least `all_failed_min` were counted; a 401 | cooled down for the answer's `retry-after`, else `cooldown`, then closed | 0.5, 1000, 5 s, false | LiteLLM router 1.80's default rule (`_should_cooldown_deployment`) |
//!
//! Failures are the outcomes that say the model is unwell: 429, 5xx,
//! timeouts, resets, broken streams and malformed bodies. A 4xx the client
//! caused counts neither way. One breaker per model and client replica.
//!
//! `failure_rate` hears what LiteLLM's router hears instead
//! ([`CircuitBreaker::on_litellm_failure`]): every failed call counts,
//! a body the model got wrong is a success (the router got a 200), and
//! its two counters are LiteLLM's "current minute" caches, which expire 60
//! seconds after their *last* increment (`increment_cache` sets the TTL
//! again), so under steady traffic they keep counting.

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
    /// LiteLLM 1.80's default: the failure share of the calls counted.
    FailureRate {
        /// Failure share above which a failure cools the model down
        /// (`DEFAULT_FAILURE_THRESHOLD_PERCENT`).
        failure_threshold: f64,
        /// Calls counted, all failed, that cool even a lone deployment
        /// (`SINGLE_DEPLOYMENT_TRAFFIC_FAILURE_THRESHOLD`).
        all_failed_min: u32,
        /// How long the model is skipped when the answer gave no
        /// `retry-after` (`cooldown_time`).
        cooldown: Nanos,
        /// The model is its group's only deployment: neither a 429 nor the
        /// failure share cools it.
        single_deployment: bool,
    },
}

/// What `failure_rate` learns of a failed call: what LiteLLM's router
/// would see of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LitellmFailure {
    /// A 429 (rate limit or quota).
    RateLimited,
    /// A 401: never retried, so always cooled.
    Unauthorized,
    /// A connection error: counted, never cooled (`APIConnectionError`).
    Connection,
    /// A 4xx other than 401, 404, 408 and 429: counted, never cooled.
    OtherClientError,
    /// A 5xx, a timeout (408) or a stream broken off.
    Other,
}

/// One of LiteLLM's per-deployment counters: an in-memory cache entry
/// with a 60-second TTL that each increment sets again.
#[derive(Clone, Copy, Debug, Default)]
struct MinuteCount {
    n: u64,
    last: Nanos,
}

impl MinuteCount {
    const TTL: Nanos = 60 * SECS;

    fn get(&self, now: Nanos) -> u64 {
        if self.n > 0 && now < self.last.saturating_add(Self::TTL) {
            self.n
        } else {
            0
        }
    }

    fn bump(&mut self, now: Nanos) {
        self.n = self.get(now) + 1;
        self.last = now;
    }
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
    /// `failure_rate`'s counters: successes, failures.
    minute: [MinuteCount; 2],
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig) -> Self {
        let window = match cfg {
            BreakerConfig::Ratio { window, .. } => window,
            BreakerConfig::Cooldown { .. } => 60 * SECS,
            BreakerConfig::None | BreakerConfig::FailureRate { .. } => SECS,
        };
        Self {
            cfg,
            state: State::Closed,
            window: SlidingWindow::new(window),
            opened: 0,
            minute: [MinuteCount::default(); 2],
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
        if let BreakerConfig::FailureRate { .. } = self.cfg {
            return if ok {
                self.minute[0].bump(now);
                false
            } else {
                // A call cut short by the caller: a timeout to the router.
                self.on_litellm_failure(now, LitellmFailure::Other, None)
            };
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
            BreakerConfig::None | BreakerConfig::FailureRate { .. } => false,
        };
        trip && self.open(now)
    }

    /// A failed call, for a `failure_rate` breaker (LiteLLM's
    /// `deployment_callback_on_failure`): it counts, then cools the model
    /// down by `_should_cooldown_deployment`'s rules, for the answer's
    /// `retry-after` when it has one (a zero one cools nothing), else for
    /// `cooldown`. A cooled model that fails again is cooled afresh, as
    /// LiteLLM sets its cooldown entry again. Returns true when this
    /// opened it. Other kinds hear a plain failure.
    pub fn on_litellm_failure(
        &mut self,
        now: Nanos,
        what: LitellmFailure,
        retry_after: Option<Nanos>,
    ) -> bool {
        let BreakerConfig::FailureRate {
            failure_threshold,
            all_failed_min,
            cooldown,
            single_deployment,
        } = self.cfg
        else {
            return self.on_result(now, false);
        };
        self.minute[1].bump(now);
        let for_ = retry_after.unwrap_or(cooldown);
        if for_ == 0
            || matches!(
                what,
                LitellmFailure::Connection | LitellmFailure::OtherClientError
            )
        {
            return false;
        }
        let [good, bad] = [self.minute[0].get(now), self.minute[1].get(now)];
        let total = good + bad;
        let share = bad as f64 / total as f64;
        let cool = (what == LitellmFailure::RateLimited && !single_deployment)
            || (good == 0 && total >= u64::from(all_failed_min))
            || (share > failure_threshold && !single_deployment)
            || what == LitellmFailure::Unauthorized;
        if !cool {
            return false;
        }
        let was_open = self.is_open(now);
        self.state = State::Open {
            until: now.saturating_add(for_),
        };
        if !was_open {
            self.opened += 1;
        }
        !was_open
    }

    fn open(&mut self, now: Nanos) -> bool {
        let for_ = match self.cfg {
            BreakerConfig::Ratio { break_for, .. } => break_for,
            BreakerConfig::Cooldown { cooldown, .. }
            | BreakerConfig::FailureRate { cooldown, .. } => cooldown,
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

    fn failure_rate(single_deployment: bool) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig::FailureRate {
            failure_threshold: 0.5,
            all_failed_min: 1000,
            cooldown: 5 * SECS,
            single_deployment,
        })
    }

    #[test]
    fn failure_rate_cools_a_group_member_on_its_failure_share() {
        use LitellmFailure as L;
        let mut b = failure_rate(false);
        // LiteLLM 1.80 has no minimum: a first call that fails is 100%.
        assert!(b.on_litellm_failure(0, L::Other, None));
        assert!(!b.allow(5 * SECS - 1));
        assert!(b.allow(5 * SECS));
        // The counters outlive the cooldown: 1 failure, then 3 successes.
        for i in 0..3 {
            assert!(!b.on_result(6 * SECS + i, true));
        }
        // 2 of 5, then 3 of 6 (not over half): still closed.
        assert!(!b.on_litellm_failure(7 * SECS, L::Other, None));
        assert!(!b.on_litellm_failure(7 * SECS, L::Other, None));
        assert!(b.allow(7 * SECS));
        // 4 of 7: cooled, for the answer's retry-after when it has one.
        assert!(b.on_litellm_failure(8 * SECS, L::Other, Some(20 * SECS)));
        assert!(!b.allow(28 * SECS - 1) && b.allow(28 * SECS));
        assert_eq!(b.times_opened(), 2);
    }

    #[test]
    fn failure_rate_429_cools_only_a_group_member() {
        use LitellmFailure as L;
        let mut group = failure_rate(false);
        let mut lone = failure_rate(true);
        for b in [&mut group, &mut lone] {
            for i in 0..10 {
                b.on_result(i, true);
            }
        }
        assert!(group.on_litellm_failure(SECS, L::RateLimited, None));
        assert!(!lone.on_litellm_failure(SECS, L::RateLimited, None));
        // A 401 cools either; a retry-after of zero cools nothing.
        assert!(!lone.on_litellm_failure(2 * SECS, L::Unauthorized, Some(0)));
        assert!(lone.on_litellm_failure(2 * SECS, L::Unauthorized, None));
    }

    #[test]
    fn failure_rate_cools_a_lone_deployment_only_when_a_thousand_calls_all_failed() {
        use LitellmFailure as L;
        let mut b = failure_rate(true);
        b.on_result(0, true);
        // 1,500 failures, one every 50 ms: the success counts for 60 s after
        // it came, so nothing cools before then, however many fail.
        let mut opened_at = None;
        for i in 1..=1500u64 {
            if b.on_litellm_failure(i * 50 * MILLIS, L::Other, None) {
                opened_at = Some(i * 50 * MILLIS);
                break;
            }
        }
        assert_eq!(opened_at, Some(60 * SECS));
        // Connection errors and other 4xx count but never cool.
        let mut c = failure_rate(true);
        for i in 0..2000 {
            assert!(!c.on_litellm_failure(i * MILLIS, L::Connection, None));
            assert!(!c.on_litellm_failure(i * MILLIS, L::OtherClientError, None));
        }
        // ... so the next 5xx, the 4,001st failure, cools it.
        assert!(c.on_litellm_failure(2 * SECS, L::Other, None));
    }

    #[test]
    fn failure_rate_counters_expire_a_minute_after_their_last_increment() {
        let mut m = MinuteCount::default();
        m.bump(0);
        m.bump(50 * SECS);
        // Set again at 50 s: still there at 109 s, gone at 110 s.
        assert_eq!(m.get(109 * SECS), 2);
        assert_eq!(m.get(110 * SECS), 0);
        m.bump(110 * SECS);
        assert_eq!(m.get(110 * SECS), 1);
    }

    #[test]
    fn failure_rate_failing_again_while_cooled_cools_afresh() {
        use LitellmFailure as L;
        let mut b = failure_rate(false);
        assert!(b.on_litellm_failure(0, L::Other, None));
        // A late answer at 4 s: cooled until 9 s, still one opening.
        assert!(!b.on_litellm_failure(4 * SECS, L::Other, None));
        assert!(!b.allow(9 * SECS - 1) && b.allow(9 * SECS));
        assert_eq!(b.times_opened(), 1);
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
