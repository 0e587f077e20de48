//! Adaptive client-side throttling, as in the Google SRE book ("Handling
//! Overload", client-side throttling).
//!
//! When a backend is rejecting most requests because it is overloaded, even
//! the rejections cost it work. Each client therefore tracks, per backend
//! (here: per model), over the last two minutes, how many requests it
//! attempted and how many the backend accepted, and rejects new requests
//! itself with probability
//!
//! ```text
//! max(0, (requests - K x accepts) / (requests + 1))
//! ```
//!
//! With K = 2 (the book's value) a client sends at most about twice what the
//! backend accepts. Locally rejected requests still count as requests, so the
//! rejection rate rises smoothly as accepts fall and falls back as soon as
//! the backend accepts again. An attempt counts as accepted unless it was
//! answered 429, 503 or 529 (rejected for load) or timed out.
//!
//! A locally rejected attempt is not sent: the request moves on down its
//! fallback chain, or fails as `throttled` when none is left.
//!
//! The cold start. An attempt counts as a request when it is made but as an
//! accept only when its answer (first token) comes back, so a fresh client
//! holds requests and no accepts: `p = requests / (requests + 1)` rejects
//! nearly everything it tries before its first answers, and with LLM calls
//! a second or more long that is hundreds of attempts. The book's RPCs take
//! milliseconds and never show it. `min_requests` lets every attempt through
//! while the window holds fewer requests than that, as Envoy's admission
//! control filter (which implements this rule) does with `rps_threshold`,
//! the same floor as an average rate over its window. Envoy's default is 0,
//! and so is ours: the book's rule unchanged.

use crate::units::Nanos;

use super::window::SlidingWindow;

/// Throttle settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleConfig {
    /// The multiplier K (the SRE book uses 2).
    pub k: f64,
    /// The window (the SRE book uses 2 minutes).
    pub window: Nanos,
    /// No rejection while the window holds fewer requests than this
    /// (Envoy's `rps_threshold` x window; default 0).
    pub min_requests: u64,
}

/// One backend's throttle.
#[derive(Clone, Debug)]
pub struct AdaptiveThrottle {
    k: f64,
    min_requests: u64,
    /// Counters: requests, accepts.
    window: SlidingWindow,
}

impl AdaptiveThrottle {
    /// A throttle with an empty history.
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            k: cfg.k,
            min_requests: cfg.min_requests,
            window: SlidingWindow::new(cfg.window),
        }
    }

    /// The probability of rejecting a request now.
    pub fn reject_probability(&mut self, now: Nanos) -> f64 {
        let [requests, accepts] = self.window.sums(now);
        if requests < self.min_requests {
            return 0.0;
        }
        let (requests, accepts) = (requests as f64, accepts as f64);
        ((requests - self.k * accepts) / (requests + 1.0)).max(0.0)
    }

    /// A request was attempted (sent or rejected locally).
    pub fn on_request(&mut self, now: Nanos) {
        self.window.add(now, 0);
    }

    /// The backend accepted a request.
    pub fn on_accept(&mut self, now: Nanos) {
        self.window.add(now, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::SECS;
    use proptest::prelude::*;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig {
            k: 2.0,
            window: 120 * SECS,
            min_requests: 0,
        }
    }

    #[test]
    fn a_healthy_backend_is_never_throttled() {
        let mut t = AdaptiveThrottle::new(cfg());
        for i in 0..1000 {
            t.on_request(i * SECS / 10);
            t.on_accept(i * SECS / 10);
        }
        assert_eq!(t.reject_probability(100 * SECS), 0.0);
    }

    #[test]
    fn a_rejecting_backend_is_throttled_then_forgiven() {
        let mut t = AdaptiveThrottle::new(cfg());
        // 100 requests, 10 accepted: (100 - 20) / 101.
        for i in 0..100 {
            t.on_request(i * SECS / 10);
            if i % 10 == 0 {
                t.on_accept(i * SECS / 10);
            }
        }
        let p = t.reject_probability(10 * SECS);
        assert!((p - 80.0 / 101.0).abs() < 1e-12, "{p}");
        // Two minutes later the history has left the window.
        assert_eq!(t.reject_probability(200 * SECS), 0.0);
    }

    #[test]
    fn a_cold_start_is_not_throttled_below_the_minimum() {
        // 500 attempts in the first second, none answered yet (a first
        // token takes longer than that).
        let cold = |min_requests| {
            let mut t = AdaptiveThrottle::new(ThrottleConfig {
                min_requests,
                ..cfg()
            });
            let mut p = 0.0f64;
            for i in 0..500 {
                p = p.max(t.reject_probability(i * SECS / 500));
                t.on_request(i * SECS / 500);
            }
            (t, p)
        };
        // The book's rule alone: the 500th attempt is rejected with
        // probability 499/500.
        let (_, p) = cold(0);
        assert!((p - 499.0 / 500.0).abs() < 1e-12, "{p}");
        // With a floor above the cold start's count, nothing is rejected;
        // once answers arrive they carry the window past the floor.
        let (mut t, p) = cold(1000);
        assert_eq!(p, 0.0);
        for i in 0..1000 {
            let now = SECS + i * SECS / 500;
            t.on_request(now);
            t.on_accept(now);
        }
        assert_eq!(t.reject_probability(3 * SECS), 0.0);
        // A backend that keeps rejecting is still throttled past the floor.
        let mut t = AdaptiveThrottle::new(ThrottleConfig {
            min_requests: 100,
            ..cfg()
        });
        for i in 0..100 {
            t.on_request(i * SECS / 10);
        }
        assert!((t.reject_probability(10 * SECS) - 100.0 / 101.0).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn the_probability_is_a_probability_and_k_times_accepts_is_free(
            reqs in 0u32..500, accepted in 0u32..500, k in 1.0f64..4.0)
        {
            let mut t = AdaptiveThrottle::new(ThrottleConfig { k, window: 120 * SECS, min_requests: 0 });
            let accepted = accepted.min(reqs);
            for i in 0..reqs {
                t.on_request(u64::from(i) * 100_000_000);
                if i < accepted {
                    t.on_accept(u64::from(i) * 100_000_000);
                }
            }
            let p = t.reject_probability(60 * SECS);
            prop_assert!((0.0..1.0).contains(&p));
            if f64::from(reqs) <= k * f64::from(accepted) {
                prop_assert_eq!(p, 0.0);
            }
        }

        #[test]
        fn below_the_minimum_nothing_is_rejected(
            reqs in 0u32..500, accepted in 0u32..500, k in 1.0f64..4.0,
            min_requests in 0u64..600, spread_ms in 1u64..1000, at_s in 0u64..300)
        {
            let mut t = AdaptiveThrottle::new(ThrottleConfig {
                k, window: 120 * SECS, min_requests,
            });
            let accepted = accepted.min(reqs);
            for i in 0..reqs {
                let now = u64::from(i) * spread_ms * 1_000_000;
                t.on_request(now);
                if i < accepted {
                    t.on_accept(now);
                }
            }
            // Read at the last request: when the window still holds them all,
            // above the floor the book's rule applies unchanged.
            let last = u64::from(reqs.saturating_sub(1)) * spread_ms * 1_000_000;
            let p_last = t.reject_probability(last);
            if last < 119 * SECS && u64::from(reqs) >= min_requests {
                let (r, a) = (f64::from(reqs), f64::from(accepted));
                prop_assert_eq!(p_last, ((r - k * a) / (r + 1.0)).max(0.0));
            }
            let p = t.reject_probability(at_s * SECS);
            prop_assert!((0.0..=1.0).contains(&p) && (0.0..=1.0).contains(&p_last));
            // The window never holds more than every request made.
            if u64::from(reqs) < min_requests {
                prop_assert_eq!((p, p_last), (0.0, 0.0));
            }
        }
    }
}
