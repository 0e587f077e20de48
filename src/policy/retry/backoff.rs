//! Backoff: how long to wait before a retry.
//!
//! Why jitter: when a provider sheds load, every client that was turned away
//! at the same moment retries at the same moment if they all wait the same
//! time, and the next wave is as tall as the first. Randomising the wait
//! spreads the wave out (Marc Brooker, "Exponential Backoff And Jitter", AWS
//! Architecture Blog, 2015; the kinds and their names below are his).
//!
//! With `n` the 0-based retry number and `u` a uniform draw in (0, 1):
//!
//! | kind          | wait                                              |
//! |---------------|---------------------------------------------------|
//! | none          | 0                                                 |
//! | constant      | base                                              |
//! | exponential   | min(cap, base x 2^n)                              |
//! | full jitter   | u x min(cap, base x 2^n)                          |
//! | equal jitter  | e/2 + u x e/2, e = min(cap, base x 2^n)           |
//! | decorrelated  | min(cap, base + u x (3 x previous - base))        |
//! | sdk jitter    | e x (1 - u/4), e = min(cap, base x 2^n)           |
//!
//! "sdk jitter" is not one of Brooker's: it is what the Stainless-generated
//! SDKs (openai-python, anthropic-python) do, `sleep_seconds * (1 - 0.25 *
//! random())`, up to 25% below the exponential step and never above it.
//!
//! Defaults (base 500 ms, cap 8 s) are the official OpenAI and Anthropic
//! SDKs' (`INITIAL_RETRY_DELAY = 0.5`, `MAX_RETRY_DELAY = 8.0`).

use crate::units::Nanos;

/// A backoff rule; every wait is at most the cap (constant: exactly `base`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Retry at once.
    None,
    /// Always `base`.
    Constant {
        /// The wait.
        base: Nanos,
    },
    /// `base x 2^n`, capped.
    Exponential {
        /// First wait.
        base: Nanos,
        /// Largest wait.
        cap: Nanos,
    },
    /// Uniform in 0..min(cap, base x 2^n).
    FullJitter {
        /// First ceiling.
        base: Nanos,
        /// Largest ceiling.
        cap: Nanos,
    },
    /// Half fixed, half uniform.
    EqualJitter {
        /// First ceiling.
        base: Nanos,
        /// Largest ceiling.
        cap: Nanos,
    },
    /// Uniform between base and three times the previous wait, capped.
    Decorrelated {
        /// Smallest wait.
        base: Nanos,
        /// Largest wait.
        cap: Nanos,
    },
    /// min(cap, base x 2^n), minus up to a quarter of it (the Stainless SDKs).
    SdkJitter {
        /// First step.
        base: Nanos,
        /// Largest step.
        cap: Nanos,
    },
}

fn exp(base: Nanos, cap: Nanos, n: u32) -> Nanos {
    let shifted = if n >= 63 {
        Nanos::MAX
    } else {
        base.saturating_mul(1u64 << n)
    };
    shifted.min(cap)
}

impl Backoff {
    /// The wait before retry number `n` (0-based), given the previous wait
    /// (0 before the first) and a uniform draw `u` in (0, 1).
    pub fn delay(&self, n: u32, previous: Nanos, u: f64) -> Nanos {
        match *self {
            Self::None => 0,
            Self::Constant { base } => base,
            Self::Exponential { base, cap } => exp(base, cap, n),
            Self::FullJitter { base, cap } => (exp(base, cap, n) as f64 * u) as Nanos,
            Self::EqualJitter { base, cap } => {
                let e = exp(base, cap, n);
                e / 2 + ((e - e / 2) as f64 * u) as Nanos
            }
            Self::Decorrelated { base, cap } => {
                let hi = previous.max(base).saturating_mul(3);
                let wait = base + ((hi - base) as f64 * u) as Nanos;
                wait.min(cap)
            }
            Self::SdkJitter { base, cap } => {
                let e = exp(base, cap, n);
                e - ((e / 4) as f64 * u) as Nanos
            }
        }
    }

    /// Whether the rule draws a random number (so a driver knows the core's
    /// stream advances).
    pub fn is_random(&self) -> bool {
        matches!(
            self,
            Self::FullJitter { .. }
                | Self::EqualJitter { .. }
                | Self::Decorrelated { .. }
                | Self::SdkJitter { .. }
        )
    }

    /// The largest wait it can give.
    pub fn cap(&self) -> Nanos {
        match *self {
            Self::None => 0,
            Self::Constant { base } => base,
            Self::Exponential { cap, .. }
            | Self::FullJitter { cap, .. }
            | Self::EqualJitter { cap, .. }
            | Self::Decorrelated { cap, .. }
            | Self::SdkJitter { cap, .. } => cap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{MILLIS, SECS};
    use proptest::prelude::*;

    const B: Nanos = 500 * MILLIS;
    const C: Nanos = 8 * SECS;

    #[test]
    fn each_kind_gives_its_formula() {
        assert_eq!(Backoff::None.delay(3, 0, 0.5), 0);
        assert_eq!(Backoff::Constant { base: B }.delay(5, 0, 0.5), B);
        let e = Backoff::Exponential { base: B, cap: C };
        assert_eq!(e.delay(0, 0, 0.5), B);
        assert_eq!(e.delay(2, 0, 0.5), 4 * B);
        assert_eq!(e.delay(10, 0, 0.5), C);
        let f = Backoff::FullJitter { base: B, cap: C };
        assert_eq!(f.delay(1, 0, 0.5), B);
        assert_eq!(f.delay(1, 0, 0.0), 0);
        let q = Backoff::EqualJitter { base: B, cap: C };
        assert_eq!(q.delay(1, 0, 0.0), B / 2 * 2 / 2 + B / 2);
        assert_eq!(q.delay(1, 0, 0.999_999_999), 2 * B - 1);
        let d = Backoff::Decorrelated { base: B, cap: C };
        assert_eq!(d.delay(0, 0, 0.0), B);
        assert_eq!(d.delay(1, 2 * SECS, 0.5), B + (6 * SECS - B) / 2);
        assert_eq!(d.delay(5, 7 * SECS, 0.9), C);
        // openai-python: 0.5 s x 2^n capped at 8 s, times (1 - 0.25 u).
        let s = Backoff::SdkJitter { base: B, cap: C };
        assert_eq!(s.delay(0, 0, 0.0), B);
        assert_eq!(s.delay(1, 0, 0.5), 2 * B - B / 4);
        assert_eq!(s.delay(5, 0, 0.5), C - C / 8);
    }

    fn kinds(base: Nanos, cap: Nanos) -> [Backoff; 5] {
        [
            Backoff::Exponential { base, cap },
            Backoff::FullJitter { base, cap },
            Backoff::EqualJitter { base, cap },
            Backoff::Decorrelated { base, cap },
            Backoff::SdkJitter { base, cap },
        ]
    }

    proptest! {
        #[test]
        fn never_exceeds_its_cap(base in 1u64..10 * SECS, extra in 0u64..100 * SECS,
                                 n in 0u32..200, prev in 0u64..1000 * SECS, u in 0.0f64..1.0) {
            let cap = base + extra;
            for k in kinds(base, cap) {
                prop_assert!(k.delay(n, prev, u) <= cap, "{k:?}");
            }
        }

        #[test]
        fn exponential_ceilings_never_shrink(base in 1u64..SECS, extra in 0u64..100 * SECS, n in 0u32..100) {
            let e = Backoff::Exponential { base, cap: base + extra };
            prop_assert!(e.delay(n + 1, 0, 0.5) >= e.delay(n, 0, 0.5));
        }

        #[test]
        fn decorrelated_stays_at_or_above_base(base in 1u64..SECS, extra in 0u64..100 * SECS,
                                               prev in 0u64..100 * SECS, u in 0.0f64..1.0) {
            let d = Backoff::Decorrelated { base, cap: base + extra };
            prop_assert!(d.delay(1, prev, u) >= base);
        }

        #[test]
        fn sdk_jitter_stays_within_a_quarter_below_the_step(base in 1u64..SECS, extra in 0u64..100 * SECS,
                                                             n in 0u32..100, u in 0.0f64..1.0) {
            let cap = base + extra;
            let step = Backoff::Exponential { base, cap }.delay(n, 0, u);
            let w = Backoff::SdkJitter { base, cap }.delay(n, 0, u);
            prop_assert!(w <= step && w >= step - step / 4, "{w} vs {step}");
        }
    }
}
