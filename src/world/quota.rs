//! Quota pools: organisation or project limits on requests and tokens per
//! minute, shared by every key that points at the pool.
//!
//! Each limit is a token bucket that refills continuously at `limit / 60 s`
//! and holds `limit x burst / 60 s` (a `burst` of 60 s lets a whole minute's
//! quota go at once; 1 s enforces per second, as providers do for sub-minute
//! spikes). A request is admitted only if every bucket it draws on has room;
//! a rejection says when the pool will really have room again, which is
//! what a 429's `retry-after` carries. With `count_rejected`, a rejected
//! request still spends a request (providers that count failed calls), down
//! to at most one bucket's depth of debt (a sliding window remembers only one
//! window of calls): a client that keeps hammering a full pool keeps it full.
//!
//! OpenAI style admits `prompt + max_tokens` against `tpm`; Anthropic style
//! admits input tokens against `itpm` and `max_tokens` against `otpm`.

use crate::units::{Nanos, MINUTES};
use crate::wire::RateLimits;

use super::config::PoolSpec;

/// One continuously refilling bucket.
#[derive(Clone, Debug)]
struct Bucket {
    per_minute: f64,
    burst: Nanos,
    level: f64,
    last: Nanos,
    /// The figures derived from `per_minute` for the last quota factor seen.
    scale: Scale,
}

/// A bucket's size, refill rate and announced limit under one quota factor.
/// They change only when an incident cuts the quota, so they are computed
/// once per factor instead of once per request (with the same operations in
/// the same order, so the same bits).
#[derive(Clone, Copy, Debug)]
struct Scale {
    /// The factor these figures are for (its bits: exact comparison).
    factor: u64,
    /// Depth: `limit x factor x burst / 1 min`.
    capacity: f64,
    /// Refill per nanosecond.
    rate_per_ns: f64,
    /// The limit per minute a provider announces, as in the headers.
    limit: u32,
}

impl Scale {
    fn new(per_minute: f64, burst: Nanos, factor: f64) -> Self {
        Self {
            factor: factor.to_bits(),
            capacity: per_minute * factor * burst as f64 / MINUTES as f64,
            rate_per_ns: per_minute * factor / MINUTES as f64,
            limit: libm::floor(per_minute * factor).clamp(0.0, u32::MAX as f64) as u32,
        }
    }
}

/// `ceil(x) as Nanos` for `x > 0` without a call into `libm`: the truncation
/// plus one when a fraction was cut off. Exact: below 2^53 the truncated
/// value converts back without rounding, and from there on every `f64` is
/// an integer; past `i64::MAX` (or infinity) the cast saturates as before.
fn ceil_nanos(x: f64) -> Nanos {
    if x < i64::MAX as f64 {
        let t = x as i64;
        (t + i64::from((t as f64) < x)) as Nanos
    } else {
        x as Nanos
    }
}

impl Bucket {
    fn new(per_minute: f64, burst: Nanos) -> Self {
        let scale = Scale::new(per_minute, burst, 1.0);
        Self {
            per_minute,
            burst,
            level: scale.capacity,
            last: 0,
            scale,
        }
    }

    /// The figures under `factor` (recomputed only when it changed).
    #[inline]
    fn scale(&mut self, factor: f64) -> Scale {
        if self.scale.factor != factor.to_bits() {
            self.scale = Scale::new(self.per_minute, self.burst, factor);
        }
        self.scale
    }

    fn refill(&mut self, now: Nanos, factor: f64) -> Scale {
        let s = self.scale(factor);
        if now > self.last {
            self.level += s.rate_per_ns * (now - self.last) as f64;
            self.last = now;
        }
        if self.level > s.capacity {
            self.level = s.capacity;
        }
        s
    }

    /// Nanoseconds until `amount` fits, or the time to a full bucket when it
    /// never can (a request larger than the burst).
    fn wait_for(&self, amount: f64, s: &Scale) -> Nanos {
        let need = amount.min(s.capacity) - self.level;
        if need <= 0.0 {
            0
        } else {
            ceil_nanos(need / s.rate_per_ns)
        }
    }

    fn reset_ns(&self, s: &Scale) -> Nanos {
        let missing = s.capacity - self.level;
        if missing <= 0.0 {
            0
        } else {
            ceil_nanos(missing / s.rate_per_ns)
        }
    }

    fn remaining(&self) -> u32 {
        if self.level <= 0.0 {
            0
        } else {
            // Truncation is the floor of a positive number, and the cast
            // saturates at `u32::MAX` as the old `min` did.
            self.level as u32
        }
    }
}

/// Which limit turned a request away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per minute.
    Requests,
    /// Tokens per minute (any token limit).
    Tokens,
}

/// A 429 from a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaRejection {
    /// The limit that was hit (requests before tokens when both are).
    pub kind: LimitKind,
    /// When the pool will have room for this request; `None` when it never
    /// will (the request is larger than the bucket).
    pub retry_after: Option<Nanos>,
}

/// One limit as a provider reports it in its headers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LimitFigure {
    /// The limit per minute (after any quota cut).
    pub limit: u64,
    /// What is left now.
    pub remaining: u32,
    /// Nanoseconds until the bucket is full again.
    pub reset: Nanos,
}

/// Every limit of a pool, for the headers of one answer (OpenAI's
/// `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`). `None` where the
/// pool has no such limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PoolFigures {
    /// Requests per minute.
    pub requests: Option<LimitFigure>,
    /// Tokens per minute (prompt + `max_tokens`).
    pub tokens: Option<LimitFigure>,
    /// Input tokens per minute.
    pub input_tokens: Option<LimitFigure>,
    /// Output tokens per minute.
    pub output_tokens: Option<LimitFigure>,
}

/// The state of one pool.
#[derive(Clone, Debug)]
pub struct QuotaPool {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
    input: Option<Bucket>,
    output: Option<Bucket>,
    count_rejected: bool,
}

impl QuotaPool {
    /// A full pool.
    pub fn new(spec: &PoolSpec) -> Self {
        let b = |l: Option<f64>| l.map(|l| Bucket::new(l, spec.burst));
        Self {
            requests: b(spec.rpm),
            tokens: b(spec.tpm),
            input: b(spec.itpm),
            output: b(spec.otpm),
            count_rejected: spec.count_rejected,
        }
    }

    fn buckets(&mut self) -> [Option<&mut Bucket>; 4] {
        [
            self.requests.as_mut(),
            self.tokens.as_mut(),
            self.input.as_mut(),
            self.output.as_mut(),
        ]
    }

    /// Tries to admit a request of `input` prompt tokens and `max_tokens`
    /// at `now`, with the pool's limits multiplied by `factor` (a quota cut).
    pub fn admit(
        &mut self,
        now: Nanos,
        input: u32,
        max_tokens: u32,
        factor: f64,
    ) -> Result<(), QuotaRejection> {
        let amounts = [
            1.0,
            f64::from(input) + f64::from(max_tokens),
            f64::from(input),
            f64::from(max_tokens),
        ];
        // Which limits turn the request away, and can it ever fit? (Each
        // bucket by a direct call: an iterator over an array of options
        // costs more than the check itself.)
        let mut short: Option<LimitKind> = None;
        let mut never: Option<LimitKind> = None;
        let mut check = |b: &mut Option<Bucket>, amount: f64, kind: LimitKind| {
            if let Some(b) = b {
                let s = b.refill(now, factor);
                if s.capacity < amount {
                    never.get_or_insert(kind);
                } else if b.level < amount {
                    short.get_or_insert(kind);
                }
            }
        };
        check(&mut self.requests, amounts[0], LimitKind::Requests);
        check(&mut self.tokens, amounts[1], LimitKind::Tokens);
        check(&mut self.input, amounts[2], LimitKind::Tokens);
        check(&mut self.output, amounts[3], LimitKind::Tokens);
        if let Some(kind) = never.or(short) {
            if self.count_rejected {
                if let Some(b) = self.requests.as_mut() {
                    // A window only remembers one window's worth of calls:
                    // the debt is bounded by the bucket's depth.
                    b.level = (b.level - 1.0).max(-b.scale(factor).capacity);
                }
            }
            if never.is_some() {
                // Larger than the bucket (or a cut shrank it): no wait helps.
                return Err(QuotaRejection {
                    kind,
                    retry_after: None,
                });
            }
            // Computed after the rejected call was charged, so a client that
            // waits exactly this long gets in.
            let mut wait: Nanos = 1;
            for (i, b) in self.buckets().into_iter().enumerate() {
                if let Some(b) = b {
                    let s = b.scale(factor);
                    wait = wait.max(b.wait_for(amounts[i], &s));
                }
            }
            return Err(QuotaRejection {
                kind,
                retry_after: Some(wait),
            });
        }
        for (b, amount) in [
            (&mut self.requests, amounts[0]),
            (&mut self.tokens, amounts[1]),
            (&mut self.input, amounts[2]),
            (&mut self.output, amounts[3]),
        ] {
            if let Some(b) = b {
                b.level -= amount;
            }
        }
        Ok(())
    }

    /// Every limit's figures at `now`, for response headers.
    pub fn figures(&mut self, now: Nanos, factor: f64) -> PoolFigures {
        let fig = |b: Option<&mut Bucket>| {
            b.map(|b| {
                let s = b.refill(now, factor);
                LimitFigure {
                    limit: libm::floor(b.per_minute * factor).max(0.0) as u64,
                    remaining: b.remaining(),
                    reset: b.reset_ns(&s),
                }
            })
        };
        PoolFigures {
            requests: fig(self.requests.as_mut()),
            tokens: fig(self.tokens.as_mut()),
            input_tokens: fig(self.input.as_mut()),
            output_tokens: fig(self.output.as_mut()),
        }
    }

    /// The figures a provider sends with a response at `now`.
    pub fn limits(&mut self, now: Nanos, factor: f64) -> RateLimits {
        for b in self.buckets().into_iter().flatten() {
            b.refill(now, factor);
        }
        self.snapshot()
    }

    /// [`QuotaPool::admit`] and then [`QuotaPool::limits`] at the same `now`
    /// and factor, without refilling twice.
    pub fn admit_with_limits(
        &mut self,
        now: Nanos,
        input: u32,
        max_tokens: u32,
        factor: f64,
    ) -> (Result<(), QuotaRejection>, RateLimits) {
        let res = self.admit(now, input, max_tokens, factor);
        // `admit` refilled every bucket at `now` under `factor`.
        (res, self.snapshot())
    }

    /// The figures of buckets already refilled to the instant asked about.
    fn snapshot(&self) -> RateLimits {
        let mut out = RateLimits::default();
        if let Some(b) = &self.requests {
            out.remaining_requests = Some(b.remaining());
            out.reset_requests = Some(b.reset_ns(&b.scale));
            out.limit_requests = Some(b.scale.limit);
        }
        // The tightest token bucket speaks for tokens (the first of equals).
        fn tighter<'a>(
            t: Option<(&'a Bucket, u32)>,
            b: &'a Option<Bucket>,
        ) -> Option<(&'a Bucket, u32)> {
            match b {
                Some(b) => {
                    let rem = b.remaining();
                    if t.is_none_or(|(_, r)| rem < r) {
                        Some((b, rem))
                    } else {
                        t
                    }
                }
                None => t,
            }
        }
        let tightest = tighter(
            tighter(tighter(None, &self.tokens), &self.input),
            &self.output,
        );
        if let Some((b, rem)) = tightest {
            out.remaining_tokens = Some(rem);
            out.reset_tokens = Some(b.reset_ns(&b.scale));
            out.limit_tokens = Some(b.scale.limit);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::SECS;

    fn spec(rpm: f64, burst: Nanos) -> PoolSpec {
        PoolSpec {
            name: "p".into(),
            provider: 0,
            rpm: Some(rpm),
            tpm: None,
            itpm: None,
            otpm: None,
            burst,
            count_rejected: false,
        }
    }

    proptest::proptest! {
        #[test]
        fn ceil_nanos_is_libm_ceil(x in 1e-9f64..1e20, frac in 0.0f64..1.0, whole in 0u64..1 << 60) {
            for v in [x, whole as f64, whole as f64 + frac] {
                if v > 0.0 {
                    proptest::prop_assert_eq!(ceil_nanos(v), libm::ceil(v) as Nanos);
                }
            }
        }
    }

    proptest::proptest! {
        /// The figures of one call equal those of admission then `limits`,
        /// through refills, rejections, counted rejections and cuts.
        #[test]
        fn admit_with_limits_is_admit_then_limits(
            steps in proptest::collection::vec((0u64..3_000_000_000, 0u32..4000, 1u32..2000, 0usize..3), 1..60),
            anthropic in proptest::bool::ANY,
            count_rejected in proptest::bool::ANY,
        ) {
            let mut s = spec(120.0, SECS);
            s.count_rejected = count_rejected;
            if anthropic {
                s.itpm = Some(60_000.0);
                s.otpm = Some(30_000.0);
            } else {
                s.tpm = Some(90_000.0);
            }
            let (mut a, mut b) = (QuotaPool::new(&s), QuotaPool::new(&s));
            let mut now = 0;
            for (dt, input, max, f) in steps {
                now += dt;
                let factor = [1.0, 0.5, 0.1][f];
                let (res, limits) = a.admit_with_limits(now, input, max, factor);
                proptest::prop_assert_eq!(res, b.admit(now, input, max, factor));
                proptest::prop_assert_eq!(limits, b.limits(now, factor));
            }
        }
    }

    #[test]
    fn ceil_nanos_at_the_edges() {
        for v in [
            f64::MIN_POSITIVE,
            0.5,
            1.0,
            1.0 + f64::EPSILON,
            (1u64 << 53) as f64 - 0.5,
            (1u64 << 53) as f64,
            i64::MAX as f64,
            u64::MAX as f64,
            1e30,
            f64::INFINITY,
        ] {
            assert_eq!(ceil_nanos(v), libm::ceil(v) as Nanos, "{v}");
        }
    }

    #[test]
    fn a_cut_is_applied_and_lifted_again() {
        // The cached figures follow the factor both ways.
        let mut p = QuotaPool::new(&spec(60.0, 60 * SECS));
        assert_eq!(p.limits(0, 0.5).limit_requests, Some(30));
        assert_eq!(p.limits(0, 1.0).limit_requests, Some(60));
        assert_eq!(p.limits(0, 0.5).remaining_requests, Some(30));
    }

    #[test]
    fn retry_after_is_when_the_pool_has_room_again() {
        // 60 rpm with a 1 s burst: one request per second.
        let mut p = QuotaPool::new(&spec(60.0, SECS));
        assert!(p.admit(0, 10, 10, 1.0).is_ok());
        let rej = p.admit(0, 10, 10, 1.0).unwrap_err();
        assert_eq!(rej.kind, LimitKind::Requests);
        assert_eq!(rej.retry_after, Some(SECS));
        // Just before that: still no room; at that time: room.
        assert!(p.admit(SECS - 1_000, 10, 10, 1.0).is_err());
        assert!(p.admit(SECS, 10, 10, 1.0).is_ok());
    }

    #[test]
    fn token_limits_count_prompt_plus_max_tokens() {
        let mut s = spec(1000.0, 60 * SECS);
        s.tpm = Some(1000.0);
        let mut p = QuotaPool::new(&s);
        assert!(p.admit(0, 300, 200, 1.0).is_ok());
        assert!(p.admit(0, 300, 200, 1.0).is_ok());
        let rej = p.admit(0, 1, 1, 1.0).unwrap_err();
        assert_eq!(rej.kind, LimitKind::Tokens);
        // 2 tokens at 1000/min take 120 ms to refill.
        assert_eq!(rej.retry_after, Some(120_000_000));
    }

    #[test]
    fn a_quota_cut_shrinks_the_pool() {
        // 60 rpm cut to 10%: six requests in the minute.
        let mut p = QuotaPool::new(&spec(60.0, 60 * SECS));
        for _ in 0..6 {
            assert!(p.admit(0, 1, 1, 0.1).is_ok());
        }
        assert!(p.admit(0, 1, 1, 0.1).is_err());
    }

    #[test]
    fn counted_rejections_push_the_next_slot_out() {
        let mut s = spec(60.0, SECS);
        s.count_rejected = true;
        let mut p = QuotaPool::new(&s);
        assert!(p.admit(0, 1, 1, 1.0).is_ok());
        let rej = p.admit(0, 1, 1, 1.0).unwrap_err();
        // The rejected call spent a request too: its retry-after says two
        // seconds, and that is exactly when there is room.
        assert_eq!(rej.retry_after, Some(2 * SECS));
        assert!(p.admit(2 * SECS - 1_000, 1, 1, 1.0).is_err());
        let rej = p.admit(2 * SECS - 1_000, 1, 1, 1.0).unwrap_err();
        // Hammering pushes it out further, but never more than one window of debt.
        assert!(rej.retry_after.unwrap() <= 2 * SECS);
    }

    #[test]
    fn a_request_larger_than_the_bucket_never_gets_a_retry_after() {
        let mut s = spec(600.0, SECS);
        s.tpm = Some(60_000.0); // a 1 s bucket holds 1,000 tokens
        let mut p = QuotaPool::new(&s);
        let rej = p.admit(0, 900, 200, 1.0).unwrap_err();
        assert_eq!(
            rej,
            QuotaRejection {
                kind: LimitKind::Tokens,
                retry_after: None
            }
        );
        assert!(p.admit(10 * SECS, 900, 200, 1.0).is_err());
        assert!(p.admit(10 * SECS, 700, 200, 1.0).is_ok());
    }

    #[test]
    fn limits_report_remaining_and_reset() {
        let mut p = QuotaPool::new(&spec(60.0, 60 * SECS));
        p.admit(0, 1, 1, 1.0).unwrap();
        let l = p.limits(0, 1.0);
        assert_eq!(l.remaining_requests, Some(59));
        assert_eq!(l.reset_requests, Some(SECS));
        assert_eq!(l.limit_requests, Some(60));
        assert_eq!(l.remaining_tokens, None);
        // An incident's factor changes the announced limit too.
        assert_eq!(p.limits(0, 0.5).limit_requests, Some(30));
    }

    #[test]
    fn anthropic_style_limits_input_and_output_separately() {
        let mut s = spec(1000.0, 60 * SECS);
        s.rpm = None;
        s.itpm = Some(1000.0);
        s.otpm = Some(500.0);
        let mut p = QuotaPool::new(&s);
        // Input and max_tokens are charged to their own buckets.
        assert!(p.admit(0, 900, 100, 1.0).is_ok());
        // Input room is left for 100 more; output room for 400.
        let rej = p.admit(0, 200, 100, 1.0).unwrap_err();
        assert_eq!(rej.kind, LimitKind::Tokens);
        assert!(p.admit(0, 100, 400, 1.0).is_ok());
        assert!(p.admit(0, 0, 1, 1.0).is_err(), "output bucket empty");
        let l = p.limits(0, 1.0);
        // The tightest token bucket speaks for tokens.
        assert_eq!(l.remaining_tokens, Some(0));
        // Both are empty; the first (input) speaks, with its own limit.
        assert_eq!(l.limit_tokens, Some(1000));
        assert_eq!(l.remaining_requests, None);
    }
}
