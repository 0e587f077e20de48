//! Key pools: several API keys per provider, which one each attempt uses,
//! and what a key's errors say about it.
//!
//! Teams spread load over several keys, hoping for more capacity. Whether
//! they get it depends on where the limits live: keys of one project share
//! its quota pool, so a second key on the same pool adds nothing; keys of
//! different projects (or organisations) add their pools. The report shows
//! per key which pool it drew on, so the difference is visible.
//!
//! The rule here (LiteLLM's router does the same per deployment: a
//! deployment that answers 401 is taken out, one that answers 429 cools
//! down):
//!
//! - a key that gets 401 or 403 is disabled for the rest of the run, and the
//!   request is retried at once with another key of the model, if any;
//! - a key that gets a 429 rests until its `retry-after` (or, without one,
//!   for `rest`, default 1 s); while another key of the model can be used,
//!   the retry does not wait for that `retry-after` (it still waits its
//!   backoff);
//! - selection among the usable keys: `round_robin` (default), `least_used`
//!   (fewest of this client's attempts in flight, then fewest sent) or
//!   `most_remaining` (most requests left by the last
//!   `x-ratelimit-remaining-requests` seen for the key; a key never seen
//!   counts as full);
//! - a model none of whose keys can be used is skipped down the chain; when
//!   no model is left the request fails as `no_key_available`.

use crate::units::Nanos;
use crate::wire::RateLimits;

use super::contract::KeyId;

/// How a key is picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySelect {
    /// In turn.
    RoundRobin,
    /// Fewest in flight, then fewest sent.
    LeastUsed,
    /// Most requests left by the provider's last figures.
    MostRemaining,
}

/// Key pool settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPoolConfig {
    /// Selection.
    pub select: KeySelect,
    /// How long a key rests after a 429 without `retry-after`.
    pub rest: Nanos,
}

#[derive(Clone, Copy, Debug, Default)]
struct KeyState {
    disabled: bool,
    rest_until: Nanos,
    in_flight: u32,
    sent: u64,
    remaining: Option<u32>,
}

/// The keys' state as one client sees it.
#[derive(Clone, Debug)]
pub struct KeyPool {
    cfg: KeyPoolConfig,
    keys: Vec<KeyState>,
    disabled: u64,
    rests: u64,
}

impl KeyPool {
    /// Every key usable.
    pub fn new(cfg: KeyPoolConfig) -> Self {
        Self {
            cfg,
            keys: Vec::new(),
            disabled: 0,
            rests: 0,
        }
    }

    fn state(&mut self, k: KeyId) -> &mut KeyState {
        let i = usize::from(k);
        if self.keys.len() <= i {
            self.keys.resize(i + 1, KeyState::default());
        }
        &mut self.keys[i]
    }

    fn usable(&self, k: KeyId, now: Nanos) -> bool {
        self.keys
            .get(usize::from(k))
            .is_none_or(|s| !s.disabled && s.rest_until <= now)
    }

    /// Keys disabled so far.
    pub fn disabled(&self) -> u64 {
        self.disabled
    }

    /// Times a key was rested after a 429.
    pub fn rests(&self) -> u64 {
        self.rests
    }

    /// Whether `k` is disabled.
    pub fn is_disabled(&self, k: KeyId) -> bool {
        self.keys.get(usize::from(k)).is_some_and(|s| s.disabled)
    }

    /// Whether a key of `keys` other than `but` can be used at `now`.
    pub fn another_usable(&self, keys: &[KeyId], but: KeyId, now: Nanos) -> bool {
        keys.iter().any(|&k| k != but && self.usable(k, now))
    }

    /// The key for an attempt from `keys` at `now`, `None` if none can be
    /// used. `rr` is the model's round-robin counter.
    /// Keys for which `ok` is false (an open breaker) are passed over.
    pub fn pick(
        &mut self,
        keys: &[KeyId],
        now: Nanos,
        rr: &mut u32,
        ok: impl Fn(KeyId) -> bool,
    ) -> Option<KeyId> {
        let n = keys.len();
        if n == 0 {
            return None;
        }
        let start = *rr as usize;
        *rr = rr.wrapping_add(1);
        // Candidates in round-robin order from this turn's start.
        let order = (0..n).map(|i| keys[(start + i) % n]);
        let mut best: Option<(KeyId, (u64, u64))> = None;
        for k in order {
            if !self.usable(k, now) || !ok(k) {
                continue;
            }
            let s = self.keys.get(usize::from(k)).copied().unwrap_or_default();
            let score = match self.cfg.select {
                KeySelect::RoundRobin => return Some(k),
                KeySelect::LeastUsed => (u64::from(s.in_flight), s.sent),
                KeySelect::MostRemaining => {
                    (u64::from(u32::MAX - s.remaining.unwrap_or(u32::MAX)), 0)
                }
            };
            if best.is_none_or(|(_, b)| score < b) {
                best = Some((k, score));
            }
        }
        best.map(|(k, _)| k)
    }

    /// An attempt went out with `k`.
    pub fn on_send(&mut self, k: KeyId) {
        let s = self.state(k);
        s.in_flight += 1;
        s.sent += 1;
    }

    /// An attempt with `k` ended at `now`: `status` is its HTTP status if it
    /// was an error answer, and `limits` the figures that came with it.
    pub fn on_end(
        &mut self,
        k: KeyId,
        now: Nanos,
        status: Option<u16>,
        retry_after: Option<Nanos>,
        limits: RateLimits,
    ) {
        let rest = self.cfg.rest;
        let s = self.state(k);
        s.in_flight = s.in_flight.saturating_sub(1);
        if limits.remaining_requests.is_some() {
            s.remaining = limits.remaining_requests;
        }
        match status {
            Some(401 | 403) if !s.disabled => {
                s.disabled = true;
                self.disabled += 1;
            }
            Some(429) => {
                s.rest_until = s
                    .rest_until
                    .max(now.saturating_add(retry_after.unwrap_or(rest)));
                self.rests += 1;
            }
            _ => {}
        }
    }

    /// An attempt with `k` was cancelled.
    pub fn on_cancel(&mut self, k: KeyId) {
        let s = self.state(k);
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::SECS;

    fn pool(select: KeySelect) -> KeyPool {
        KeyPool::new(KeyPoolConfig { select, rest: SECS })
    }

    #[test]
    fn round_robin_skips_disabled_and_resting_keys() {
        let mut p = pool(KeySelect::RoundRobin);
        let keys = [3, 4, 5];
        let mut rr = 0;
        let picks: Vec<_> = (0..3)
            .map(|_| p.pick(&keys, 0, &mut rr, |_| true))
            .collect();
        assert_eq!(picks, [Some(3), Some(4), Some(5)]);
        p.on_send(4);
        p.on_end(4, 0, Some(401), None, RateLimits::default());
        p.on_send(5);
        p.on_end(5, 0, Some(429), Some(2 * SECS), RateLimits::default());
        assert_eq!((p.disabled(), p.rests()), (1, 1));
        let picks: Vec<_> = (0..3)
            .map(|_| p.pick(&keys, SECS, &mut rr, |_| true))
            .collect();
        assert_eq!(picks, [Some(3), Some(3), Some(3)]);
        assert!(!p.another_usable(&keys, 3, SECS));
        // 5 is back after its retry-after; 4 never.
        assert!(p.another_usable(&keys, 3, 2 * SECS));
        p.on_end(3, SECS, Some(403), None, RateLimits::default());
        assert_eq!(p.pick(&keys, SECS, &mut rr, |_| true), None);
    }

    #[test]
    fn least_used_prefers_fewest_in_flight() {
        let mut p = pool(KeySelect::LeastUsed);
        let keys = [0, 1];
        let mut rr = 0;
        p.on_send(0);
        assert_eq!(p.pick(&keys, 0, &mut rr, |_| true), Some(1));
        p.on_send(1);
        p.on_send(1);
        assert_eq!(p.pick(&keys, 0, &mut rr, |_| true), Some(0));
    }

    #[test]
    fn most_remaining_follows_the_providers_figures() {
        let mut p = pool(KeySelect::MostRemaining);
        let keys = [0, 1];
        let mut rr = 0;
        let lim = |n| RateLimits {
            remaining_requests: Some(n),
            ..RateLimits::default()
        };
        p.on_send(0);
        p.on_end(0, 0, None, None, lim(10));
        // 1 was never seen: it counts as full.
        assert_eq!(p.pick(&keys, 0, &mut rr, |_| true), Some(1));
        p.on_send(1);
        p.on_end(1, 0, None, None, lim(5));
        assert_eq!(p.pick(&keys, 0, &mut rr, |_| true), Some(0));
        assert_eq!(p.pick(&keys, 0, &mut rr, |_| true), Some(0));
    }
}
