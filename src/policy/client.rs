//! One client's resilience stack for one strategy: a sans-IO state machine.
//!
//! # Driving it
//!
//! A driver (the simulator, the live tokio driver, a test harness) owns the
//! clock and the I/O. It calls, with the current time:
//!
//! 1. [`Client::handle_request`] when a user request arrives;
//! 2. [`Client::handle_first_token`] when an attempt's first output token
//!    arrives, and [`Client::handle_chunk`] for later chunks of a stream
//!    (at least the last one before a stall);
//! 3. [`Client::handle_outcome`] when an attempt ends, including
//!    `Outcome::Cancelled` in answer to every `Action::Cancel`;
//! 4. [`Client::handle_timeout`] when the time from [`Client::poll_timeout`]
//!    has come;
//! 5. [`Client::handle_room`], for replicas sharing a fleet concurrency
//!    limit, on the replica [`Client::poll_room`] names (below);
//!
//! and after each call drains [`Client::poll_action`] until it returns
//! `None`, carrying the actions out in order. A driver of a fleet then asks
//! the replica [`Client::poll_room`]: while it names a replica, that
//! replica's oldest queued request may take a place freed elsewhere in the
//! fleet, so the driver calls [`Client::handle_room`] on it at the same
//! `now` and carries out its actions in turn. Then it sleeps until
//! [`Client::poll_timeout`] or the next input. The core never reads a clock
//! and draws randomness only from a generator seeded by its configuration,
//! so the same inputs at the same times give the same actions, in any driver.
//!
//! # What it does with a request
//!
//! The request goes to the model its task routes to, with the first key of a
//! round-robin over that model's keys. Each attempt watches its timeouts
//! (first token, between chunks, total, capped by the request's deadline).
//! A failed attempt is classified (see [`super::retry`]): retried on the same
//! model after a backoff while retries remain, sent down the tier's fallback
//! chain, or failed. The request's deadline ends it whatever it is doing.
//! Every billed token goes into the [`CostLedger`].
//!
//! A request has two lanes for attempts: the main one, and one for a hedge
//! (see [`super::hedge`]) that runs beside it. Each lane holds at most one
//! live attempt, so an [`AttemptId`] names its request's slot and lane.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::calendar::{CalendarQueue, Slot};
use crate::slab::{Handle, Slab};
use crate::units::{NanoUsd, Nanos};
use crate::wire::{BodyKind, ErrorType, RateLimits};

use super::breaker::{BreakerConfig, CircuitBreaker};
use super::concurrency::{ConcurrencyLimit, Signal, Ticket};
use super::config::{LayerConfig, RetryConfig, StrategyConfig, TooLongRetryAfter, MAX_LAYERS};
use super::contract::{
    Action, AttemptId, CancelReason, FailReason, KeyId, ModelId, Outcome, Request, RequestResult,
};
use super::cost::CostLedger;
use super::cost_guard::{CostGuard, GuardAction};
use super::draws::{self, purpose};
use super::fallback::{Chain, MAX_CHAIN};
use super::hedge::{HedgeTarget, Hedger};
use super::keys::KeyPool;
use super::rate_limit::{Admit, LimitPer, RateLimiter, ScopedLimiter};
use super::retry::{Disposition, FailureClass, RetryBudget};
use super::routing::{Router, FAILURE_PENALTY};
use super::scope::{self as scope, FleetState, Scoped};
use super::spend_budget::SpendBudget;
use super::throttle::AdaptiveThrottle;
use super::validation::{ValidationConfig, ValidationCounts};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Wake,
    FirstToken,
    Idle,
    End,
    /// The main lane's attempt is late: send a hedge.
    Hedge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timer {
    req: Handle,
    serial: u32,
    lane: u8,
    kind: TimerKind,
}

/// What a lane's timers may fire for, and where its attempt's timers wait,
/// so that they are cancelled in place when they die (see `Client::disarm`).
#[derive(Clone, Copy, Debug)]
struct Armed {
    /// The serial of the live attempt or pending wake-up, 0 for nothing.
    serial: u32,
    /// The attempt's end, first-token and hedge timers (`END`, `FIRST` and
    /// `LATE`; [`Slot::NONE`]: none, or off the calendar's ring).
    slots: [Slot; 3],
}

const END: usize = 0;
const FIRST: usize = 1;
const LATE: usize = 2;

impl Armed {
    const NONE: Self = Self {
        serial: 0,
        slots: [Slot::NONE; 3],
    };
}

/// The main lane and the hedge lane.
const LANES: usize = 2;
const MAIN: usize = 0;
const HEDGE: usize = 1;

/// A time or none in 8 bytes, where `Option<Nanos>` takes 16: none is
/// `Nanos::MAX`, which no time the core keeps reaches (each lies before its
/// request's deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MaybeAt(Nanos);

impl MaybeAt {
    const NONE: Self = Self(Nanos::MAX);

    fn new(at: Option<Nanos>) -> Self {
        debug_assert_ne!(at, Some(Nanos::MAX));
        Self(at.unwrap_or(Nanos::MAX))
    }

    fn get(self) -> Option<Nanos> {
        (self.0 != Nanos::MAX).then_some(self.0)
    }
}

/// A lane's live attempt: 64 bytes, so that both lanes of a request take
/// two cache lines (its id is `attempt_id` of the request's handle, the
/// lane and the serial).
#[derive(Clone, Copy, Debug)]
struct Live {
    serial: u32,
    model: ModelId,
    /// The API key it went out with.
    key: KeyId,
    first_token_deadline: MaybeAt,
    idle_deadline: MaybeAt,
    end_deadline: Nanos,
    first_token: MaybeAt,
    sent_at: Nanos,
    /// When its hedge fires, if it may have one.
    hedge_at: MaybeAt,
    /// Let through by the retry budget (released when it ends).
    budgeted: bool,
    /// Whether it is the hedge.
    hedge: bool,
    /// Beyond its request's first attempt (a retry, fallback or hedge).
    extra: bool,
}

#[derive(Clone, Debug)]
struct ReqState {
    req: Request,
    arrived: Nanos,
    chain: Chain,
    pos: usize,
    retries_here: u32,
    tries: [u32; MAX_CHAIN],
    attempts: u32,
    prev_wait: Nanos,
    cost: NanoUsd,
    /// The live attempt of each lane.
    live: [Option<Live>; LANES],
    /// Whether the request has had its hedge.
    hedged: bool,
    wake_at: Option<Nanos>,
    last_fail: FailReason,
    last_model: ModelId,
    /// A retry the budget let through waits for its backoff.
    budgeted: bool,
    /// The rate limiter has taken this attempt's share: it waits to be
    /// sent with this key.
    paced: Option<KeyId>,
    /// Waiting in the concurrency limit's queue.
    queued: bool,
    /// Retries each outer layer has made in its current pass.
    outer: [u8; MAX_LAYERS],
    /// Of `retries_here`, those whose wait a `retry-after` set and which
    /// left the backoff step where it was (`retry_after_keeps_step`; always
    /// 0 without it): the step is `retries_here - kept`.
    kept: u8,
    /// The earliest of the request's deadline and the ends of the layers'
    /// passes it is in (their `timeout`s, see [`Passes`]): every attempt
    /// and wait of the request ends by then. The deadline itself for a
    /// strategy without layer timeouts.
    cut: Nanos,
}

/// Where a request is in the loops around the strategy's own, for
/// strategies with layers, kept per request slot beside the request table
/// (so requests of strategies without layers carry none of it).
#[derive(Clone, Copy, Debug, Default)]
struct Passes {
    /// When the current pass of each loop began, outermost first: layer
    /// `i`'s at `start[i]`, the strategy's own loop's at `start[layers]`.
    /// The outermost's pass is the request. Layer `i`'s `timeout` bounds
    /// the pass of the loop inside it, `start[i + 1]`; every loop's
    /// `max_elapsed` counts from the start of its own pass.
    start: [Nanos; MAX_LAYERS + 1],
    /// Each layer's last wait in its current pass: the memory of its
    /// decorrelated jitter.
    prev_wait: [Nanos; MAX_LAYERS],
    /// Of each layer's retries in its current pass, those that left its
    /// backoff step where it was (see `ReqState::kept`).
    kept: [u8; MAX_LAYERS],
}

/// The earliest of `deadline` and the ends of the passes that began at
/// `start` (see [`Passes`]), by the layers' `timeout`s.
fn pass_cut(layers: &[LayerConfig], start: &[Nanos; MAX_LAYERS + 1], deadline: Nanos) -> Nanos {
    layers
        .iter()
        .zip(&start[1..])
        .filter_map(|(l, &s)| l.timeout.map(|t| s.saturating_add(t)))
        .fold(deadline, Nanos::min)
}

/// The requests in flight, and the timer last found live at the head of
/// the queue.
///
/// The driver asks for [`Client::poll_timeout`] after every input, and the
/// earliest timer is usually the one it was last time, still live: checking
/// its request again cost a lookup per input. Whether a timer is live
/// depends only on its request's state and the request slot's `armed`
/// serials; every change to the state goes through [`Requests::get_mut`] or
/// [`Requests::remove`], and every new serial through `Client::arm`, and
/// each of them forgets the timer. It stays the queue's head until a pop
/// (`Client::timeouts`) or a push of an earlier timer (`Client::push_timer`),
/// which forget it too, so `poll_timeout` answers from it without peeking.
#[derive(Default)]
struct Requests {
    slab: Slab<ReqState>,
    live_head: Option<(Nanos, Timer)>,
}

impl Requests {
    fn forget(&mut self, index: u32) {
        if self.live_head.is_some_and(|(_, t)| t.req.index == index) {
            self.live_head = None;
        }
    }

    fn insert(&mut self, st: ReqState) -> Handle {
        let h = self.slab.insert(st);
        self.forget(h.index);
        h
    }

    fn get(&self, h: Handle) -> Option<&ReqState> {
        self.slab.get(h)
    }

    fn get_mut(&mut self, h: Handle) -> Option<&mut ReqState> {
        self.forget(h.index);
        self.slab.get_mut(h)
    }

    fn remove(&mut self, h: Handle) -> Option<ReqState> {
        self.forget(h.index);
        self.slab.remove(h)
    }

    fn handle_at(&self, index: u32) -> Option<Handle> {
        self.slab.handle_at(index)
    }

    fn len(&self) -> usize {
        self.slab.len()
    }
}

/// One client replica of one strategy. See the module docs for the driving
/// order.
pub struct Client {
    cfg: Arc<StrategyConfig>,
    /// Keys every random draw, with the request, attempt and purpose
    /// (`policy::draws`).
    draw_key: u64,
    requests: Requests,
    timers: CalendarQueue<Timer>,
    serial: u32,
    actions: VecDeque<Action>,
    key_rr: Vec<u32>,
    ledger: CostLedger,
    cancelled: BTreeMap<AttemptId, (ModelId, bool, Handle, bool)>,
    /// Per request slot and lane, the serial of what its timers may fire
    /// for (the live attempt or the pending wake-up), 0 for nothing, and
    /// where the attempt's timers wait. Stale timers still in the calendar
    /// are dismissed here without touching request state.
    armed: Vec<[Armed; LANES]>,
    last_limits: Vec<RateLimits>,
    budget: Scoped<RetryBudget>,
    retries_denied: u64,
    breakers: Scoped<Vec<CircuitBreaker>>,
    throttles: Scoped<Vec<AdaptiveThrottle>>,
    throttled: u64,
    router: Router,
    hedger: Option<Hedger>,
    hedges: u64,
    hedge_wins: u64,
    guard: Option<Scoped<CostGuard>>,
    downgraded: u64,
    limiter: Option<ScopedLimiter>,
    conc: Option<Scoped<ConcurrencyLimit>>,
    /// Requests waiting for a place of a replica-scoped concurrency limit,
    /// oldest first; a request that leaves without a place is taken out
    /// (`withdraw_from_queue`), so its length is the queue's.
    waiting: VecDeque<Handle>,
    /// This replica's number in its fleet (the order it joined in).
    member: u32,
    /// The request being taken from the head of the fleet's queue: it may
    /// have the free place although later tickets still wait.
    serving: Option<Handle>,
    paced: u64,
    shed: u64,
    queued: u64,
    keys: Option<Scoped<KeyPool>>,
    validated: ValidationCounts,
    spend: Option<Scoped<SpendBudget>>,
    /// Whether this replica reports the counts of fleet-scoped state
    /// (breaker openings, key events), so the fleet's are counted once.
    reports_shared: bool,
    /// Retries of measured requests made by each outer layer.
    layer_retries: [u64; MAX_LAYERS],
    /// Passes of measured requests each outer layer's `timeout` ended.
    layer_pass_timeouts: [u64; MAX_LAYERS],
    /// Per request slot, its passes through the layers (strategies with
    /// layers only).
    passes: Vec<Passes>,
}

fn attempt_id(req: Handle, lane: usize, serial: u32) -> AttemptId {
    AttemptId((u64::from(serial) << 32) | (u64::from(req.index) << 1) | lane as u64)
}

/// The request slot and lane an attempt id names.
fn slot_lane(id: AttemptId) -> (u32, usize) {
    ((id.0 as u32) >> 1, (id.0 & 1) as usize)
}

impl Client {
    /// A client whose draws are keyed by the first number of `rng` (the
    /// caller derives it from the run seed, the strategy and the replica);
    /// each draw then depends only on that key, the request id, the attempt
    /// and its purpose, never on how many draws came before.
    pub fn new(cfg: Arc<StrategyConfig>, mut rng: ChaCha8Rng) -> Self {
        let draw_key = rng.next_u64();
        let budget = cfg.budget;
        let hedge = cfg.hedge;
        let guard = cfg.cost_guard.clone();
        let (rate_limit, concurrency) = (cfg.rate_limit, cfg.concurrency);
        let key_pool = cfg.key_pool;
        let spend_budget = cfg.spend_budget;
        let n = cfg.models.len();
        let breakers = scope::breakers_for(&cfg);
        let throttles = scope::throttles_for(&cfg);
        Self {
            cfg,
            draw_key,
            requests: Requests::default(),
            timers: CalendarQueue::default(),
            serial: 0,
            actions: VecDeque::new(),
            key_rr: vec![0; n],
            ledger: CostLedger::new(n),
            cancelled: BTreeMap::new(),
            armed: Vec::new(),
            budget: Scoped::Replica(RetryBudget::new(budget)),
            retries_denied: 0,
            breakers: Scoped::Replica(breakers),
            throttles: Scoped::Replica(throttles),
            throttled: 0,
            router: Router::new(n),
            last_limits: vec![RateLimits::default(); n],
            hedger: hedge.map(|c| Hedger::new(c, n)),
            hedges: 0,
            hedge_wins: 0,
            guard: guard.map(|g| Scoped::Replica(CostGuard::new(g))),
            downgraded: 0,
            limiter: rate_limit.map(|r| ScopedLimiter::Replica(RateLimiter::new(r))),
            conc: concurrency.map(|c| Scoped::Replica(ConcurrencyLimit::new(c))),
            waiting: VecDeque::new(),
            member: 0,
            serving: None,
            paced: 0,
            shed: 0,
            queued: 0,
            keys: key_pool.map(|k| Scoped::Replica(KeyPool::new(k))),
            validated: ValidationCounts::default(),
            spend: spend_budget.map(|s| Scoped::Replica(SpendBudget::new(s))),
            reports_shared: true,
            layer_retries: [0; MAX_LAYERS],
            layer_pass_timeouts: [0; MAX_LAYERS],
            passes: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StrategyConfig {
        &self.cfg
    }

    /// What every attempt has cost so far.
    pub fn ledger(&self) -> &CostLedger {
        &self.ledger
    }

    /// Requests not yet finished.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Retries of measured requests that the retry budget refused.
    pub fn retries_denied(&self) -> u64 {
        self.retries_denied
    }

    /// Attempts of measured requests that the adaptive throttle rejected locally.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    /// Hedges sent for measured requests.
    pub fn hedges(&self) -> u64 {
        self.hedges
    }

    /// Measured requests answered by their hedge.
    pub fn hedge_wins(&self) -> u64 {
        self.hedge_wins
    }

    /// Shares the fleet-scoped state of `fleet` with the other replicas of
    /// the strategy, in place of this replica's own (see
    /// [`super::scope`]); the driver makes one [`FleetState`] per strategy
    /// and hands it to every replica before the first request. The first
    /// replica (`reports_shared`) alone reports the counts kept in shared
    /// state, so that they are counted once.
    pub fn join_fleet(&mut self, fleet: &FleetState, reports_shared: bool) {
        fn join<T>(
            mine: Option<&mut Scoped<T>>,
            shared: Option<&std::rc::Rc<std::cell::RefCell<T>>>,
        ) {
            if let (Some(m), Some(s)) = (mine, shared) {
                m.share(s);
            }
        }
        join(Some(&mut self.budget), fleet.budget.as_ref());
        join(Some(&mut self.breakers), fleet.breakers.as_ref());
        join(Some(&mut self.throttles), fleet.throttles.as_ref());
        join(self.guard.as_mut(), fleet.guard.as_ref());
        join(self.keys.as_mut(), fleet.keys.as_ref());
        join(self.spend.as_mut(), fleet.spend.as_ref());
        join(self.conc.as_mut(), fleet.conc.as_ref());
        join(self.limiter.as_mut(), fleet.limiter.as_ref());
        self.reports_shared = reports_shared;
        self.member = fleet.enrol();
    }

    /// Attempts of measured requests the client's rate limit delayed.
    pub fn paced(&self) -> u64 {
        self.paced
    }

    /// Attempts of measured requests the client's rate or concurrency limit
    /// shed.
    pub fn shed(&self) -> u64 {
        self.shed
    }

    /// Measured requests that waited in the concurrency limit's queue.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// The concurrency limit now (adaptive ones move), if there is one.
    pub fn concurrency_limit(&self) -> Option<u32> {
        self.conc.as_ref().map(|c| c.with_ref(|x| x.limit()))
    }

    /// Keys disabled after a 401 or 403, and times a key was rested after
    /// a 429.
    pub fn key_events(&self) -> (u64, u64) {
        match self.keys.as_ref() {
            Some(p) if self.reports_shared || !p.is_fleet() => {
                p.with_ref(|p| (p.disabled(), p.rests()))
            }
            _ => (0, 0),
        }
    }

    /// Complete answers to measured JSON requests by body kind, and safe
    /// defaults given.
    pub fn validation(&self) -> ValidationCounts {
        self.validated
    }

    /// Retries of measured requests made by each outer layer, outermost
    /// first (see [`StrategyConfig::layers`]).
    pub fn layer_retries(&self) -> [u64; MAX_LAYERS] {
        self.layer_retries
    }

    /// Passes of measured requests ended by each outer layer's `timeout`
    /// (the passes of the loops inside it), outermost first. A timeout
    /// that ends several layers' passes at once counts at the outermost.
    pub fn layer_pass_timeouts(&self) -> [u64; MAX_LAYERS] {
        self.layer_pass_timeouts
    }

    /// Measured requests the cost guard sent to the cheapest model.
    pub fn downgraded(&self) -> u64 {
        self.downgraded
    }

    /// How many times each model's breaker has opened.
    pub fn breaker_opens(&self) -> u64 {
        if self.breakers.is_fleet() && !self.reports_shared {
            return 0;
        }
        self.breakers
            .with_ref(|v| v.iter().map(|b| u64::from(b.times_opened())).sum())
    }

    /// The rate-limit figures last seen from each model.
    pub fn last_limits(&self, model: ModelId) -> RateLimits {
        self.last_limits[usize::from(model)]
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest time the core wants [`Client::handle_timeout`] called.
    ///
    /// Asked after every input; usually answered from the remembered live
    /// head, inlined into the caller.
    #[inline]
    pub fn poll_timeout(&mut self) -> Option<Nanos> {
        match self.requests.live_head {
            Some((at, _)) => Some(at),
            None => self.find_live_head(),
        }
    }

    /// Pops dead timers until the earliest is live, and remembers it.
    #[inline(never)]
    fn find_live_head(&mut self) -> Option<Nanos> {
        while let Some((at, t)) = self.timers.peek() {
            let t = *t;
            if self.timer_live(at, &t) {
                self.requests.live_head = Some((at, t));
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    fn push_timer(
        &mut self,
        at: Nanos,
        req: Handle,
        lane: usize,
        serial: u32,
        kind: TimerKind,
    ) -> Slot {
        // A timer due before the remembered head is the new head. (One due
        // at the same time comes after it; a cancel never touches the head,
        // which has left the calendar's ring.)
        if self.requests.live_head.is_some_and(|(h, _)| at < h) {
            self.requests.live_head = None;
        }
        self.timers.push_slot(
            at,
            Timer {
                req,
                serial,
                lane: lane as u8,
                kind,
            },
        )
    }

    fn arm(&mut self, h: Handle, lane: usize, serial: u32) {
        let i = h.index as usize;
        if self.armed.len() <= i {
            self.armed.resize(i + 1, [Armed::NONE; LANES]);
        }
        self.armed[i][lane] = Armed {
            serial,
            ..Armed::NONE
        };
        // A new serial kills the lane's older timers: the remembered live
        // head may be one of them.
        self.requests.forget(h.index);
    }

    fn next_serial(&mut self) -> u32 {
        self.serial = self.serial.wrapping_add(1).max(1);
        self.serial
    }

    fn timer_live(&self, at: Nanos, t: &Timer) -> bool {
        let lane = usize::from(t.lane);
        if self.armed.get(t.req.index as usize).map(|a| a[lane].serial) != Some(t.serial) {
            return false;
        }
        let Some(st) = self.requests.get(t.req) else {
            return false;
        };
        let live = st.live[lane].filter(|l| l.serial == t.serial);
        match t.kind {
            TimerKind::Wake => st.wake_at == Some(at) && st.live.iter().all(Option::is_none),
            TimerKind::FirstToken => live.is_some_and(|l| l.first_token_deadline.get() == Some(at)),
            TimerKind::Idle => live.is_some_and(|l| l.idle_deadline.get() == Some(at)),
            TimerKind::End => live.is_some_and(|l| l.end_deadline == at),
            TimerKind::Hedge => {
                !st.hedged
                    && st.live[HEDGE].is_none()
                    && live.is_some_and(|l| {
                        l.hedge_at.get() == Some(at) && l.first_token == MaybeAt::NONE
                    })
            }
        }
    }

    /// A user request arrives.
    pub fn handle_request(&mut self, now: Nanos, req: Request) {
        let (first, candidates) = self.router.route(
            &self.cfg,
            &req,
            // Made at its first draw: static and priority routing draw nothing.
            &mut draws::stream(self.draw_key, req.id, purpose::ROUTE),
        );
        let mut chain = Chain::build(first, candidates, &self.cfg.chains[req.tier.index()]);
        let mut reject = false;
        if let Some(g) = self.guard.as_mut() {
            let mut g = g.get();
            if g.at_limit(now) {
                match g.config().action {
                    GuardAction::Alert => {}
                    GuardAction::Downgrade => {
                        chain = Chain::build(cheapest(&self.cfg, &chain, &req), &[], &[]);
                        if req.measured {
                            self.downgraded += 1;
                        }
                    }
                    GuardAction::Reject => reject = true,
                }
            }
        }
        let first = chain.get(0).unwrap_or(self.cfg.default_model);
        let h = self.requests.insert(ReqState {
            req,
            arrived: now,
            chain,
            pos: 0,
            retries_here: 0,
            tries: [0; MAX_CHAIN],
            attempts: 0,
            prev_wait: 0,
            cost: NanoUsd::ZERO,
            live: [None; LANES],
            hedged: false,
            wake_at: None,
            last_fail: FailReason::Deadline,
            last_model: first,
            budgeted: false,
            paced: None,
            queued: false,
            outer: [0; MAX_LAYERS],
            kept: 0,
            cut: req.deadline,
        });
        if !self.cfg.layers.is_empty() {
            // Every loop's first pass begins with the request.
            let p = Passes {
                start: [now; MAX_LAYERS + 1],
                prev_wait: [0; MAX_LAYERS],
                kept: [0; MAX_LAYERS],
            };
            let i = h.index as usize;
            if self.passes.len() <= i {
                self.passes.resize(i + 1, Passes::default());
            }
            self.passes[i] = p;
            if let Some(st) = self.requests.get_mut(h) {
                st.cut = pass_cut(&self.cfg.layers, &p.start, req.deadline);
            }
        }
        self.budget.with(|x| x.on_request(now));
        if req.deadline <= now {
            self.finish(h, RequestResult::Failed(FailReason::Deadline), None);
            return;
        }
        if reject {
            self.finish(h, RequestResult::Failed(FailReason::CostLimit), None);
            return;
        }
        // No timer for the deadline itself: every attempt's end timer is
        // capped at it, and no backoff wakes up past it.
        self.send(now, h);
    }

    fn send(&mut self, now: Nanos, h: Handle) {
        // Models whose breaker is open, or whose throttle rejects the
        // attempt locally, are skipped down the chain.
        let mut throttled = false;
        let mut shed = false;
        let mut no_key = false;
        let key = loop {
            let Some(st) = self.requests.get_mut(h) else {
                return;
            };
            if st.cut <= now && st.cut < st.req.deadline {
                // A layer's pass has run out (an answer came in at its very
                // end): nothing more is sent in it.
                self.pass_timed_out(now, h);
                return;
            }
            let Some(m) = st.chain.get(st.pos) else {
                let reason = if shed {
                    FailReason::Shed
                } else if no_key {
                    FailReason::NoKeyAvailable
                } else if throttled {
                    FailReason::Throttled
                } else {
                    FailReason::NoModelAvailable
                };
                self.finish(h, RequestResult::Failed(reason), None);
                return;
            };
            if st.req.deadline.saturating_sub(now) < self.cfg.min_attempt_time {
                // Too little time left for an attempt to be worth starting.
                let reason = if st.attempts == 0 {
                    FailReason::Deadline
                } else {
                    st.last_fail
                };
                self.finish(h, RequestResult::Failed(reason), None);
                return;
            }
            // Client-wide, so before any model is picked. `Some(may_wait)`
            // when the request may not have a place now.
            let full = match self.conc.as_ref() {
                None => None,
                Some(Scoped::Replica(c)) => (!c.has_room()).then(|| self.waiting.len() < c.queue()),
                Some(Scoped::Fleet(c)) => fleet_full(c, self.serving == Some(h)),
            };
            if let Some(may_wait) = full {
                if may_wait {
                    st.queued = true;
                    if st.req.measured {
                        self.queued += 1;
                    }
                    // The wait ends with the time an attempt may start.
                    // Or with the end of a layer's pass.
                    let at = (st.req.deadline.saturating_sub(self.cfg.min_attempt_time) + 1)
                        .min(st.req.deadline)
                        .min(st.cut);
                    st.wake_at = Some(at);
                    let serial = self.next_serial();
                    self.arm(h, MAIN, serial);
                    self.push_timer(at, h, MAIN, serial, TimerKind::Wake);
                    self.wait_for_room(h);
                } else {
                    if st.req.measured {
                        self.shed += 1;
                    }
                    self.finish(h, RequestResult::Failed(FailReason::Shed), None);
                }
                return;
            }
            let m = usize::from(m);
            let per_key = self.cfg.breaker_per_key;
            // Per key, the breakers are checked as the key is picked.
            let mut go = per_key || !self.breakers.with_ref(|x| x[m].is_open(now));
            if go {
                let p = self.throttles.with(|ts| {
                    ts.get_mut(m).map(|t| {
                        let p = t.reject_probability(now);
                        t.on_request(now);
                        p
                    })
                });
                if let Some(p) = p {
                    // One coin per (attempt, chain position).
                    let n = (u64::from(st.attempts) << 8) | st.pos as u64;
                    let coin = draws::uniform(self.draw_key, st.req.id, n, purpose::THROTTLE);
                    if p > 0.0 && coin < p {
                        go = false;
                        throttled = true;
                        if st.req.measured {
                            self.throttled += 1;
                        }
                    }
                }
            }
            let mut key = None;
            // A paced attempt's share was taken when it was paced, for this key.
            let reserved = st.paced.take();
            if go && (reserved.is_some() || self.keys.is_some() || per_key) {
                let (cfg, keys, key_rr) = (&self.cfg, &mut self.keys, &mut self.key_rr);
                self.breakers.with_ref(|breakers| {
                    let closed = |k: KeyId| !per_key || !breakers[usize::from(k)].is_open(now);
                    if let Some(k) = reserved {
                        key = Some(k).filter(|&k| closed(k));
                        go = key.is_some();
                    } else if let Some(p) = keys.as_mut() {
                        key = p.with(|x| x.pick(&cfg.models[m].keys, now, &mut key_rr[m], closed));
                        if key.is_none() {
                            go = false;
                            no_key = true;
                        }
                    } else if per_key {
                        key = next_key_where(cfg, key_rr, m, closed);
                        go = key.is_some();
                    }
                });
            }
            if let (true, None, true) = (go, reserved, self.limiter.is_some()) {
                let k = key.unwrap_or_else(|| next_key(&self.cfg, &mut self.key_rr, m));
                key = Some(k);
                let latest = st
                    .req
                    .deadline
                    .saturating_sub(self.cfg.min_attempt_time.max(1));
                let tokens = u64::from(st.req.input_tokens) + u64::from(st.req.max_tokens);
                // The limiter's borrow ends with this block.
                let admit = self.limiter.as_mut().map_or(Admit::Now, |l| {
                    let mut l = l.get();
                    let i = limit_index(&self.cfg, &l, m, k);
                    l.admit(now, i, tokens, latest)
                });
                match admit {
                    Admit::Now => {}
                    Admit::At(t) => {
                        // The wait is cut by the end of a layer's pass.
                        let t = t.min(st.cut);
                        st.paced = Some(k);
                        st.wake_at = Some(t);
                        if st.req.measured {
                            self.paced += 1;
                        }
                        let serial = self.next_serial();
                        self.arm(h, MAIN, serial);
                        self.push_timer(t, h, MAIN, serial, TimerKind::Wake);
                        return;
                    }
                    Admit::Shed => {
                        go = false;
                        shed = true;
                        if st.req.measured {
                            self.shed += 1;
                        }
                    }
                }
            }
            // Only now may a half-open breaker count this as its probe.
            let b = match (per_key, key) {
                (true, Some(k)) => usize::from(k),
                _ => m,
            };
            if go && self.breakers.with(|x| x[b].allow(now)) {
                break key;
            }
            st.pos += 1;
            st.retries_here = 0;
            st.kept = 0;
            st.prev_wait = 0;
        };
        let Some(st) = self.requests.get(h) else {
            return;
        };
        let pos = st.pos;
        let key = match (key, st.chain.get(pos)) {
            (Some(k), _) => k,
            (None, Some(m)) => next_key(&self.cfg, &mut self.key_rr, usize::from(m)),
            (None, None) => return,
        };
        self.emit(now, h, MAIN, pos, key);
    }

    /// Puts a request the concurrency limit has no place for in its queue:
    /// this replica's own, or the fleet's.
    fn wait_for_room(&mut self, h: Handle) {
        match self.conc.as_ref() {
            Some(Scoped::Fleet(c)) => c.borrow_mut().enqueue(Ticket {
                replica: self.member,
                request: h,
            }),
            _ => {
                self.waiting.push_back(h);
            }
        }
    }

    /// For a driver of a fleet whose concurrency limit is fleet-scoped: the
    /// replica (by the order it joined the fleet, see
    /// [`Client::join_fleet`]) that holds the oldest queued request, when
    /// the limit has a place free for it. The driver then calls
    /// [`Client::handle_room`] on that replica, at once, and asks again
    /// until the answer is `None`. Any replica of the fleet gives the same
    /// answer; always `None` without a fleet limit.
    pub fn poll_room(&self) -> Option<u32> {
        match self.conc.as_ref() {
            Some(Scoped::Fleet(c)) => fleet_room(c),
            _ => None,
        }
    }

    /// Whether this replica shares a fleet concurrency limit (and so its
    /// queue) with its siblings: a driver that sees `false` for every
    /// replica may skip [`Client::poll_room`], which would always be `None`.
    pub fn shares_queue(&self) -> bool {
        self.conc.as_ref().is_some_and(Scoped::is_fleet)
    }

    /// A place of the fleet's concurrency limit is free and this replica
    /// holds the oldest queued request (the answer of
    /// [`Client::poll_room`]): it takes that place, and the next ones while
    /// the oldest requests are its own. Does nothing otherwise.
    pub fn handle_room(&mut self, now: Nanos) {
        loop {
            let Some(Scoped::Fleet(c)) = self.conc.as_ref() else {
                return;
            };
            let Some(t) = c.borrow_mut().take_head(self.member) else {
                return;
            };
            self.leave_queue(now, t.request);
        }
    }

    /// A queued request leaves the concurrency limit's queue without a
    /// place (it finished, or a layer's pass ended): this replica's own
    /// queue, or its ticket in the fleet's.
    fn withdraw_from_queue(&mut self, h: Handle) {
        match self.conc.as_ref() {
            Some(Scoped::Fleet(c)) => c.borrow_mut().withdraw(Ticket {
                replica: self.member,
                request: h,
            }),
            _ => {
                // Rare (a deadline or a layer's pass end while queued): a
                // request that queues again in a new pass must not keep its
                // old place.
                if let Some(i) = self.waiting.iter().position(|&w| w == h) {
                    self.waiting.remove(i);
                }
            }
        }
    }

    /// A request taken from the head of the concurrency limit's queue goes.
    fn leave_queue(&mut self, now: Nanos, h: Handle) {
        let Some(st) = self.requests.get_mut(h) else {
            return;
        };
        if !std::mem::take(&mut st.queued) {
            return;
        }
        st.wake_at = None;
        self.serving = Some(h);
        self.send(now, h);
        self.serving = None;
    }

    /// The fleet's queue: this replica serves its own head tickets; a
    /// driver hands it the others' (`poll_room`). Out of line, so that
    /// `pump` stays small for replica limits.
    #[cold]
    #[inline(never)]
    fn pump_fleet(&mut self, now: Nanos) {
        self.handle_room(now);
    }

    /// Lets queued requests go while the concurrency limit has room.
    #[inline(always)]
    fn pump(&mut self, now: Nanos) {
        while self
            .conc
            .as_ref()
            .is_some_and(|c| c.with_ref(|x| x.has_room()))
        {
            if self.conc.as_ref().is_some_and(Scoped::is_fleet) {
                self.pump_fleet(now);
                return;
            }
            let Some(h) = self.waiting.pop_front() else {
                return;
            };
            let Some(st) = self.requests.get_mut(h) else {
                continue;
            };
            if !std::mem::take(&mut st.queued) {
                continue;
            }
            st.wake_at = None;
            self.send(now, h);
        }
    }

    /// Sends the attempt of lane `lane` to the model at chain position `pos`
    /// (the caller has checked breakers, throttles and time left).
    fn emit(&mut self, now: Nanos, h: Handle, lane: usize, pos: usize, key: KeyId) {
        if let Some(c) = self.conc.as_mut() {
            c.with(|x| x.acquire());
        }
        if let Some(p) = self.keys.as_mut() {
            p.with(|x| x.on_send(key));
        }
        let serial = self.next_serial();
        self.arm(h, lane, serial);
        let cfg = Arc::clone(&self.cfg);
        let Some(st) = self.requests.get_mut(h) else {
            return;
        };
        let Some(model) = st.chain.get(pos) else {
            return;
        };
        let timeouts = cfg.timeouts[st.req.tier.index()];
        // Cut by the request's deadline and by the end of any layer's pass
        // (deadline propagation).
        let end = timeouts.attempt_deadline(now, st.cut);
        let ft = timeouts.first_token.map(|t| now + t).filter(|&t| t < end);
        let id = attempt_id(h, lane, serial);
        let try_on_model = st.tries[pos];
        st.tries[pos] += 1;
        st.attempts += 1;
        st.last_model = model;
        self.router.on_send(model);
        let hedge = lane == HEDGE;
        let hedge_at = match &self.hedger {
            Some(hg) if !hedge && !st.hedged => hg
                .delay(usize::from(model))
                .map(|d| now.saturating_add(d))
                .filter(|&t| t < end),
            _ => None,
        };
        st.live[lane] = Some(Live {
            serial,
            model,
            key,
            first_token_deadline: MaybeAt::new(ft),
            idle_deadline: MaybeAt::NONE,
            end_deadline: end,
            first_token: MaybeAt::NONE,
            sent_at: now,
            hedge_at: MaybeAt::new(hedge_at),
            budgeted: !hedge && std::mem::take(&mut st.budgeted),
            hedge,
            extra: st.attempts > 1,
        });
        if hedge && st.req.measured {
            self.hedges += 1;
        }
        self.actions.push_back(Action::Send {
            attempt: id,
            request: st.req.id,
            task: st.req.task,
            measured: st.req.measured,
            model,
            key,
            attempt_no: st.attempts,
            try_on_model,
            input_tokens: st.req.input_tokens,
            max_tokens: st.req.max_tokens,
            deadline: end,
            hedge,
        });
        let mut slots = [Slot::NONE; 3];
        slots[END] = self.push_timer(end, h, lane, serial, TimerKind::End);
        if let Some(ft) = ft {
            slots[FIRST] = self.push_timer(ft, h, lane, serial, TimerKind::FirstToken);
        }
        if let Some(at) = hedge_at {
            slots[LATE] = self.push_timer(at, h, lane, serial, TimerKind::Hedge);
        }
        self.armed[h.index as usize][lane].slots = slots;
    }

    /// The main attempt is late: one more attempt beside it, if the
    /// deadline, the chain and the target's breaker allow.
    fn hedge(&mut self, now: Nanos, h: Handle) {
        let Some(target) = self.hedger.as_ref().map(|hg| hg.config().target) else {
            return;
        };
        let Some(st) = self.requests.get_mut(h) else {
            return;
        };
        if st.req.deadline.saturating_sub(now) < self.cfg.min_attempt_time.max(1) {
            return;
        }
        let pos = match target {
            HedgeTarget::Same => st.pos,
            HedgeTarget::Next => st.pos + 1,
        };
        let Some(m) = st.chain.get(pos) else {
            return;
        };
        if self
            .conc
            .as_ref()
            .is_some_and(|c| !c.with_ref(|x| x.has_room_for_newcomer()))
        {
            return;
        }
        let mi = usize::from(m);
        let per_key = self.cfg.breaker_per_key;
        if !per_key && self.breakers.with_ref(|x| x[mi].is_open(now)) {
            return;
        }
        let (cfg, keys, key_rr) = (&self.cfg, &mut self.keys, &mut self.key_rr);
        let key = self.breakers.with_ref(|breakers| {
            let closed = |k: KeyId| !per_key || !breakers[usize::from(k)].is_open(now);
            match keys.as_mut() {
                Some(p) => p.with(|x| x.pick(&cfg.models[mi].keys, now, &mut key_rr[mi], closed)),
                None if per_key => next_key_where(cfg, key_rr, mi, closed),
                None => Some(next_key(cfg, key_rr, mi)),
            }
        });
        let Some(key) = key else {
            return;
        };
        let bi = if per_key { usize::from(key) } else { mi };
        if let Some(mut l) = self.limiter.as_mut().map(ScopedLimiter::get) {
            // A hedge never waits for the rate limit.
            let tokens = u64::from(st.req.input_tokens) + u64::from(st.req.max_tokens);
            let i = limit_index(&self.cfg, &l, mi, key);
            if l.admit(now, i, tokens, now) != Admit::Now {
                return;
            }
        }
        if !self.breakers.with(|x| x[bi].allow(now)) {
            return;
        }
        st.hedged = true;
        self.emit(now, h, HEDGE, pos, key);
    }

    /// The request and lane of a live attempt.
    fn live_handle(&self, id: AttemptId) -> Option<(Handle, usize)> {
        let (slot, lane) = slot_lane(id);
        let h = self.requests.handle_at(slot)?;
        let st = self.requests.get(h)?;
        st.live[lane]
            .filter(|l| attempt_id(h, lane, l.serial) == id)
            .map(|_| (h, lane))
    }

    /// The first output token of an attempt arrived.
    pub fn handle_first_token(&mut self, now: Nanos, id: AttemptId) {
        let Some((h, lane)) = self.live_handle(id) else {
            return;
        };
        if let Some(l) = self
            .requests
            .get_mut(h)
            .and_then(|st| st.live[lane].as_mut())
        {
            if l.first_token == MaybeAt::NONE {
                // Its first-token and hedge timers are dead now.
                let a = &mut self.armed[h.index as usize][lane];
                let at = [l.first_token_deadline.get(), l.hedge_at.get()];
                cancel_timer(&mut self.timers, a, FIRST, at[0], (h, lane, l.serial));
                cancel_timer(&mut self.timers, a, LATE, at[1], (h, lane, l.serial));
                l.first_token = MaybeAt::new(Some(now));
                l.first_token_deadline = MaybeAt::NONE;
                let (model, ttft) = (l.model, now - l.sent_at);
                self.router.on_sample(&self.cfg, model, ttft);
                if let Some(hg) = self.hedger.as_mut() {
                    hg.on_first_token(usize::from(model), ttft);
                }
                // The model accepted the work: a throttle need not wait for
                // the end of a long generation to know it.
                self.throttles.with(|ts| {
                    if let Some(t) = ts.get_mut(usize::from(model)) {
                        t.on_accept(now);
                    }
                });
            }
        }
    }

    /// A later chunk of a stream arrived: restarts the between-chunks clock.
    pub fn handle_chunk(&mut self, now: Nanos, id: AttemptId) {
        let Some((h, lane)) = self.live_handle(id) else {
            return;
        };
        let Some(st) = self.requests.get_mut(h) else {
            return;
        };
        let Some(bc) = self.cfg.timeouts[st.req.tier.index()].between_chunks else {
            return;
        };
        let Some(l) = st.live[lane].as_mut() else {
            return;
        };
        let at = now + bc;
        if at < l.end_deadline {
            l.idle_deadline = MaybeAt::new(Some(at));
            let serial = l.serial;
            self.push_timer(at, h, lane, serial, TimerKind::Idle);
        }
    }

    /// An attempt ended. `limits` are the rate-limit figures that came with it.
    pub fn handle_outcome(
        &mut self,
        now: Nanos,
        id: AttemptId,
        outcome: Outcome,
        limits: RateLimits,
    ) {
        self.outcome(now, id, outcome, limits);
        self.pump(now);
    }

    fn outcome(&mut self, now: Nanos, id: AttemptId, outcome: Outcome, limits: RateLimits) {
        if let Outcome::Cancelled {
            input_tokens,
            output_tokens,
        } = outcome
        {
            if let Some((model, measured, h, extra)) = self.cancelled.remove(&id) {
                let info = &self.cfg.models[usize::from(model)];
                let cost = self.ledger.charge(
                    usize::from(model),
                    info,
                    input_tokens,
                    output_tokens,
                    measured,
                );
                if let Some(st) = self.requests.get_mut(h) {
                    st.cost += cost;
                }
                spend(&mut self.guard, &mut self.actions, now, cost);
                if let Some(s) = self.spend.as_mut() {
                    let mut s = s.get();
                    let tokens = u64::from(input_tokens) + u64::from(output_tokens);
                    s.on_spend(now, extra, tokens, cost);
                }
            }
            return;
        }
        let Some((h, lane)) = self.live_handle(id) else {
            return;
        };
        let cfg = Arc::clone(&self.cfg);
        let Some(st) = self.requests.get_mut(h) else {
            return;
        };
        let Some(live) = st.live[lane].take() else {
            return;
        };
        let a = &mut self.armed[h.index as usize][lane];
        disarm(&mut self.timers, a, h, lane, &live);
        self.router.on_end(live.model);
        if live.budgeted {
            self.budget.with(|x| x.on_retry_done());
        }
        let model = usize::from(live.model);
        self.last_limits[model] = limits;
        if let Some(mut l) = self.limiter.as_mut().map(ScopedLimiter::get) {
            let i = limit_index(&cfg, &l, model, live.key);
            l.observe(now, live.sent_at, i, limits);
        }
        // Rejected for load (429, 503, 529) is the only answer the throttle
        // does not count as accepted; timeouts never get here.
        let rejected_for_load = matches!(
            outcome,
            Outcome::HttpError {
                status: 429 | 503 | 529,
                ..
            } | Outcome::HttpError {
                error: ErrorType::RateLimit | ErrorType::Overloaded,
                ..
            }
        );
        // A stream that sent its first token was accepted then.
        if !rejected_for_load && live.first_token == MaybeAt::NONE {
            self.throttles.with(|ts| {
                if let Some(t) = ts.get_mut(model) {
                    t.on_accept(now);
                }
            });
        }
        if let Some(p) = self.keys.as_mut() {
            let mut p = p.get();
            let (status, retry_after) = match outcome {
                Outcome::HttpError {
                    status,
                    retry_after,
                    ..
                } => (Some(status), retry_after),
                _ => (None, None),
            };
            p.on_end(live.key, now, status, retry_after, limits);
        }
        if let Some(c) = self.conc.as_mut() {
            c.with(|x| {
                x.release(if rejected_for_load {
                    Signal::Drop
                } else {
                    Signal::Ok
                })
            });
        }
        let (input, output) = match outcome {
            Outcome::Success {
                input_tokens,
                output_tokens,
                ..
            }
            | Outcome::Reset {
                input_tokens,
                output_tokens,
            }
            | Outcome::BrokenStream {
                input_tokens,
                output_tokens,
            } => (input_tokens, output_tokens),
            Outcome::HttpError { .. } | Outcome::Cancelled { .. } => (0, 0),
        };
        if input > 0 || output > 0 {
            let cost =
                self.ledger
                    .charge(model, &cfg.models[model], input, output, st.req.measured);
            st.cost += cost;
            spend(&mut self.guard, &mut self.actions, now, cost);
            if let Some(s) = self.spend.as_mut() {
                s.with(|x| x.on_spend(now, live.extra, u64::from(input) + u64::from(output), cost));
            }
        }
        match outcome {
            Outcome::Success { body, .. } => {
                if st.req.json && st.req.measured {
                    self.validated.record(body);
                }
                if cfg.validation.accepts(body, st.req.json) {
                    self.budget.with(|x| x.on_attempt(true));
                    let b = if cfg.breaker_per_key {
                        usize::from(live.key)
                    } else {
                        model
                    };
                    self.breakers.with(|x| x[b].on_result(now, true));
                    st.last_model = live.model;
                    if live.hedge && st.req.measured {
                        self.hedge_wins += 1;
                    }
                    // First success wins: the other lane's attempt is cancelled.
                    if st.live[1 - lane].is_some() {
                        self.cancel_live(now, h, 1 - lane, CancelReason::HedgeLost);
                    }
                    let ft = live.first_token.get().unwrap_or(now);
                    self.finish(h, RequestResult::Success, Some(ft));
                } else {
                    self.failed(
                        now,
                        h,
                        (live.model, live.key),
                        FailureClass::Malformed,
                        None,
                        None,
                    );
                }
            }
            Outcome::HttpError {
                status,
                error,
                retry_after,
                should_retry,
            } => {
                let class = FailureClass::of_http(status, error);
                self.failed(
                    now,
                    h,
                    (live.model, live.key),
                    class,
                    retry_after,
                    should_retry,
                );
            }
            other => {
                if let Some(class) = FailureClass::of(&other) {
                    self.failed(now, h, (live.model, live.key), class, None, None);
                }
            }
        }
    }

    /// Timers that are due at `now` fire.
    pub fn handle_timeout(&mut self, now: Nanos) {
        self.timeouts(now);
        self.pump(now);
    }

    fn timeouts(&mut self, now: Nanos) {
        while let Some((at, t)) = self.timers.peek() {
            let t = *t;
            if at > now {
                break;
            }
            self.timers.pop();
            self.requests.live_head = None;
            if !self.timer_live(at, &t) {
                continue;
            }
            let (past_deadline, past_cut) = self
                .requests
                .get(t.req)
                .map_or((false, false), |st| (now >= st.req.deadline, now >= st.cut));
            let lane = usize::from(t.lane);
            match t.kind {
                _ if past_deadline => {
                    for l in 0..LANES {
                        self.cancel_live(now, t.req, l, CancelReason::Deadline);
                    }
                    self.finish(t.req, RequestResult::Failed(FailReason::Deadline), None);
                }
                _ if past_cut => self.pass_timed_out(now, t.req),
                TimerKind::Hedge => self.hedge(now, t.req),
                TimerKind::Wake => {
                    if let Some(st) = self.requests.get_mut(t.req) {
                        st.wake_at = None;
                    }
                    self.send(now, t.req);
                }
                TimerKind::FirstToken | TimerKind::Idle | TimerKind::End => {
                    let reason = match t.kind {
                        TimerKind::FirstToken => CancelReason::FirstTokenTimeout,
                        TimerKind::Idle => CancelReason::IdleTimeout,
                        _ => CancelReason::TotalTimeout,
                    };
                    if let Some(which) = self.cancel_live(now, t.req, lane, reason) {
                        self.failed(now, t.req, which, FailureClass::Timeout, None, None);
                    }
                }
            }
        }
    }

    /// Cancels the live attempt of `lane`, if any, and returns its model.
    fn cancel_live(
        &mut self,
        now: Nanos,
        h: Handle,
        lane: usize,
        reason: CancelReason,
    ) -> Option<(ModelId, KeyId)> {
        let st = self.requests.get_mut(h)?;
        let l = st.live[lane].take()?;
        let id = attempt_id(h, lane, l.serial);
        let b = if self.cfg.breaker_per_key {
            usize::from(l.key)
        } else {
            usize::from(l.model)
        };
        let a = &mut self.armed[h.index as usize][lane];
        disarm(&mut self.timers, a, h, lane, &l);
        self.router.on_end(l.model);
        if l.budgeted {
            self.budget.with(|x| x.on_retry_done());
        }
        if let Some(p) = self.keys.as_mut() {
            p.with(|x| x.on_cancel(l.key));
        }
        if let Some(c) = self.conc.as_mut() {
            c.with(|x| {
                x.release(match reason {
                    CancelReason::Deadline | CancelReason::HedgeLost => Signal::Ignore,
                    // A layer's timeout is a timeout, as an attempt's own.
                    _ => Signal::Drop,
                })
            });
        }
        self.cancelled
            .insert(id, (l.model, st.req.measured, h, l.extra));
        match reason {
            CancelReason::Deadline | CancelReason::PassTimeout => {
                // Timeouts are counted where they are classified; a cut by
                // the deadline or a layer's timeout, which the loop that sent
                // the attempt never classifies, is counted here, alike for
                // breaker and budget, so that a probe is never left hanging.
                self.breakers.with(|x| x[b].on_result(now, false));
                self.budget.with(|x| x.on_attempt(false));
            }
            // Neither failed nor succeeded; a probe it held is freed.
            CancelReason::HedgeLost => self.breakers.with(|x| x[b].on_abandoned()),
            _ => {}
        }
        self.actions.push_back(Action::Cancel {
            attempt: id,
            reason,
        });
        Some((l.model, l.key))
    }

    /// The breaker of an attempt to `model` with `key`.
    fn breaker_index(&self, model: usize, key: KeyId) -> usize {
        if self.cfg.breaker_per_key {
            usize::from(key)
        } else {
            model
        }
    }

    /// An attempt to `failed_model` with `failed_key` failed with `class`.
    fn failed(
        &mut self,
        now: Nanos,
        h: Handle,
        (failed_model, failed_key): (ModelId, KeyId),
        class: FailureClass,
        retry_after: Option<Nanos>,
        should_retry: Option<bool>,
    ) {
        let cfg = Arc::clone(&self.cfg);
        let retry = cfg.retry;
        let mut disposition = heed_should_retry(&retry, cfg.classify.get(class), should_retry);
        let model = usize::from(failed_model);
        let b = self.breaker_index(model, failed_key);
        let Some(st) = self.requests.get_mut(h) else {
            return;
        };
        let neutral = matches!(
            class,
            FailureClass::ClientError | FailureClass::AuthError | FailureClass::InsufficientQuota
        );
        if let BreakerConfig::FailureRate { .. } = cfg.breaker {
            litellm_heard(&mut self.breakers, now, b, class, retry_after);
            if !neutral {
                self.budget.with(|x| x.on_attempt(false));
                self.router.on_sample(&cfg, failed_model, FAILURE_PENALTY);
            }
        } else if neutral {
            // Nothing about the model's health (Polly counts what it does not
            // handle as a success): this also settles a half-open probe. Nor
            // does it drain a gRPC-style budget (A6 counts retryable statuses).
            // A key's breaker, though, does hear of a refused key.
            let key_trouble = cfg.breaker_per_key
                && matches!(
                    class,
                    FailureClass::AuthError | FailureClass::InsufficientQuota
                );
            self.breakers.with(|x| x[b].on_result(now, !key_trouble));
        } else {
            self.budget.with(|x| x.on_attempt(false));
            self.breakers.with(|x| x[b].on_result(now, false));
            self.router.on_sample(&cfg, failed_model, FAILURE_PENALTY);
        }
        st.last_fail = reason_of(class);
        if st.live.iter().any(Option::is_some) {
            // The other lane's attempt may still answer; only when it too
            // has failed do retries and fallback take over.
            return;
        }
        // A retry goes to the model of the request's chain position (a
        // hedge may have gone to the next one).
        let model = st.chain.get(st.pos).map_or(model, usize::from);
        // With a key pool, a refused key is the key's trouble, not the
        // model's: another usable key of the model is tried at once after a
        // 401/403, and without waiting for the resting key's retry-after
        // after a 429.
        let other_key = self.keys.as_ref().is_some_and(|p| {
            p.with_ref(|x| x.another_usable(&cfg.models[model].keys, KeyId::MAX, now))
        });
        if other_key
            && class == FailureClass::AuthError
            && now.saturating_add(cfg.min_attempt_time) < st.req.deadline
        {
            self.send(now, h);
            return;
        }
        if class == FailureClass::AuthError && self.keys.is_some() {
            // No key of this model is left: the next model may have one.
            disposition = Disposition::Fallback;
        }
        let retry_after =
            retry_after.filter(|_| !(other_key && class == FailureClass::RateLimited));
        if disposition == Disposition::Retry && st.retries_here < retry.max_retries {
            let u = if retry.backoff.is_random() {
                let n = u64::from(st.attempts);
                draws::uniform(self.draw_key, st.req.id, n, purpose::JITTER)
            } else {
                0.5
            };
            let n = st.retries_here - u32::from(st.kept);
            let step = retry.backoff.delay(n, st.prev_wait, u);
            let (wait, mut possible) = match retry_wait(&retry, step, retry_after) {
                Some(w) => (w, true),
                None => (step, false),
            };
            // Per key, the retry may take another key: its pick decides.
            // Asked at the wait finally chosen (a retry-after may shorten it).
            possible &= cfg.breaker_per_key
                || !self
                    .breakers
                    .with_ref(|x| x[model].is_open(now.saturating_add(wait)));
            // A retry that could not start before the deadline is not made;
            // the fallback chain may still answer in time. Only a retry that
            // can be made asks the budget.
            possible &= now
                .saturating_add(wait)
                .saturating_add(cfg.min_attempt_time)
                < st.req.deadline;
            // The `backoff` crate's `max_elapsed_time`: no retry whose wait
            // would end past it, counted from the start of this loop's pass
            // (the request's arrival without layers).
            possible &= retry.max_elapsed.is_none_or(|m| {
                let start = match self.passes.get(h.index as usize) {
                    Some(p) if !cfg.layers.is_empty() => p.start[cfg.layers.len()],
                    _ => st.arrived,
                };
                now.saturating_add(wait) <= start.saturating_add(m)
            });
            let spend_ok = self
                .spend
                .as_mut()
                .is_none_or(|s| s.with(|x| x.allows(now)));
            if possible && !(spend_ok && self.budget.with(|x| x.try_retry(now))) {
                // The budget says no: this model gets no more tries.
                if st.req.measured {
                    self.retries_denied += 1;
                }
                possible = false;
            }
            if possible {
                // A layer's pass may end first: the wait is dropped then.
                let wake = (now + wait).min(st.cut);
                st.budgeted = true;
                st.retries_here += 1;
                if retry.retry_after_keeps_step && header_set(&retry, step, retry_after) {
                    st.kept += 1;
                } else {
                    st.prev_wait = wait;
                }
                if wait == 0 {
                    self.send(now, h);
                } else {
                    st.wake_at = Some(wake);
                    let serial = self.next_serial();
                    self.arm(h, MAIN, serial);
                    self.push_timer(wake, h, MAIN, serial, TimerKind::Wake);
                }
                return;
            }
            disposition = Disposition::Fallback;
        }
        if std::mem::take(&mut st.budgeted) {
            // Granted, but the retry is not made after all.
            self.budget.with(|x| x.on_retry_done());
        }
        if disposition != Disposition::Fail && st.pos + 1 < st.chain.len() && now < st.req.deadline
        {
            st.pos += 1;
            st.retries_here = 0;
            st.kept = 0;
            st.prev_wait = 0;
            self.send(now, h);
            return;
        }
        let r = st.last_fail;
        if !cfg.layers.is_empty()
            && self.outer_retry(now, h, cfg.layers.len(), class, retry_after, should_retry)
        {
            return;
        }
        self.finish(h, RequestResult::Failed(r), None);
    }

    /// The loops inside layer `upto` gave up on a failure of `class` (the
    /// request's own loop, for `upto` = the number of layers): the
    /// innermost layer outside them that retries it and has retries left
    /// starts a fresh pass of every loop inside it, after its own backoff.
    fn outer_retry(
        &mut self,
        now: Nanos,
        h: Handle,
        upto: usize,
        class: FailureClass,
        retry_after: Option<Nanos>,
        should_retry: Option<bool>,
    ) -> bool {
        let cfg = Arc::clone(&self.cfg);
        let Some(st) = self.requests.get_mut(h) else {
            return false;
        };
        let Some(p) = self.passes.get_mut(h.index as usize) else {
            return false;
        };
        for (i, layer) in cfg.layers[..upto].iter().enumerate().rev() {
            let retry = layer.retry;
            let done = u32::from(st.outer[i]);
            let disposition = heed_should_retry(&retry, layer.classify.get(class), should_retry);
            if disposition != Disposition::Retry || done >= retry.max_retries {
                continue;
            }
            let u = if retry.backoff.is_random() {
                // Keyed apart from the inner loop's jitter for the same attempt.
                let n = u64::from(st.attempts) | ((i as u64 + 1) << 40);
                draws::uniform(self.draw_key, st.req.id, n, purpose::JITTER)
            } else {
                0.5
            };
            // This layer gives up (and the next one out may retry) when the
            // provider's wait is too long for it, when its own backoff would
            // end past its `max_elapsed` (counted from the start of its
            // pass) or when the retry could not start before the deadline.
            let n = done - u32::from(p.kept[i]);
            let step = retry.backoff.delay(n, p.prev_wait[i], u);
            let Some(wait) = retry_wait(&retry, step, retry_after) else {
                continue;
            };
            if retry
                .max_elapsed
                .is_some_and(|m| now.saturating_add(wait) > p.start[i].saturating_add(m))
                || now
                    .saturating_add(wait)
                    .saturating_add(cfg.min_attempt_time)
                    >= st.req.deadline
            {
                continue;
            }
            st.outer[i] += 1;
            for o in &mut st.outer[i + 1..] {
                *o = 0;
            }
            // The loops inside this layer start their passes when its wait
            // ends, with no memory of their last ones.
            let wake = now + wait;
            if retry.retry_after_keeps_step && header_set(&retry, step, retry_after) {
                p.kept[i] += 1;
            } else {
                p.prev_wait[i] = wait;
            }
            for w in &mut p.prev_wait[i + 1..] {
                *w = 0;
            }
            for k in &mut p.kept[i + 1..] {
                *k = 0;
            }
            for s in &mut p.start[i + 1..] {
                *s = wake;
            }
            st.cut = pass_cut(&cfg.layers, &p.start, st.req.deadline);
            st.pos = 0;
            st.retries_here = 0;
            st.kept = 0;
            st.prev_wait = 0;
            // A fresh pass of the inner loop may hedge again.
            st.hedged = false;
            // Counted only if its pass starts: an enclosing pass that ends
            // first (by `cut`, now that the inner passes start at `wake`)
            // drops the wait, and a timer at `cut` is that pass's end.
            if st.req.measured && wake < st.cut {
                self.layer_retries[i] += 1;
            }
            if wait == 0 {
                self.send(now, h);
            } else {
                // An outer layer's pass may end before the wait does.
                let wake = wake.min(st.cut);
                st.wake_at = Some(wake);
                let serial = self.next_serial();
                self.arm(h, MAIN, serial);
                self.push_timer(wake, h, MAIN, serial, TimerKind::Wake);
            }
            return true;
        }
        false
    }

    /// A layer's pass has run out of time (its `timeout`): every attempt
    /// inside is cancelled, a pending wait is dropped, and the layer sees a
    /// timeout, which it retries or passes outward by its own rules.
    fn pass_timed_out(&mut self, now: Nanos, h: Handle) {
        let cfg = Arc::clone(&self.cfg);
        let Some(p) = self.passes.get(h.index as usize) else {
            return;
        };
        // The outermost layer whose pass has ended: the loops inside it go
        // with it, whatever their own timeouts.
        let Some(k) = cfg
            .layers
            .iter()
            .zip(&p.start[1..])
            .position(|(l, &s)| l.timeout.is_some_and(|t| s.saturating_add(t) <= now))
        else {
            return;
        };
        for lane in 0..LANES {
            self.cancel_live(now, h, lane, CancelReason::PassTimeout);
        }
        let Some(st) = self.requests.get_mut(h) else {
            return;
        };
        st.wake_at = None;
        // A paced attempt's share stays spent; a queued one leaves the queue.
        st.paced = None;
        let queued = std::mem::take(&mut st.queued);
        let budgeted = std::mem::take(&mut st.budgeted);
        st.last_fail = FailReason::Timeout;
        if st.req.measured {
            self.layer_pass_timeouts[k] += 1;
        }
        if queued {
            self.withdraw_from_queue(h);
        }
        if budgeted {
            // A retry the budget granted is not made.
            self.budget.with(|x| x.on_retry_done());
        }
        if !self.outer_retry(now, h, k + 1, FailureClass::Timeout, None, None) {
            self.finish(h, RequestResult::Failed(FailReason::Timeout), None);
        }
    }

    fn finish(&mut self, h: Handle, result: RequestResult, first_token: Option<Nanos>) {
        let Some(st) = self.requests.remove(h) else {
            return;
        };
        let mut result = result;
        if result == RequestResult::Failed(FailReason::Malformed)
            && st.req.json
            && self.cfg.validation.safe_default
        {
            // The strategy's safe default answers instead.
            result = RequestResult::Success;
            if st.req.measured {
                self.validated.safe_defaults += 1;
            }
        }
        if let Some(a) = self.armed.get_mut(h.index as usize) {
            *a = [Armed::NONE; LANES];
        }
        if st.budgeted {
            self.budget.with(|x| x.on_retry_done());
        }
        if st.queued {
            self.withdraw_from_queue(h);
        }
        self.budget.with(|x| x.on_request_done());
        self.actions.push_back(Action::Finish {
            request: st.req.id,
            result,
            arrived: st.arrived,
            first_token,
            attempts: st.attempts,
            model: st.last_model,
            cost: st.cost,
            measured: st.req.measured,
        });
    }
}

/// For a request in `send` under a fleet limit: `Some(may_wait)` when it
/// may not have a place now (none is free, or older requests wait for it
/// and it is not the one taken from the head), `may_wait` if the fleet's
/// queue has room for it.
#[cold]
#[inline(never)]
/// What a `failure_rate` breaker (LiteLLM's router) hears of a failed
/// call: a 429 (a quota error too: OpenAI's is a 429), a 401 (an
/// authentication error, 401 or 403, is taken for a 401), a connection
/// error, another 4xx, or anything else. A body the model got wrong came
/// with a 200, which the router counts as a success.
fn litellm_heard(
    breakers: &mut Scoped<Vec<CircuitBreaker>>,
    now: Nanos,
    b: usize,
    class: FailureClass,
    retry_after: Option<Nanos>,
) {
    use super::breaker::LitellmFailure as L;
    let what = match class {
        FailureClass::Malformed => {
            breakers.with(|x| x[b].on_result(now, true));
            return;
        }
        FailureClass::RateLimited | FailureClass::InsufficientQuota => L::RateLimited,
        FailureClass::AuthError => L::Unauthorized,
        FailureClass::Reset => L::Connection,
        FailureClass::ClientError | FailureClass::Conflict => L::OtherClientError,
        FailureClass::Overloaded
        | FailureClass::ServerError
        | FailureClass::Timeout
        | FailureClass::BrokenStream => L::Other,
    };
    breakers.with(|x| x[b].on_litellm_failure(now, what, retry_after));
}

fn fleet_full(c: &std::cell::RefCell<ConcurrencyLimit>, at_head: bool) -> Option<bool> {
    let c = c.borrow();
    let go = if at_head {
        c.has_room()
    } else {
        c.has_room_for_newcomer()
    };
    (!go).then(|| c.waiting() < c.queue())
}

#[cold]
#[inline(never)]
fn fleet_room(c: &std::cell::RefCell<ConcurrencyLimit>) -> Option<u32> {
    c.borrow().head_with_room().map(|t| t.replica)
}

/// Cancels in place timer `which` of the attempt with `serial` in `lane` of
/// request `h`, due at `at`, if it still waits on the calendar's ring: it is
/// dead now, and would only be popped and dismissed by `Client::timer_live`.
fn cancel_timer(
    timers: &mut CalendarQueue<Timer>,
    a: &mut Armed,
    which: usize,
    at: Option<Nanos>,
    (h, lane, serial): (Handle, usize, u32),
) {
    let slot = std::mem::replace(&mut a.slots[which], Slot::NONE);
    let (Some(at), true) = (at, slot != Slot::NONE) else {
        return;
    };
    let kind = match which {
        END => TimerKind::End,
        FIRST => TimerKind::FirstToken,
        _ => TimerKind::Hedge,
    };
    let t = Timer {
        req: h,
        serial,
        lane: lane as u8,
        kind,
    };
    timers.cancel(slot, at, &t);
}

/// Attempt `l` in `lane` of request `h` has ended: its lane's timers may fire for
/// nothing now, and those still on the calendar's ring are cancelled.
fn disarm(timers: &mut CalendarQueue<Timer>, a: &mut Armed, h: Handle, lane: usize, l: &Live) {
    let id = (h, lane, l.serial);
    cancel_timer(timers, a, END, Some(l.end_deadline), id);
    cancel_timer(timers, a, FIRST, l.first_token_deadline.get(), id);
    cancel_timer(timers, a, LATE, l.hedge_at.get(), id);
    *a = Armed::NONE;
}

/// The next key of `model`'s round-robin.
fn next_key(cfg: &StrategyConfig, rr: &mut [u32], model: usize) -> KeyId {
    let keys = &cfg.models[model].keys;
    let r = &mut rr[model];
    let key = keys
        .get((*r as usize) % keys.len().max(1))
        .copied()
        .unwrap_or(0);
    *r = r.wrapping_add(1);
    key
}

/// The next key of `model`'s round-robin for which `ok` holds.
fn next_key_where(
    cfg: &StrategyConfig,
    rr: &mut [u32],
    model: usize,
    ok: impl Fn(KeyId) -> bool,
) -> Option<KeyId> {
    (0..cfg.models[model].keys.len())
        .map(|_| next_key(cfg, rr, model))
        .find(|&k| ok(k))
}

/// Which of the rate limiter's bucket pairs an attempt to `model` with
/// `key` goes through.
fn limit_index(cfg: &StrategyConfig, l: &RateLimiter, model: usize, key: KeyId) -> usize {
    match l.config().per {
        LimitPer::Provider => usize::from(cfg.models[model].provider),
        LimitPer::Key => usize::from(key),
    }
}

/// Feeds a bill to the cost guard, queueing the alerts it raises.
fn spend(
    guard: &mut Option<Scoped<CostGuard>>,
    actions: &mut VecDeque<Action>,
    now: Nanos,
    cost: NanoUsd,
) {
    if let Some(g) = guard.as_mut() {
        g.with(|x| {
            x.on_spend(now, cost, |alert| {
                actions.push_back(Action::Alert { at: now, alert })
            })
        });
    }
}

/// The model of `chain` that would bill `req` least, at its prompt plus
/// `max_tokens` (the first of equals).
fn cheapest(cfg: &StrategyConfig, chain: &Chain, req: &Request) -> ModelId {
    let est = |m: ModelId| {
        let info = &cfg.models[usize::from(m)];
        u128::from(req.input_tokens) * u128::from(info.price_in)
            + u128::from(req.max_tokens) * u128::from(info.price_out)
    };
    (0..chain.len())
        .filter_map(|i| chain.get(i))
        .min_by_key(|&m| est(m))
        .unwrap_or(cfg.default_model)
}

/// Whether a client with the default validation accepts a body: JSON
/// requests take valid or fenced JSON (the fence is stripped); others take
/// anything but a truncated body.
pub fn body_acceptable(body: BodyKind, json: bool) -> bool {
    ValidationConfig::default().accepts(body, json)
}

fn reason_of(c: FailureClass) -> FailReason {
    match c {
        FailureClass::RateLimited => FailReason::RateLimited,
        FailureClass::InsufficientQuota => FailReason::QuotaExhausted,
        FailureClass::Overloaded => FailReason::Overloaded,
        FailureClass::ServerError => FailReason::ServerError,
        FailureClass::ClientError | FailureClass::AuthError | FailureClass::Conflict => {
            FailReason::ClientError
        }
        FailureClass::Timeout => FailReason::Timeout,
        FailureClass::Reset => FailReason::Reset,
        FailureClass::BrokenStream => FailReason::BrokenStream,
        FailureClass::Malformed => FailReason::Malformed,
    }
}

/// The provider's `x-should-retry`, where the loop honours it: its word
/// beats the client's table (the SDKs' rule).
fn heed_should_retry(
    retry: &RetryConfig,
    disposition: Disposition,
    should_retry: Option<bool>,
) -> Disposition {
    if !retry.honor_should_retry {
        return disposition;
    }
    match should_retry {
        Some(false) if disposition == Disposition::Retry => Disposition::Fallback,
        Some(true) => Disposition::Retry,
        _ => disposition,
    }
}

/// The wait before a retry whose backoff step is `step`, after the
/// provider's `retry-after`; `None` when the loop gives up because that is
/// longer than it will wait (`too_long_retry_after = "give_up"`).
fn retry_wait(retry: &RetryConfig, step: Nanos, retry_after: Option<Nanos>) -> Option<Nanos> {
    let (true, Some(ra)) = (retry.honor_retry_after, retry_after) else {
        return Some(step);
    };
    if ra <= retry.max_retry_after {
        // The SDKs wait the header's figure, even when shorter than their
        // step (but a zero one leaves the step).
        Some(if retry.retry_after_replaces_backoff && ra > 0 {
            ra
        } else {
            step.max(ra)
        })
    } else if retry.too_long_retry_after == TooLongRetryAfter::GiveUp {
        None
    } else {
        // `Backoff`: a too-long retry-after is ignored and the backoff alone
        // decides, as openai-python 1.x does.
        Some(step)
    }
}

/// Whether the wait [`retry_wait`] gives is the provider's `retry-after`
/// rather than the backoff's `step`: an in-bound header the loop honours
/// that is longer than the step, or any positive one where it replaces the
/// backoff. Asked only with `retry_after_keeps_step`.
#[cold]
fn header_set(retry: &RetryConfig, step: Nanos, retry_after: Option<Nanos>) -> bool {
    retry_after.is_some_and(|ra| {
        retry.honor_retry_after
            && ra <= retry.max_retry_after
            && ((retry.retry_after_replaces_backoff && ra > 0) || ra > step)
    })
}

#[cfg(test)]
mod tests;
