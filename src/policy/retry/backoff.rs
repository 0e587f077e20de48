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
//! | litellm       | min(cap, base x 2^max(0, n-1)) + u x 750 ms       |
//! | randomized    | e/2 + u x e, e = min(cap, base x 1.5^n)           |
//!
//! "sdk jitter" is not one of Brooker's: it is what the Stainless-generated
//! SDKs (openai-python, anthropic-python) do, `sleep_seconds * (1 - 0.25 *
//! random())`, up to 25% below the exponential step and never above it.
//!
//! "litellm" is LiteLLM's router (1.80, `litellm/utils.py`
//! `_calculate_retry_after`): the exponential step plus up to `JITTER` =
//! 0.75 s *above* it, so the cap is exceeded by up to that much. Its retry
//! loop (`router.py` `async_function_with_retries`) computes the step from
//! `max_retries - remaining_retries`, which is 0 for both the first and the
//! second retry: the first step is waited twice.
//!
//! "randomized" is the exponential back-off of Google's HTTP client
//! libraries, which the Go `cenkalti/backoff` and the Rust `backoff` crate
//! (0.4, src/exponential.rs, defaults in src/default.rs) carry on: an
//! interval that starts at `base` and grows by 1.5 up to `cap`, and a wait
//! drawn uniformly within 50% either side of it, so up to 1.5 x `cap`. The
//! growth is computed step by step as the crate does, without `pow`.
//!
//! Defaults (base 500 ms, cap 8 s) are the official OpenAI and Anthropic
//! SDKs' (`INITIAL_RETRY_DELAY = 0.5`, `MAX_RETRY_DELAY = 8.0`).

use crate::units::Nanos;

/// A backoff rule; every wait is at most [`Backoff::cap`] (the cap; plus
/// LiteLLM's jitter for `Litellm`, half more for `Randomized`; constant:
/// exactly `base`).
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
    /// min(cap, base x 2^max(0, n-1)) plus up to 0.75 s (LiteLLM's router).
    Litellm {
        /// First step.
        base: Nanos,
        /// Largest step (the jitter comes on top).
        cap: Nanos,
    },
    /// Within 50% of min(cap, base x 1.5^n) (the `backoff` crate).
    Randomized {
        /// First interval.
        base: Nanos,
        /// Largest interval (a wait may be up to half more).
        cap: Nanos,
    },
}

/// The `backoff` crate's `MULTIPLIER` and `RANDOMIZATION_FACTOR`.
const RANDOMIZED_MULTIPLIER: f64 = 1.5;
const RANDOMIZATION: f64 = 0.5;

/// LiteLLM's `JITTER` (litellm/constants.py): up to this much is added to
/// every wait.
pub const LITELLM_JITTER: Nanos = 750_000_000;

/// The `backoff` crate's interval before retry `n`: `base`, then times 1.5
/// each time until it would pass `cap` (`increment_current_interval`).
fn randomized_interval(base: Nanos, cap: Nanos, n: u32) -> f64 {
    let (mut current, cap) = (base as f64, cap as f64);
    for _ in 0..n {
        if current >= cap / RANDOMIZED_MULTIPLIER {
            return cap;
        }
        current *= RANDOMIZED_MULTIPLIER;
    }
    current
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
            Self::Litellm { base, cap } => exp(base, cap, n.saturating_sub(1))
                .saturating_add((LITELLM_JITTER as f64 * u) as Nanos),
            Self::Randomized { base, cap } => {
                let i = randomized_interval(base, cap, n);
                let wait = i * (1.0 - RANDOMIZATION) + u * (2.0 * RANDOMIZATION * i);
                (wait as Nanos).min(self.cap())
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
                | Self::Litellm { .. }
                | Self::Randomized { .. }
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
            Self::Litellm { cap, .. } => cap.saturating_add(LITELLM_JITTER),
            Self::Randomized { cap, .. } => cap.saturating_add(cap / 2),
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
        // LiteLLM: 0.5 s, 0.5 s, 1 s, ... plus up to 0.75 s on top.
        let l = Backoff::Litellm { base: B, cap: C };
        assert_eq!(l.delay(0, 0, 0.0), B);
        assert_eq!(l.delay(1, 0, 0.0), B);
        assert_eq!(l.delay(2, 0, 0.0), 2 * B);
        assert_eq!(l.delay(2, 0, 0.5), 2 * B + LITELLM_JITTER / 2);
        assert_eq!(l.delay(9, 0, 0.0), C);
        assert_eq!(l.cap(), C + LITELLM_JITTER);
        // The backoff crate's defaults: 0.5 s growing by 1.5 to 60 s, each
        // drawn within 50% of the interval.
        let r = Backoff::Randomized {
            base: B,
            cap: 60 * SECS,
        };
        assert_eq!(r.delay(0, 0, 0.0), B / 2);
        assert_eq!(r.delay(0, 0, 0.5), B);
        assert_eq!(r.delay(2, 0, 0.5), 1_125 * MILLIS);
        assert_eq!(r.delay(30, 0, 0.5), 60 * SECS);
        assert_eq!(r.delay(30, 0, 0.999_999_999), 90 * SECS - 60);
        assert_eq!(r.cap(), 90 * SECS);
    }

    fn kinds(base: Nanos, cap: Nanos) -> [Backoff; 7] {
        [
            Backoff::Exponential { base, cap },
            Backoff::FullJitter { base, cap },
            Backoff::EqualJitter { base, cap },
            Backoff::Decorrelated { base, cap },
            Backoff::SdkJitter { base, cap },
            Backoff::Litellm { base, cap },
            Backoff::Randomized { base, cap },
        ]
    }

    proptest! {
        #[test]
        fn never_exceeds_its_cap(base in 1u64..10 * SECS, extra in 0u64..100 * SECS,
                                 n in 0u32..200, prev in 0u64..1000 * SECS, u in 0.0f64..1.0) {
            let cap = base + extra;
            for k in kinds(base, cap) {
                prop_assert!(k.delay(n, prev, u) <= k.cap(), "{k:?}");
            }
            // Only LiteLLM's jitter and the backoff crate's randomization go
            // above the cap, by at most 0.75 s and half the cap.
            for k in &kinds(base, cap)[..5] {
                prop_assert_eq!(k.cap(), cap);
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
        fn randomized_stays_within_half_its_interval(
            base in 1u64..SECS, extra in 0u64..100 * SECS, n in 0u32..200, u in 0.0f64..1.0)
        {
            let cap = base + extra;
            let i = randomized_interval(base, cap, n);
            prop_assert!(i <= cap as f64 && i >= base as f64);
            let w = Backoff::Randomized { base, cap }.delay(n, 0, u) as f64;
            // Within a nanosecond or two of float rounding.
            prop_assert!(w >= i / 2.0 - 2.0 && w <= 1.5 * i + 2.0, "{w} vs {i}");
        }

        #[test]
        fn litellm_adds_at_most_its_jitter_to_the_step_before(
            base in 1u64..SECS, extra in 0u64..100 * SECS, n in 0u32..100, u in 0.0f64..1.0)
        {
            let cap = base + extra;
            let step = Backoff::Exponential { base, cap }.delay(n.saturating_sub(1), 0, u);
            let w = Backoff::Litellm { base, cap }.delay(n, 0, u);
            prop_assert!(w >= step && w - step <= LITELLM_JITTER, "{w} vs {step}");
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
