//! Exemplars: the attempt timelines of a few chosen requests.
//!
//! Which requests are chosen (the slowest, the first failure of each
//! reason) is known only once they finish, so the run records the attempts
//! of the measured requests in flight (at most [`MAX_ATTEMPTS`] each) in a
//! table keyed by request id, and copies a request's timeline out when it
//! finishes and the collector takes it as a candidate; the request's slot
//! is then free again. The table is open-addressed (a request lives within
//! [`PROBES`] slots of its home) and doubles when a new request finds no
//! free slot there, so it follows the number of requests in flight, as the
//! simulator's other tables do, and slots keep their vectors: once warm,
//! the hot path pays a few compares per attempt and no allocation. Past
//! [`MAX_SLOTS`] a request goes unrecorded; a candidate whose timeline is
//! incomplete is then recorded in a replay of the run (it is
//! deterministic: the replay sends exactly the same attempts), which
//! follows the chosen requests alone and stops once they have finished.

use crate::report::collect::{AttemptEnd, Pick};
use crate::report::json::{AttemptTrace, Exemplar};
use crate::units::Nanos;
use crate::world::WorldConfig;

/// Most attempts recorded per request (the rest are counted).
const MAX_ATTEMPTS: usize = 32;
/// Initial slots of the recording table (a power of two).
const SLOTS: usize = 1 << 12;
/// Most slots: beyond, requests in flight go unrecorded.
const MAX_SLOTS: usize = 1 << 20;
/// Slots a request may sit in, from its home slot on.
const PROBES: usize = 16;
/// Kept timelines beyond which those no longer candidates are dropped.
const KEEP: usize = 64;
/// A free slot's request id (no source numbers that many requests).
const FREE: u64 = u64::MAX;
/// An attempt that is not recorded.
pub(crate) const NOT_RECORDED: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Attempt {
    model: u16,
    key: u16,
    start: Nanos,
    end: Option<(Nanos, AttemptEnd, Option<u16>)>,
}

/// One request's attempts.
#[derive(Clone)]
struct History {
    /// The request, or [`FREE`].
    request: u64,
    /// Recorded from the request's first attempt on.
    complete: bool,
    attempts: Vec<Attempt>,
    /// Attempts past [`MAX_ATTEMPTS`], counted.
    more: u32,
}

impl History {
    fn free() -> Self {
        Self {
            request: FREE,
            complete: false,
            attempts: Vec::new(),
            more: 0,
        }
    }
}

/// Records attempt timelines: of every measured request in flight (the
/// run), or of a few given requests (the replay).
pub(crate) struct Tracer {
    /// The replay's requests, sorted (each has its own slot); `None` when
    /// recording every request.
    only: Option<Vec<u64>>,
    slots: Vec<History>,
    /// Most slots the table may grow to.
    max_slots: usize,
    /// Timelines of finished requests that were candidates.
    kept: Vec<History>,
    /// The replay's requests not finished yet.
    remaining: usize,
    /// Emptied attempt vectors of finished requests, for the next new ones:
    /// without them every slot the table ever used allocated its own (the
    /// table runs at a fifth full, so about one allocation per request).
    spare: Vec<Vec<Attempt>>,
}

impl Tracer {
    /// Records every measured request, keeping the candidates' timelines.
    pub(crate) fn recording() -> Self {
        Self::recording_in(SLOTS, MAX_SLOTS)
    }

    /// [`Self::recording`] with a table of `slots` growing to at most
    /// `max_slots` (powers of two).
    pub(crate) fn recording_in(slots: usize, max_slots: usize) -> Self {
        let max_slots = max_slots.max(PROBES).next_power_of_two();
        let n = slots.max(PROBES).next_power_of_two().min(max_slots);
        Self {
            only: None,
            slots: vec![History::free(); n],
            max_slots,
            kept: Vec::new(),
            remaining: usize::MAX,
            spare: Vec::new(),
        }
    }

    /// Records only `ids` (a replay), until they have all finished.
    pub(crate) fn only(ids: &[u64]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let n = ids.len();
        Self {
            only: Some(ids),
            slots: vec![History::free(); n],
            max_slots: n,
            kept: Vec::new(),
            remaining: n,
            spare: Vec::new(),
        }
    }

    /// A replay's requests have all finished.
    pub(crate) fn done(&self) -> bool {
        self.remaining == 0
    }

    /// The slots `request` may sit in when recording.
    fn window(&self, request: u64) -> impl Iterator<Item = usize> {
        // Sources number their requests `source << 40 | n`: fold the source
        // in so that two sources' requests spread apart.
        let home = (request ^ (request >> 40)) as usize;
        let mask = self.slots.len() - 1;
        (0..PROBES).map(move |d| (home + d) & mask)
    }

    /// The slot holding `request`.
    fn find(&self, request: u64) -> Option<usize> {
        match &self.only {
            Some(ids) => ids.binary_search(&request).ok(),
            None => self
                .window(request)
                .find(|&i| self.slots[i].request == request),
        }
    }

    /// A free slot for a new request when recording, growing the table if
    /// its window is full.
    fn insert(&mut self, request: u64) -> Option<usize> {
        loop {
            if let Some(i) = self
                .window(request)
                .find(|&i| self.slots[i].request == FREE)
            {
                return Some(i);
            }
            if self.slots.len() >= self.max_slots {
                return None;
            }
            let n = self.slots.len() * 2;
            let old = std::mem::replace(&mut self.slots, vec![History::free(); n]);
            for h in old {
                if h.request == FREE {
                    self.recycle(h.attempts);
                    continue;
                }
                // The doubled table has room for every live request, or
                // grows again; a request that still finds none is dropped
                // (and replayed if it is picked).
                if let Some(i) = self.insert(h.request) {
                    self.slots[i] = h;
                }
            }
        }
    }

    /// Keeps an attempt vector for a later request.
    fn recycle(&mut self, mut v: Vec<Attempt>) {
        if v.capacity() > 0 {
            v.clear();
            self.spare.push(v);
        }
    }

    /// An attempt of `request` was sent (`first`: its first attempt);
    /// returns the attempt's index in the request's timeline, or
    /// [`NOT_RECORDED`].
    #[inline]
    pub(crate) fn on_send(
        &mut self,
        request: u64,
        first: bool,
        now: Nanos,
        model: u16,
        key: u16,
    ) -> u32 {
        let found = self.find(request);
        let slot = match (found, &self.only) {
            (Some(i), _) => Some(i),
            (None, None) if first => self.insert(request),
            _ => None,
        };
        let Some(i) = slot else {
            return NOT_RECORDED;
        };
        let h = &mut self.slots[i];
        if h.request != request || first {
            h.request = request;
            h.complete = first;
            h.attempts.clear();
            h.more = 0;
            if h.attempts.capacity() == 0 {
                if let Some(v) = self.spare.pop() {
                    h.attempts = v;
                }
            }
        }
        if h.attempts.len() >= MAX_ATTEMPTS {
            h.more += 1;
            return NOT_RECORDED;
        }
        h.attempts.push(Attempt {
            model,
            key,
            start: now,
            end: None,
        });
        (h.attempts.len() - 1) as u32
    }

    /// Attempt `k` of `request` (from [`Self::on_send`]) ended.
    #[inline]
    pub(crate) fn on_end(
        &mut self,
        request: u64,
        k: u32,
        now: Nanos,
        end: AttemptEnd,
        status: Option<u16>,
    ) {
        if k == NOT_RECORDED {
            return;
        }
        let Some(i) = self.find(request) else { return };
        let h = &mut self.slots[i];
        if h.request == request {
            if let Some(a) = h.attempts.get_mut(k as usize) {
                a.end.get_or_insert((now, end, status));
            }
        }
    }

    /// `request` finished after sending `sent` attempts; `keep`: it is an
    /// exemplar candidate (always, in a replay). Its timeline is copied as
    /// it is now: an attempt still open shows as having no answer by the
    /// end of the request. `is_candidate` tells which kept timelines may
    /// be dropped when too many have piled up.
    pub(crate) fn on_finish(
        &mut self,
        request: u64,
        sent: u32,
        keep: bool,
        is_candidate: impl Fn(u64) -> bool,
    ) {
        let found = self.find(request);
        let replay = self.only.is_some();
        if replay {
            if found.is_none() {
                return;
            }
            self.remaining = self.remaining.saturating_sub(1);
        }
        let whole = found.is_some_and(|i| {
            let h = &self.slots[i];
            h.request == request
                && h.complete
                && h.attempts.len() as u64 + u64::from(h.more) == u64::from(sent)
        });
        if keep || replay {
            let copy = match found {
                Some(i) if whole => self.slots[i].clone(),
                _ => History {
                    request,
                    // No attempt at all is a whole (empty) timeline.
                    complete: sent == 0,
                    ..History::free()
                },
            };
            self.kept.retain(|k| k.request != request);
            self.kept.push(copy);
            if self.kept.len() > KEEP {
                self.kept.retain(|k| is_candidate(k.request));
            }
        }
        if let (Some(i), false) = (found, replay) {
            self.slots[i].request = FREE;
            let v = std::mem::take(&mut self.slots[i].attempts);
            self.recycle(v);
        }
    }

    /// Whether every pick's whole timeline was recorded.
    pub(crate) fn has_all(&self, picks: &[Pick]) -> bool {
        picks.iter().all(|p| {
            self.kept
                .iter()
                .any(|k| k.request == p.request && k.complete)
        })
    }

    /// The exemplars, in the order of `picks`.
    pub(crate) fn exemplars(&self, picks: &[Pick], world: &WorldConfig) -> Vec<Exemplar> {
        picks
            .iter()
            .filter_map(|p| {
                let h = self.kept.iter().find(|k| k.request == p.request)?;
                let list = &h.attempts;
                let attempts = list
                    .iter()
                    .enumerate()
                    .map(|(k, a)| {
                        let end = a.end.map(|e| e.0);
                        AttemptTrace {
                            model: world
                                .models
                                .get(usize::from(a.model))
                                .map_or_else(String::new, |m| m.name.clone()),
                            key: world
                                .keys
                                .get(usize::from(a.key))
                                .map_or_else(String::new, |k| k.name.clone()),
                            start_ns: a.start,
                            end_ns: end,
                            outcome: describe(a.end.map(|e| (e.1, e.2))),
                            wait_before_next_ns: match (end, list.get(k + 1)) {
                                (Some(e), Some(next)) => Some(next.start.saturating_sub(e)),
                                _ => None,
                            },
                        }
                    })
                    .collect();
                Some(Exemplar {
                    request: p.request,
                    why: p.why.clone(),
                    arrived_ns: p.arrived,
                    latency_us: p.latency / 1000,
                    result: p.result.clone(),
                    attempts,
                    attempts_not_shown: h.more,
                })
            })
            .collect()
    }
}

fn describe(end: Option<(AttemptEnd, Option<u16>)>) -> String {
    let Some((end, status)) = end else {
        return "no answer by the end of the request".into();
    };
    let what = match end {
        AttemptEnd::Answered => "answered",
        AttemptEnd::RateLimited => "rate limited",
        AttemptEnd::Overloaded => "overloaded",
        AttemptEnd::Error => "error",
        AttemptEnd::Broken => "connection reset or stream broken",
        AttemptEnd::Cancelled => "cancelled by the client (timeout or deadline)",
        AttemptEnd::HedgeLost => {
            "cancelled: the other attempt of its hedged request answered first"
        }
    };
    match status {
        Some(s) => format!("{s} {what}"),
        None => what.to_owned(),
    }
}
