//! The provider model: latency, capacity, quota pools, faults and incidents
//! over time. Pure: no I/O, no clock, no randomness of its own; every answer
//! is a function of the state, the draws it is handed and `now`. Shared by
//! the simulator and the mock provider, and it knows nothing of policies.
//!
//! An attempt meets, in order: an outage (fast 503 or a blackhole), its key's
//! quota pool (429 with the retry-after the pool implies), an error spike or
//! base fault (500, hang), capacity (a slot, a place in the FIFO queue, or
//! 503/529 overloaded), and finally its service: time to first token (with
//! queueing delay, slow tail and incident slowdowns), output at a speed that
//! falls as occupancy rises, and a possible reset, broken stream or
//! malformed body.
//!
//! Work the client gave up on is still served and still holds its slot or
//! its place in the queue until the provider would have finished it: a
//! provider does not learn of client timeouts, and this wasted work is what
//! sustains a metastable retry storm. A provider with
//! `cancel_on_disconnect` frees the slot at once instead.

pub mod config;
pub mod draws;
pub mod quota;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::slab::{Handle, Slab};
use crate::units::{round, Nanos, SECS};
use crate::wire::{BodyKind, ErrorType, RateLimits};

pub use config::{
    ApiStyle, Effect, FaultRates, IncidentSpec, KeySpec, ModelSpec, OutageMode, PoolSpec,
    ProviderSpec, Target, WorldConfig,
};
pub use draws::AttemptDraws;
pub use quota::{LimitFigure, LimitKind, PoolFigures, QuotaPool, QuotaRejection};

/// The longest a single response may take (30 days): a bound that keeps
/// absurd slowdowns from overflowing the clock.
pub const MAX_SERVICE: Nanos = 30 * 24 * 3600 * SECS;

/// One try, as the provider receives it.
#[derive(Clone, Copy, Debug)]
pub struct AttemptInput {
    /// Model index.
    pub model: usize,
    /// Key index.
    pub key: usize,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// `max_tokens` of the request.
    pub max_tokens: u32,
    /// Output tokens the model would write for this request.
    pub output_tokens: u32,
    /// The try's draws.
    pub draws: AttemptDraws,
    /// The caller's reference, handed back when a queued job starts.
    pub tag: u64,
}

/// An error answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rejection {
    /// How long after arrival the answer comes.
    pub after: Nanos,
    /// HTTP status.
    pub status: u16,
    /// The error body's kind.
    pub error: ErrorType,
    /// `retry-after`, for 429 and overload.
    pub retry_after: Option<Nanos>,
    /// `x-should-retry`, where the provider sends one.
    pub should_retry: Option<bool>,
    /// Which limit a 429 hit.
    pub limit: Option<LimitKind>,
    /// Rate-limit figures sent with the answer.
    pub limits: RateLimits,
}

/// How a served job ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEnd {
    /// The whole answer, with this body.
    Complete(BodyKind),
    /// The connection was reset.
    Reset,
    /// The stream broke off.
    Broken,
    /// The stream stalled: its last chunk came at this time, and nothing
    /// more comes. `end_at` is when the provider frees the slot; the client
    /// sees no end at all.
    Stalled(Nanos),
}

/// The timeline of a job that has started service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeline {
    /// When it started (left the queue).
    pub started_at: Nanos,
    /// When the first token is sent, if it is.
    pub first_token_at: Option<Nanos>,
    /// When the answer ends (completion, reset or break); the slot frees then.
    pub end_at: Nanos,
    /// How it ends.
    pub end: JobEnd,
    /// Output tokens sent by `end_at`.
    pub output_tokens: u32,
    /// Output speed in tokens per second.
    pub tps: f64,
    /// Rate-limit figures sent with the answer.
    pub limits: RateLimits,
}

impl Timeline {
    /// Output tokens sent by `now` (for a client that stops listening).
    pub fn tokens_by(&self, now: Nanos) -> u32 {
        let now = match self.end {
            JobEnd::Stalled(last) => now.min(last),
            _ => now,
        };
        match self.first_token_at {
            Some(ft) if now >= ft => {
                if now >= self.end_at {
                    return self.output_tokens;
                }
                let t = 1.0 + (now - ft) as f64 * self.tps / SECS as f64;
                (t as u32).min(self.output_tokens)
            }
            _ => 0,
        }
    }
}

/// A job the world accepted.
pub type JobId = Handle;

/// The answer to an arriving attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Admission {
    /// An error answer.
    Rejected(Rejection),
    /// No answer ever comes.
    Hang,
    /// Served at once.
    Started(JobId, Timeline),
    /// Waiting for a slot; [`World::job_done`] or a later admission starts it.
    Queued(JobId),
}

/// A job that started from the queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Started {
    /// The job.
    pub job: JobId,
    /// The caller's tag from [`AttemptInput`].
    pub tag: u64,
    /// Its timeline.
    pub timeline: Timeline,
}

/// A fault forced on one attempt instead of drawn (see [`World::admit_forced`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Force {
    /// Served normally, whatever the draw says.
    Serve,
    /// An error answer with this status (429: a rate-limit error that says
    /// when the key's pool is whole again).
    Status(u16),
    /// A 429 (or other status) `insufficient_quota` error: out of credit,
    /// do not retry. An Anthropic provider answers it with 400, as
    /// Anthropic does (`invalid_request_error`, "credit balance is too low").
    InsufficientQuota(u16),
    /// No answer ever comes.
    Hang,
    /// The connection is reset during service.
    Reset,
    /// The stream breaks off after some tokens.
    Broken,
    /// The stream stalls after some tokens.
    Stall,
    /// A complete answer with this body.
    Malformed(BodyKind),
    /// Served with the model's slow-tail factor.
    Slow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    Complete(BodyKind),
    Stall,
    Reset,
    Broken,
}

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    /// Waiting in its model's queue (its inputs wait there with it).
    Queued,
    /// Cancelled while queued: a tombstone skipped when the queue reaches it.
    Removed,
    /// Served: holds a slot until `end_at`.
    Running,
}

/// A job as the world keeps it while it is in flight: only what a later
/// event about it needs (its model to free the slot, and enough of its
/// timeline to say what an abandoned answer had sent). 48 bytes instead of
/// the whole attempt, its rate-limit figures and its timeline, since tens of
/// thousands are in flight and every event about one touches its record.
struct Job {
    model: u32,
    state: JobState,
    /// Whether the first token is sent (`first_token_at` means something).
    has_first_token: bool,
    /// Output tokens sent by `end_at`.
    output_tokens: u32,
    first_token_at: Nanos,
    end_at: Nanos,
    /// When a stalled stream's last chunk comes (`Nanos::MAX` otherwise).
    last_chunk_at: Nanos,
    /// Output speed in tokens per second.
    tps: f64,
}

impl Job {
    fn queued(model: usize) -> Self {
        Self {
            model: model as u32,
            state: JobState::Queued,
            has_first_token: false,
            output_tokens: 0,
            first_token_at: 0,
            end_at: 0,
            last_chunk_at: 0,
            tps: 0.0,
        }
    }

    fn running(model: usize, tl: &Timeline) -> Self {
        Self {
            model: model as u32,
            state: JobState::Running,
            has_first_token: tl.first_token_at.is_some(),
            output_tokens: tl.output_tokens,
            first_token_at: tl.first_token_at.unwrap_or(0),
            end_at: tl.end_at,
            last_chunk_at: match tl.end {
                JobEnd::Stalled(last) => last,
                _ => Nanos::MAX,
            },
            tps: tl.tps,
        }
    }

    /// [`Timeline::tokens_by`] of the job's timeline.
    fn tokens_by(&self, now: Nanos) -> u32 {
        let now = now.min(self.last_chunk_at);
        if !self.has_first_token || now < self.first_token_at {
            return 0;
        }
        if now >= self.end_at {
            return self.output_tokens;
        }
        let t = 1.0 + (now - self.first_token_at) as f64 * self.tps / SECS as f64;
        (t as u32).min(self.output_tokens)
    }
}

/// A queued job's inputs, kept in its model's queue until it starts.
struct Waiting {
    job: JobId,
    input: AttemptInput,
    plan: Plan,
    latency_factor: f64,
    limits: RateLimits,
}

#[derive(Default)]
struct ModelState {
    running: u32,
    queue: VecDeque<Waiting>,
    queued: u32,
}

/// What an abandoned attempt had cost the provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Abandoned {
    /// Whether service had started (the prompt was processed and is billed).
    pub started: bool,
    /// Output tokens sent by then.
    pub output_tokens: u32,
}

/// Conditions of a model at one time, after incidents.
#[derive(Clone, Copy, Debug)]
struct Conditions {
    outage: Option<OutageMode>,
    spike_rate: f64,
    spike_status: u16,
    latency: f64,
    capacity: f64,
    malformed_rate: f64,
    malformed_kind: BodyKind,
}

/// The world: every provider's models, pools and in-flight work.
pub struct World {
    cfg: Arc<WorldConfig>,
    models: Vec<ModelState>,
    pools: Vec<QuotaPool>,
    jobs: Slab<Job>,
    /// Whether any incident cuts a quota (if none, every factor is 1).
    quota_cuts: bool,
}

impl World {
    /// A fresh world at time zero.
    pub fn new(cfg: Arc<WorldConfig>) -> Self {
        let models = cfg.models.iter().map(|_| ModelState::default()).collect();
        let pools = cfg.pools.iter().map(QuotaPool::new).collect();
        let quota_cuts = cfg
            .incidents
            .iter()
            .any(|i| matches!(i.effect, Effect::QuotaCut(_)));
        Self {
            cfg,
            models,
            pools,
            jobs: Slab::default(),
            quota_cuts,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WorldConfig {
        &self.cfg
    }

    /// Jobs served or queued right now (including abandoned ones).
    pub fn jobs_in_flight(&self) -> usize {
        self.jobs.len()
    }

    /// Running and queued jobs of a model.
    pub fn occupancy(&self, model: usize) -> (u32, u32) {
        let m = &self.models[model];
        (m.running, m.queued)
    }

    fn conditions(&self, model: usize, now: Nanos) -> Conditions {
        let provider = self.cfg.models[model].provider;
        let mut c = Conditions {
            outage: None,
            spike_rate: 0.0,
            spike_status: 500,
            latency: 1.0,
            capacity: 1.0,
            malformed_rate: 0.0,
            malformed_kind: BodyKind::Truncated,
        };
        for inc in &self.cfg.incidents {
            if !inc.active(now) || !inc.hits_model(model, provider) {
                continue;
            }
            match inc.effect {
                Effect::Outage(mode) => {
                    if c.outage != Some(OutageMode::Blackhole) {
                        c.outage = Some(mode);
                    }
                }
                Effect::ErrorSpike { rate, status } => {
                    c.spike_rate = (c.spike_rate + rate).min(1.0);
                    c.spike_status = status;
                }
                Effect::Latency(f) => c.latency *= f,
                Effect::CapacityCut(f) => c.capacity *= f,
                Effect::MalformedBurst { rate, kind } => {
                    c.malformed_rate = (c.malformed_rate + rate).min(1.0);
                    c.malformed_kind = kind;
                }
                Effect::QuotaCut(_) => {}
            }
        }
        c
    }

    fn quota_factor(&self, pool: usize, now: Nanos) -> f64 {
        if !self.quota_cuts {
            // The loop below would multiply by nothing.
            return 1.0;
        }
        let provider = self.cfg.pools[pool].provider;
        let mut f = 1.0;
        for inc in &self.cfg.incidents {
            if let Effect::QuotaCut(x) = inc.effect {
                let hit = match inc.target {
                    Target::Pool(p) => p == pool,
                    Target::Provider(p) => p == provider,
                    Target::Model(_) => false,
                };
                if hit && inc.active(now) {
                    f *= x;
                }
            }
        }
        f
    }

    /// The rate-limit figures for `key` at `now`.
    pub fn limits(&mut self, key: usize, now: Nanos) -> RateLimits {
        match self.cfg.keys[key].pool {
            Some(p) => {
                let f = self.quota_factor(p, now);
                self.pools[p].limits(now, f)
            }
            None => RateLimits::default(),
        }
    }

    /// Fills every quota pool again (as at time zero), leaving work in
    /// flight alone.
    pub fn reset_quotas(&mut self) {
        self.pools = self.cfg.pools.iter().map(QuotaPool::new).collect();
    }

    /// Every limit's figures for `key` at `now` (for response headers).
    pub fn figures(&mut self, key: usize, now: Nanos) -> PoolFigures {
        match self.cfg.keys[key].pool {
            Some(p) => {
                let f = self.quota_factor(p, now);
                self.pools[p].figures(now, f)
            }
            None => PoolFigures::default(),
        }
    }

    /// An attempt arrives at `now`. Its own fate is the answer; queued jobs
    /// that start first (capacity came back after a cut) are appended to
    /// `started`.
    pub fn admit(&mut self, now: Nanos, a: AttemptInput, started: &mut Vec<Started>) -> Admission {
        self.admit_forced(now, a, None, started)
    }

    /// [`World::admit`], with the fault of this one attempt forced instead
    /// of drawn (the mock provider's per-request control). A forced status
    /// or hang answers at once; a forced service fault replaces the seeded
    /// pick, and outages, quotas and capacity still come before it.
    pub fn admit_forced(
        &mut self,
        now: Nanos,
        mut a: AttemptInput,
        force: Option<Force>,
        started: &mut Vec<Started>,
    ) -> Admission {
        // Copied out, so that `self` stays free to change below.
        let key = &self.cfg.keys[a.key];
        let (key_pool, revoked_at) = (key.pool, key.revoked_at);
        let provider = &self.cfg.providers[self.cfg.models[a.model].provider];
        let (fast, style) = (provider.error_latency, provider.style);
        match force {
            Some(f @ (Force::Hang | Force::Status(_) | Force::InsufficientQuota(_))) => {
                return self.forced_answer(now, a.key, f, fast, style);
            }
            Some(Force::Slow) => a.draws.slow = -1.0,
            _ => {}
        }
        let cond = self.conditions(a.model, now);

        if let Some(mode) = cond.outage {
            return self.outage_answer(now, a.key, mode, fast);
        }
        if revoked_at.is_some_and(|t| now >= t) {
            return revoked_answer(fast);
        }
        let mut pool_limits = RateLimits::default();
        if let Some(pool) = key_pool {
            let f = self.quota_factor(pool, now);
            let (res, limits) =
                self.pools[pool].admit_with_limits(now, a.input_tokens, a.max_tokens, f);
            pool_limits = limits;
            if let Err(rej) = res {
                return Admission::Rejected(Rejection {
                    after: fast,
                    status: 429,
                    error: ErrorType::RateLimit,
                    retry_after: rej.retry_after,
                    // A request larger than the bucket will never fit.
                    should_retry: rej.retry_after.is_none().then_some(false),
                    limit: Some(rej.kind),
                    limits: pool_limits,
                });
            }
        }
        let limits = pool_limits;

        let plan = match force {
            Some(Force::Reset) => Plan::Reset,
            Some(Force::Broken) => Plan::Broken,
            Some(Force::Stall) => Plan::Stall,
            Some(Force::Malformed(kind)) => Plan::Complete(kind),
            Some(Force::Slow | Force::Serve) => Plan::Complete(BodyKind::Valid),
            _ => match self.pick_fault(&a, &cond, &limits) {
                Ok(plan) => plan,
                Err(answer) => return answer,
            },
        };
        self.serve(now, a, plan, &cond, limits, started)
    }

    /// The answer to a forced status or hang (the mock provider's control):
    /// out of line, as are the other rare answers below, so that the usual
    /// admission stays compact for the instruction cache.
    #[cold]
    #[inline(never)]
    fn forced_answer(
        &mut self,
        now: Nanos,
        key: usize,
        force: Force,
        fast: Nanos,
        style: ApiStyle,
    ) -> Admission {
        let status = match force {
            Force::Status(status) | Force::InsufficientQuota(status) => status,
            _ => return Admission::Hang,
        };
        let limits = self.limits(key, now);
        let quota = matches!(force, Force::InsufficientQuota(_));
        // Out of credit, Anthropic answers 400 `invalid_request_error`
        // ("Your credit balance is too low"), not OpenAI's 429.
        let status = if quota && style == ApiStyle::Anthropic {
            400
        } else {
            status
        };
        let error = if quota {
            ErrorType::InsufficientQuota
        } else {
            error_type_for(status)
        };
        let rate_limited = error == ErrorType::RateLimit;
        Admission::Rejected(Rejection {
            after: fast,
            status,
            error,
            // A forced rate limit says when the pool is whole again
            // (at least a second); a quota error says nothing.
            retry_after: rate_limited.then(|| {
                limits
                    .reset_requests
                    .into_iter()
                    .chain(limits.reset_tokens)
                    .max()
                    .unwrap_or(0)
                    .max(SECS)
            }),
            should_retry: quota.then_some(false),
            limit: rate_limited.then_some(LimitKind::Requests),
            limits,
        })
    }

    /// The answer during an outage of the attempt's model.
    #[cold]
    #[inline(never)]
    fn outage_answer(
        &mut self,
        now: Nanos,
        key: usize,
        mode: OutageMode,
        fast: Nanos,
    ) -> Admission {
        match mode {
            OutageMode::Blackhole => Admission::Hang,
            OutageMode::Fast => {
                let limits = self.limits(key, now);
                Admission::Rejected(Rejection {
                    after: fast,
                    status: 503,
                    error: ErrorType::Overloaded,
                    retry_after: None,
                    should_retry: None,
                    limit: None,
                    limits,
                })
            }
        }
    }

    /// The seeded fault of an admitted attempt: one uniform, in a fixed
    /// order of segments. An error answer or a hang is returned as `Err`.
    // The `Err` is an `Admission` (with its rate-limit figures, 136 bytes
    // since they carry the limits); boxing it would allocate on the hot
    // path of every faulted attempt, and this helper is private.
    #[allow(clippy::result_large_err)]
    fn pick_fault(
        &self,
        a: &AttemptInput,
        cond: &Conditions,
        limits: &RateLimits,
    ) -> Result<Plan, Admission> {
        let cfg = &self.cfg;
        let model = &cfg.models[a.model];
        let fast = cfg.providers[model.provider].error_latency;
        let f = &model.faults;
        let u = a.draws.fault;
        let mut edge = cond.spike_rate;
        if u < edge {
            return Err(Admission::Rejected(Rejection {
                after: fast,
                status: cond.spike_status,
                error: error_type_for(cond.spike_status),
                retry_after: None,
                should_retry: None,
                limit: None,
                limits: *limits,
            }));
        }
        edge += f.error_500;
        if u < edge {
            return Err(Admission::Rejected(Rejection {
                after: fast,
                status: 500,
                error: ErrorType::Server,
                retry_after: None,
                should_retry: None,
                limit: None,
                limits: *limits,
            }));
        }
        edge += f.hang;
        if u < edge {
            return Err(Admission::Hang);
        }
        let mut plan = Plan::Complete(BodyKind::Valid);
        edge += f.reset;
        if u < edge {
            plan = Plan::Reset;
        } else {
            edge += f.broken_stream;
            if u < edge {
                plan = Plan::Broken;
            } else if u < edge + f.stall {
                plan = Plan::Stall;
            } else {
                edge += f.stall;
                edge += cond.malformed_rate;
                if u < edge {
                    plan = Plan::Complete(cond.malformed_kind);
                } else {
                    for (kind, p) in f.malformed {
                        edge += p;
                        if u < edge {
                            plan = Plan::Complete(kind);
                            break;
                        }
                    }
                }
            }
        }
        Ok(plan)
    }

    /// Capacity and service for an attempt whose fault is `plan`.
    fn serve(
        &mut self,
        now: Nanos,
        a: AttemptInput,
        plan: Plan,
        cond: &Conditions,
        limits: RateLimits,
        started: &mut Vec<Started>,
    ) -> Admission {
        let model = &self.cfg.models[a.model];
        let provider = &self.cfg.providers[model.provider];
        let (fast, overload_status) = (provider.error_latency, provider.overload_status());
        let slots = scaled(model.slots, cond.capacity).max(1);
        let queue = scaled(model.queue, cond.capacity);
        if self.models[a.model].running < slots && self.models[a.model].queued > 0 {
            // Capacity came back (a cut ended) while work waited: the queue
            // moves first, in order.
            self.pump(now, a.model, started);
        }
        let state = &self.models[a.model];
        let can_start = state.running < slots && state.queued == 0;
        if !can_start && state.queued >= queue {
            return Admission::Rejected(Rejection {
                after: fast,
                status: overload_status,
                error: ErrorType::Overloaded,
                retry_after: None,
                should_retry: None,
                limit: None,
                limits,
            });
        }
        if can_start {
            let tl = self.start(&a, plan, cond.latency, limits, now, slots);
            let job = self.jobs.insert(Job::running(a.model, &tl));
            Admission::Started(job, tl)
        } else {
            let job = self.jobs.insert(Job::queued(a.model));
            let st = &mut self.models[a.model];
            st.queue.push_back(Waiting {
                job,
                input: a,
                plan,
                latency_factor: cond.latency,
                limits,
            });
            st.queued += 1;
            Admission::Queued(job)
        }
    }

    /// Service begins at `now`: takes a slot and lays out the answer.
    fn start(
        &mut self,
        input: &AttemptInput,
        plan: Plan,
        latency_factor: f64,
        limits: RateLimits,
        now: Nanos,
        slots: u32,
    ) -> Timeline {
        let model = &self.cfg.models[input.model];
        let st = &mut self.models[input.model];
        let occupancy = f64::from(st.running) / f64::from(slots.max(1));
        st.running += 1;

        let d = &input.draws;
        let slow = if d.slow < model.slow_p {
            model.slow_factor
        } else {
            1.0
        };
        let factor = slow * latency_factor;
        let ttft = round(model.ttft.at(d.ttft_z) * factor).clamp(1.0, MAX_SERVICE as f64) as Nanos;
        let tps = (model.tps.at(d.tps_z) / factor / (1.0 + model.occupancy_slowdown * occupancy))
            .max(0.01);
        let first_token_at = now.saturating_add(ttft);
        let out = input.output_tokens.max(1);
        let gen_ns = |tokens: u32| {
            round(f64::from(tokens.saturating_sub(1)) / tps * SECS as f64).min(MAX_SERVICE as f64)
                as Nanos
        };
        match plan {
            Plan::Complete(body) => Timeline {
                started_at: now,
                first_token_at: Some(first_token_at),
                end_at: first_token_at.saturating_add(gen_ns(out)),
                end: JobEnd::Complete(body),
                output_tokens: out,
                tps,
                limits,
            },
            Plan::Reset => {
                // Anywhere from the start of service to the last token.
                let full = ttft.saturating_add(gen_ns(out));
                let at = now.saturating_add((d.position * full as f64) as Nanos);
                let mut tl = Timeline {
                    started_at: now,
                    first_token_at: (at >= first_token_at).then_some(first_token_at),
                    end_at: at,
                    end: JobEnd::Reset,
                    output_tokens: out,
                    tps,
                    limits,
                };
                tl.output_tokens = tl.tokens_by(at);
                tl
            }
            Plan::Stall => {
                // The last chunk comes after `sent` tokens; the provider
                // keeps the slot until the whole answer would have ended.
                let sent = 1 + (d.position * f64::from(out.saturating_sub(1))) as u32;
                Timeline {
                    started_at: now,
                    first_token_at: Some(first_token_at),
                    end_at: first_token_at.saturating_add(gen_ns(out)),
                    end: JobEnd::Stalled(first_token_at.saturating_add(gen_ns(sent))),
                    output_tokens: sent,
                    tps,
                    limits,
                }
            }
            Plan::Broken => {
                let sent = 1 + (d.position * f64::from(out.saturating_sub(1))) as u32;
                Timeline {
                    started_at: now,
                    first_token_at: Some(first_token_at),
                    end_at: first_token_at.saturating_add(gen_ns(sent)),
                    end: JobEnd::Broken,
                    output_tokens: sent,
                    tps,
                    limits,
                }
            }
        }
    }

    /// A running job reached its `end_at`: frees its slot and starts queued
    /// jobs that now fit, appending them to `started`.
    pub fn job_done(&mut self, now: Nanos, job: JobId, started: &mut Vec<Started>) {
        let Some(j) = self.jobs.remove(job) else {
            return;
        };
        if j.state != JobState::Running {
            return;
        }
        let model = j.model as usize;
        self.models[model].running -= 1;
        self.pump(now, model, started);
    }

    fn pump(&mut self, now: Nanos, model: usize, started: &mut Vec<Started>) {
        if self.models[model].queue.is_empty() {
            return;
        }
        let cond = self.conditions(model, now);
        let slots = scaled(self.cfg.models[model].slots, cond.capacity).max(1);
        while self.models[model].running < slots {
            let Some(w) = self.models[model].queue.pop_front() else {
                break;
            };
            let Some(j) = self.jobs.get(w.job) else {
                continue;
            };
            if j.state == JobState::Removed {
                self.jobs.remove(w.job);
                continue;
            }
            self.models[model].queued -= 1;
            let timeline = self.start(&w.input, w.plan, w.latency_factor, w.limits, now, slots);
            if let Some(j) = self.jobs.get_mut(w.job) {
                *j = Job::running(model, &timeline);
            }
            started.push(Started {
                job: w.job,
                tag: w.input.tag,
                timeline,
            });
        }
    }

    /// The client stopped listening to `job` at `now`. The provider keeps
    /// serving it (it holds its slot or queue place) unless it cancels on
    /// disconnect; queued jobs that start because of a freed slot are
    /// appended to `started`.
    pub fn abandon(&mut self, now: Nanos, job: JobId, started: &mut Vec<Started>) -> Abandoned {
        let Some(j) = self.jobs.get(job) else {
            return Abandoned::default();
        };
        let model = j.model as usize;
        let cancel = self.cfg.providers[self.cfg.models[model].provider].cancel_on_disconnect;
        let running = j.state == JobState::Running;
        let out = if running {
            Abandoned {
                started: true,
                output_tokens: j.tokens_by(now),
            }
        } else {
            Abandoned::default()
        };
        if cancel {
            if running {
                self.jobs.remove(job);
                self.models[model].running -= 1;
                self.pump(now, model, started);
            } else if let Some(j) = self.jobs.get_mut(job) {
                // Left in the queue as a tombstone; skipped when reached.
                j.state = JobState::Removed;
                self.models[model].queued -= 1;
            }
        }
        out
    }
}

/// The answer to an attempt with a revoked key.
#[cold]
#[inline(never)]
fn revoked_answer(fast: Nanos) -> Admission {
    Admission::Rejected(Rejection {
        after: fast,
        status: 401,
        error: ErrorType::Authentication,
        retry_after: None,
        should_retry: Some(false),
        limit: None,
        limits: RateLimits::default(),
    })
}

fn scaled(n: u32, factor: f64) -> u32 {
    if factor >= 1.0 {
        n
    } else {
        (f64::from(n) * factor) as u32
    }
}

fn error_type_for(status: u16) -> ErrorType {
    match status {
        429 => ErrorType::RateLimit,
        503 | 529 => ErrorType::Overloaded,
        401 | 403 => ErrorType::Authentication,
        400..=499 => ErrorType::InvalidRequest,
        _ => ErrorType::Server,
    }
}

#[cfg(test)]
mod tests;
