//! Latency histograms: HdrHistogram in microseconds, three significant
//! figures, with values past the top counted rather than silently clamped.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::units::{Nanos, MICROS};

/// One latency metric.
///
/// Values are counted in an array laid out as HdrHistogram lays out its
/// counts (1 us up, three significant figures): recording is an index and an
/// increment, where `Histogram::record` checks bounds, tracks the minimum and
/// maximum and saturates (about 50 instructions, and the collector records
/// two or three values per finished request). The histogram itself is built
/// from the counts when it is first read; every sub-bucket holds values that
/// HdrHistogram cannot tell apart, so it answers exactly as if each value had
/// been recorded in it (a proptest checks this).
#[derive(Clone, Debug)]
pub struct LatencyHist {
    /// Values per sub-bucket, index as in [`sub_bucket`].
    counts: Vec<u64>,
    /// Values recorded.
    len: u64,
    /// The highest value tracked (microseconds).
    top: u64,
    overflow: u64,
    /// The histogram of `counts`, built on the first read after a change.
    built: std::cell::OnceCell<Histogram<u64>>,
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

/// Three significant figures from 1 us: HdrHistogram's sub-buckets hold 2048
/// values (the smallest power of two above 2 x 10^3), its buckets the upper
/// half of that from bucket 1 on, and bucket `b` counts in units of `2^b`.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 10;
const SUB_BUCKET_MASK: u64 = (1 << (SUB_BUCKET_HALF_MAGNITUDE + 1)) - 1;

/// The counts index of `v` (at least 1), as `Histogram::index_for` computes
/// it for a histogram of lowest value 1 and three significant figures.
#[inline]
fn sub_bucket(v: u64) -> usize {
    let bucket = (64 - (SUB_BUCKET_HALF_MAGNITUDE + 1)) - (v | SUB_BUCKET_MASK).leading_zeros();
    let sub = v >> bucket;
    (((u64::from(bucket) + 1) << SUB_BUCKET_HALF_MAGNITUDE) + sub
        - (1 << SUB_BUCKET_HALF_MAGNITUDE)) as usize
}

/// The lowest value counted at `index` (the inverse of [`sub_bucket`]).
fn lowest_value(index: usize) -> u64 {
    let half = 1usize << SUB_BUCKET_HALF_MAGNITUDE;
    let bucket = (index >> SUB_BUCKET_HALF_MAGNITUDE).saturating_sub(1);
    let sub = if index < half {
        index
    } else {
        (index & (half - 1)) + half
    };
    (sub as u64) << bucket
}

impl LatencyHist {
    /// A histogram for values from 1 us to `max_us`.
    pub fn new(max_us: u64) -> Self {
        let top = max_us.max(2);
        Self {
            counts: vec![0; sub_bucket(top) + 1],
            len: 0,
            top,
            overflow: 0,
            built: std::cell::OnceCell::new(),
        }
    }

    /// Records a latency in nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: Nanos) {
        let mut us = (ns / MICROS).max(1);
        if us > self.top {
            self.overflow += 1;
            us = self.top;
        }
        self.counts[sub_bucket(us)] += 1;
        self.len += 1;
        if self.built.get().is_some() {
            self.built = std::cell::OnceCell::new();
        }
    }

    /// The histogram of the values recorded so far.
    fn hist(&self) -> &Histogram<u64> {
        self.built.get_or_init(|| {
            let mut h = Histogram::new_with_bounds(1, self.top, 3).unwrap_or_else(|_| {
                Histogram::new(3).unwrap_or_else(|_| unreachable!("3 sig figs is valid"))
            });
            for (i, &n) in self.counts.iter().enumerate() {
                if n > 0 {
                    h.saturating_record_n(lowest_value(i), n);
                }
            }
            h
        })
    }

    /// Adds another histogram's values.
    pub fn merge(&mut self, o: &Self) {
        if self.counts.len() == o.counts.len() {
            for (a, b) in self.counts.iter_mut().zip(&o.counts) {
                *a += b;
            }
        } else {
            // Other bounds (not made by the collector): values past the
            // top count as the top and as overflow, as `record` counts
            // them (to the histogram's precision).
            let last = self.counts.len() - 1;
            for (i, &n) in o.counts.iter().enumerate() {
                if i > last {
                    self.overflow += n;
                }
                self.counts[i.min(last)] += n;
            }
        }
        self.len += o.len;
        self.overflow += o.overflow;
        self.built = std::cell::OnceCell::new();
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at quantile `q`, in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.hist().value_at_quantile(q)
        }
    }

    /// The percentiles for a report.
    pub fn summary(&self) -> LatencySummary {
        if self.is_empty() {
            return LatencySummary::default();
        }
        summary_of(self.hist(), self.overflow)
    }
}

/// The percentiles of a non-empty histogram.
fn summary_of(h: &Histogram<u64>, overflow: u64) -> LatencySummary {
    LatencySummary {
        count: h.len(),
        overflow,
        min_us: h.min(),
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p95_us: h.value_at_quantile(0.95),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{MILLIS, SECS};

    /// The summary HdrHistogram gives for `values` (ns) recorded one by
    /// one, as this type recorded them before it kept its own counts.
    fn reference(max_us: u64, values: &[Nanos]) -> (LatencySummary, Vec<u64>) {
        let mut h = Histogram::<u64>::new_with_bounds(1, max_us.max(2), 3).unwrap();
        let mut overflow = 0;
        for &ns in values {
            let us = (ns / MICROS).max(1);
            if us > h.high() {
                overflow += 1;
                h.saturating_record(h.high());
            } else {
                h.saturating_record(us);
            }
        }
        let qs = QS.iter().map(|&q| h.value_at_quantile(q)).collect();
        if h.is_empty() {
            return (LatencySummary::default(), qs);
        }
        (summary_of(&h, overflow), qs)
    }

    const QS: [f64; 7] = [0.0, 0.25, 0.5, 0.9, 0.99999, 0.9999999, 1.0];

    fn ours(h: &LatencyHist) -> (LatencySummary, Vec<u64>) {
        (h.summary(), QS.iter().map(|&q| h.quantile_us(q)).collect())
    }

    #[test]
    fn sub_buckets_are_hdrhistograms() {
        let h = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).unwrap();
        let mut v = 1u64;
        while v < 1 << 40 {
            for x in [v, v + 1, v * 3 / 2, v * 2 - 1] {
                assert_eq!(lowest_value(sub_bucket(x)), h.lowest_equivalent(x), "{x}");
                assert!(h.equivalent(lowest_value(sub_bucket(x)), x));
            }
            v *= 2;
        }
    }

    proptest::proptest! {
        /// Counting per sub-bucket and building the histogram on reading
        /// answers exactly as recording each value in HdrHistogram did,
        /// across reads between records and merges.
        #[test]
        fn answers_as_hdrhistogram_does(
            a in proptest::collection::vec(0u64..400_000_000_000, 0..300),
            b in proptest::collection::vec(0u64..400_000_000_000, 0..300),
            max_us in proptest::prop_oneof![proptest::strategy::Just(240_000_000u64), 1u64..100_000_000],
        ) {
            let (mut ha, mut hb) = (LatencyHist::new(max_us), LatencyHist::new(max_us));
            for (i, &ns) in a.iter().enumerate() {
                ha.record(ns);
                if i == a.len() / 2 {
                    // A read in the middle must not stick.
                    proptest::prop_assert_eq!(ours(&ha), reference(max_us, &a[..=i]));
                }
            }
            for &ns in &b {
                hb.record(ns);
            }
            proptest::prop_assert_eq!(ours(&ha), reference(max_us, &a));
            proptest::prop_assert_eq!(ours(&hb), reference(max_us, &b));
            proptest::prop_assert_eq!(ha.len(), a.len() as u64);
            ha.merge(&hb);
            let both: Vec<Nanos> = a.iter().chain(&b).copied().collect();
            proptest::prop_assert_eq!(ours(&ha), reference(max_us, &both));
        }
    }

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

    #[test]
    fn a_merge_from_wider_bounds_counts_what_is_past_the_top_as_overflow() {
        let mut small = LatencyHist::new(1000);
        let mut big = LatencyHist::new(1_000_000);
        big.record(500_000 * MICROS);
        small.merge(&big);
        let mut direct = LatencyHist::new(1000);
        direct.record(500_000 * MICROS);
        assert_eq!(small.summary(), direct.summary());
    }
}
