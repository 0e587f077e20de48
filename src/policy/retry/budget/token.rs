//! gRPC retry throttling (proposal A6): a token bucket per client. Every
//! failed attempt costs one token, every success gives back `token_ratio`;
//! retries (and hedges) are allowed only while the bucket is more than half
//! full. A healthy upstream keeps it full; one that fails more than about
//! `token_ratio` of the time drains it, and retries stop until it recovers.

/// See the module docs.
#[derive(Clone, Debug)]
pub struct TokenBucketBudget {
    max: f64,
    ratio: f64,
    tokens: f64,
}

impl TokenBucketBudget {
    /// A full bucket of `max_tokens`.
    pub fn new(max_tokens: f64, token_ratio: f64) -> Self {
        Self {
            max: max_tokens,
            ratio: token_ratio,
            tokens: max_tokens,
        }
    }

    /// An attempt ended.
    pub fn on_attempt(&mut self, success: bool) {
        if success {
            self.tokens = (self.tokens + self.ratio).min(self.max);
        } else {
            self.tokens = (self.tokens - 1.0).max(0.0);
        }
    }

    /// Whether a retry may go (gRPC: only above half the bucket).
    pub fn try_retry(&mut self) -> bool {
        self.tokens > self.max / 2.0
    }

    /// Tokens in the bucket.
    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn failures_stop_retries_and_successes_restore_them() {
        let mut b = TokenBucketBudget::new(10.0, 0.1);
        assert!(b.try_retry());
        for _ in 0..5 {
            b.on_attempt(false);
        }
        // 5 tokens left: not above half.
        assert!(!b.try_retry());
        b.on_attempt(true);
        assert!(b.try_retry());
    }

    proptest! {
        #[test]
        fn the_bucket_stays_within_zero_and_max(outcomes in proptest::collection::vec(any::<bool>(), 0..1000)) {
            let mut b = TokenBucketBudget::new(10.0, 0.1);
            for ok in outcomes {
                b.on_attempt(ok);
                prop_assert!((0.0..=10.0).contains(&b.tokens()));
                prop_assert_eq!(b.try_retry(), b.tokens() > 5.0);
            }
        }
    }
}
