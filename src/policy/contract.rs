//! What crosses the core's boundary: requests and outcomes in, actions out.
//! A driver feeds everything a real client would see and nothing it would not.
//!
//! # Replicas that share a queue
//!
//! A strategy's replicas may share a fleet-scoped concurrency limit (one
//! gateway's limit): one count of attempts in flight and one first-in,
//! first-out queue of requests waiting for a place. The queue holds tickets
//! (which replica, in the order the replicas joined the fleet, and which of
//! its requests); the requests themselves stay in their replica. When an
//! input to one replica frees a place (an attempt ends, is cancelled, an
//! adaptive limit grows), the oldest waiting request may be another
//! replica's, and a core cannot call another core. So, after every input
//! and its actions, a driver asks [`super::Client::poll_room`] (of the
//! replica it just fed; any replica answers alike): `Some(r)` means a place
//! is free and replica `r` holds the oldest ticket. The driver gives
//! replica `r` the moment with [`super::Client::handle_room`], at the same
//! `now`, carries out its actions (its `Send`s), and asks again, until the
//! answer is `None`. Each call takes at least the head ticket, so this
//! ends. A driver that does so serves the fleet's queue as one gateway
//! would: the oldest waiting request gets the next free place at the
//! instant it frees, and a new arrival that finds a free place while older
//! requests wait queues behind them. Without a fleet limit `poll_room` is
//! always `None`, and nothing else changes: a driver may skip the question
//! for a strategy none of whose replicas [`super::Client::shares_queue`].

use crate::units::{NanoUsd, Nanos};
use crate::wire::{BodyKind, ErrorType};

use super::config::Tier;
use super::cost_guard::Alert;

/// A model, by its index in the strategy's catalogue.
pub type ModelId = u16;
/// An API key, by its index in the strategy's catalogue.
pub type KeyId = u16;

/// A user request, as it reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    /// Unique and stable across strategies (it keys the draws).
    pub id: u64,
    /// Task type index (into the scenario's task mix).
    pub task: u16,
    /// Complexity tier.
    pub tier: Tier,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// `max_tokens` to send.
    pub max_tokens: u32,
    /// Whether the answer must be JSON.
    pub json: bool,
    /// Absolute time by which the user needs the answer.
    pub deadline: Nanos,
    /// Whether the request counts in the measured figures (not warm-up).
    pub measured: bool,
}

/// An attempt's id: unique among the client's live attempts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AttemptId(pub u64);

impl AttemptId {
    /// A small, dense index (the request's slot in the core and the lane of
    /// the attempt, main or hedge, reused after the request finishes) that a
    /// driver may use to keep its own per-attempt record in a plain array
    /// instead of a map. At most one attempt per slot is live at a time;
    /// compare the whole id on lookup.
    pub fn slot(self) -> usize {
        (self.0 & 0xFFFF_FFFF) as usize
    }
}

/// How an attempt ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// A complete answer.
    Success {
        /// Prompt tokens billed.
        input_tokens: u32,
        /// Output tokens billed.
        output_tokens: u32,
        /// What the client's parser made of the body.
        body: BodyKind,
    },
    /// An HTTP error answer.
    HttpError {
        /// Status code.
        status: u16,
        /// The error body's kind.
        error: ErrorType,
        /// `retry-after` / `retry-after-ms`, in nanoseconds.
        retry_after: Option<Nanos>,
        /// `x-should-retry`.
        should_retry: Option<bool>,
    },
    /// The connection was reset.
    Reset {
        /// Prompt tokens billed (the provider had started).
        input_tokens: u32,
        /// Output tokens received before the reset.
        output_tokens: u32,
    },
    /// The stream stopped before its end.
    BrokenStream {
        /// Prompt tokens billed.
        input_tokens: u32,
        /// Output tokens received.
        output_tokens: u32,
    },
    /// The driver's report on an attempt the core cancelled.
    Cancelled {
        /// Prompt tokens billed (0 if the provider had not started).
        input_tokens: u32,
        /// Output tokens received before the cancel.
        output_tokens: u32,
    },
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailReason {
    /// The user's deadline passed.
    Deadline,
    /// 429 on the last try.
    RateLimited,
    /// 429 `insufficient_quota`.
    QuotaExhausted,
    /// 503/529 on the last try.
    Overloaded,
    /// 500 or other 5xx on the last try.
    ServerError,
    /// A 4xx the client caused.
    ClientError,
    /// The last try timed out.
    Timeout,
    /// The connection was reset.
    Reset,
    /// The stream broke off.
    BrokenStream,
    /// The body was not what was asked for.
    Malformed,
    /// Every model left on the request's chain had its breaker open.
    NoModelAvailable,
    /// The client's adaptive throttle rejected it locally.
    Throttled,
    /// A cost guard's limit was reached and its action is `reject`.
    CostLimit,
    /// The client's own rate or concurrency limit had no room in time.
    Shed,
    /// Every key of every model left was disabled or resting.
    NoKeyAvailable,
}

impl FailReason {
    /// Every reason, in report order.
    pub const ALL: [Self; 15] = [
        Self::Deadline,
        Self::RateLimited,
        Self::QuotaExhausted,
        Self::Overloaded,
        Self::ServerError,
        Self::ClientError,
        Self::Timeout,
        Self::Reset,
        Self::BrokenStream,
        Self::Malformed,
        Self::NoModelAvailable,
        Self::Throttled,
        Self::CostLimit,
        Self::Shed,
        Self::NoKeyAvailable,
    ];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::Overloaded => "overloaded",
            Self::ServerError => "server_error",
            Self::ClientError => "client_error",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::BrokenStream => "broken_stream",
            Self::Malformed => "malformed",
            Self::NoModelAvailable => "no_model_available",
            Self::Throttled => "throttled",
            Self::CostLimit => "cost_limit",
            Self::Shed => "shed",
            Self::NoKeyAvailable => "no_key_available",
        }
    }

    /// Position in [`FailReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why the core cancels an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// No first token in time.
    FirstTokenTimeout,
    /// The stream went quiet too long.
    IdleTimeout,
    /// The attempt took too long in total.
    TotalTimeout,
    /// The request's deadline passed.
    Deadline,
    /// A layer's `timeout` ended the pass the attempt was in (see
    /// [`super::config::LayerConfig::timeout`]).
    PassTimeout,
    /// The other attempt of a hedged request answered first.
    HedgeLost,
}

/// The result of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestResult {
    /// Answered.
    Success,
    /// Given up.
    Failed(FailReason),
}

/// What the core asks its driver to do, in order.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an attempt.
    Send {
        /// The attempt.
        attempt: AttemptId,
        /// The request's id (for draw keys).
        request: u64,
        /// The request's task index (a live driver builds the prompt from it).
        task: u16,
        /// Whether the request counts in the measured figures.
        measured: bool,
        /// Which model.
        model: ModelId,
        /// Which key.
        key: KeyId,
        /// 1 for the first attempt of the request, counting every model.
        attempt_no: u32,
        /// 0 for the first try of this request on this model.
        try_on_model: u32,
        /// Prompt tokens.
        input_tokens: u32,
        /// `max_tokens`.
        max_tokens: u32,
        /// The attempt's own deadline (absolute).
        deadline: Nanos,
        /// Whether it is a hedge beside another attempt.
        hedge: bool,
    },
    /// Stop an attempt; the driver answers with `Outcome::Cancelled`.
    Cancel {
        /// The attempt.
        attempt: AttemptId,
        /// Why.
        reason: CancelReason,
    },
    /// A request is finished.
    Finish {
        /// The request's id.
        request: u64,
        /// Success or the reason it failed.
        result: RequestResult,
        /// When it arrived.
        arrived: Nanos,
        /// When the answer's first token came, if it did.
        first_token: Option<Nanos>,
        /// Attempts sent.
        attempts: u32,
        /// The model of the last attempt.
        model: ModelId,
        /// Cost of its attempts reported so far.
        cost: NanoUsd,
        /// Whether it counts in the measured figures.
        measured: bool,
    },
    /// Something a person should hear about (a cost threshold or limit).
    Alert {
        /// When it was raised.
        at: Nanos,
        /// What.
        alert: Alert,
    },
}
