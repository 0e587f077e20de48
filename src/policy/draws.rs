//! The core's keyed random draws.
//!
//! Every random decision of a client (a routing pick, an adaptive-throttle
//! coin, a backoff jitter) is a pure function of the client's key, the
//! request id, the attempt number and the purpose, never the next number of
//! one sequential stream. So one decision that goes differently (a 429 at
//! the rate-limit boundary in live mode but not in the simulator, or under
//! one strategy but not another) does not shift the luck of every later
//! request: each request and attempt meets the same jitter wherever it is
//! run, just as `world::draws` gives each try the same provider luck.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dist::{splitmix, unit};

/// What a draw is for: one tag per purpose, never reused.
pub mod purpose {
    /// The routing pick of a request (a stream: a pick may take several).
    pub const ROUTE: u64 = 1;
    /// The adaptive throttle's coin before an attempt.
    pub const THROTTLE: u64 = 2;
    /// The backoff jitter before a retry.
    pub const JITTER: u64 = 3;
}

/// Mixes `(key, request, attempt, purpose)` into 64 bits; each part goes
/// through the mixer so neighbouring ids give unrelated bits.
#[inline]
fn mix(key: u64, request: u64, attempt: u64, purpose: u64) -> u64 {
    let mut h = splitmix(key ^ splitmix(purpose));
    for part in [request, attempt] {
        h = splitmix(h ^ part.wrapping_mul(0xA076_1D64_78BD_642F));
    }
    h
}

/// A uniform in (0, 1) for one decision.
#[inline]
pub fn uniform(key: u64, request: u64, attempt: u64, purpose: u64) -> f64 {
    unit(mix(key, request, attempt, purpose))
}

/// A generator for a decision that may take several numbers (routing).
/// Lazy: nothing is mixed, seeded or moved until the first number is drawn,
/// so a decision that draws nothing (static routing, every request) costs
/// three words on the stack.
pub fn stream(key: u64, request: u64, purpose: u64) -> Stream {
    Stream {
        key: (key, request, purpose),
        rng: None,
    }
}

/// The keyed stream of [`stream`]: a `ChaCha8Rng` seeded from the key,
/// built at the first draw.
pub struct Stream {
    key: (u64, u64, u64),
    rng: Option<ChaCha8Rng>,
}

impl Stream {
    #[inline]
    fn rng(&mut self) -> &mut ChaCha8Rng {
        let (key, request, purpose) = self.key;
        self.rng.get_or_insert_with(|| {
            let mut seed = [0u8; 32];
            let mut h = mix(key, request, 0, purpose);
            for chunk in seed.chunks_exact_mut(8) {
                chunk.copy_from_slice(&h.to_le_bytes());
                h = splitmix(h);
            }
            ChaCha8Rng::from_seed(seed)
        })
    }
}

impl RngCore for Stream {
    fn next_u32(&mut self) -> u32 {
        self.rng().next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.rng().next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.rng().fill_bytes(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_depends_only_on_its_key() {
        let a = uniform(7, 42, 2, purpose::JITTER);
        // Other draws in between do not move it (no shared stream).
        for r in 0..100 {
            let _ = uniform(7, r, 1, purpose::JITTER);
        }
        assert_eq!(a, uniform(7, 42, 2, purpose::JITTER));
        assert_ne!(a, uniform(7, 42, 3, purpose::JITTER));
        assert_ne!(a, uniform(7, 43, 2, purpose::JITTER));
        assert_ne!(a, uniform(7, 42, 2, purpose::THROTTLE));
        assert_ne!(a, uniform(8, 42, 2, purpose::JITTER));
        assert_eq!(
            stream(7, 42, purpose::ROUTE).next_u64(),
            stream(7, 42, purpose::ROUTE).next_u64()
        );
        assert_ne!(
            stream(7, 42, purpose::ROUTE).next_u64(),
            stream(7, 43, purpose::ROUTE).next_u64()
        );
    }

    #[test]
    fn draws_over_consecutive_ids_are_uniform() {
        // Ten bins over 10,000 consecutive request ids: a chi-square far
        // below the 0.1% critical value (27.9 for 9 degrees of freedom).
        let n = 10_000u64;
        let mut bins = [0u64; 10];
        for r in 0..n {
            let u = uniform(1, r, 1, purpose::JITTER);
            assert!(u > 0.0 && u < 1.0);
            bins[(u * 10.0) as usize] += 1;
        }
        let e = n as f64 / 10.0;
        let chi: f64 = bins.iter().map(|&b| (b as f64 - e).powi(2) / e).sum();
        assert!(chi < 27.9, "chi-square {chi}, bins {bins:?}");
    }
}
