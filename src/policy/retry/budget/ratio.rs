//! Finagle's retry budget: retries over a sliding window at most a share of
//! the requests over that window plus a reserve of retries per second, so a
//! quiet client can still retry at all.
//!
//! The window is kept as one-second slots with running sums, so the budget
//! needs no memory per request and counts are exact integers.

use crate::units::{Nanos, SECS};

use super::super::super::window::SlidingWindow;

/// See the module docs.
#[derive(Clone, Debug)]
pub struct RatioBudget {
    percent: f64,
    floor: f64,
    /// Counters: requests, retries.
    window: SlidingWindow,
}

impl RatioBudget {
    /// A budget letting `percent` of requests be retried over `window`, plus
    /// `min_per_s` retries per second (Finagle: "20% of requests on top of
    /// 10 retries per second").
    pub fn new(percent: f64, min_per_s: f64, window: Nanos) -> Self {
        let secs = window.div_ceil(SECS).max(1) as f64;
        Self {
            percent,
            floor: min_per_s * secs,
            window: SlidingWindow::new(window),
        }
    }

    /// A request arrived.
    pub fn on_request(&mut self, now: Nanos) {
        self.window.add(now, 0);
    }

    /// Whether a retry may go now (and counts it if so).
    pub fn try_retry(&mut self, now: Nanos) -> bool {
        let [requests, retries] = self.window.sums(now);
        let allowed = requests as f64 * self.percent + self.floor;
        if retries as f64 + 1.0 <= allowed {
            self.window.add(now, 1);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MILLIS;
    use proptest::prelude::*;

    #[test]
    fn the_floor_lets_a_quiet_client_retry() {
        let mut b = RatioBudget::new(0.2, 1.0, 10 * SECS);
        // No requests at all: 10 retries over 10 s from the floor.
        let granted = (0..20).filter(|_| b.try_retry(0)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn a_busy_client_may_retry_its_share() {
        let mut b = RatioBudget::new(0.2, 0.0, 10 * SECS);
        for i in 0..1000 {
            b.on_request(i * 10 * MILLIS);
        }
        let granted = (0..1000).filter(|_| b.try_retry(10 * SECS - 1)).count();
        assert_eq!(granted, 200);
        // Ten seconds later the old requests and retries have left the window.
        assert!(!b.try_retry(25 * SECS));
    }

    proptest! {
        /// Whenever it lets a retry through, the retries over the window
        /// (that one included) are within the ratio of the requests over the
        /// window plus the floor.
        #[test]
        fn never_more_than_the_ratio(events in proptest::collection::vec((0u64..30_000, any::<bool>()), 1..2000),
                                     percent in 0.0f64..1.0, floor in 0.0f64..2.0) {
            let mut events = events;
            events.sort_unstable();
            let mut b = RatioBudget::new(percent, floor, 10 * SECS);
            let mut log: Vec<(u64, bool)> = Vec::new(); // (second, is a granted retry)
            for (ms, is_request) in events {
                let now = ms * MILLIS;
                let second = now / SECS;
                if is_request {
                    b.on_request(now);
                    log.push((second, false));
                } else if b.try_retry(now) {
                    log.push((second, true));
                    let in_window = |s: u64| s + 10 > second && s <= second;
                    let requests = log.iter().filter(|(s, r)| !r && in_window(*s)).count() as f64;
                    let retries = log.iter().filter(|(s, r)| *r && in_window(*s)).count() as f64;
                    prop_assert!(retries <= requests * percent + floor * 10.0 + 1e-9);
                }
            }
        }
    }
}
