//! Named random streams. Every draw comes from a `rand_chacha` generator
//! whose key is derived from the run seed and a stream key, so that:
//!
//! - every strategy sees the same arrivals and request sizes (streams keyed
//!   by source and request, not by the order the strategy asks in);
//! - a provider draw is keyed by (request, model, k-th try on that model), so
//!   the same try meets the same luck under every strategy (common random
//!   numbers), and the mock provider can reproduce it from a header;
//! - a request's output length is drawn once per (request, model).

use rand::rand_core::block::BlockRngCore;
use rand::SeedableRng;
use rand_chacha::{ChaCha8Core, ChaCha8Rng};

use crate::dist::{normal, splitmix, unit};

/// Stream tags: one per purpose, never reused.
pub mod stream {
    /// Arrival times of a traffic source.
    pub const ARRIVALS: u64 = 1;
    /// A request's attributes (task, sizes).
    pub const REQUEST: u64 = 2;
    /// A provider's answer to one try.
    pub const ATTEMPT: u64 = 3;
    /// A request's output length on one model.
    pub const OUTPUT_LEN: u64 = 4;
    /// A client core's own randomness (jitter).
    pub const POLICY: u64 = 5;
}

/// The ChaCha key for `(seed, stream, a, b, c)`.
#[inline]
fn key(seed: u64, stream: u64, a: u64, b: u64, c: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    let mut h = splitmix(seed ^ splitmix(stream));
    for (i, part) in [a, b, c, stream].into_iter().enumerate() {
        h = splitmix(h ^ part.wrapping_mul(0xA076_1D64_78BD_642F));
        key[i * 8..i * 8 + 8].copy_from_slice(&h.to_le_bytes());
    }
    key
}

/// A generator for `(seed, stream, a, b, c)`, for sequential use (a
/// traffic source's arrivals).
pub fn rng(seed: u64, stream: u64, a: u64, b: u64, c: u64) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(key(seed, stream, a, b, c))
}

/// The first four ChaCha8 blocks (32 words of 64 bits) of the stream keyed
/// by `(seed, stream, a, b, c)`: exactly the numbers `rng(..)` would give
/// by `next_u64`, made by the cipher core straight into this buffer
/// (no `BlockRng` around it to initialise, move and index).
#[derive(Clone, Default)]
pub struct Block(<ChaCha8Core as BlockRngCore>::Results);

impl Block {
    /// Words in a block.
    pub const WORDS: usize = 32;

    /// The block for `(seed, stream, a, b, c)`.
    #[inline]
    pub fn new(seed: u64, stream: u64, a: u64, b: u64, c: u64) -> Self {
        let mut out = Self::default();
        out.fill(seed, stream, a, b, c);
        out
    }

    /// Makes this the block for `(seed, stream, a, b, c)`, generated in
    /// place: a block made in a local and then moved (256 bytes) cost a
    /// `memcpy` call per try.
    #[inline]
    pub fn fill(&mut self, seed: u64, stream: u64, a: u64, b: u64, c: u64) {
        let mut core = ChaCha8Core::from_seed(key(seed, stream, a, b, c));
        core.generate(&mut self.0);
    }

    /// Word `i` (< 32), as `next_u64` composes it (low half first).
    #[inline]
    pub fn word(&self, i: usize) -> u64 {
        let w = self.0.as_ref();
        u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32)
    }
}

/// The uniforms behind one try on a provider. Each field has one use, so a
/// new use never shifts the others.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttemptDraws {
    /// Picks the fault (or none).
    pub fault: f64,
    /// Standard normal for time to first token.
    pub ttft_z: f64,
    /// Standard normal for output speed.
    pub tps_z: f64,
    /// Decides the slow tail.
    pub slow: f64,
    /// Where in the response a reset or break happens.
    pub position: f64,
}

/// Words (u64) per try in a (request, model) stream.
const TRY_WORDS: usize = 7;
/// Tries whose draws sit in the (request, model) stream's first buffer; later
/// tries get a stream of their own.
const SHARED_TRIES: u64 = 4;

/// The try whose words start at word `at` of `b`.
#[inline]
fn try_words(b: &Block, at: usize) -> AttemptDraws {
    let w = |i: usize| b.word(at + i);
    // Each normal: its ziggurat word, then the seed of its rare extra words.
    AttemptDraws {
        fault: unit(w(0)),
        ttft_z: normal(w(1), w(2)),
        tps_z: normal(w(3), w(4)),
        slow: unit(w(5)),
        position: unit(w(6)),
    }
}

/// A try's draws and the request's output length on that model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TryDraws {
    /// Standard normal behind the request's output length on this model
    /// (the same for every try on the model).
    pub output_z: f64,
    /// The try's own draws.
    pub attempt: AttemptDraws,
}

/// The draws for the `try_no`-th try (0-based) of `request` on `model`.
///
/// One stream per (request, model), of which one ChaCha8 generation (four
/// blocks, 32 words) is made: its first two words are the output length's
/// normal, then seven words per try for the first four tries. Tries
/// from the fifth on come from a stream keyed by the try number too. Either
/// way a draw depends only on (seed, request, model, try), never on order.
pub fn try_draws(seed: u64, request: u64, model: u64, try_no: u64) -> TryDraws {
    let mut b = Block::default();
    b.fill(seed, stream::ATTEMPT, request, model, 0);
    let output_z = normal(b.word(0), b.word(1));
    let attempt = if try_no < SHARED_TRIES {
        try_words(&b, 2 + try_no as usize * TRY_WORDS)
    } else {
        b.fill(seed, stream::ATTEMPT, request, model, try_no);
        try_words(&b, 0)
    };
    TryDraws { output_z, attempt }
}

impl AttemptDraws {
    /// The draws for the `try_no`-th try (0-based) of `request` on `model`.
    pub fn new(seed: u64, request: u64, model: u64, try_no: u64) -> Self {
        try_draws(seed, request, model, try_no).attempt
    }
}

/// The standard normal behind a request's output length on one model.
pub fn output_len_z(seed: u64, request: u64, model: u64) -> f64 {
    let b = Block::new(seed, stream::ATTEMPT, request, model, 0);
    normal(b.word(0), b.word(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_only_on_their_key() {
        assert_eq!(AttemptDraws::new(1, 2, 3, 0), AttemptDraws::new(1, 2, 3, 0));
        for k in 0..8 {
            assert_ne!(
                AttemptDraws::new(1, 2, 3, k),
                AttemptDraws::new(1, 2, 3, k + 1)
            );
            assert_eq!(try_draws(1, 2, 3, k).output_z, output_len_z(1, 2, 3));
        }
        assert_ne!(AttemptDraws::new(1, 2, 3, 0), AttemptDraws::new(2, 2, 3, 0));
        assert_ne!(output_len_z(1, 2, 3), output_len_z(1, 2, 4));
    }

    #[test]
    fn a_block_is_the_start_of_its_stream() {
        use rand::RngCore;
        let b = Block::new(5, stream::ATTEMPT, 6, 7, 8);
        let mut r = rng(5, stream::ATTEMPT, 6, 7, 8);
        for i in 0..Block::WORDS {
            assert_eq!(b.word(i), r.next_u64(), "word {i}");
        }
    }

    #[test]
    fn the_paired_normals_are_standard_and_uncorrelated() {
        let n = 100_000;
        let (mut s1, mut s2, mut s11, mut s22, mut s12) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let d = AttemptDraws::new(9, i, 0, 0);
            s1 += d.ttft_z;
            s2 += d.tps_z;
            s11 += d.ttft_z * d.ttft_z;
            s22 += d.tps_z * d.tps_z;
            s12 += d.ttft_z * d.tps_z;
        }
        let n = n as f64;
        assert!((s1 / n).abs() < 0.02 && (s2 / n).abs() < 0.02);
        assert!((s11 / n - 1.0).abs() < 0.03 && (s22 / n - 1.0).abs() < 0.03);
        assert!((s12 / n).abs() < 0.02);
    }
}
