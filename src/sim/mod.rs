//! The discrete-event simulator: a virtual clock in integer nanoseconds, an
//! event queue ordered by (time, sequence), the world model on one side and
//! the sans-IO core on the other.
//!
//! One (scenario, strategy, seed) run is single-threaded and deterministic;
//! [`run`] runs the strategies of a scenario in parallel on all cores and
//! puts the results back in file order. Memory follows what is in flight:
//! nothing is kept per finished request.
//!
//! # Entropy
//!
//! Nothing here reads the wall clock or an unseeded generator. The streams
//! (see [`crate::world::draws`]) are: arrivals per source, attributes per
//! request, the provider's answer per (request, model, k-th try), output
//! length per (request, model), and each client replica's own jitter stream
//! keyed by its strategy's name and its replica number. Because the first
//! four do not depend on what the strategy does, every strategy meets the
//! same traffic and the same provider luck (common random numbers), and the
//! differences in the report come from the policies.

pub mod tally;
mod trace;
pub mod traffic;

use std::sync::Arc;

use crate::policy::{Action, AttemptId, CancelReason, Client, Outcome, StrategyConfig};
use crate::report::json::{IncidentInfo, Report, ScenarioInfo};
use crate::report::{AttemptEnd, StrategyReport, SCHEMA_VERSION};
use crate::scenario::Scenario;
use crate::slab::{Handle, Slab};
use crate::units::{Nanos, SECS};
use crate::world::draws::try_draws;
use crate::world::{Admission, AttemptInput, JobEnd, JobId, Rejection, Started, Timeline, World};

use crate::calendar::CalendarQueue as EventQueue;
use tally::Tally;
use traffic::{Sender, Source};

#[derive(Clone, Copy, Debug)]
enum Event {
    Arrival(u32),
    /// The first token of the client's attempt (the core ignores attempts
    /// it no longer tracks, so the event needs no record of its own).
    FirstToken(u32, AttemptId),
    /// The last chunk before a stall (healthy streams need no chunk events:
    /// their gaps are far below any between-chunks timeout).
    Chunk(u32, AttemptId),
    /// An answer ends: the client's attempt (if it still listens) and, for a
    /// served job, the provider's slot, which frees at the same instant.
    Done(Handle, Option<JobId>),
    ClientTimer(u32),
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    Waiting,
    Rejected(Rejection),
    Served(Timeline),
}

struct AttemptRec {
    client: u32,
    id: AttemptId,
    request: u64,
    /// Its index in the tracer's timeline of the request.
    trace: u32,
    model: u16,
    key: u16,
    input_tokens: u32,
    job: Option<JobId>,
    pending: Pending,
    measured: bool,
}

/// Counts of work done, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events handled.
    pub events: u64,
    /// Attempts sent (every request, warm-up and tenants included).
    pub attempts: u64,
    /// Requests that arrived.
    pub requests: u64,
    /// Largest number of requests in flight at once.
    pub peak_in_flight: u64,
}

/// A run that went wrong.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The run did not drain in the time allowed after arrivals stopped.
    #[error("the simulation did not finish {0} s after its last arrival; a request outlived every deadline")]
    DidNotDrain(u64),
}

struct Sim<'a> {
    sc: &'a Scenario,
    world: World,
    clients: Vec<Client>,
    sender_of: Vec<Sender>,
    strategy_clients: u32,
    timer_at: Vec<Option<Nanos>>,
    queue: EventQueue<Event>,
    sources: Vec<Source>,
    attempts: Slab<AttemptRec>,
    /// Per client, per core slot (`AttemptId::slot`): the live attempt's record.
    by_slot: Vec<Vec<(AttemptId, Handle)>>,
    in_flight: u64,
    tally: Tally,
    started: Vec<Started>,
    stats: RunStats,
    /// Records attempt timelines for the exemplars (see `trace`).
    tracer: Option<trace::Tracer>,
    /// Whether the strategy's replicas share a fleet concurrency limit's
    /// queue (`Client::shares_queue`), so that the driver must hand freed
    /// places round (`serve_room`).
    shares_queue: bool,
    /// Inside `serve_room`: its loop, not `after_input`, asks for more.
    serving_room: bool,
}

/// Runs one strategy of a scenario; the unit of determinism. The report's
/// exemplars get their attempt timelines from a replay of the same run (see
/// [`run_strategy_with`]).
pub fn run_strategy(
    sc: &Scenario,
    strategy: &Arc<StrategyConfig>,
) -> Result<(StrategyReport, RunStats), SimError> {
    run_strategy_with(sc, strategy, true)
}

/// Runs one strategy; with `exemplars`, records the attempt timelines of
/// the requests in flight in a fixed-size table and keeps those of the
/// requests the collector picks as exemplars (see `trace`). Only if a
/// pick's timeline was overwritten (more requests in flight than the table
/// holds) is the run replayed (it is deterministic), following the picked
/// requests alone and stopping once they have all finished.
pub fn run_strategy_with(
    sc: &Scenario,
    strategy: &Arc<StrategyConfig>,
    exemplars: bool,
) -> Result<(StrategyReport, RunStats), SimError> {
    run_traced(sc, strategy, exemplars.then(trace::Tracer::recording)).map(|(r, _)| r)
}

/// [`run_strategy_with`] with the given recorder; also says whether the
/// run had to be replayed.
fn run_traced(
    sc: &Scenario,
    strategy: &Arc<StrategyConfig>,
    tracer: Option<trace::Tracer>,
) -> Result<((StrategyReport, RunStats), bool), SimError> {
    let mut sim = simulate(sc, strategy, tracer)?;
    let picks = sim.tally.collector.exemplar_picks();
    let tracer = sim.tracer.take();
    let mut report = finish(sim, sc, strategy);
    let mut replayed = false;
    if let Some(mut t) = tracer.filter(|_| !picks.is_empty()) {
        if !t.has_all(&picks) {
            let ids: Vec<u64> = picks.iter().map(|p| p.request).collect();
            let mut replay = simulate(sc, strategy, Some(trace::Tracer::only(&ids)))?;
            if let Some(r) = replay.tracer.take() {
                t = r;
                replayed = true;
            }
        }
        report.0.exemplars = t.exemplars(&picks, &sc.world);
    }
    Ok((report, replayed))
}

fn simulate<'a>(
    sc: &'a Scenario,
    strategy: &Arc<StrategyConfig>,
    tracer: Option<trace::Tracer>,
) -> Result<Sim<'a>, SimError> {
    let (clients, sender_of) = tally::clients_for(sc, strategy);
    let drain = sc.traffic.longest_deadline() + 10 * SECS;
    let n = clients.len();
    let shares_queue = clients.iter().any(Client::shares_queue);
    let mut sim = Sim {
        sc,
        world: World::new(Arc::clone(&sc.world)),
        clients,
        sender_of,
        strategy_clients: strategy.clients,
        timer_at: vec![None; n],
        queue: EventQueue::default(),
        sources: traffic::sources(sc),
        attempts: Slab::default(),
        by_slot: vec![Vec::new(); n],
        in_flight: 0,
        tally: Tally::new(sc),
        started: Vec::new(),
        stats: RunStats::default(),
        tracer,
        shares_queue,
        serving_room: false,
    };
    for i in 0..sim.sources.len() {
        sim.schedule_arrival(i as u32);
    }
    let limit = sc.duration + drain;
    while let Some((now, ev)) = sim.queue.pop() {
        if now > limit {
            if sim.in_flight == 0 {
                break;
            }
            return Err(SimError::DidNotDrain(drain / SECS));
        }
        sim.stats.events += 1;
        sim.handle(now, ev);
        if sim.in_flight == 0 && now >= sc.duration {
            break;
        }
        if sim.tracer.as_ref().is_some_and(trace::Tracer::done) {
            break;
        }
    }
    Ok(sim)
}

fn finish(sim: Sim<'_>, sc: &Scenario, strategy: &StrategyConfig) -> (StrategyReport, RunStats) {
    let stats = sim.stats;
    let report = sim
        .tally
        .into_report(sc, strategy, &sim.clients, &sim.sender_of);
    (report, stats)
}

impl Sim<'_> {
    fn schedule_arrival(&mut self, source: u32) {
        let src = &mut self.sources[source as usize];
        if let Some((at, id)) = src.next(self.sc, self.sc.duration) {
            src.pending = Some(id);
            self.queue.push(at, Event::Arrival(source));
        }
    }

    fn handle(&mut self, now: Nanos, ev: Event) {
        match ev {
            Event::Arrival(s) => self.arrival(now, s),
            Event::FirstToken(c, id) => {
                self.clients[c as usize].handle_first_token(now, id);
                self.after_input(now, c);
            }
            Event::Chunk(c, id) => {
                self.clients[c as usize].handle_chunk(now, id);
                self.after_input(now, c);
            }
            Event::Done(h, job) => {
                if let Some(job) = job {
                    self.world.job_done(now, job, &mut self.started);
                    self.schedule_started();
                }
                self.done(now, h);
            }
            Event::ClientTimer(c) => {
                if self.timer_at[c as usize] == Some(now) {
                    self.timer_at[c as usize] = None;
                    self.clients[c as usize].handle_timeout(now);
                    self.after_input(now, c);
                }
            }
        }
    }

    fn arrival(&mut self, now: Nanos, s: u32) {
        let src = &mut self.sources[s as usize];
        let Some(id) = src.pending.take() else { return };
        let (sender, task) = (src.sender, src.task);
        let req = traffic::request(self.sc, id, now, task);
        self.stats.requests += 1;
        self.tally.on_arrival(now, sender);
        let client = tally::client_for(sender, id, self.strategy_clients);
        let mut req = req;
        req.measured &= sender == Sender::Strategy;
        self.in_flight += 1;
        self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.in_flight);
        self.clients[client as usize].handle_request(now, req);
        self.after_input(now, client);
        self.schedule_arrival(s);
    }

    fn done(&mut self, now: Nanos, h: Handle) {
        // Read in place and dropped afterwards: the record (with its
        // timeline) is not moved out of the slab.
        let Some(rec) = self.attempts.get(h) else {
            return;
        };
        let (outcome, limits, status) = match &rec.pending {
            Pending::Waiting => {
                self.attempts.remove(h);
                return;
            }
            Pending::Rejected(r) => {
                let o = Outcome::HttpError {
                    status: r.status,
                    error: r.error,
                    retry_after: r.retry_after,
                    should_retry: r.should_retry,
                };
                (o, r.limits, Some(r.status))
            }
            Pending::Served(tl) => {
                let (input_tokens, output_tokens) = (rec.input_tokens, tl.output_tokens);
                let o = match tl.end {
                    JobEnd::Complete(body) => Outcome::Success {
                        input_tokens,
                        output_tokens,
                        body,
                    },
                    JobEnd::Reset => Outcome::Reset {
                        input_tokens,
                        output_tokens,
                    },
                    // A stalled stream never ends for the client: it waits
                    // until one of its own timers gives up (and cancels),
                    // however long that takes.
                    JobEnd::Stalled(_) => return,
                    JobEnd::Broken => Outcome::BrokenStream {
                        input_tokens,
                        output_tokens,
                    },
                };
                if rec.measured && matches!(tl.end, JobEnd::Complete(_)) {
                    self.tally
                        .collector
                        .on_answer(tl.first_token_at, tl.end_at, tl.output_tokens);
                }
                (o, tl.limits, None)
            }
        };
        let (client, id, model, key, measured) =
            (rec.client, rec.id, rec.model, rec.key, rec.measured);
        let (request, trace) = (rec.request, rec.trace);
        self.attempts.remove(h);
        if measured {
            self.tally.on_outcome(now, model, key, &outcome);
        }
        if let Some(t) = &mut self.tracer {
            t.on_end(request, trace, now, tally::attempt_end(&outcome), status);
        }
        self.clients[client as usize].handle_outcome(now, id, outcome, limits);
        self.after_input(now, client);
    }

    /// Schedules the jobs the world just started (left in `self.started`).
    #[inline]
    fn schedule_started(&mut self) {
        // Usually none: the call is kept out of line for the rare case.
        if !self.started.is_empty() {
            self.schedule_started_jobs();
        }
    }

    #[inline(never)]
    fn schedule_started_jobs(&mut self) {
        for s in self.started.drain(..) {
            let h = Handle::from_u64(s.tag);
            let who = self.attempts.get_mut(h).map(|rec| {
                rec.pending = Pending::Served(s.timeline);
                (rec.client, rec.id)
            });
            // Scheduled even if the client gave up: the slot is held until then.
            schedule_timeline(&mut self.queue, h, who, s.job, &s.timeline);
        }
    }

    /// Carries out the client's actions and re-arms its timer.
    fn after_input(&mut self, now: Nanos, c: u32) {
        while let Some(a) = self.clients[c as usize].poll_action() {
            match a {
                Action::Send { .. } => self.send(now, c, a),
                Action::Cancel { attempt, reason } => self.cancel(now, c, attempt, reason),
                Action::Alert { at, alert } => {
                    if self.sender_of[c as usize] == Sender::Strategy {
                        self.tally.collector.on_alert(at, c, alert);
                    }
                }
                Action::Finish {
                    request,
                    result,
                    arrived,
                    first_token,
                    measured,
                    cost,
                    attempts,
                    ..
                } => {
                    self.in_flight -= 1;
                    let sender = self.sender_of[c as usize];
                    let picked = self.tally.on_finish(
                        now,
                        sender,
                        (request, arrived),
                        result,
                        first_token,
                        cost,
                        measured,
                    );
                    if let Some(t) = &mut self.tracer {
                        if measured && sender == Sender::Strategy {
                            let collector = &self.tally.collector;
                            t.on_finish(request, attempts, picked, |r| collector.is_candidate(r));
                        }
                    }
                }
            }
        }
        let next = self.clients[c as usize].poll_timeout();
        if next != self.timer_at[c as usize] {
            self.timer_at[c as usize] = next;
            if let Some(t) = next {
                self.queue.push(t.max(now), Event::ClientTimer(c));
            }
        }
        if self.shares_queue && !self.serving_room {
            self.serve_room(now, c);
        }
    }

    /// While a fleet concurrency limit has a place free and its oldest
    /// queued request is some replica's, hands that replica the moment and
    /// carries out its actions (the contract's "Replicas that share a
    /// queue"). Out of line, so that strategies without one keep their
    /// driving loop as it was.
    #[cold]
    #[inline(never)]
    fn serve_room(&mut self, now: Nanos, c: u32) {
        self.serving_room = true;
        let mut c = c;
        // Each round takes at least the queue's head: bounded by the queue.
        while let Some(r) = self.clients[c as usize].poll_room() {
            self.clients[r as usize].handle_room(now);
            self.after_input(now, r);
            c = r;
        }
        self.serving_room = false;
    }

    fn send(&mut self, now: Nanos, c: u32, a: Action) {
        let Action::Send {
            attempt: id,
            request,
            task,
            measured,
            model,
            key,
            attempt_no,
            try_on_model,
            input_tokens,
            max_tokens,
            ..
        } = a
        else {
            return;
        };
        self.stats.attempts += 1;
        self.tally.on_send(now, self.sender_of[c as usize], &a);
        let d = try_draws(
            self.sc.seed,
            request,
            u64::from(model),
            u64::from(try_on_model),
        );
        let output = traffic::output_tokens_at(self.sc, usize::from(task), d.output_z);
        let draws = d.attempt;
        let trace = match &mut self.tracer {
            Some(t) if measured && self.sender_of[c as usize] == Sender::Strategy => {
                t.on_send(request, attempt_no == 1, now, model, key)
            }
            _ => trace::NOT_RECORDED,
        };
        let h = self.attempts.insert(AttemptRec {
            client: c,
            id,
            request,
            trace,
            model,
            key,
            input_tokens,
            job: None,
            pending: Pending::Waiting,
            measured,
        });
        let table = &mut self.by_slot[c as usize];
        if table.len() <= id.slot() {
            table.resize(id.slot() + 1, (AttemptId(0), h));
        }
        table[id.slot()] = (id, h);
        let input = AttemptInput {
            model: usize::from(model),
            key: usize::from(key),
            input_tokens,
            max_tokens,
            output_tokens: output,
            draws,
            tag: h.to_u64(),
        };
        let admission = self.world.admit(now, input, &mut self.started);
        self.schedule_started();
        match admission {
            Admission::Rejected(r) => {
                if let Some(rec) = self.attempts.get_mut(h) {
                    rec.pending = Pending::Rejected(r);
                }
                self.queue.push(now + r.after, Event::Done(h, None));
            }
            Admission::Hang => {}
            Admission::Started(job, tl) => {
                if let Some(rec) = self.attempts.get_mut(h) {
                    rec.job = Some(job);
                    rec.pending = Pending::Served(tl);
                }
                schedule_timeline(&mut self.queue, h, Some((c, id)), job, &tl);
            }
            Admission::Queued(job) => {
                if let Some(rec) = self.attempts.get_mut(h) {
                    rec.job = Some(job);
                }
            }
        }
    }

    fn cancel(&mut self, now: Nanos, c: u32, id: AttemptId, reason: CancelReason) {
        let end = AttemptEnd::cancelled(reason);
        let Some(&(known, h)) = self.by_slot[c as usize].get(id.slot()) else {
            return;
        };
        if known != id {
            return;
        }
        let Some(rec) = self.attempts.remove(h) else {
            return;
        };
        if rec.measured {
            self.tally.collector.on_attempt_end(now, rec.model, end);
        }
        if let Some(t) = &mut self.tracer {
            t.on_end(rec.request, rec.trace, now, end, None);
        }
        if let Some(job) = rec.job {
            self.world.abandon(now, job, &mut self.started);
            self.schedule_started();
        }
        // Billing follows the attempt's own timeline: a stalled job may be
        // gone from the provider already while the client still waited.
        let billed = match rec.pending {
            Pending::Served(tl) => (rec.input_tokens, tl.tokens_by(now)),
            Pending::Waiting | Pending::Rejected(_) => (0, 0),
        };
        // The answer to a Cancel, fed back in before any other input.
        self.clients[c as usize].handle_outcome(
            now,
            id,
            Outcome::Cancelled {
                input_tokens: billed.0,
                output_tokens: billed.1,
            },
            crate::wire::RateLimits::default(),
        );
    }
}

fn schedule_timeline(
    q: &mut EventQueue<Event>,
    h: Handle,
    who: Option<(u32, AttemptId)>,
    job: JobId,
    tl: &Timeline,
) {
    if let (Some(ft), Some((c, id))) = (tl.first_token_at, who) {
        if ft < tl.end_at {
            q.push(ft, Event::FirstToken(c, id));
        }
        if let JobEnd::Stalled(last) = tl.end {
            q.push(last, Event::Chunk(c, id));
        }
    }
    q.push(tl.end_at, Event::Done(h, Some(job)));
}

/// Runs every strategy of a scenario, in parallel on up to `threads`
/// threads, and assembles the report (strategies in file order).
pub fn run(sc: &Scenario, threads: usize) -> Result<(Report, Vec<RunStats>), SimError> {
    run_with(sc, threads, true)
}

/// [`run`], with or without the exemplars' attempt timelines (see
/// [`run_strategy_with`]).
pub fn run_with(
    sc: &Scenario,
    threads: usize,
    exemplars: bool,
) -> Result<(Report, Vec<RunStats>), SimError> {
    let mut all = run_jobs(std::slice::from_ref(sc), threads, exemplars)?;
    Ok(all
        .pop()
        .unwrap_or_else(|| unreachable!("one scenario gives one report")))
}

/// Runs several copies of a scenario (typically one per seed, see
/// [`Scenario::with_seed`]): every (scenario, strategy) pair is one job on a
/// queue served by up to `threads` threads. Reports come back in input order.
pub fn run_seeds(
    scenarios: &[Scenario],
    threads: usize,
) -> Result<Vec<(Report, Vec<RunStats>)>, SimError> {
    // A seed sweep reports aggregates: no exemplars (the replay would
    // double its work).
    run_jobs(scenarios, threads, false)
}

fn run_jobs(
    scenarios: &[Scenario],
    threads: usize,
    exemplars: bool,
) -> Result<Vec<(Report, Vec<RunStats>)>, SimError> {
    let jobs: Vec<(usize, usize)> = scenarios
        .iter()
        .enumerate()
        .flat_map(|(i, sc)| (0..sc.strategies.len()).map(move |j| (i, j)))
        .collect();
    let n = jobs.len();
    type Slot = std::sync::Mutex<Option<Result<(StrategyReport, RunStats), SimError>>>;
    let results: Vec<Slot> = (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = threads.clamp(1, n.max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let (i, j) = jobs[k];
                let r = run_strategy_with(&scenarios[i], &scenarios[i].strategies[j], exemplars);
                if let Ok(mut slot) = results[k].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    let mut results = results.into_iter();
    let mut out = Vec::with_capacity(scenarios.len());
    for sc in scenarios {
        let mut strategies = Vec::with_capacity(sc.strategies.len());
        let mut stats = Vec::with_capacity(sc.strategies.len());
        for slot in results.by_ref().take(sc.strategies.len()) {
            match slot.into_inner().ok().flatten() {
                Some(Ok((rep, st))) => {
                    strategies.push(rep);
                    stats.push(st);
                }
                Some(Err(e)) => return Err(e),
                None => unreachable!("every job is taken by a thread"),
            }
        }
        out.push((report_of(sc, strategies), stats));
    }
    Ok(out)
}

fn report_of(sc: &Scenario, strategies: Vec<StrategyReport>) -> Report {
    assemble(sc, "sim", strategies)
}

/// The report of a run: what was run, and each strategy's section (file
/// order). `mode` is `sim` or `live`.
pub fn assemble(sc: &Scenario, mode: &str, strategies: Vec<StrategyReport>) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        stormglass_version: env!("CARGO_PKG_VERSION").to_owned(),
        mode: mode.into(),
        scenario: ScenarioInfo {
            name: sc.name.clone(),
            file: sc.path.display().to_string(),
            seed: sc.seed,
            duration_ns: sc.duration,
            warmup_ns: sc.warmup,
            incidents: sc
                .world
                .incidents
                .iter()
                .map(|i| IncidentInfo {
                    name: i.name.clone(),
                    start_ns: i.start,
                    end_ns: i.end,
                })
                .collect(),
            slo: sc.slo.clone(),
            resolved: sc.resolved.clone(),
        },
        expect: sc.expect.clone(),
        strategies,
        live: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timelines recorded during the run are the replay's, and a table
    /// too small for the requests in flight falls back to the replay.
    #[test]
    fn recorded_exemplars_equal_the_replays() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/retry-storm.toml");
        let mut sc = crate::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        sc.duration = 400 * SECS;
        let mut any_replayed = false;
        for st in &sc.strategies {
            let ((recorded, _), replayed) =
                run_traced(&sc, st, Some(trace::Tracer::recording())).unwrap();
            assert!(!replayed, "{}: the table lost a timeline", st.name);
            assert!(!recorded.exemplars.is_empty());
            let recorded = serde_json::to_value(&recorded.exemplars).unwrap();
            // The replay alone, as `run` did before it recorded.
            let picks = simulate(&sc, st, None)
                .unwrap()
                .tally
                .collector
                .exemplar_picks();
            let ids: Vec<u64> = picks.iter().map(|p| p.request).collect();
            let mut replay = simulate(&sc, st, Some(trace::Tracer::only(&ids))).unwrap();
            let replayed_exemplars = replay
                .tracer
                .take()
                .map(|t| t.exemplars(&picks, &sc.world))
                .unwrap_or_default();
            assert_eq!(
                recorded,
                serde_json::to_value(&replayed_exemplars).unwrap(),
                "{}",
                st.name
            );
            // A table that cannot grow past 16 slots loses timelines of
            // requests in flight beside many others: the replay takes over,
            // with the same result.
            let ((tiny, _), replayed) =
                run_traced(&sc, st, Some(trace::Tracer::recording_in(16, 16))).unwrap();
            any_replayed |= replayed;
            assert_eq!(
                recorded,
                serde_json::to_value(&tiny.exemplars).unwrap(),
                "{}",
                st.name
            );
        }
        assert!(any_replayed, "no strategy needed the replay");
    }
}
