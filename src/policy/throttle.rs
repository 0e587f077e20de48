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

use crate::units::Nanos;

use super::window::SlidingWindow;

/// Throttle settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThrottleConfig {
    /// The multiplier K (the SRE book uses 2).
    pub k: f64,
    /// The window (the SRE book uses 2 minutes).
    pub window: Nanos,
}

/// One backend's throttle.
#[derive(Clone, Debug)]
pub struct AdaptiveThrottle {
    k: f64,
    /// Counters: requests, accepts.
    window: SlidingWindow,
}

impl AdaptiveThrottle {
    /// A throttle with an empty history.
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            k: cfg.k,
            window: SlidingWindow::new(cfg.window),
        }
    }

    /// The probability of rejecting a request now.
    pub fn reject_probability(&mut self, now: Nanos) -> f64 {
        let [requests, accepts] = self.window.sums(now);
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

    proptest! {
        #[test]
        fn the_probability_is_a_probability_and_k_times_accepts_is_free(
            reqs in 0u32..500, accepted in 0u32..500, k in 1.0f64..4.0)
        {
            let mut t = AdaptiveThrottle::new(ThrottleConfig { k, window: 120 * SECS });
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
    }
}
