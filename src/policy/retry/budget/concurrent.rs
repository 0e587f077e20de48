//! Envoy's retry budget: the retries in flight at most a share of the
//! requests in flight, but always at least a few, so that the budget
//! tightens exactly when most requests are waiting on a failing upstream.

/// See the module docs.
#[derive(Clone, Debug)]
pub struct ConcurrentBudget {
    percent: f64,
    min: u32,
    active: u32,
    retrying: u32,
}

impl ConcurrentBudget {
    /// A budget of `percent` of active requests, at least `min`.
    pub fn new(percent: f64, min: u32) -> Self {
        Self {
            percent,
            min,
            active: 0,
            retrying: 0,
        }
    }

    /// A request arrived.
    pub fn on_request(&mut self) {
        self.active += 1;
    }

    /// A request finished.
    pub fn on_request_done(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    /// Whether a retry may go now (and counts it in flight if so).
    pub fn try_retry(&mut self) -> bool {
        let allowed = (f64::from(self.active) * self.percent)
            .floor()
            .max(f64::from(self.min));
        if f64::from(self.retrying) + 1.0 <= allowed {
            self.retrying += 1;
            true
        } else {
            false
        }
    }

    /// A retry let through has ended.
    pub fn on_retry_done(&mut self) {
        self.retrying = self.retrying.saturating_sub(1);
    }

    /// Retries in flight.
    pub fn retrying(&self) -> u32 {
        self.retrying
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_share_of_active_requests_with_a_floor() {
        let mut b = ConcurrentBudget::new(0.2, 3);
        // Two active requests: the floor of 3 applies.
        b.on_request();
        b.on_request();
        assert_eq!((0..5).filter(|_| b.try_retry()).count(), 3);
        // 100 active: 20 in flight at once.
        for _ in 0..98 {
            b.on_request();
        }
        assert_eq!((0..50).filter(|_| b.try_retry()).count(), 17);
        b.on_retry_done();
        assert!(b.try_retry());
        assert!(!b.try_retry());
    }

    proptest! {
        /// A retry is only let through when the retries in flight, that one
        /// included, are within the budget at that moment.
        #[test]
        fn retries_in_flight_stay_within_the_budget(ops in proptest::collection::vec(0u8..4, 1..500)) {
            let mut b = ConcurrentBudget::new(0.2, 3);
            for op in ops {
                match op {
                    0 => b.on_request(),
                    1 => b.on_request_done(),
                    2 => {
                        if b.try_retry() {
                            let allowed = (f64::from(b.active) * 0.2).floor().max(3.0);
                            prop_assert!(f64::from(b.retrying()) <= allowed);
                        }
                    }
                    _ => b.on_retry_done(),
                }
            }
        }
    }
}
