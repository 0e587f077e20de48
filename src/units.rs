//! Units shared by every module: virtual time in integer nanoseconds, money in
//! integer nano-USD, and the human duration strings of the scenario file.
//!
//! Integers keep the simulation exact and platform-independent: sums of
//! nanoseconds and nano-dollars do not depend on the order they were added in.

use std::fmt;

/// Virtual (or, in live mode, mapped real) time: nanoseconds since the run's
/// start. A type alias rather than a newtype so that the hot path stays plain
/// integer arithmetic; names carry the unit (`deadline`, `*_at`, `*_ns`).
pub type Nanos = u64;

/// One microsecond in nanoseconds.
pub const MICROS: Nanos = 1_000;
/// One millisecond in nanoseconds.
pub const MILLIS: Nanos = 1_000_000;
/// One second in nanoseconds.
pub const SECS: Nanos = 1_000_000_000;
/// One minute in nanoseconds.
pub const MINUTES: Nanos = 60 * SECS;
/// One hour in nanoseconds.
pub const HOURS: Nanos = 60 * MINUTES;

/// The longest duration a scenario may write (365 days), so that sums of
/// times stay far from overflow.
pub const MAX_DURATION: Nanos = 365 * 24 * HOURS;

/// `x.round()` (half away from zero), bit for bit, without the call into
/// the compiler's `round` (about 24 instructions; x86-64 before SSE4.1 has
/// no rounding instruction). Below 2^52, adding and taking away 2^52 rounds
/// `|x|` to the nearest integer (ties to even) in the FPU, and the one case
/// where that differs from `round`, a tie rounded down, shows as a
/// difference of exactly one half (exact, as both are below 2^52). From
/// 2^52 on (and for infinities and NaN) `x` is its own rounding. The sign is
/// put back, so that -0.3 rounds to -0.0 as `round` does.
#[inline]
pub fn round(x: f64) -> f64 {
    const INTEGRAL: f64 = 4_503_599_627_370_496.0; // 2^52
    let a = x.abs();
    if a < INTEGRAL {
        let even = (a + INTEGRAL) - INTEGRAL;
        let r = if a - even == 0.5 { even + 1.0 } else { even };
        r.copysign(x)
    } else {
        x
    }
}

/// Money in nano-USD (1e-9 USD). A u64 holds up to about 18 billion USD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NanoUsd(pub u64);

impl NanoUsd {
    /// Zero dollars.
    pub const ZERO: Self = Self(0);

    /// The cost of `tokens` at `pico_per_token` pico-USD each, rounded to the
    /// nearest nano-USD.
    pub fn for_tokens(tokens: u64, pico_per_token: u64) -> Self {
        let pico = u128::from(tokens) * u128::from(pico_per_token);
        Self(u64::try_from((pico + 500) / 1000).unwrap_or(u64::MAX))
    }

    /// As a floating-point number of dollars, for display only.
    pub fn as_usd_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Saturating addition.
    #[must_use]
    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl std::ops::AddAssign for NanoUsd {
    fn add_assign(&mut self, rhs: Self) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

impl fmt::Display for NanoUsd {
    /// Dollars with six decimals, computed with integers only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micro = (self.0 + 500) / 1000;
        write!(f, "{}.{:06}", micro / 1_000_000, micro % 1_000_000)
    }
}

/// Converts a price in USD per million tokens to pico-USD per token
/// (1 USD/Mtok = 1,000,000 pico-USD per token).
pub fn pico_per_token(usd_per_mtok: f64) -> u64 {
    (usd_per_mtok * 1e6).round() as u64
}

/// Parses a human duration: one or more `<number><unit>` parts, units `ns`,
/// `us`, `ms`, `s`, `m`, `h`, `d`; decimals allowed ("1.5s", "1h30m", "250ms").
pub fn parse_duration(s: &str) -> Result<Nanos, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. \"250ms\", \"5m\" or \"1h\"".into());
    }
    if t.starts_with('-') {
        return Err(format!(
            "duration \"{s}\" is negative; durations count forward from zero"
        ));
    }
    let bytes = t.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let num = &t[start..i];
        if num.is_empty() {
            return Err(format!(
                "expected a number in duration \"{s}\" (e.g. \"250ms\", \"5m\", \"1h\")"
            ));
        }
        let value: f64 = num
            .parse()
            .map_err(|_| format!("\"{num}\" is not a number in duration \"{s}\""))?;
        let ustart = i;
        // The unit runs to the next digit: "µs" is not ASCII.
        while i < bytes.len() && !bytes[i].is_ascii_digit() && bytes[i] != b'.' {
            i += 1;
        }
        let unit = t[ustart..i].trim();
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "" => {
                return Err(format!(
                "duration \"{s}\" has no unit; add one of ns, us, ms, s, m, h, d (e.g. \"{num}s\")"
            ))
            }
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" in duration \"{s}\"; use ns, us, ms, s, m, h or d"
                ))
            }
        };
        total += value * scale;
    }
    if !total.is_finite() || total > MAX_DURATION as f64 {
        return Err(format!("duration \"{s}\" is too large: at most 365d"));
    }
    Ok(total.round() as Nanos)
}

/// Formats nanoseconds as a short human string that `parse_duration` reads
/// back ("1h30m", "250ms", "1.5s").
pub fn format_duration(ns: Nanos) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns % MINUTES == 0 {
        let (h, m) = (ns / HOURS, (ns % HOURS) / MINUTES);
        return match (h, m) {
            (0, m) => format!("{m}m"),
            (h, 0) => format!("{h}h"),
            (h, m) => format!("{h}h{m}m"),
        };
    }
    if ns % SECS == 0 {
        return format!("{}s", ns / SECS);
    }
    if ns % MILLIS == 0 {
        return format!("{}ms", ns / MILLIS);
    }
    if ns % MICROS == 0 {
        return format!("{}us", ns / MICROS);
    }
    format!("{ns}ns")
}

/// Formats a latency for the console: "812ms", "12.4s", "950us".
pub fn format_latency(ns: Nanos) -> String {
    if ns >= 10 * SECS {
        format!("{:.1}s", ns as f64 / 1e9)
    } else if ns >= SECS {
        format!("{:.2}s", ns as f64 / 1e9)
    } else if ns >= MILLIS {
        format!("{}ms", (ns + MILLIS / 2) / MILLIS)
    } else {
        format!("{}us", (ns + MICROS / 2) / MICROS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn round_is_f64_round_at_the_edges() {
        for v in [
            0.0,
            -0.0,
            0.3,
            -0.3,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.499_999_999_999_999_94,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            1e300,
            f64::MIN_POSITIVE,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            assert!(same(round(v), v.round()), "{v}: {} {}", round(v), v.round());
        }
    }

    proptest::proptest! {
        #[test]
        fn round_is_f64_round(
            bits in proptest::num::u64::ANY,
            x in -1e7f64..1e7,
            k in -100_000i64..100_000,
            big in 2e15f64..9e15,
        ) {
            let half = k as f64 + 0.5;
            for v in [f64::from_bits(bits), x, half, -half, x * 1e-6, big, -big] {
                proptest::prop_assert!(same(round(v), v.round()), "{}", v);
            }
        }
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("250ms"), Ok(250 * MILLIS));
        assert_eq!(parse_duration("5m"), Ok(5 * MINUTES));
        assert_eq!(parse_duration("1h"), Ok(HOURS));
        assert_eq!(parse_duration("1.5s"), Ok(1_500 * MILLIS));
        assert_eq!(parse_duration("1h30m"), Ok(90 * MINUTES));
        assert_eq!(parse_duration("5µs"), Ok(5 * MICROS));
        assert_eq!(parse_duration("5us"), Ok(5 * MICROS));
        assert_eq!(parse_duration("0s"), Ok(0));
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("366d").unwrap_err().contains("too large"));
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
    }

    #[test]
    fn formats_round_trip() {
        for ns in [
            0,
            250 * MILLIS,
            5 * MINUTES,
            HOURS,
            90 * MINUTES,
            1_500 * MILLIS,
            7 * MICROS,
        ] {
            assert_eq!(parse_duration(&format_duration(ns)), Ok(ns));
        }
    }

    #[test]
    fn money_is_exact() {
        // 1,000 tokens at 2.50 USD per million = 0.0025 USD.
        assert_eq!(
            NanoUsd::for_tokens(1000, pico_per_token(2.5)),
            NanoUsd(2_500_000)
        );
        assert_eq!(NanoUsd(2_500_000).to_string(), "0.002500");
        assert_eq!(NanoUsd(12_345_678_901).to_string(), "12.345679");
    }
}
