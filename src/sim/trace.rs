//! Exemplars: the attempt timelines of a few chosen requests, recorded in a
//! replay of the run. A run is deterministic, so the replay sends exactly
//! the same attempts; the first pass keeps nothing per request, and only
//! the replay, which stops once the chosen requests have finished, records.

use crate::report::collect::{AttemptEnd, Pick};
use crate::report::json::{AttemptTrace, Exemplar};
use crate::slab::Handle;
use crate::units::Nanos;
use crate::world::WorldConfig;

/// Most attempts recorded per request (the rest are counted).
const MAX_ATTEMPTS: usize = 32;

#[derive(Clone, Copy)]
struct Attempt {
    model: u16,
    key: u16,
    start: Nanos,
    end: Option<(Nanos, AttemptEnd, Option<u16>)>,
}

/// Records the attempts of the requests it was given.
pub(crate) struct Tracer {
    /// Sorted request ids.
    ids: Vec<u64>,
    attempts: Vec<Vec<Attempt>>,
    more: Vec<u32>,
    /// Attempts in flight: (handle, request index, attempt index).
    live: Vec<(Handle, usize, usize)>,
    remaining: usize,
}

impl Tracer {
    pub(crate) fn new(ids: &[u64]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let n = ids.len();
        Self {
            ids,
            attempts: vec![Vec::new(); n],
            more: vec![0; n],
            live: Vec::new(),
            remaining: n,
        }
    }

    /// Every chosen request has finished.
    pub(crate) fn done(&self) -> bool {
        self.remaining == 0
    }

    pub(crate) fn on_send(&mut self, request: u64, h: Handle, now: Nanos, model: u16, key: u16) {
        let Ok(i) = self.ids.binary_search(&request) else {
            return;
        };
        if self.attempts[i].len() >= MAX_ATTEMPTS {
            self.more[i] += 1;
            return;
        }
        self.live.push((h, i, self.attempts[i].len()));
        self.attempts[i].push(Attempt {
            model,
            key,
            start: now,
            end: None,
        });
    }

    pub(crate) fn on_end(&mut self, h: Handle, now: Nanos, end: AttemptEnd, status: Option<u16>) {
        if let Some(pos) = self.live.iter().position(|(x, _, _)| *x == h) {
            let (_, i, k) = self.live.swap_remove(pos);
            self.attempts[i][k].end = Some((now, end, status));
        }
    }

    pub(crate) fn on_finish(&mut self, request: u64) {
        if self.ids.binary_search(&request).is_ok() {
            self.remaining = self.remaining.saturating_sub(1);
        }
    }

    /// The exemplars, in the order of `picks`.
    pub(crate) fn exemplars(&self, picks: &[Pick], world: &WorldConfig) -> Vec<Exemplar> {
        picks
            .iter()
            .filter_map(|p| {
                let i = self.ids.binary_search(&p.request).ok()?;
                let list = &self.attempts[i];
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
                    attempts_not_shown: self.more[i],
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
