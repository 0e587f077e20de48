//! Hedged requests: after a delay with no answer, send one more attempt and
//! take whichever answers first.
//!
//! A slow tail hurts a user as much as an error, and a retry cannot help it:
//! nothing has failed yet. A hedge (Dean and Barroso, "The Tail at Scale",
//! CACM 2013; Polly v8's hedging strategy; Envoy's
//! `hedge_on_per_try_timeout`) sends a second attempt when the first one is
//! late, to the same model (a fresh draw of its luck) or to the next model of
//! the request's chain. The first success wins; the other attempt is
//! cancelled, and the tokens it was billed for up to the cancel still cost.
//!
//! The rule here, per request:
//!
//! - an attempt that has produced no first token `delay` after it was sent
//!   gets at most one hedge per request (Polly's `MaxHedgedAttempts`,
//!   default 1);
//! - `delay` is fixed (default 2 s, Polly's `Delay`) or a quantile of the
//!   time to first token this client observed from that model (the paper's
//!   "defer until the 95th-percentile expected latency"); a quantile needs
//!   [`MIN_SAMPLES`] samples first, until then the model is not hedged;
//! - the hedge respects the request's deadline and `min_attempt_time`, and
//!   is not sent to a model whose breaker is open;
//! - while one attempt is still running, the other's failure is counted
//!   (breaker, budget, routing) but starts no retry: the running attempt may
//!   still answer. When the last one fails, the request's retry and fallback
//!   rules take over as usual.

use crate::units::Nanos;

/// When the hedge fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HedgeDelay {
    /// A fixed delay after the attempt was sent.
    Fixed(Nanos),
    /// A quantile (0..1) of the model's observed time to first token.
    Quantile(f64),
}

/// Where the hedge goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HedgeTarget {
    /// The same model (a fresh try on it).
    Same,
    /// The next model of the request's chain (none left: no hedge).
    Next,
}

/// Hedging settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgeConfig {
    /// When.
    pub delay: HedgeDelay,
    /// Where.
    pub target: HedgeTarget,
}

/// Samples kept per model for a quantile delay.
pub const RING: usize = 256;
/// Samples a model needs before a quantile delay applies.
pub const MIN_SAMPLES: usize = 50;
/// The quantile is recomputed after this many new samples.
const REFRESH: u32 = 32;

/// The recent times to first token of one model, and a quantile of them that
/// is refreshed every few samples (so a decision reads one cached number).
#[derive(Clone, Debug)]
pub struct LatencyQuantile {
    q: f64,
    ring: Vec<Nanos>,
    next: usize,
    since: u32,
    cached: Option<Nanos>,
    scratch: Vec<Nanos>,
}

impl LatencyQuantile {
    /// An empty tracker of quantile `q` (0..1).
    pub fn new(q: f64) -> Self {
        Self {
            q,
            ring: Vec::new(),
            next: 0,
            since: 0,
            cached: None,
            scratch: Vec::new(),
        }
    }

    /// A new sample.
    pub fn record(&mut self, sample: Nanos) {
        if self.ring.len() < RING {
            self.ring.push(sample);
        } else {
            self.ring[self.next] = sample;
            self.next = (self.next + 1) % RING;
        }
        self.since += 1;
        if self.ring.len() >= MIN_SAMPLES && (self.cached.is_none() || self.since >= REFRESH) {
            self.since = 0;
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.ring);
            let k = ((self.scratch.len() as f64 * self.q).ceil() as usize)
                .clamp(1, self.scratch.len())
                - 1;
            let (_, v, _) = self.scratch.select_nth_unstable(k);
            self.cached = Some(*v);
        }
    }

    /// The quantile, once there are enough samples.
    pub fn get(&self) -> Option<Nanos> {
        self.cached
    }
}

/// Per model, what a hedging client needs to know of its delays.
#[derive(Clone, Debug)]
pub struct Hedger {
    cfg: HedgeConfig,
    quantiles: Vec<LatencyQuantile>,
}

impl Hedger {
    /// A hedger for `n` models.
    pub fn new(cfg: HedgeConfig, n: usize) -> Self {
        let quantiles = match cfg.delay {
            HedgeDelay::Quantile(q) => (0..n).map(|_| LatencyQuantile::new(q)).collect(),
            HedgeDelay::Fixed(_) => Vec::new(),
        };
        Self { cfg, quantiles }
    }

    /// The settings.
    pub fn config(&self) -> HedgeConfig {
        self.cfg
    }

    /// A time-to-first-token sample from `model`.
    pub fn on_first_token(&mut self, model: usize, ttft: Nanos) {
        if let Some(q) = self.quantiles.get_mut(model) {
            q.record(ttft);
        }
    }

    /// How long after sending an attempt to `model` its hedge fires, if it
    /// does.
    pub fn delay(&self, model: usize) -> Option<Nanos> {
        match self.cfg.delay {
            HedgeDelay::Fixed(d) => Some(d),
            HedgeDelay::Quantile(_) => self.quantiles.get(model).and_then(LatencyQuantile::get),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_quantile_waits_for_enough_samples() {
        let mut q = LatencyQuantile::new(0.95);
        for i in 0..MIN_SAMPLES as u64 - 1 {
            q.record(i);
            assert_eq!(q.get(), None);
        }
        q.record(1000);
        assert!(q.get().is_some());
    }

    #[test]
    fn the_p95_is_refreshed_every_few_samples() {
        let mut q = LatencyQuantile::new(0.95);
        for i in 1..=100 {
            q.record(i);
        }
        // Computed at 50 and 82 samples, not yet again at 100: of 1..=82,
        // the 95th percentile is the 78th (ceil(77.9)).
        assert_eq!(q.get(), Some(78));
        for i in 101..=114 {
            q.record(i);
        }
        // At 114 samples: the 109th (ceil(108.3)).
        assert_eq!(q.get(), Some(109));
    }

    #[test]
    fn the_ring_forgets_old_samples() {
        let mut q = LatencyQuantile::new(0.5);
        for _ in 0..RING {
            q.record(1_000_000);
        }
        for _ in 0..RING {
            q.record(10);
        }
        assert_eq!(q.get(), Some(10));
    }

    #[test]
    fn fixed_delays_need_no_samples() {
        let h = Hedger::new(
            HedgeConfig {
                delay: HedgeDelay::Fixed(7),
                target: HedgeTarget::Same,
            },
            3,
        );
        assert_eq!(h.delay(2), Some(7));
        let h = Hedger::new(
            HedgeConfig {
                delay: HedgeDelay::Quantile(0.9),
                target: HedgeTarget::Next,
            },
            3,
        );
        assert_eq!(h.delay(2), None);
    }

    proptest! {
        /// Whenever it is computed, the quantile is a sample with at least
        /// the asked share of samples at or below it and fewer below it;
        /// in between it stays within the range of what was recorded.
        #[test]
        fn the_quantile_is_a_true_order_statistic(
            xs in proptest::collection::vec(0u64..1_000_000, MIN_SAMPLES..600),
            q in 0.01f64..1.0,
        ) {
            let mut t = LatencyQuantile::new(q);
            for (i, &x) in xs.iter().enumerate() {
                t.record(x);
                let n = i + 1;
                let Some(v) = t.get() else {
                    prop_assert!(n < MIN_SAMPLES);
                    continue;
                };
                let seen = &xs[..n];
                prop_assert!(seen.iter().min().is_some_and(|&m| m <= v));
                prop_assert!(seen.iter().max().is_some_and(|&m| v <= m));
                if n == MIN_SAMPLES {
                    let at_or_below = seen.iter().filter(|&&x| x <= v).count();
                    let below = seen.iter().filter(|&&x| x < v).count();
                    let want = ((n as f64 * q).ceil() as usize).max(1);
                    prop_assert!(at_or_below >= want && below < want);
                }
            }
        }
    }
}
