//! The world model on a real clock: one [`World`] behind a lock, the ends of
//! the jobs it is serving, and the requests waiting in its queues.
//!
//! The world itself decides everything (quota, faults, capacity, latency);
//! this module only feeds it attempts at scenario time and tells it when a
//! job's modelled end has come, so that its slot frees and queued work
//! starts. A job's slot is held here, not by the request handler: a client
//! that disconnects drops its handler, but the job keeps its slot until the
//! provider would have finished it (unless the provider cancels on
//! disconnect, which [`JobGuard`] reports to the world).
//!
//! Due job ends are processed before every admission (so the world always
//! sees time move forward, and an arrival sees every slot that has freed by
//! then), each at its own modelled time, so processing them late changes
//! nothing in the world. A ticker task processes them on time only while a
//! handler waits for its queued job to start.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex, MutexGuard};

use stormglass::units::Nanos;
use stormglass::world::{
    Admission, AttemptInput, Force, JobId, PoolFigures, Rejection, Started, Timeline, World,
    WorldConfig,
};
use tokio::sync::{oneshot, watch, Notify};

use crate::clock::Clock;

/// How an admitted attempt is answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// An error answer.
    Reject(Rejection),
    /// No answer ever comes.
    Hang,
    /// Served, on this timeline.
    Serve(Timeline),
    /// Waiting for a slot; the timeline comes when it starts (the sender is
    /// dropped if the world is reset first).
    Queued(oneshot::Receiver<Timeline>),
}

/// The world's answer to one attempt.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// Scenario time of arrival.
    pub at: Nanos,
    /// The answer.
    pub answer: Answer,
    /// The key's rate-limit figures at arrival.
    pub figures: PoolFigures,
    /// The job, for a served or queued attempt.
    pub job: Option<JobGuard>,
    /// The world's epoch at admission.
    pub epoch: u64,
}

struct State {
    world: World,
    /// Modelled ends of running jobs: (end, job).
    ends: BinaryHeap<Reverse<(Nanos, u64)>>,
    /// Handlers waiting for their queued job to start, by tag.
    waiters: BTreeMap<u64, oneshot::Sender<Timeline>>,
    next_tag: u64,
    /// Arrivals per key, for clients that send no draw key.
    arrivals: Vec<u64>,
    /// Requests still to fail, and how.
    fail_first: Option<(u64, Force)>,
    /// Bumped by a reset, so that guards of the old world do nothing.
    epoch: u64,
    started: Vec<Started>,
}

impl State {
    fn schedule(&mut self, end: Nanos, job: JobId) -> bool {
        let earliest = self.ends.peek().is_none_or(|Reverse((t, _))| end < *t);
        self.ends.push(Reverse((end, job.to_u64())));
        earliest
    }

    /// Schedules the ends of jobs that left the queue and hands each its
    /// timeline. Returns whether an end earlier than every other came in.
    fn dispatch_started(&mut self) -> bool {
        let mut earliest = false;
        let mut started = std::mem::take(&mut self.started);
        for s in started.drain(..) {
            earliest |= self.schedule(s.timeline.end_at, s.job);
            if let Some(tx) = self.waiters.remove(&s.tag) {
                // The handler may have gone (client disconnected): the job
                // runs on regardless.
                let _ = tx.send(s.timeline);
            }
        }
        self.started = started;
        earliest
    }

    /// Ends every job due by `now`, in order of their ends.
    fn advance(&mut self, now: Nanos) -> bool {
        let mut earliest = false;
        while let Some(&Reverse((end, job))) = self.ends.peek() {
            if end > now {
                break;
            }
            self.ends.pop();
            let mut started = std::mem::take(&mut self.started);
            self.world.job_done(end, JobId::from_u64(job), &mut started);
            self.started = started;
            earliest |= self.dispatch_started();
        }
        earliest
    }
}

/// The world on a real clock (see the module docs).
pub(crate) struct Engine {
    cfg: Arc<WorldConfig>,
    clock: Clock,
    state: Mutex<State>,
    /// Wakes the ticker when an earlier end is scheduled.
    wake: Notify,
    /// The world's epoch, bumped by every reset: handlers of the old world
    /// watch it and give up (their scenario times mean nothing any more).
    resets: watch::Sender<u64>,
}

impl Engine {
    pub(crate) fn new(cfg: Arc<WorldConfig>, fail_first: Option<(u64, Force)>) -> Self {
        let keys = cfg.keys.len();
        Self {
            state: Mutex::new(State {
                world: World::new(Arc::clone(&cfg)),
                ends: BinaryHeap::new(),
                waiters: BTreeMap::new(),
                next_tag: 0,
                arrivals: vec![0; keys],
                fail_first: fail_first.filter(|(n, _)| *n > 0),
                epoch: 0,
                started: Vec::new(),
            }),
            cfg,
            clock: Clock::new(),
            wake: Notify::new(),
            resets: watch::Sender::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The world is only changed under this lock by code that does not
        // panic on any input; a poisoned lock means a bug elsewhere, and
        // serving on is better than refusing every request.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scenario clock.
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Sets how many of the next requests fail, and how.
    pub(crate) fn set_fail_first(&self, count: u64, force: Force) {
        self.state().fail_first = (count > 0).then_some((count, force));
    }

    /// Requests still to fail.
    pub(crate) fn fail_first_left(&self) -> u64 {
        self.state().fail_first.map_or(0, |(n, _)| n)
    }

    /// An attempt of `key` arrives now. `attempt` makes it from the key's
    /// arrival number when it is `anonymous` (a client without a draw key:
    /// counted under the admission's lock, so arrival order and admission
    /// order agree), from 0 otherwise.
    pub(crate) fn admit(
        self: &Arc<Self>,
        key: usize,
        anonymous: bool,
        force: Option<Force>,
        attempt: impl FnOnce(u64) -> AttemptInput,
    ) -> Admitted {
        let mut st = self.state();
        // Read under the lock, so that admissions reach the world in time
        // order and none lands in a world a reset replaced.
        let now = self.clock.now();
        let n = if anonymous {
            let n = st.arrivals[key];
            st.arrivals[key] += 1;
            n
        } else {
            0
        };
        let mut a = attempt(n);
        let mut wake = st.advance(now);
        let force = force.or_else(|| match st.fail_first {
            Some((n, f)) => {
                st.fail_first = (n > 1).then_some((n - 1, f));
                Some(f)
            }
            None => None,
        });
        a.tag = st.next_tag;
        st.next_tag += 1;
        let mut started = std::mem::take(&mut st.started);
        let admission = st.world.admit_forced(now, a, force, &mut started);
        st.started = started;
        wake |= st.dispatch_started();
        let figures = st.world.figures(a.key, now);
        let provider = self.cfg.models[a.model].provider;
        let cancel = self.cfg.providers[provider].cancel_on_disconnect;
        let guard = |job| JobGuard {
            engine: Arc::clone(self),
            job,
            tag: a.tag,
            epoch: st.epoch,
            cancel,
            done: false,
        };
        let waiting = !st.waiters.is_empty();
        let epoch = st.epoch;
        let (answer, job) = match admission {
            Admission::Rejected(r) => (Answer::Reject(r), None),
            Admission::Hang => (Answer::Hang, None),
            Admission::Started(job, tl) => {
                let g = guard(job);
                wake |= st.schedule(tl.end_at, job);
                (Answer::Serve(tl), Some(g))
            }
            Admission::Queued(job) => {
                let g = guard(job);
                let (tx, rx) = oneshot::channel();
                st.waiters.insert(a.tag, tx);
                wake = true;
                (Answer::Queued(rx), Some(g))
            }
        };
        drop(st);
        // The ticker matters only to handlers waiting in a queue: for the
        // world itself, ends processed late (at the next admission) are
        // exact, since each is processed at its own time.
        if wake && (waiting || matches!(answer, Answer::Queued(_))) {
            self.wake.notify_one();
        }
        Admitted {
            at: now,
            answer,
            figures,
            job,
            epoch,
        }
    }

    /// A fresh world at scenario time zero: full quota pools, no work in
    /// flight (handlers of the old world's queued jobs are told so), arrival
    /// counters back to zero.
    pub(crate) fn reset(&self) {
        let mut st = self.state();
        st.world = World::new(Arc::clone(&self.cfg));
        st.ends.clear();
        st.waiters.clear();
        st.arrivals.iter_mut().for_each(|n| *n = 0);
        st.epoch += 1;
        let epoch = st.epoch;
        self.clock.set(0);
        drop(st);
        self.resets.send_replace(epoch);
        self.wake.notify_one();
    }

    /// Completes when the world is reset after epoch `epoch`.
    pub(crate) async fn reset_after(&self, epoch: u64) {
        let mut rx = self.resets.subscribe();
        let _ = rx.wait_for(|e| *e != epoch).await;
    }

    /// Fills every quota pool again.
    pub(crate) fn reset_quotas(&self) {
        self.state().world.reset_quotas();
    }

    /// Serves job ends as they fall due, forever (abort the task to stop).
    pub(crate) async fn tick(self: Arc<Self>) {
        loop {
            let next = {
                let mut st = self.state();
                st.advance(self.clock.now());
                if st.waiters.is_empty() {
                    None
                } else {
                    st.ends.peek().map(|Reverse((t, _))| *t)
                }
            };
            match next {
                Some(t) => {
                    tokio::select! {
                        () = self.clock.sleep_until(t) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    fn abandon(&self, job: JobId, tag: u64, epoch: u64) {
        let mut st = self.state();
        if st.epoch != epoch {
            return;
        }
        let now = self.clock.now();
        // A queued job the world drops (the provider cancels on
        // disconnect) never starts: its waiter goes now.
        st.waiters.remove(&tag);
        let mut wake = st.advance(now);
        let mut started = std::mem::take(&mut st.started);
        st.world.abandon(now, job, &mut started);
        st.started = started;
        wake |= st.dispatch_started();
        let waiting = !st.waiters.is_empty();
        drop(st);
        if wake && waiting {
            self.wake.notify_one();
        }
    }
}

/// A served or queued job. Dropped before [`JobGuard::finish`] (the client
/// went away, or the answer broke off), it tells the world the client
/// stopped listening, which matters only to a provider that cancels work
/// on disconnect; otherwise the job holds its slot until its modelled end.
pub(crate) struct JobGuard {
    engine: Arc<Engine>,
    job: JobId,
    tag: u64,
    /// The world's epoch when admitted.
    pub(crate) epoch: u64,
    /// Whether the provider cancels work on disconnect: only then does the
    /// world need to hear of a client that left.
    cancel: bool,
    done: bool,
}

impl std::fmt::Debug for JobGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobGuard").field("job", &self.job).finish()
    }
}

impl JobGuard {
    /// The answer was delivered whole: nothing to report.
    pub(crate) fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if self.cancel && !self.done {
            self.engine.abandon(self.job, self.tag, self.epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormglass::world::AttemptDraws;

    fn world(cancel: bool) -> Arc<WorldConfig> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/mock.toml");
        let sc = stormglass::scenario::load(std::path::Path::new(path)).expect("scenario");
        let mut cfg = (*sc.world).clone();
        for p in &mut cfg.providers {
            p.cancel_on_disconnect = cancel;
        }
        Arc::new(cfg)
    }

    #[tokio::test]
    async fn a_queued_client_that_leaves_leaves_no_waiter_behind() {
        let cfg = world(true);
        let model = cfg
            .models
            .iter()
            .position(|m| m.name == "one-slot")
            .expect("model");
        let engine = Arc::new(Engine::new(cfg, None));
        let attempt = |n: u64| AttemptInput {
            model,
            key: 2,
            input_tokens: 10,
            max_tokens: 10,
            output_tokens: 5,
            draws: AttemptDraws::new(1, n, 0, 0),
            tag: 0,
        };
        let served = engine.admit(2, true, Some(Force::Serve), attempt);
        assert!(matches!(served.answer, Answer::Serve(_)));
        let queued = engine.admit(2, true, Some(Force::Serve), attempt);
        assert!(matches!(queued.answer, Answer::Queued(_)));
        assert_eq!(engine.state().waiters.len(), 1);
        drop(queued);
        assert_eq!(
            engine.state().waiters.len(),
            0,
            "the waiter went with its client"
        );
        drop(served);
    }
}
