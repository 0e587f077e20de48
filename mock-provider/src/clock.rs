//! The scenario clock: virtual nanoseconds since the scenario started, on a
//! real clock that a test can pause, jump or reset (`POST /admin/clock`).
//!
//! Everything the server waits for (a rejection's latency, a first token, a
//! stream's next chunk, a job's end) is a scenario time, and waits go
//! through [`Clock::sleep_until`], which wakes early when the clock is
//! changed so that a jump takes effect at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use stormglass::units::Nanos;
use tokio::sync::watch;

#[derive(Clone, Copy, Debug)]
struct State {
    /// Real time that maps to scenario time `offset`.
    base: Instant,
    /// Scenario time at `base`.
    offset: Nanos,
    /// Scenario time the clock is paused at.
    paused: Option<Nanos>,
}

impl State {
    fn now(&self) -> Nanos {
        self.paused.unwrap_or_else(|| {
            let real = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.offset.saturating_add(real)
        })
    }
}

/// A scenario clock (see the module docs).
#[derive(Debug)]
pub struct Clock {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A running clock at scenario time zero.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                base: Instant::now(),
                offset: 0,
                paused: None,
            }),
            changed: watch::Sender::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state torn (every
        // update is a single assignment), so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scenario time now.
    pub fn now(&self) -> Nanos {
        self.state().now()
    }

    /// Whether the clock is paused.
    pub fn paused(&self) -> bool {
        self.state().paused.is_some()
    }

    fn update(&self, f: impl FnOnce(&mut State)) -> Nanos {
        let now = {
            let mut s = self.state();
            f(&mut s);
            s.now()
        };
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        now
    }

    /// Sets scenario time to `to` (keeping a pause), and returns it.
    pub fn set(&self, to: Nanos) -> Nanos {
        self.update(|s| {
            if s.paused.is_some() {
                s.paused = Some(to);
            }
            s.base = Instant::now();
            s.offset = to;
        })
    }

    /// Moves scenario time forward by `by` (in one step: concurrent jumps
    /// add up).
    pub fn jump(&self, by: Nanos) -> Nanos {
        self.update(|s| {
            let to = s.now().saturating_add(by);
            if s.paused.is_some() {
                s.paused = Some(to);
            }
            s.base = Instant::now();
            s.offset = to;
        })
    }

    /// Stops scenario time where it is.
    pub fn pause(&self) -> Nanos {
        self.update(|s| {
            if s.paused.is_none() {
                s.paused = Some(s.now());
            }
        })
    }

    /// Lets scenario time run again from where it was paused.
    pub fn resume(&self) -> Nanos {
        self.update(|s| {
            if let Some(at) = s.paused.take() {
                s.base = Instant::now();
                s.offset = at;
            }
        })
    }

    /// Waits until scenario time reaches `at`.
    pub async fn sleep_until(&self, at: Nanos) {
        if self.now() >= at {
            return;
        }
        loop {
            let mut changed = self.changed.subscribe();
            let (now, paused) = {
                let s = self.state();
                (s.now(), s.paused.is_some())
            };
            if now >= at {
                return;
            }
            if paused {
                // Only a change of the clock can bring `at` nearer.
                if changed.changed().await.is_err() {
                    return;
                }
            } else {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_nanos(at - now)) => {}
                    _ = changed.changed() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormglass::units::SECS;

    #[test]
    fn pause_jump_and_resume() {
        let c = Clock::new();
        let t = c.pause();
        assert!(c.paused());
        assert_eq!(c.now(), t);
        assert_eq!(c.jump(5 * SECS), t + 5 * SECS);
        assert_eq!(c.now(), t + 5 * SECS);
        let r = c.resume();
        assert!(!c.paused());
        assert!(c.now() >= r);
        assert!(c.set(0) < SECS);
    }

    #[tokio::test]
    async fn a_jump_wakes_a_sleeper() {
        let c = std::sync::Arc::new(Clock::new());
        let sleeper = {
            let c = c.clone();
            tokio::spawn(async move { c.sleep_until(3600 * SECS).await })
        };
        tokio::task::yield_now().await;
        c.jump(3600 * SECS);
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("the jump woke the sleeper")
            .expect("the sleeper did not panic");
    }
}
