//! Our own samplers, on `libm` so that every platform draws the same numbers
//! from the same uniforms (no platform maths library, no distribution crate
//! whose algorithm may change between versions).

/// The standard normal quantile at 0.99.
pub const Z99: f64 = 2.326_347_874_040_841;

/// SplitMix64's finalizer: a bijective 64-bit mixer (Steele, Lea and Flood,
/// "Fast splittable pseudorandom number generators", OOPSLA 2014). Turns
/// draw keys into generator keys, in the world and in the core.
#[inline]
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in the open interval (0, 1) from 64 random bits.
#[inline]
pub fn unit(bits: u64) -> f64 {
    // 52 bits, shifted by half a step so neither end is reached (with 53
    // bits the half step is not representable next to 1 and rounds to 1).
    ((bits >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64)
}

/// A standard normal draw from two uniforms in (0, 1) (Box-Muller).
#[inline]
pub fn normal(u1: f64, u2: f64) -> f64 {
    normal_pair(u1, u2).0
}

/// The two independent standard normal draws that Box-Muller gives for two
/// uniforms in (0, 1): (r cos t, r sin t).
#[inline]
pub fn normal_pair(u1: f64, u2: f64) -> (f64, f64) {
    let radius = libm::sqrt(-2.0 * libm::log(u1));
    let (sin, cos) = libm::sincos(std::f64::consts::TAU * u2);
    (radius * cos, radius * sin)
}

/// A log-normal distribution given by its median and another quantile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNormal {
    /// Mean of the logarithm.
    pub mu: f64,
    /// Standard deviation of the logarithm.
    pub sigma: f64,
}

impl LogNormal {
    /// From a median and a p99 (p99 >= median > 0).
    pub fn from_median_p99(median: f64, p99: f64) -> Self {
        Self {
            mu: libm::log(median),
            sigma: (libm::log(p99) - libm::log(median)).max(0.0) / Z99,
        }
    }

    /// From a median and a p1 (0 < p1 <= median), for speeds whose slow side matters.
    pub fn from_median_p1(median: f64, p1: f64) -> Self {
        Self {
            mu: libm::log(median),
            sigma: (libm::log(median) - libm::log(p1)).max(0.0) / Z99,
        }
    }

    /// The value at standard normal draw `z`.
    #[inline]
    pub fn at(&self, z: f64) -> f64 {
        libm::exp(self.mu + self.sigma * z)
    }

    /// The median.
    pub fn median(&self) -> f64 {
        libm::exp(self.mu)
    }
}

/// An exponential draw with the given rate from a uniform in (0, 1).
#[inline]
pub fn exponential(rate: f64, u: f64) -> f64 {
    -libm::log(u) / rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * q) as usize]
    }

    #[test]
    fn lognormal_hits_its_median_and_p99() {
        let d = LogNormal::from_median_p99(400.0, 2000.0);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let v: Vec<f64> = (0..200_000)
            .map(|_| d.at(normal(unit(rng.next_u64()), unit(rng.next_u64()))))
            .collect();
        let (m, p99) = (quantile(v.clone(), 0.5), quantile(v, 0.99));
        assert!((m / 400.0 - 1.0).abs() < 0.02, "median {m}");
        assert!((p99 / 2000.0 - 1.0).abs() < 0.05, "p99 {p99}");
    }

    #[test]
    fn speed_hits_its_median_and_p1() {
        let d = LogNormal::from_median_p1(60.0, 20.0);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let v: Vec<f64> = (0..200_000)
            .map(|_| d.at(normal(unit(rng.next_u64()), unit(rng.next_u64()))))
            .collect();
        let (m, p1) = (quantile(v.clone(), 0.5), quantile(v, 0.01));
        assert!((m / 60.0 - 1.0).abs() < 0.02, "median {m}");
        assert!((p1 / 20.0 - 1.0).abs() < 0.05, "p1 {p1}");
    }

    #[test]
    fn exponential_has_its_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let n = 200_000;
        let mean: f64 = (0..n)
            .map(|_| exponential(4.0, unit(rng.next_u64())))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 0.25).abs() < 0.005, "mean {mean}");
    }

    #[test]
    fn unit_never_hits_the_ends() {
        assert!(unit(0) > 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
