//! A sliding window of counts in one-second slots, with running sums, so
//! that reading the window costs the same whatever its length. Shared by the
//! ratio retry budget, the circuit breaker and the adaptive throttle.
//!
//! A window of `w` covers the current second and the `ceil(w / 1 s) - 1`
//! before it, so its effective length is between `w - 1 s` and `w`. Time
//! must not run backwards (the core's never does); an older time counts as
//! the latest one seen.

use crate::units::{Nanos, SECS};

/// Two counters per second over a sliding window.
#[derive(Clone, Debug)]
pub struct SlidingWindow {
    slots: Vec<[u32; 2]>,
    sums: [u64; 2],
    /// The latest second seen.
    last: Option<u64>,
    /// The latest second's slot, and the time the second after it starts
    /// (0 before any time is seen): a time before that is in the latest
    /// second (or older, which counts as it), so most calls need neither
    /// a division nor a modulo.
    slot: usize,
    until: Nanos,
}

impl SlidingWindow {
    /// A window of `window` (rounded up to whole seconds, at least one).
    pub fn new(window: Nanos) -> Self {
        let n = window.div_ceil(SECS).max(1) as usize;
        Self {
            slots: vec![[0; 2]; n],
            sums: [0; 2],
            last: None,
            slot: 0,
            until: 0,
        }
    }

    #[inline]
    fn advance(&mut self, now: Nanos) -> usize {
        if now < self.until {
            return self.slot;
        }
        self.advance_second(now)
    }

    fn advance_second(&mut self, now: Nanos) -> usize {
        let second = now / SECS;
        let n = self.slots.len() as u64;
        match self.last {
            Some(last) if second > last => {
                // Clear the slots that fall out of the window, at most all.
                for s in (last + 1)..=(last + (second - last).min(n)) {
                    let slot = &mut self.slots[(s % n) as usize];
                    self.sums[0] -= u64::from(slot[0]);
                    self.sums[1] -= u64::from(slot[1]);
                    *slot = [0; 2];
                }
                self.last = Some(second);
            }
            Some(_) => {}
            None => self.last = Some(second),
        }
        let last = self.last.unwrap_or(second);
        self.slot = (last % n) as usize;
        self.until = last.saturating_add(1).saturating_mul(SECS);
        self.slot
    }

    /// Adds one to counter `which` (0 or 1) at `now`.
    pub fn add(&mut self, now: Nanos, which: usize) {
        let i = self.advance(now);
        self.slots[i][which] += 1;
        self.sums[which] += 1;
    }

    /// Adds `n` to counter `which` (0 or 1) at `now`.
    pub fn add_n(&mut self, now: Nanos, which: usize, n: u32) {
        let i = self.advance(now);
        let before = self.slots[i][which];
        self.slots[i][which] = before.saturating_add(n);
        // What the slot took, so that it leaves the sum whole when it expires.
        self.sums[which] += u64::from(self.slots[i][which] - before);
    }

    /// Both counters over the window ending at `now`.
    pub fn sums(&mut self, now: Nanos) -> [u64; 2] {
        self.advance(now);
        self.sums
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        for s in &mut self.slots {
            *s = [0; 2];
        }
        self.sums = [0; 2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MILLIS;
    use proptest::prelude::*;

    proptest! {
        /// The running sums always equal a recount of the events in the window.
        #[test]
        fn sums_match_a_recount(events in proptest::collection::vec((0u64..40_000, 0usize..2), 1..500), w in 1u64..20) {
            let mut events = events;
            events.sort_unstable();
            let mut win = SlidingWindow::new(w * SECS);
            let mut log = Vec::new();
            for (ms, which) in events {
                let now = ms * MILLIS;
                win.add(now, which);
                log.push((now / SECS, which));
                let second = now / SECS;
                for c in 0..2 {
                    let recount = log.iter().filter(|(s, k)| *k == c && s + w > second).count() as u64;
                    prop_assert_eq!(win.sums(now)[c], recount);
                }
            }
        }

        /// A time older than the latest seen counts as the latest, within
        /// its second and across seconds alike.
        #[test]
        fn older_times_count_as_the_latest(events in proptest::collection::vec((0u64..40_000, 0usize..2), 1..300), w in 1u64..20) {
            let mut win = SlidingWindow::new(w * SECS);
            let mut log = Vec::new();
            let mut latest = 0;
            for (ms, which) in events {
                let now = ms * MILLIS;
                latest = latest.max(now / SECS);
                win.add(now, which);
                log.push((latest, which));
                for c in 0..2 {
                    let recount = log.iter().filter(|(s, k)| *k == c && s + w > latest).count() as u64;
                    prop_assert_eq!(win.sums(now)[c], recount);
                }
            }
        }
    }
}
