//! Retry budgets counted in tokens or in dollars, not only in requests.
//!
//! A request-counting budget (Finagle's, Envoy's, gRPC's) treats a retry of
//! a 50-token classification and a retry of an 8,000-token code generation
//! alike. With LLMs the second costs a hundred and sixty times more, and a
//! retry storm on long prompts is a bill, not only a load. No gateway we
//! know of budgets retries by what they cost; this one does:
//!
//! - over a sliding `window` (default 1 minute), the client sums what its
//!   first attempts were billed and what its other attempts (retries,
//!   fallbacks, hedges) were billed, in tokens (prompt plus output) or in
//!   USD;
//! - a retry is allowed while the second sum is at most `percent` (default
//!   0.2) of the first, plus `floor` (default 0) in the same unit.
//!
//! Bills arrive when attempts end, so the budget lags by one attempt's
//! duration: it bounds a sustained storm, not the first few retries.

use crate::units::{NanoUsd, Nanos};

use super::window::SlidingWindow;

/// What a spend budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendUnit {
    /// Prompt plus output tokens.
    Tokens,
    /// Dollars (counted in micro-USD).
    Usd,
}

/// Spend budget settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpendBudgetConfig {
    /// Tokens or USD.
    pub unit: SpendUnit,
    /// Retry spend allowed as a share of first-attempt spend.
    pub percent: f64,
    /// Retry spend always allowed over the window (tokens, or micro-USD).
    pub floor: u64,
    /// Sliding window.
    pub window: Nanos,
}

/// One client's spend budget.
#[derive(Clone, Debug)]
pub struct SpendBudget {
    cfg: SpendBudgetConfig,
    /// Counters: first attempts' spend, other attempts' spend.
    window: SlidingWindow,
}

impl SpendBudget {
    /// Nothing spent.
    pub fn new(cfg: SpendBudgetConfig) -> Self {
        Self {
            cfg,
            window: SlidingWindow::new(cfg.window),
        }
    }

    /// An attempt was billed `tokens` and `cost` at `now`; `retry` is
    /// whether it was beyond its request's first.
    pub fn on_spend(&mut self, now: Nanos, retry: bool, tokens: u64, cost: NanoUsd) {
        let n = match self.cfg.unit {
            SpendUnit::Tokens => tokens,
            SpendUnit::Usd => cost.0 / 1000,
        };
        if n > 0 {
            self.window
                .add_n(now, usize::from(retry), n.min(u64::from(u32::MAX)) as u32);
        }
    }

    /// Whether a retry may go at `now`.
    pub fn allows(&mut self, now: Nanos) -> bool {
        let [first, retries] = self.window.sums(now);
        retries as f64 <= self.cfg.percent * first as f64 + self.cfg.floor as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::SECS;
    use proptest::prelude::*;

    fn budget(unit: SpendUnit) -> SpendBudget {
        SpendBudget::new(SpendBudgetConfig {
            unit,
            percent: 0.1,
            floor: 0,
            window: 10 * SECS,
        })
    }

    #[test]
    fn retries_may_spend_a_share_of_what_first_attempts_spent() {
        let mut b = budget(SpendUnit::Tokens);
        b.on_spend(0, false, 10_000, NanoUsd(0));
        assert!(b.allows(0));
        b.on_spend(0, true, 900, NanoUsd(0));
        assert!(b.allows(0));
        b.on_spend(0, true, 200, NanoUsd(0));
        assert!(!b.allows(0), "1,100 of 10,000 is over 10%");
        // The window forgets.
        assert!(b.allows(10 * SECS));
    }

    #[test]
    fn dollars_weigh_expensive_retries_more() {
        let mut b = budget(SpendUnit::Usd);
        // First attempts: 1 USD; one retry on a pricier model: 0.2 USD.
        b.on_spend(0, false, 1000, NanoUsd(1_000_000_000));
        b.on_spend(0, true, 100, NanoUsd(200_000_000));
        assert!(!b.allows(0));
    }

    proptest! {
        /// Whenever a retry is allowed, the retry spend in the window is
        /// within the share plus the floor.
        #[test]
        fn allowed_retries_respect_the_share(
            events in proptest::collection::vec((0u64..3_000_000_000, any::<bool>(), 0u64..50_000), 1..200),
        ) {
            let mut b = budget(SpendUnit::Tokens);
            let mut now = 0;
            let mut log = Vec::new();
            for (dt, retry, tokens) in events {
                now += dt;
                b.on_spend(now, retry, tokens, NanoUsd(0));
                log.push((now / SECS, retry, tokens));
                let second = now / SECS;
                let (first, again) = log.iter().filter(|e| e.0 + 10 > second).fold((0, 0), |(f, r), e| {
                    if e.1 { (f, r + e.2) } else { (f + e.2, r) }
                });
                prop_assert_eq!(b.allows(now), again as f64 <= 0.1 * first as f64);
            }
        }
    }
}
