//! Value types of the scenario file that check themselves while they are
//! read, so that a bad value is reported at its own line and column.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::units::{format_duration, parse_duration, Nanos};

/// A duration written as a human string ("250ms", "5m", "1h"); zero allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub Nanos);

/// A duration that must be greater than zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PositiveDuration(pub Nanos);

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Nanos, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = Nanos;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration string such as \"250ms\", \"5m\" or \"1h\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Nanos, E> {
            parse_duration(s).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Nanos, E> {
            Err(E::custom(format!(
                "durations are strings with a unit: write \"{v}s\" or \"{v}ms\", not {v}"
            )))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Nanos, E> {
            Err(E::custom(format!(
                "durations are strings with a unit: write \"{v}s\", not {v}"
            )))
        }
    }
    d.deserialize_any(V)
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_duration(d).map(Self)
    }
}

impl<'de> Deserialize<'de> for PositiveDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ns = de_duration(d)?;
        if ns == 0 {
            return Err(de::Error::custom(
                "this duration must be greater than zero (e.g. \"100ms\")",
            ));
        }
        Ok(Self(ns))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl Serialize for PositiveDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

/// A probability in 0..=1.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
pub struct Probability(pub f64);

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=1.0).contains(&v) {
            return Err(de::Error::custom(format!(
                "probability {v} is outside 0..1 (write 1% as 0.01)"
            )));
        }
        Ok(Self(v))
    }
}

/// A finite number that must be greater than zero (a rate, a factor, a count).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
pub struct Positive(pub f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(v.is_finite() && v > 0.0) {
            return Err(de::Error::custom(format!(
                "{v} must be a number greater than zero"
            )));
        }
        Ok(Self(v))
    }
}

/// A finite number that must not be negative (a price, a weight).
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
pub struct NonNegative(pub f64);

impl<'de> Deserialize<'de> for NonNegative {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(de::Error::custom(format!("{v} must be zero or more")));
        }
        Ok(Self(v))
    }
}

/// A latency distribution given by its median and its p99 (log-normal).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLatency")]
pub struct LatencyDist {
    /// Half of all values are below this.
    pub median: PositiveDuration,
    /// 99% of all values are below this; at least the median.
    pub p99: PositiveDuration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLatency {
    median: PositiveDuration,
    p99: PositiveDuration,
}

impl TryFrom<RawLatency> for LatencyDist {
    type Error = String;
    fn try_from(r: RawLatency) -> Result<Self, String> {
        if r.p99 < r.median {
            return Err(format!(
                "p99 ({}) is below the median ({}); a p99 is at least the median",
                format_duration(r.p99.0),
                format_duration(r.median.0)
            ));
        }
        Ok(Self {
            median: r.median,
            p99: r.p99,
        })
    }
}

/// A count distribution (tokens) given by its median and p99 (log-normal).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCount")]
pub struct CountDist {
    /// Half of all values are below this.
    pub median: f64,
    /// 99% of all values are below this; at least the median.
    pub p99: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCount {
    median: Positive,
    p99: Positive,
}

impl TryFrom<RawCount> for CountDist {
    type Error = String;
    fn try_from(r: RawCount) -> Result<Self, String> {
        if r.p99.0 < r.median.0 {
            return Err(format!(
                "p99 ({}) is below the median ({}); a p99 is at least the median",
                r.p99.0, r.median.0
            ));
        }
        Ok(Self {
            median: r.median.0,
            p99: r.p99.0,
        })
    }
}

/// An output speed in tokens per second, given by its median and its slow
/// 1st percentile `p1` (1% of attempts stream slower than `p1`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSpeed")]
pub struct SpeedDist {
    /// Median output tokens per second.
    pub median: f64,
    /// The slow 1%: 99% of attempts stream at least this fast; at most the median.
    pub p1: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpeed {
    median: Positive,
    p1: Positive,
}

impl TryFrom<RawSpeed> for SpeedDist {
    type Error = String;
    fn try_from(r: RawSpeed) -> Result<Self, String> {
        if r.p1.0 > r.median.0 {
            return Err(format!(
                "p1 ({}) is above the median ({}); p1 is the slow 1% of output speed, at most the median",
                r.p1.0, r.median.0
            ));
        }
        Ok(Self {
            median: r.median.0,
            p1: r.p1.0,
        })
    }
}
