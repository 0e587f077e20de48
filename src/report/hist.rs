//! Latency histograms: HdrHistogram in microseconds, three significant
//! figures, with values past the top counted rather than silently clamped.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::units::{Nanos, MICROS};

/// One latency metric.
#[derive(Clone, Debug)]
pub struct LatencyHist {
    hist: Histogram<u64>,
    overflow: u64,
}

/// Percentiles of a histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Values past the histogram's top (recorded as the top).
    pub overflow: u64,
    /// Smallest value.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
}

impl LatencyHist {
    /// A histogram for values from 1 us to `max_us`.
    pub fn new(max_us: u64) -> Self {
        let hist = Histogram::new_with_bounds(1, max_us.max(2), 3).unwrap_or_else(|_| {
            Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sig figs is valid"))
        });
        Self { hist, overflow: 0 }
    }

    /// Records a latency in nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: Nanos) {
        let us = (ns / MICROS).max(1);
        let top = self.hist.high();
        if us > top {
            self.overflow += 1;
            self.hist.saturating_record(top);
        } else {
            self.hist.saturating_record(us);
        }
    }

    /// Adds another histogram's values.
    pub fn merge(&mut self, o: &Self) {
        // Same bounds by construction; saturating on mismatch.
        let _ = self.hist.add(&o.hist);
        self.overflow += o.overflow;
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The value at quantile `q`, in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    /// The percentiles for a report.
    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        let h = &self.hist;
        LatencySummary {
            count: h.len(),
            overflow: self.overflow,
            min_us: h.min(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p95_us: h.value_at_quantile(0.95),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{MILLIS, SECS};

    #[test]
    fn counts_values_past_the_top() {
        let mut h = LatencyHist::new(1_000_000);
        h.record(10 * MILLIS);
        h.record(5 * SECS);
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.overflow, 1);
        assert!(s.p50_us >= 9_990 && s.p50_us <= 10_010);
    }
}
