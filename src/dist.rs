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

/// The extra words a rejected ziggurat draw needs: a SplitMix64 sequence
/// (Steele, Lea and Flood 2014) from a seed word. Its seed is a keyed
/// ChaCha word of its own, independent of the word being rejected, so a
/// rejection's second chance does not depend on the first.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The sequence that starts from `seed`.
    #[inline]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next word.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let out = splitmix(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out
    }
}

/// Layers of the normal ziggurat.
const ZIG_LAYERS: usize = 256;
/// Where the base layer's tail starts for 256 layers (Marsaglia and Tsang
/// 2000; Doornik 2005, ZIGNOR).
const ZIG_R: f64 = 3.654_152_885_361_009;

/// Where the exponential ziggurat's base layer's tail starts for 256
/// layers (Marsaglia and Tsang 2000).
const ZIG_EXP_R: f64 = 7.697_117_470_131_05;

/// A ziggurat's tables: layer edges `x[i]` (`x[0]` the base
/// layer's virtual width, `x[1] = R`, decreasing to `x[256] = 0`) and the
/// unnormalised density `f[i] = exp(-x[i]^2 / 2)` at each edge.
struct Ziggurat {
    x: [f64; ZIG_LAYERS + 1],
    f: [f64; ZIG_LAYERS + 1],
}

impl Ziggurat {
    /// The tables for the density `pdf` (unnormalised, `pdf(0) = 1`,
    /// decreasing, with inverse `inv`) whose base layer ends at `r` with
    /// `tail` the area beyond: built once, deterministically, with `libm`,
    /// every layer (and the base with its tail) of the same area.
    fn build(r: f64, tail: f64, pdf: impl Fn(f64) -> f64, inv: impl Fn(f64) -> f64) -> Self {
        let v = r * pdf(r) + tail;
        let mut x = [0.0; ZIG_LAYERS + 1];
        x[0] = v / pdf(r);
        x[1] = r;
        for i in 2..ZIG_LAYERS {
            x[i] = inv(v / x[i - 1] + pdf(x[i - 1]));
        }
        x[ZIG_LAYERS] = 0.0;
        let mut f = [0.0; ZIG_LAYERS + 1];
        for (f, &x) in f.iter_mut().zip(&x) {
            *f = pdf(x);
        }
        Self { x, f }
    }

    /// The normal's: tail beyond R is sqrt(pi / 2) erfc(R / sqrt 2).
    #[inline]
    fn normal() -> &'static Self {
        static TABLES: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| {
            Self::build(
                ZIG_R,
                libm::sqrt(std::f64::consts::FRAC_PI_2)
                    * libm::erfc(ZIG_R / std::f64::consts::SQRT_2),
                |x| libm::exp(-0.5 * x * x),
                |y| libm::sqrt(-2.0 * libm::log(y)),
            )
        })
    }

    /// The exponential's: tail beyond R is exp(-R).
    #[inline]
    fn exponential() -> &'static Self {
        static TABLES: std::sync::OnceLock<Ziggurat> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| {
            Self::build(
                ZIG_EXP_R,
                libm::exp(-ZIG_EXP_R),
                |x| libm::exp(-x),
                |y| -libm::log(y),
            )
        })
    }
}

/// A standard normal draw from the 64-bit word `word`, by the ziggurat
/// method (Marsaglia and Tsang 2000, 256 layers, symmetric as in Doornik's
/// ZIGNOR). The low 8 bits pick the layer, the top 52 a signed position in
/// it; about 99% of draws end there, with one table look-up and a multiply.
/// The rest (a wedge test, or the tail beyond R by Marsaglia's exact method)
/// take further words from `SplitMix64::new(more)`, so `more` must be a
/// random word independent of `word`.
#[inline]
pub fn normal(word: u64, more: u64) -> f64 {
    let z = Ziggurat::normal();
    let (x, inside) = z.normal_try(word);
    if inside {
        x
    } else {
        normal_slow(z, word, more)
    }
}

impl Ziggurat {
    /// The point that `bits` picks in its layer, and whether it lies in
    /// the layer's rectangle under the next one (accepted outright).
    #[inline(always)]
    fn normal_try(&self, bits: u64) -> (f64, bool) {
        let i = (bits & 0xff) as usize;
        // In (-1, 1), symmetric, never 0: 52 bits and half a step.
        let u = ((bits >> 12) as f64 + 0.5) * (1.0 / (1u64 << 51) as f64) - 1.0;
        let x = u * self.x[i];
        (x, x.abs() < self.x[i + 1])
    }
}

/// The rest of [`normal`] once `word` was not accepted outright: the
/// wedge test or the tail, and further tries, on words from `more`.
#[cold]
#[inline(never)]
fn normal_slow(z: &Ziggurat, word: u64, more: u64) -> f64 {
    let mut bits = word;
    let mut extra = SplitMix64::new(more);
    loop {
        let (x, inside) = z.normal_try(bits);
        if inside {
            return x;
        }
        let i = (bits & 0xff) as usize;
        if i == 0 {
            return normal_tail(&mut extra, x < 0.0);
        }
        let y = z.f[i] + (z.f[i + 1] - z.f[i]) * unit(extra.next());
        if y < libm::exp(-0.5 * x * x) {
            return x;
        }
        bits = extra.next();
    }
}

/// A draw from the normal's tail beyond `ZIG_R` (negated if `negative`),
/// by Marsaglia's method (1964): exact, one or two rounds on average.
#[cold]
fn normal_tail(extra: &mut SplitMix64, negative: bool) -> f64 {
    loop {
        let x = -libm::log(unit(extra.next())) / ZIG_R;
        let y = -libm::log(unit(extra.next()));
        if 2.0 * y >= x * x {
            let t = ZIG_R + x;
            return if negative { -t } else { t };
        }
    }
}

/// Entries in [`exp`]'s table of 2^(j/N).
const EXP_N: usize = 128;

/// `e^x` for the samplers' hot path: `x = k ln2 / N + r` with `|r| <=
/// ln2 / 2N` (Cody and Waite's split of ln2), `e^x = 2^(k / N) e^r`, with
/// 2^(j/N) from a table built once with `libm` and `e^r` a degree-5
/// polynomial. Within 3 ulp of `libm::exp` (tested), about half its
/// instructions; outside (-700, 700), and for NaN, it is `libm::exp`.
/// Only IEEE additions and multiplications, so the same on every platform.
#[inline]
pub fn exp(x: f64) -> f64 {
    // 1.5 * 2^52: adding it rounds to an integer held in the low bits.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    const INV: f64 = EXP_N as f64 / std::f64::consts::LN_2;
    // ln2 / N in two parts; the first has 32 trailing zero bits, so k
    // times it is exact for |k| < 2^20.
    const LN2_HI: f64 = 0.693_147_180_369_123_8 / EXP_N as f64;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10 / EXP_N as f64;
    if !(x > -700.0 && x < 700.0) {
        return libm::exp(x);
    }
    let t = x * INV + SHIFT;
    let k = t.to_bits() as i64 - SHIFT.to_bits() as i64;
    let kf = t - SHIFT;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0)))));
    let j = (k & (EXP_N as i64 - 1)) as usize;
    let scale = f64::from_bits((((k >> 7) + 1023) as u64) << 52);
    exp_table()[j] * p * scale
}

/// 2^(j/N) for j in 0..N, built once with `libm`.
#[inline]
fn exp_table() -> &'static [f64; EXP_N] {
    static TABLE: std::sync::OnceLock<[f64; EXP_N]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|j| libm::exp2(j as f64 / EXP_N as f64)))
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
        exp(self.mu + self.sigma * z)
    }

    /// The median.
    pub fn median(&self) -> f64 {
        libm::exp(self.mu)
    }
}

/// An exponential draw with the given rate from a uniform in (0, 1), by
/// inversion (a `log`); `standard_exponential` is the fast path.
#[inline]
pub fn exponential(rate: f64, u: f64) -> f64 {
    -libm::log(u) / rate
}

/// A standard exponential draw (rate 1) from the 64-bit word `word`, by
/// the ziggurat method (Marsaglia and Tsang 2000, 256 layers): the low 8
/// bits pick the layer, the top 52 a position in it; about 99% of draws end
/// there. The rest take further words from `more`: a wedge test, or the
/// tail beyond R, which by the exponential's lack of memory is R plus a
/// fresh standard exponential draw.
#[inline]
pub fn standard_exponential(word: u64, mut more: impl FnMut() -> u64) -> f64 {
    let z = Ziggurat::exponential();
    let mut bits = word;
    let mut base = 0.0;
    loop {
        let i = (bits & 0xff) as usize;
        // In (0, 1): 52 bits and half a step.
        let x = unit(bits) * z.x[i];
        if x < z.x[i + 1] {
            return base + x;
        }
        if i == 0 {
            base += ZIG_EXP_R;
        } else if z.f[i] + (z.f[i + 1] - z.f[i]) * unit(more()) < libm::exp(-x) {
            return base + x;
        }
        bits = more();
    }
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
            .map(|_| d.at(normal(rng.next_u64(), rng.next_u64())))
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
            .map(|_| d.at(normal(rng.next_u64(), rng.next_u64())))
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
    fn ziggurat_tables_are_sound() {
        for (z, r) in [
            (Ziggurat::normal(), ZIG_R),
            (Ziggurat::exponential(), ZIG_EXP_R),
        ] {
            assert_eq!(z.x[1], r);
            for i in 0..ZIG_LAYERS {
                assert!(z.x[i].is_finite() && z.x[i] > z.x[i + 1], "x[{i}]");
                assert!(z.f[i] < z.f[i + 1], "f[{i}]");
            }
            assert_eq!((z.x[ZIG_LAYERS], z.f[ZIG_LAYERS]), (0.0, 1.0));
            // Every layer has the base's area, the top one included: R fits 256.
            let v = z.x[0] * z.f[1];
            for i in 1..ZIG_LAYERS {
                let area = z.x[i] * (z.f[i + 1] - z.f[i]);
                assert!(
                    (area / v - 1.0).abs() < 1e-9,
                    "layer {i}: {area} against {v}"
                );
            }
        }
    }

    #[test]
    fn ziggurat_exponential_matches_its_distribution() {
        let n = 2_000_000;
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let v: Vec<f64> = (0..n)
            .map(|_| {
                let w = rng.next_u64();
                standard_exponential(w, || rng.next_u64())
            })
            .collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        // Standard error of the mean 0.0007.
        assert!((mean - 1.0).abs() < 0.004, "mean {mean}");
        // P(X > t) = exp(-t), in the layers, at R and in the tail beyond.
        for t in [0.1, 0.5, 1.0, 2.0, 4.0, 6.0, ZIG_EXP_R, 8.5, 10.0] {
            let p = libm::exp(-t);
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            let got = v.iter().filter(|&&x| x > t).count() as f64 / n as f64;
            assert!(
                (got - p).abs() < 5.0 * sd + 1.0 / n as f64,
                "tail beyond {t}: {got} against {p}"
            );
        }
        // Layer 0 at its far end goes to the tail.
        assert!(standard_exponential(u64::MAX << 8, || 1 << 8) > ZIG_EXP_R);
    }

    /// `n` ziggurat normals from one sequential generator.
    fn normals(seed: u64, n: usize) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| normal(rng.next_u64(), rng.next_u64()))
            .collect()
    }

    #[test]
    fn ziggurat_normal_has_the_normal_moments() {
        let n = 1_000_000;
        let v = normals(11, n);
        let m = |k: i32| v.iter().map(|x| x.powi(k)).sum::<f64>() / n as f64;
        // Standard errors at n = 1e6: mean 0.001, variance 0.0014, third
        // moment 0.0039, fourth 0.0098; bounds are about five of them.
        assert!(m(1).abs() < 0.005, "mean {}", m(1));
        assert!((m(2) - 1.0).abs() < 0.007, "variance {}", m(2));
        assert!(m(3).abs() < 0.02, "third moment {}", m(3));
        assert!((m(4) - 3.0).abs() < 0.05, "fourth moment {}", m(4));
    }

    #[test]
    fn ziggurat_tails_match_the_normal_cdf() {
        let n = 2_000_000;
        let v = normals(12, n);
        // Thresholds inside the layers, at the base's edge R, and in the
        // tail that Marsaglia's method draws.
        for t in [0.5, 1.0, 2.0, Z99, 3.0, 3.5, ZIG_R, 4.0, 4.5] {
            let p = 0.5 * libm::erfc(t / std::f64::consts::SQRT_2);
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            for (side, count) in [
                ("upper", v.iter().filter(|&&x| x > t).count()),
                ("lower", v.iter().filter(|&&x| x < -t).count()),
            ] {
                let got = count as f64 / n as f64;
                assert!(
                    (got - p).abs() < 5.0 * sd + 1.0 / n as f64,
                    "{side} tail beyond {t}: {got} against {p}"
                );
            }
        }
    }

    #[test]
    fn ziggurat_base_layer_edges_go_to_the_tail() {
        // Layer 0 with |u| near 1 lies beyond R: the tail, with u's sign.
        let top = (u64::MAX >> 12) << 12;
        let hi = normal(top, 1);
        let lo = normal(0, 1);
        assert!(hi > ZIG_R, "{hi}");
        assert!(lo < -ZIG_R, "{lo}");
        // Layer 0 near the middle is the rectangle: x = u x[0] exactly.
        let mid = (1u64 << 63) | 0x100;
        let z = Ziggurat::normal();
        let u = (((mid >> 12) as f64) + 0.5) / (1u64 << 51) as f64 - 1.0;
        assert_eq!(normal(mid, 1), u * z.x[0]);
    }

    #[test]
    fn exp_is_within_three_ulp_of_libm() {
        let ulps = |a: f64, b: f64| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let mut worst = 0;
        for i in 0..2_000_000 {
            // The samplers' range (log-normals of ns and tokens), then the
            // whole range where the fast path runs.
            let span = if i % 2 == 0 { 60.0 } else { 1400.0 };
            let x = (unit(rng.next_u64()) - 0.5) * span;
            worst = worst.max(ulps(exp(x), libm::exp(x)));
        }
        assert!(worst <= 3, "worst {worst} ulp");
        for x in [0.0, 1.0, -1.0, 1e-300, -1e-300, 699.9, -699.9] {
            assert!(ulps(exp(x), libm::exp(x)) <= 3, "{x}");
        }
        assert_eq!(exp(0.0), 1.0);
        for x in [
            700.0,
            -700.0,
            1000.0,
            -1000.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(exp(x), libm::exp(x), "{x}");
        }
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn unit_never_hits_the_ends() {
        assert!(unit(0) > 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
