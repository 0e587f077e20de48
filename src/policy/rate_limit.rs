//! Client-side rate limiting: token buckets on requests and on tokens per
//! minute, per provider or per key.
//!
//! A provider enforces its limits with 429s; a client that knows them can
//! stay under them instead, and keep its 429s, its retries and the quota they
//! burn for when something else goes wrong. LiteLLM's router takes `rpm` and
//! `tpm` per deployment, and Guava's `RateLimiter` and tower's `RateLimit`
//! pace calls to a rate. The rule here:
//!
//! - one bucket per provider (or per API key) for requests, and one for
//!   tokens (prompt plus `max_tokens`, as OpenAI counts at admission); each
//!   refills continuously at its limit per minute and holds at most `burst`
//!   worth of refill (default a whole minute);
//! - an attempt takes one request and its tokens from both buckets;
//! - `wait` (the default): when a bucket is short, the attempt reserves what
//!   it needs now (the bucket goes into debt, so later attempts queue behind
//!   it in order, as Guava's `RateLimiter` does) and is sent once the debt
//!   would be paid; if that is too late for the request's deadline (less
//!   than `min_attempt_time` left), it is shed instead;
//! - `shed`: when a bucket is short, the attempt is not sent: the request
//!   moves down its fallback chain, or fails as `shed`.
//!
//! With `from_headers`, the buckets also follow the provider's own figures
//! (`x-ratelimit-limit-*`, `-remaining-*`, `-reset-*`), so that the client
//! slows down before the 429 rather than after it: a bucket learns its
//! refill rate from the limit, and its level is brought down to what the
//! provider says remains (refilled from when that figure was taken to now).
//! A figure only ever lowers the level: it is an upper bound of what is left
//! now (the pool refills no faster than its limit), while the bucket already
//! counts this client's own attempts sent since. The remaining requests may
//! go at once; past them, attempts are spread at the limit's pace. No
//! gateway we know of does this (issue 3, part 12).
//!
//! Amounts are integers: a bucket's level is kept in units x 60e9 (units of
//! one nanosecond at one unit per minute), so refill is exact.

use super::scope::{ScopeGuard, Scoped};

use crate::units::{Nanos, SECS};

const MINUTE: u128 = 60 * SECS as u128;

/// What a rate limit is kept per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitPer {
    /// One bucket pair per provider.
    Provider,
    /// One bucket pair per API key.
    Key,
}

/// Rate limit settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt plus `max_tokens`).
    pub tpm: Option<u64>,
    /// How much refill a bucket holds.
    pub burst: Nanos,
    /// Per provider or per key.
    pub per: LimitPer,
    /// Wait for room (bounded by the deadline) or shed at once.
    pub wait: bool,
    /// Follow the provider's rate-limit figures.
    pub from_headers: bool,
    /// One limiter shared by all replicas of the strategy (a central
    /// gateway's, or a Redis bucket), instead of one per replica.
    pub fleet: bool,
}

/// A rate limiter kept by one replica, or shared by the whole fleet
/// (see [`super::scope`]).
pub type ScopedLimiter = Scoped<RateLimiter>;

/// Access to a [`ScopedLimiter`]'s limiter.
pub type LimiterGuard<'a> = ScopeGuard<'a, RateLimiter>;

/// One continuously refilling bucket, which may go into debt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Units per minute.
    rate: u128,
    /// Most it holds, in units x 60e9.
    depth: i128,
    /// Level at `at`, in units x 60e9; negative is debt.
    level: i128,
    at: Nanos,
}

impl Bucket {
    /// A full bucket of `per_minute`, holding `burst` worth of refill.
    pub fn new(per_minute: u64, burst: Nanos) -> Self {
        let rate = u128::from(per_minute.max(1));
        let depth = (rate * u128::from(burst)).min(i128::MAX as u128 / 4) as i128;
        Self {
            rate,
            depth,
            level: depth,
            at: 0,
        }
    }

    fn refill(&mut self, now: Nanos) {
        if now > self.at {
            let add = self.rate * u128::from(now - self.at);
            self.level = self
                .level
                .saturating_add(add.min(i128::MAX as u128 / 4) as i128)
                .min(self.depth);
            self.at = now;
        }
    }

    /// How long from `now` until `n` units are there (0: now).
    pub fn wait_for(&mut self, now: Nanos, n: u64) -> Nanos {
        self.refill(now);
        let need = i128::from(n) * MINUTE as i128 - self.level;
        if need <= 0 {
            0
        } else {
            (need as u128).div_ceil(self.rate).min(u128::from(u64::MAX)) as Nanos
        }
    }

    /// Takes `n` units at `now`, into debt if need be.
    pub fn take(&mut self, now: Nanos, n: u64) {
        self.refill(now);
        self.level -= i128::from(n) * MINUTE as i128;
    }

    /// A bucket that follows the provider's figures: `remaining` of
    /// `per_minute` at `at`, whole again `reset` later.
    fn from_figures(now: Nanos, at: Nanos, per_minute: u32, remaining: u32, reset: Nanos) -> Self {
        let rate = u128::from(per_minute.max(1));
        let level = i128::from(remaining) * MINUTE as i128;
        let full =
            level.saturating_add((rate * u128::from(reset)).min(i128::MAX as u128 / 4) as i128);
        let mut b = Self {
            rate,
            depth: full.max(MINUTE as i128),
            level: level.min(full),
            at,
        };
        b.refill(now);
        b
    }

    /// Takes the provider's figures (see the module doc): the rate and depth
    /// they imply, and the lower of the two levels.
    fn follow(&mut self, now: Nanos, figures: Self) {
        self.refill(now);
        self.rate = figures.rate;
        self.depth = figures.depth;
        self.level = self.level.min(figures.level);
    }

    /// Units there at `now` (negative: debt), rounded down.
    pub fn level(&mut self, now: Nanos) -> i64 {
        self.refill(now);
        (self.level.div_euclid(MINUTE as i128)).clamp(i64::MIN.into(), i64::MAX.into()) as i64
    }
}

/// The buckets of one client: per provider or key, requests and tokens.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: Vec<(Option<Bucket>, Option<Bucket>)>,
}

/// The limiter's answer for one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Send now (taken).
    Now,
    /// Taken; send at this time.
    At(Nanos),
    /// Not taken; do not send.
    Shed,
}

impl RateLimiter {
    /// Full buckets.
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self {
            cfg,
            buckets: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> RateLimitConfig {
        self.cfg
    }

    fn pair(&mut self, i: usize) -> &mut (Option<Bucket>, Option<Bucket>) {
        if self.buckets.len() <= i {
            let c = self.cfg;
            self.buckets.resize(
                i + 1,
                (
                    c.rpm.map(|r| Bucket::new(r, c.burst)),
                    c.tpm.map(|t| Bucket::new(t, c.burst)),
                ),
            );
        }
        &mut self.buckets[i]
    }

    /// An attempt of `tokens` through bucket pair `i` (a provider or a key)
    /// at `now`; with `wait`, it may be sent no later than `latest`.
    pub fn admit(&mut self, now: Nanos, i: usize, tokens: u64, latest: Nanos) -> Admit {
        let wait = self.cfg.wait;
        let (r, t) = self.pair(i);
        let w = r
            .as_mut()
            .map_or(0, |b| b.wait_for(now, 1))
            .max(t.as_mut().map_or(0, |b| b.wait_for(now, tokens)));
        if w > 0 && (!wait || now.saturating_add(w) > latest) {
            return Admit::Shed;
        }
        if let Some(b) = r.as_mut() {
            b.take(now, 1);
        }
        if let Some(b) = t.as_mut() {
            b.take(now, tokens);
        }
        if w == 0 {
            Admit::Now
        } else {
            Admit::At(now + w)
        }
    }
}

impl RateLimiter {
    /// The provider's figures for pair `i`, taken at `at` (the answered
    /// attempt's admission, about when it was sent), seen at `now`. Does
    /// nothing unless the limiter follows headers, or without a limit figure.
    pub fn observe(&mut self, now: Nanos, at: Nanos, i: usize, lim: crate::wire::RateLimits) {
        if !self.cfg.from_headers {
            return;
        }
        let at = at.min(now);
        let fig = |limit: Option<u32>, remaining: Option<u32>, reset: Option<u64>| {
            Some(Bucket::from_figures(
                now,
                at,
                limit?,
                remaining?,
                reset.unwrap_or(0),
            ))
        };
        let req = fig(
            lim.limit_requests,
            lim.remaining_requests,
            lim.reset_requests,
        );
        let tok = fig(lim.limit_tokens, lim.remaining_tokens, lim.reset_tokens);
        let (r, t) = self.pair(i);
        for (slot, f) in [(r, req), (t, tok)] {
            match (slot.as_mut(), f) {
                (Some(b), Some(f)) => b.follow(now, f),
                (None, Some(f)) => *slot = Some(f),
                (_, None) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MILLIS;
    use proptest::prelude::*;

    fn limiter(rpm: Option<u64>, tpm: Option<u64>, wait: bool) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            rpm,
            tpm,
            burst: 6 * SECS,
            per: LimitPer::Provider,
            wait,
            from_headers: false,
            fleet: false,
        })
    }

    fn following() -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            rpm: None,
            tpm: None,
            burst: 60 * SECS,
            per: LimitPer::Key,
            wait: true,
            from_headers: true,
            fleet: false,
        })
    }

    fn figures(limit: u32, remaining: u32, reset: Nanos) -> crate::wire::RateLimits {
        crate::wire::RateLimits {
            limit_requests: Some(limit),
            remaining_requests: Some(remaining),
            reset_requests: Some(reset),
            ..Default::default()
        }
    }

    #[test]
    fn without_figures_a_following_limiter_lets_everything_through() {
        let mut l = following();
        for _ in 0..1000 {
            assert_eq!(l.admit(0, 0, 100, u64::MAX), Admit::Now);
        }
    }

    #[test]
    fn the_remaining_requests_go_at_once_then_the_limit_sets_the_pace() {
        let mut l = following();
        // 600 per minute (one per 100 ms), 3 left at 1 s, seen at 1.2 s:
        // 2 more have come back by then.
        l.observe(1200 * MILLIS, SECS, 0, figures(600, 3, 10 * SECS));
        for _ in 0..5 {
            assert_eq!(l.admit(1200 * MILLIS, 0, 0, u64::MAX), Admit::Now);
        }
        assert_eq!(
            l.admit(1200 * MILLIS, 0, 0, u64::MAX),
            Admit::At(1300 * MILLIS)
        );
        // A figure with more left does not undo what this client has taken.
        l.observe(1200 * MILLIS, 1200 * MILLIS, 0, figures(600, 50, 5 * SECS));
        assert_eq!(
            l.admit(1200 * MILLIS, 0, 0, u64::MAX),
            Admit::At(1400 * MILLIS)
        );
        // Other keys keep their own figures.
        assert_eq!(l.admit(1200 * MILLIS, 1, 0, u64::MAX), Admit::Now);
    }

    #[test]
    fn a_429_with_nothing_left_paces_the_next_attempt() {
        let mut l = following();
        l.observe(SECS, SECS, 0, figures(60, 0, 60 * SECS));
        assert_eq!(l.admit(SECS, 0, 0, u64::MAX), Admit::At(2 * SECS));
    }

    #[test]
    fn a_fleet_limiter_is_one_bucket_for_every_replica() {
        use std::{cell::RefCell, rc::Rc};
        let shared = Rc::new(RefCell::new(limiter(Some(60), None, false)));
        let mut a = ScopedLimiter::Fleet(Rc::clone(&shared));
        let mut b = ScopedLimiter::Fleet(shared);
        // 6 s of burst at 1/s: six between them, not six each.
        for i in 0..6 {
            let l = if i % 2 == 0 { &mut a } else { &mut b };
            assert_eq!(l.get().admit(0, 0, 0, 0), Admit::Now);
        }
        assert_eq!(a.get().admit(0, 0, 0, 0), Admit::Shed);
        assert_eq!(b.get().admit(0, 0, 0, 0), Admit::Shed);
        let mut own = ScopedLimiter::Replica(limiter(Some(60), None, false));
        assert_eq!(own.get().admit(0, 0, 0, 0), Admit::Now);
    }

    #[test]
    fn figures_are_ignored_unless_followed() {
        let mut l = limiter(None, None, true);
        l.observe(0, 0, 0, figures(60, 0, 60 * SECS));
        assert_eq!(l.admit(0, 0, 0, u64::MAX), Admit::Now);
    }

    #[test]
    fn a_full_bucket_lets_its_burst_through_then_paces() {
        // 600 rpm = 10/s; 6 s of burst = 60 requests at once.
        let mut l = limiter(Some(600), None, true);
        for _ in 0..60 {
            assert_eq!(l.admit(0, 0, 0, u64::MAX), Admit::Now);
        }
        // Then one every 100 ms, queued in order.
        assert_eq!(l.admit(0, 0, 0, u64::MAX), Admit::At(100 * MILLIS));
        assert_eq!(l.admit(0, 0, 0, u64::MAX), Admit::At(200 * MILLIS));
        assert_eq!(
            l.admit(150 * MILLIS, 0, 0, u64::MAX),
            Admit::At(300 * MILLIS)
        );
    }

    #[test]
    fn a_wait_past_the_latest_start_is_shed_and_takes_nothing() {
        let mut l = limiter(Some(600), None, true);
        for _ in 0..60 {
            l.admit(0, 0, 0, u64::MAX);
        }
        assert_eq!(l.admit(0, 0, 0, 50 * MILLIS), Admit::Shed);
        assert_eq!(l.admit(0, 0, 0, u64::MAX), Admit::At(100 * MILLIS));
    }

    #[test]
    fn shedding_never_waits() {
        let mut l = limiter(None, Some(60_000), false);
        // 1,000 tokens/s, 6,000 deep.
        assert_eq!(l.admit(0, 0, 5_000, u64::MAX), Admit::Now);
        assert_eq!(l.admit(0, 0, 5_000, u64::MAX), Admit::Shed);
        assert_eq!(l.admit(4 * SECS, 0, 5_000, u64::MAX), Admit::Now);
    }

    #[test]
    fn providers_have_their_own_buckets() {
        let mut l = limiter(Some(60), None, false);
        for _ in 0..6 {
            assert_eq!(l.admit(0, 0, 0, 0), Admit::Now);
        }
        assert_eq!(l.admit(0, 0, 0, 0), Admit::Shed);
        assert_eq!(l.admit(0, 3, 0, 0), Admit::Now);
    }

    proptest! {
        /// Over any run of attempts, what is sent by time T is at most the
        /// bucket's depth plus its refill up to T: the limit holds.
        #[test]
        fn never_more_than_depth_plus_refill(
            gaps in proptest::collection::vec(0u64..200_000_000, 1..400),
            wait in any::<bool>(),
        ) {
            let mut l = limiter(Some(600), None, wait);
            let mut now = 0;
            let mut sends = Vec::new();
            for g in gaps {
                now += g;
                match l.admit(now, 0, 0, now + 2 * SECS) {
                    Admit::Now => sends.push(now),
                    Admit::At(t) => {
                        prop_assert!(t > now && t <= now + 2 * SECS);
                        sends.push(t);
                    }
                    Admit::Shed => {}
                }
            }
            sends.sort_unstable();
            for (i, &t) in sends.iter().enumerate() {
                // 60 deep, 10 per second.
                let allowed = 60 + t / (100 * MILLIS);
                prop_assert!((i as u64) < allowed, "{} sends by {}", i + 1, t);
            }
        }
    }
}
